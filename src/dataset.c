/* dataset.c — split first, then cut patches: the one place the protocols meet
 * the patch builder (see ld_dataset_build in patches.h). */
#include <string.h>
#include "alloc.h"
#include "lymphdet/patches.h"

void ld_split_config_default(ld_split_config *cfg)
{
    cfg->protocol = LD_PROTOCOL_IMAGE;
    cfg->val_fraction = 0.1;
    cfg->group_fields = NULL;
    cfg->seed = 1;
    cfg->val_labels = NULL;
}

void ld_dataset_free(ld_dataset *ds)
{
    ld_patchset_free(&ds->train);
    ld_patchset_free(&ds->val);
    ld_free(ds->image_is_val);
    ld_free(ds->group_of);
    memset(ds, 0, sizeof *ds);
}

/* the paper: all patches from all images, then Keras' validation_split */
static ld_status build_paper(ld_dataset *ds, const ld_labels *labels, const char *images_dir,
                             const ld_split_config *scfg, const ld_patch_config *pcfg,
                             ld_error *err)
{
    ld_patchset all;
    ld_status st = ld_patches_build(&all, labels, images_dir, NULL, 0, pcfg, err);
    if (st) return st;
    int *perm = ld_alloc((size_t)all.n, sizeof *perm, "the patch order", err);
    if (!perm) st = LD_ERR_NOMEM;
    if (!st) {
        int n_train = ld_split_paper(perm, all.n, scfg->val_fraction, scfg->seed);
        st = ld_patchset_select(&ds->train, &all, perm, n_train, err);
        if (!st) st = ld_patchset_select(&ds->val, &all, perm + n_train, all.n - n_train, err);
    }
    ld_free(perm);
    ld_patchset_free(&all);
    return st;
}

/* honest: split the images by group, then cut each side on its own */
static ld_status build_image(ld_dataset *ds, const ld_labels *labels, const char *images_dir,
                             const ld_split_config *scfg, const ld_patch_config *pcfg,
                             ld_error *err)
{
    int n = labels->n_images;
    ds->image_is_val = ld_alloc((size_t)n, 1, "the split", err);
    ds->group_of = ld_alloc((size_t)n, sizeof *ds->group_of, "the split", err);
    int *side = ld_alloc((size_t)n, sizeof *side, "the split", err);
    if (!ds->image_is_val || !ds->group_of || !side) {
        ld_free(side);
        return LD_ERR_NOMEM;
    }
    ld_status st = ld_split_images(ds->image_is_val, ds->group_of, labels, scfg->group_fields,
                                   scfg->val_fraction, scfg->seed, &ds->n_groups,
                                   ds->group_fields, (int)sizeof ds->group_fields, err);
    for (int v = 0; !st && v < 2; v++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (ds->image_is_val[i] == v) side[k++] = i;
        ld_patch_config c = *pcfg;
        c.seed = pcfg->seed + (uint64_t)v;   /* independent negative draws per side */
        st = ld_patches_build(v ? &ds->val : &ds->train, labels, images_dir, side, k, &c, err);
    }
    ld_free(side);
    return st;
}

ld_status ld_dataset_build(ld_dataset *ds, const ld_labels *labels, const char *images_dir,
                           const ld_split_config *scfg, const ld_patch_config *pcfg,
                           ld_error *err)
{
    memset(ds, 0, sizeof *ds);
    ds->n_images = labels->n_images;
    ld_status st;
    if (scfg->val_labels) {
        ld_patch_config c = *pcfg;
        st = ld_patches_build(&ds->train, labels, images_dir, NULL, 0, pcfg, err);
        c.seed = pcfg->seed + 1;
        if (!st) st = ld_patches_build(&ds->val, scfg->val_labels, images_dir, NULL, 0, &c, err);
    } else if (scfg->protocol == LD_PROTOCOL_PAPER) {
        st = build_paper(ds, labels, images_dir, scfg, pcfg, err);
    } else {
        st = build_image(ds, labels, images_dir, scfg, pcfg, err);
    }
    if (st) ld_dataset_free(ds);
    return st;
}
