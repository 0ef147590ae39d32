/* dataset_opts.c — shared dataset options of `train` and `patches`. */
#include <string.h>
#include "dataset_opts.h"

void dataset_opts_default(dataset_opts *o)
{
    memset(o, 0, sizeof *o);
    o->label_format = "auto";
    o->protocol = "image";
    o->group_by = "auto";
    o->margin = 20;
    o->patch = 100;
    o->negatives = -1;
    o->seed = 1;
    o->val_fraction = 0.1;
}

void dataset_opts_table(cli_opt *t, dataset_opts *o)
{
    cli_opt opts[DATASET_OPT_COUNT] = {
        {"images", OPT_STRING, &o->images, "DIR", "folder of the images", 1},
        {"labels", OPT_STRING, &o->labels, "FILE", "COCO JSON file, VOC or YOLO folder", 1},
        {"label-format", OPT_STRING, &o->label_format, "F", "auto|coco|voc|yolo", 0},
        {"voc-one-based", OPT_FLAG, &o->voc_one_based, NULL,
         "VOC boxes are 1-based inclusive (official VOC) instead of continuous", 0},
        {"protocol", OPT_STRING, &o->protocol, "P",
         "image: split images by group, then cut patches (honest); "
         "paper: Keras validation_split of shuffled patches (leaks)", 0},
        {"group-by", OPT_STRING, &o->group_by, "FIELDS",
         "comma list of per-image fields whose shared values keep images together; "
         "auto: near_dup_group,patient,ddti_case where present", 0},
        {"val-fraction", OPT_DOUBLE, &o->val_fraction, "F", "fraction held out for validation", 0},
        {"val-labels", OPT_STRING, &o->val_labels, "FILE",
         "an explicit validation set (images from --images); no split then", 0},
        {"margin", OPT_INT, &o->margin, "PX", "margin around each box for positive crops", 0},
        {"patch", OPT_INT, &o->patch, "PX", "patch side (the network's input size)", 0},
        {"negatives", OPT_INT, &o->negatives, "N",
         "negative windows per side; -1: the paper's ratio, 740 per 992 positives", 0},
        {"seed", OPT_INT, &o->seed, "N", "seed of every random choice", 0},
        {"max-pixels", OPT_INT, &o->max_pixels, "N", "refuse images with more pixels; 0: 64 Mi", 0},
    };
    memcpy(t, opts, sizeof opts);
}

int dataset_opts_build(const char *cmd, const dataset_opts *o, ld_labels *labels,
                       ld_labels *val_labels, ld_dataset *ds)
{
    ld_label_options lo;
    ld_split_config sc;
    ld_patch_config pc;
    ld_error err = {0};
    ld_label_options_default(&lo);
    ld_split_config_default(&sc);
    ld_patch_config_default(&pc);
    memset(labels, 0, sizeof *labels);
    memset(val_labels, 0, sizeof *val_labels);
    if (cli_label_format(cmd, o->label_format, &lo.format)) return 2;
    if (strcmp(o->protocol, "image") == 0) sc.protocol = LD_PROTOCOL_IMAGE;
    else if (strcmp(o->protocol, "paper") == 0) sc.protocol = LD_PROTOCOL_PAPER;
    else return cli_usage_error(cmd, "--protocol must be image or paper, not '%s'", o->protocol);
    if (!(o->val_fraction >= 0 && o->val_fraction < 1))
        return cli_usage_error(cmd, "--val-fraction must be in [0, 1)");
    if (o->patch < 8 || o->patch > 4096 || o->margin < 0 || o->margin > 4096)
        return cli_usage_error(cmd, "--patch must be in 8..4096 and --margin in 0..4096");
    lo.voc_one_based = o->voc_one_based;
    lo.images_dir = o->images;
    sc.val_fraction = o->val_fraction;
    sc.group_fields = o->group_by;
    sc.seed = (uint64_t)o->seed;
    pc.size = o->patch;
    pc.margin = o->margin;
    pc.n_negatives = o->negatives;
    pc.seed = (uint64_t)o->seed;
    pc.max_pixels = o->max_pixels;

    if (ld_labels_load(labels, o->labels, &lo, &err)) return cli_fail(cmd, &err);
    if (o->val_labels) {
        if (ld_labels_load(val_labels, o->val_labels, &lo, &err)) {
            ld_labels_free(labels);
            return cli_fail(cmd, &err);
        }
        sc.val_labels = val_labels;
    }
    for (int i = 0; i < labels->n_warnings; i++)
        fprintf(stderr, "lymphdet %s: warning: %s\n", cmd, labels->warnings[i]);
    if (ld_dataset_build(ds, labels, o->images, &sc, &pc, &err)) {
        ld_labels_free(labels);
        ld_labels_free(val_labels);
        return cli_fail(cmd, &err);
    }
    return 0;
}
