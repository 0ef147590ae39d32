/* metrics_internal.h — the COCO evaluation engine shared by metrics_coco.c and
 * metrics_bootstrap.c (internal).
 *
 * pycocotools splits evaluation in two: evaluateImg matches detections to ground
 * truth in each (category, image) cell independently, and accumulate pools the
 * cells of a list of images. The bootstrap relies on that split: cells are
 * matched once (ld_coco_state_run), then every resample is only a new image
 * list given to ld_coco_accumulate. */
#ifndef LYMPHDET_METRICS_INTERNAL_H
#define LYMPHDET_METRICS_INTERNAL_H

#include "lymphdet/metrics.h"

/* per-detection flags, one byte per (detection, threshold) */
#define LD_COCO_MATCHED 1
#define LD_COCO_IGNORED 2

typedef struct {
    int present;        /* 0: neither gt nor detections (pycocotools' None) */
    int n_det;          /* detections kept (score-sorted, capped) */
    int n_gt, npig;     /* gt boxes of the category, those not ignored */
    long off;           /* first kept detection in score[] / flag[] */
} ld_coco_cell;

typedef struct {
    int n_cat, n_img, n_t;
    double thr[LD_COCO_N_IOU];  /* matching thresholds, already min(t, 1 - 1e-10) */
    ld_coco_cell *cells;        /* [n_cat, n_img] */
    double *score;              /* [n_kept] each cell's detections, descending */
    unsigned char *flag;        /* [n_kept, n_t] LD_COCO_MATCHED | LD_COCO_IGNORED */
    long n_kept, n_det;         /* detections kept, detections given */
} ld_coco_state;

/* Validates categories and finite numbers, then runs evaluateImg on every cell:
 * detections of score >= score_min, at most max_dets per cell, matched at the n_t
 * thresholds thr[] (given as the user's thresholds; the 1 - 1e-10 cap is applied here). */
ld_status ld_coco_state_run(ld_coco_state *st, const ld_eval_image *imgs, int n_img, int n_cat,
                            const double *thr, int n_t, int max_dets, double score_min,
                            ld_error *err);
void ld_coco_state_free(ld_coco_state *st);

/* Growing scratch for ld_coco_accumulate. */
typedef struct {
    long cap;
    long *idx, *tmp;            /* [cap] */
    double *rc, *pr;            /* [cap] */
} ld_coco_work;
void ld_coco_work_free(ld_coco_work *w);

/* accumulate for category `cat` (-1: all categories, concatenated in index order)
 * over the images order[0..n_order) (indices into the state's images, repeats
 * allowed). *valid = 0 when pycocotools would leave -1 (no cell present, or no gt).
 * Otherwise q[t * 101 + r] is the interpolated precision and rec[t] the final recall.
 * npig_out and nd_out (may be NULL) receive the gt count and the detections pooled.
 * When curve_t >= 0, w->idx / w->rc / w->pr are left holding the raw curve of that
 * threshold (sorted detections, recall, precision before the right-to-left maximum),
 * also when *valid is 0. */
ld_status ld_coco_accumulate(int *valid, double *q, double *rec, long *npig_out, long *nd,
                             const ld_coco_state *st, int cat, const int *order, int n_order,
                             int curve_t, ld_coco_work *w, ld_error *err);

/* summarize: means over thresholds, recall points and the categories that are
 * valid for this image list (NaN when none). */
typedef struct {
    double ap, ap50, ap75, ar100;
    double ap_at[LD_COCO_N_IOU], ar_at[LD_COCO_N_IOU];
    int n_valid;
} ld_coco_summary;
ld_status ld_coco_summarize(ld_coco_summary *s, ld_coco_summary *per_cat,
                            const ld_coco_state *st, const int *order, int n_order,
                            ld_coco_work *w, ld_error *err);

/* Images in ascending id order (ties by position), as pycocotools concatenates them. */
ld_status ld_coco_id_order(int **order, const ld_eval_image *imgs, int n_img, ld_error *err);

#endif
