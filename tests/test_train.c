/* test_train.c — training learns a separable synthetic task, reproducibly. */
#include <stdlib.h>
#include <string.h>
#include "lymphdet/labels.h"
#include "lymphdet/model.h"
#include "lymphdet/patches.h"
#include "lymphdet/train.h"
#include "synth.h"
#include "test.h"

static int read_file(const char *path, unsigned char **data, long *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    rewind(f);
    *data = malloc((size_t)*size + 1);
    long got = (long)fread(*data, 1, (size_t)*size, f);
    fclose(f);
    return got == *size ? 0 : -1;
}

/* trains the paper's network on synthetic dark nodes (patch 40 to keep it fast)
 * and saves it to path; returns the final validation accuracy */
static double train_synthetic(const char *dir, const ld_labels *l, const char *path)
{
    ld_error err = {0};
    ld_split_config sc;
    ld_patch_config pc;
    ld_split_config_default(&sc);
    ld_patch_config_default(&pc);
    sc.group_fields = "patient";
    sc.val_fraction = 0.25;
    pc.size = 44;
    pc.margin = 4;
    ld_dataset ds;
    if (ld_dataset_build(&ds, l, dir, &sc, &pc, &err)) {
        CHECK_MSG(0, "dataset: %s", err.msg);
        return -1;
    }
    /* the validation images' groups never appear in training */
    int leak = 0;
    for (int i = 0; i < ds.train.n; i++)
        for (int j = 0; j < ds.val.n; j++)
            leak |= ds.group_of[ds.train.image[i]] == ds.group_of[ds.val.image[j]];
    CHECK(!leak);
    CHECK(ds.val.n > 0);
    ld_arch arch;
    ld_arch_paper(&arch);
    arch.input_size = 44;   /* 44 -> 42 -> 21 -> 19 -> 9 -> 7 -> 3: 72 dense inputs */
    ld_train_config tc;
    ld_train_config_default(&tc);
    tc.epochs = 6;
    tc.adam.lr = 3e-3f;
    ld_model m;
    ld_epoch_stats hist[6];
    double acc = -1;
    if (ld_model_init(&m, &arch, tc.batch, &err) == LD_OK) {
        ld_model_init_weights(&m, 5);
        CHECK_INT(ld_train(&m, &ds.train, &ds.val, &tc, NULL, hist, &err), LD_OK);
        acc = hist[5].val_acc;
        CHECK(hist[5].train_loss < hist[0].train_loss);
        CHECK_INT(ld_model_save(&m, path, &err), LD_OK);
        ld_model_free(&m);
    }
    ld_dataset_free(&ds);
    return acc;
}

TEST_SUITE(train_synthetic)
{
    const char *dir = test_tmpdir("train");
    synth_config sc = {24, 120, 2, 8, 16, 3};
    CHECK(synth_write(dir, &sc) > 10);
    char path[512], a[512], b[512];
    snprintf(path, sizeof path, "%s/labels.json", dir);
    snprintf(a, sizeof a, "%s/a.safetensors", dir);
    snprintf(b, sizeof b, "%s/b.safetensors", dir);
    ld_labels l;
    ld_label_options lo;
    ld_label_options_default(&lo);
    ld_error err = {0};
    if (ld_labels_load(&l, path, &lo, &err)) {
        CHECK_MSG(0, "labels: %s", err.msg);
        return;
    }
    double acc = train_synthetic(dir, &l, a);
    fprintf(stderr, "  synthetic nodes: validation accuracy %.4f after 6 epochs\n", acc);
    CHECK(acc >= 0.95);
    /* the same seed gives the same model file, byte for byte */
    train_synthetic(dir, &l, b);
    unsigned char *da = NULL, *db = NULL;
    long na = 0, nb = 0;
    CHECK(read_file(a, &da, &na) == 0 && read_file(b, &db, &nb) == 0);
    CHECK(na == nb && na > 0 && memcmp(da, db, (size_t)na) == 0);
    free(da);
    free(db);
    ld_labels_free(&l);
}
