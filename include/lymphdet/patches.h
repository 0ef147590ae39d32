/* patches.h — the paper's patch dataset (SPEC §2 items 3-6) and the split protocols.
 *
 * Positives: every labelled box, cropped with a margin (default 20 px on every
 *   side, clamped to the image), resized to size x size (the paper squeezes a box
 *   of any aspect into the square), then 3 more copies: mirrored left-right,
 *   mirrored top-bottom, and rotated by 180 degrees — the "rotation and flipping"
 *   that turned the paper's 248 node crops into 992 positives.
 * Negatives: size x size windows at integer positions drawn uniformly (seeded)
 *   from uniformly drawn images of the same set, accepted only when the window
 *   does not intersect any labelled box: the intersection area of the window
 *   [x, x+size) x [y, y+size) with every box is exactly 0 (touching edges is
 *   allowed). Images without boxes contribute too. Their number is a parameter,
 *   by default round(n_pos * 740 / 992), the paper's ratio.
 * Patches are kept as grey bytes [n, size, size]; they become float network input
 * (3 equal channels, / 255) only when a batch is formed (ld_patches_batch).
 *
 * Splits:
 *   paper  Keras validation_split: shuffle all patches with the seed, then the last
 *          n - floor((1 - f) n) are the validation set (1736 -> 1562 / 174). Copies of
 *          one node land on both sides: the leak behind the paper's 99 %.
 *   image  split the SOURCE IMAGES first, keeping groups together (images that share
 *          a value of any group field, e.g. near_dup_group or patient, are one group),
 *          then build patches on each side. */
#ifndef LYMPHDET_PATCHES_H
#define LYMPHDET_PATCHES_H

#include <stdint.h>
#include "lymphdet/error.h"
#include "lymphdet/labels.h"

typedef enum { LD_AUG_NONE = 0, LD_AUG_FLIP_H, LD_AUG_FLIP_V, LD_AUG_ROT180 } ld_aug;

typedef struct {
    int size;            /* side of a patch: 100 */
    int n, cap;
    uint8_t *px;         /* [n, size, size] grey bytes */
    uint8_t *label;      /* [n] 1 = node, 0 = background */
    int *image;          /* [n] index of the source image in the labels */
    int *box;            /* [n] index of the box in its image, -1 for negatives */
    uint8_t *aug;        /* [n] ld_aug applied to the crop */
    int *x, *y;          /* [n] top-left of the crop (or window) in the source image */
} ld_patchset;

typedef struct {
    int size;            /* 100 */
    int margin;          /* 20 px around each box */
    int augment;         /* 1: add the 3 flipped/rotated copies of each positive */
    int n_negatives;     /* < 0: round(n_pos * neg_ratio) */
    double neg_ratio;    /* 740 / 992 */
    uint64_t seed;       /* negative sampling */
    long max_pixels;     /* image decoding limit (<= 0: default) */
} ld_patch_config;

void ld_patch_config_default(ld_patch_config *cfg);

/* Builds the patches of images[subset[0..n_subset)] of `labels` (subset NULL: all
 * images), reading each image from images_dir once. */
ld_status ld_patches_build(ld_patchset *out, const ld_labels *labels, const char *images_dir,
                           const int *subset, int n_subset, const ld_patch_config *cfg,
                           ld_error *err);
void ld_patchset_free(ld_patchset *ps);
/* Moves patches idx[0..n) of src into dst (a new set). */
ld_status ld_patchset_select(ld_patchset *dst, const ld_patchset *src, const int *idx, int n,
                             ld_error *err);
/* Network input for patches idx[0..n): x[n, 3, size, size] = grey / 255 in 3 equal
 * channels, y[n] = labels as 0/1 floats (y may be NULL). */
void ld_patches_batch(float *x, float *y, const ld_patchset *ps, const int *idx, int n);

/* Keras validation_split: train = first floor((1 - f) n) of a seeded shuffle of
 * 0..n-1, validation = the rest. perm[n] receives the shuffled order; returns the
 * number of training items. */
int ld_split_paper(int *perm, int n, double val_fraction, uint64_t seed);

/* Splits the images of `labels` into training (is_val[i] = 0) and validation
 * (is_val[i] = 1). group_fields is a comma-separated list of per-image fields;
 * images sharing a value of ANY of them are kept on one side (union-find); NULL
 * or "auto" uses whichever of near_dup_group, patient, ddti_case the labels have.
 * Groups are shuffled with the seed and moved to validation, in that order,
 * until round(val_fraction * n_images) images are there. group_of (may be NULL,
 * [n_images]) receives each image's group as the index of its first image;
 * n_groups (may be NULL) the number of groups; fields_used (may be NULL,
 * fields_size bytes) the fields that were found. */
ld_status ld_split_images(uint8_t *is_val, int *group_of, const ld_labels *labels,
                          const char *group_fields, double val_fraction, uint64_t seed,
                          int *n_groups, char *fields_used, int fields_size, ld_error *err);

/* Grouped k-fold cross-validation: the groups of ld_split_images (the same
 * group_fields rule: images sharing a value of any field stay together) are
 * shuffled with the seed and dealt out in that order, each to the fold holding
 * the fewest images so far (ties: the lowest fold number), so fold sizes differ
 * by at most the largest group. fold[n_images] receives each image's fold,
 * 0..k-1. k must be >= 2 (LD_ERR_USAGE) and at most the number of groups
 * (LD_ERR_INPUT). n_groups, fields_used and fields_size as in ld_split_images. */
ld_status ld_split_kfold(int *fold, const ld_labels *labels, const char *group_fields, int k,
                         uint64_t seed, int *n_groups, char *fields_used, int fields_size,
                         ld_error *err);

typedef enum { LD_PROTOCOL_IMAGE = 0, LD_PROTOCOL_PAPER } ld_protocol;

typedef struct {
    ld_protocol protocol;
    double val_fraction;        /* 0.1 */
    const char *group_fields;   /* image protocol; NULL: auto */
    uint64_t seed;              /* the split's shuffle */
    const ld_labels *val_labels;/* an explicit validation set (same images folder):
                                   then `labels` is all training, no split */
} ld_split_config;

/* A patch dataset split for training: what `train` and `patches` build. */
typedef struct {
    ld_patchset train, val;
    int n_images;               /* of the training labels */
    uint8_t *image_is_val;      /* [n_images]: image protocol only, else NULL */
    int *group_of;              /* [n_images]: image protocol only, else NULL */
    int n_groups;
    char group_fields[256];     /* the group fields used */
} ld_dataset;

void ld_split_config_default(ld_split_config *cfg);
/* Splits and builds the patches (see the protocols above). Patch sampling is
 * seeded by pcfg->seed; each side of an image split gets its own stream. */
ld_status ld_dataset_build(ld_dataset *ds, const ld_labels *labels, const char *images_dir,
                           const ld_split_config *scfg, const ld_patch_config *pcfg,
                           ld_error *err);
void ld_dataset_free(ld_dataset *ds);

#endif
