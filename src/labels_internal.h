/* labels_internal.h — what the three label readers (COCO, VOC, YOLO) share (internal).
 *
 * The readers fill an ld_labels through these helpers so that every format gets the
 * same growth, the same category naming (lower-cased, empty -> "uncategorized"), the
 * same box validation and clipping, and the same duplicate checks. Arrays grow by
 * doubling whenever their count reaches a power of two, so no capacity needs storing
 * beside the public structs. */
#ifndef LYMPHDET_LABELS_INTERNAL_H
#define LYMPHDET_LABELS_INTERNAL_H

#include <stddef.h>
#include "lymphdet/labels.h"

/* Guards against absurd files before anything is allocated from their counts. */
#define LD_LABELS_MAX_ITEMS   10000000        /* images, annotations, objects, lines */
#define LD_LABELS_MAX_SIDE    100000          /* an image side in pixels */
#define LD_LABELS_MAX_FILE    (1L << 30)      /* bytes of one label file */
/* categories (class names): far above any detection data set's (LVIS has 1,203), low
 * enough that finding a name by a linear search stays cheap (found by fuzzing: a
 * YOLO class number of 69635 with no class names made 69,636 categories, one search
 * over all before each, minutes of work) */
#define LD_LABELS_MAX_CATEGORIES 10000

/* Appends an image (copies file_name); its index is labels->n_images - 1 after. */
ld_status ld_labels_add_image(ld_labels *labels, int64_t id, const char *file_name,
                              int width, int height, ld_error *err);
/* Appends a key/value text pair to an image's extra fields (copies both). */
ld_status ld_labels_add_field(ld_label_image *img, const char *key, const char *value,
                              ld_error *err);
/* Appends a box (already validated with ld_box_fit). */
ld_status ld_labels_add_box(ld_label_image *img, const ld_box *box, ld_error *err);
/* Index of the category called `name` once lower-cased (NULL or "" means
 * "uncategorized"), added when new (LD_ERR_INPUT beyond LD_LABELS_MAX_CATEGORIES). */
ld_status ld_labels_category(int *index, ld_labels *labels, const char *name, ld_error *err);
/* The same for a name known to be new (no search): YOLO's class numbers. */
ld_status ld_labels_new_category(int *index, ld_labels *labels, const char *name, ld_error *err);
/* Appends a printf-formatted warning. */
ld_status ld_labels_warn(ld_labels *labels, ld_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Checks a box against a width x height image: finite numbers, positive size, and
 * inside the image within `tol` px. Returns 0 when it fits, 1 when it stuck out by at
 * most tol and was clipped, -1 when it is invalid; for 1 and -1 `why` receives the
 * reason ("bbox width -3 is not positive"). */
int ld_box_fit(ld_box *box, int width, int height, double tol, char *why, size_t why_size);

/* Looks for two images sharing an id (*kind 0) or a file name (*kind 1): sets
 * *first < *second to their indices (the earliest such second occurrence), or
 * *second = -1 when every id and name is unique. */
ld_status ld_labels_find_duplicate(int *first, int *second, int *kind, const ld_labels *labels,
                                   ld_error *err);

/* The names of the regular files in `dir` whose name ends with one of exts
 * (case-insensitive, e.g. ".xml"), sorted with strcmp. Caller frees with
 * ld_names_free. */
ld_status ld_list_dir(char ***names, int *n, const char *dir, const char *const *exts,
                      int n_exts, ld_error *err);
void ld_names_free(char **names, int n);
/* Reads a whole file (at most max_bytes) into a NUL-terminated buffer (ld_free it). */
ld_status ld_read_file(char **data, size_t *size, const char *path, long max_bytes,
                       ld_error *err);
/* The part of a path after its last '/' or '\\'. */
const char *ld_base_name(const char *path);
/* Lower-cases ASCII in place. */
void ld_lower(char *s);
/* Parses a whole string as a finite number / an integer in [lo, hi]; 0 on success. */
int ld_parse_double(const char *s, double *v);
int ld_parse_int(const char *s, long lo, long hi, long *v);

ld_status ld_labels_load_coco(ld_labels *labels, const char *path, const ld_label_options *opt,
                              ld_error *err);
ld_status ld_labels_load_voc(ld_labels *labels, const char *dir, const ld_label_options *opt,
                             ld_error *err);
ld_status ld_labels_load_yolo(ld_labels *labels, const char *dir, const ld_label_options *opt,
                              ld_error *err);

#endif
