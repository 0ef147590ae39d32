/* dataset_opts.h — the options `train` and `patches` share: where the data is,
 * how patches are cut, and how the split is made. */
#ifndef LYMPHDET_CLI_DATASET_OPTS_H
#define LYMPHDET_CLI_DATASET_OPTS_H

#include "cli.h"
#include "lymphdet/labels.h"
#include "lymphdet/patches.h"

typedef struct {
    const char *images, *labels, *val_labels, *label_format, *protocol, *group_by;
    int voc_one_based, margin, patch, negatives, seed, max_pixels;
    double val_fraction;
} dataset_opts;

#define DATASET_OPT_COUNT 13

void dataset_opts_default(dataset_opts *o);
/* fills table[0..DATASET_OPT_COUNT) with the shared options */
void dataset_opts_table(cli_opt *table, dataset_opts *o);
/* Loads the labels (and --val-labels), splits and cuts the patches. Returns an
 * exit code: 0 on success (labels, val_labels and ds then owned by the caller). */
int dataset_opts_build(const char *cmd, const dataset_opts *o, ld_labels *labels,
                       ld_labels *val_labels, ld_dataset *ds);

#endif
