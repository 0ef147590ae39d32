/* detections.h — scored boxes, per image, and the COCO results JSON that holds them.
 *
 * A detection is a box in the same continuous pixel coordinates as ld_box
 * (top-left x, y plus w, h; see labels.h) with a score in [0, 1]. The detector
 * produces one ld_dets per image; the metrics consume them beside the labels.
 * COCO results JSON: [{"image_id", "file_name", "category_id", "bbox": [x,y,w,h],
 * "score"}, ...] — pycocotools' loadRes reads it (it ignores file_name). */
#ifndef LYMPHDET_DETECTIONS_H
#define LYMPHDET_DETECTIONS_H

#include <stdint.h>
#include "lymphdet/error.h"
#include "lymphdet/labels.h"

typedef struct {
    double x, y, w, h;
    float score;
    int category;       /* index into the labels' categories (0 when there is one) */
} ld_det;

typedef struct {
    ld_det *d;          /* [n], owned */
    int n, cap;
} ld_dets;

ld_status ld_dets_push(ld_dets *dets, ld_det d, ld_error *err);
void      ld_dets_free(ld_dets *dets);
/* Sorts by descending score; ties keep their order (stable), so results are
 * deterministic. */
void      ld_dets_sort(ld_dets *dets);

/* Writes results for images[0..n) (dets[i] belongs to image i, named names[i],
 * with COCO id ids[i]) as a COCO results JSON array, through a temporary file.
 * category_id is category + 1. Scores with 7 decimals, boxes with 2. */
ld_status ld_results_save(const char *path, const ld_dets *dets, const char *const *names,
                          const int64_t *ids, int n, ld_error *err);
/* Reads a COCO results JSON and distributes its detections over the images of
 * `labels` (matched by image_id; an unknown image_id is an error naming the
 * entry): dets_out receives an array of labels->n_images ld_dets (caller frees
 * each and the array). Validates finite numbers, non-negative sizes, scores. */
ld_status ld_results_load(ld_dets **dets_out, const char *path, const ld_labels *labels,
                          ld_error *err);

#endif
