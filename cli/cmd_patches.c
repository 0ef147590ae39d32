/* cmd_patches.c — `lymphdet patches`: the patch dataset `train` would use, written
 * as PNG files plus patches.csv, so a user can see what the network learns from.
 *
 * DIR/train/00001_pos.png ... DIR/val/00001_neg.png and DIR/patches.csv with the
 * columns file,label,source_image,group,split,box,augmentation,x,y (x, y: the
 * top-left of the crop or window in the source image). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "dataset_opts.h"
#include "lymphdet/image.h"
#include "lymphdet/outfile.h"

static const char *const aug_names[] = {"none", "flip_h", "flip_v", "rot180"};

/* writes one side's PNGs and CSV rows */
static int write_side(const char *cmd, const char *dir, const char *side, const ld_patchset *ps,
                      const ld_labels *labels, const int *group_of, FILE *csv, int quiet)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", dir, side);
    if (cli_make_dir(cmd, path)) return 1;
    cli_progress bar;
    cli_progress_start(&bar, side, ps->n, quiet);
    ld_error err = {0};
    size_t pix = (size_t)ps->size * ps->size;
    for (int i = 0; i < ps->n; i++) {
        ld_image img = {ps->size, ps->size, 1, ps->px + (size_t)i * pix};
        snprintf(path, sizeof path, "%s/%s/%05d_%s.png", dir, side, i + 1, ps->label[i] ? "pos" : "neg");
        if (ld_image_save_png(&img, path, &err)) {
            cli_progress_end(&bar);
            return cli_fail(cmd, &err);
        }
        const ld_label_image *src = &labels->images[ps->image[i]];
        const char *group = group_of ? labels->images[group_of[ps->image[i]]].file_name : src->file_name;
        fprintf(csv, "%s/%05d_%s.png,%d,%s,%s,%s,%d,%s,%d,%d\n", side, i + 1,
                ps->label[i] ? "pos" : "neg", ps->label[i], src->file_name, group, side,
                ps->box[i], aug_names[ps->aug[i]], ps->x[i], ps->y[i]);
        if (i % 64 == 0) cli_progress_update(&bar, i, NULL);
    }
    cli_progress_end(&bar);
    return 0;
}

int cmd_patches(int argc, char **argv)
{
    static const char *cmd = "patches";
    dataset_opts d;
    const char *out = NULL;
    int quiet = 0;
    dataset_opts_default(&d);
    cli_opt opts[DATASET_OPT_COUNT + 2];
    dataset_opts_table(opts, &d);
    opts[DATASET_OPT_COUNT] = (cli_opt){"out", OPT_STRING, &out, "DIR", "folder to write into", 1};
    opts[DATASET_OPT_COUNT + 1] = (cli_opt){"quiet", OPT_FLAG, &quiet, NULL, "no progress bar", 0};
    int rc = cli_parse(cmd, "--images DIR --labels FILE --out DIR [options]",
                       "Writes the patches `train` would use, with the same options, as PNG files\n"
                       "plus patches.csv (file, label, source image, group, split, ...).",
                       opts, DATASET_OPT_COUNT + 2, argc, argv, NULL, 0, NULL);
    if (rc >= 0) return rc;
    ld_labels labels, val_labels;
    ld_dataset ds;
    if ((rc = dataset_opts_build(cmd, &d, &labels, &val_labels, &ds))) return rc;
    char csv_path[4200];
    snprintf(csv_path, sizeof csv_path, "%s/patches.csv", out);
    ld_outfile csv = {0};
    ld_error err = {0};
    if ((rc = cli_make_dir(cmd, out)) == 0 && ld_out_open(&csv, csv_path, &err)) rc = cli_fail(cmd, &err);
    if (!rc) {
        fprintf(csv.fp, "file,label,source_image,group,split,box,augmentation,x,y\n");
        rc = write_side(cmd, out, "train", &ds.train, &labels, ds.group_of, csv.fp, quiet);
        /* an explicit validation set's patches point into its own labels */
        if (!rc)
            rc = write_side(cmd, out, "val", &ds.val, d.val_labels ? &val_labels : &labels,
                            d.val_labels ? NULL : ds.group_of, csv.fp, quiet);
        if (rc) ld_out_abort(&csv);
        else if (ld_out_commit(&csv, &err)) rc = cli_fail(cmd, &err);
    }
    if (!rc)
        printf("patches: %d train, %d validation -> %s (patches.csv)\n", ds.train.n, ds.val.n, out);
    ld_dataset_free(&ds);
    ld_labels_free(&labels);
    ld_labels_free(&val_labels);
    return rc;
}
