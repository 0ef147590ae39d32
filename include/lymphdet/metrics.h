/* metrics.h — every number lymphdet reports about a classifier or a detector.
 *
 * Pure functions: they read labels, probabilities and detections and compute
 * metrics; nothing here reads files or prints. Each metric's exact definition is
 * stated beside it, including what it is when it is undefined.
 *
 * One rule for undefined values, everywhere in this module: a ratio whose
 * denominator is 0 is NaN ("not defined"), never 0 or 1. A silent 0 would look
 * like a measured failure and a silent 1 like a measured success; NaN makes the
 * report say "n/a" (writers must test isnan() — JSON has no NaN: write null).
 *
 * Boxes are continuous pixel coordinates (labels.h): top-left x, y and size w, h,
 * covering [x, x+w) x [y, y+h); no "+1" anywhere, as in pycocotools.
 *
 * Detection metrics work on a light per-image view (ld_eval_image) so that the
 * bootstrap can resample images without copying boxes; ld_eval_view builds it from
 * an ld_labels and the detections aligned with labels->images. */
#ifndef LYMPHDET_METRICS_H
#define LYMPHDET_METRICS_H

#include <stdint.h>
#include "lymphdet/detections.h"
#include "lymphdet/error.h"
#include "lymphdet/labels.h"

/* ------------------------------------------------------------------------ */
/* Patch level (the paper's Table 2 and Eq. 2)                               */
/* ------------------------------------------------------------------------ */

/* A patch is predicted positive when p > threshold (STRICT, compared in float as
 * Keras' binary_accuracy does; the paper uses 0.5); it is labelled positive when
 * y > 0.5 (labels are 0 or 1).
 *   accuracy    = (tp + tn) / n
 *   precision   = tp / (tp + fp)            NaN when nothing is predicted positive
 *   recall      = tp / (tp + fn)            sensitivity; NaN when no positive label
 *   specificity = tn / (tn + fp)            NaN when no negative label
 *   f1          = 2 tp / (2 tp + fp + fn)   = the Dice similarity coefficient of
 *                                             the 0/1 prediction and label vectors;
 *                                             NaN when there is neither a positive
 *                                             prediction nor a positive label
 *   paper_dsc   = 2 sum(pred) / (sum(pred) + sum(y))
 *               = 2 (tp + fp) / ((tp + fp) + (tp + fn))
 *     This is the "DSC" as the paper printed it. It has no overlap term: it
 *     compares only HOW MANY patches are called positive with how many are, so a
 *     classifier that calls exactly the wrong patches positive scores 1. It is
 *     reported beside the true Dice (f1) so the difference is visible. NaN when
 *     sum(pred) + sum(y) = 0.
 * accuracy is NaN when n = 0. For the paper's Table 2 (tp 63, fp 1, fn 13, tn 97):
 * accuracy 160/174, precision 63/64, recall 63/76, specificity 97/98,
 * f1 126/140 = 0.9, paper_dsc 128/140. */
typedef struct {
    long n, tp, fp, fn, tn;
    double accuracy, precision, recall, specificity, f1, paper_dsc;
} ld_patch_metrics;

void ld_patch_metrics_compute(ld_patch_metrics *m, const float *p /* [n] */,
                              const float *y /* [n] */, int n, float threshold);
/* The same ratios from counts alone (what _compute calls after counting). */
void ld_patch_metrics_from_counts(ld_patch_metrics *m, long tp, long fp, long fn, long tn);

/* ------------------------------------------------------------------------ */
/* Boxes and quantiles                                                       */
/* ------------------------------------------------------------------------ */

/* Intersection over union of two boxes (x, y, w, h), exactly as pycocotools'
 * maskUtils.iou computes it for boxes with iscrowd = 0 (maskApi.c bbIou):
 *   iw = min(ax+aw, bx+bw) - max(ax, bx);  0 when iw <= 0
 *   ih = min(ay+ah, by+bh) - max(ay, by);  0 when ih <= 0
 *   iou = iw*ih / (aw*ah + bw*bh - iw*ih)
 * A zero-area box has IoU 0 with everything (iw or ih is <= 0 before any
 * division), so there is never a division by zero. Symmetric in a and b. */
double ld_iou_xywh(double ax, double ay, double aw, double ah,
                   double bx, double by, double bw, double bh);

/* Quantile q in [0, 1] of sorted[0..n) (ascending) by numpy's default method
 * ("linear", type 7 of Hyndman & Fan): position h = q (n-1), result
 * x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h]), evaluated exactly as
 * numpy's _lerp does (from the upper neighbour when the fraction is >= 0.5), so
 * values agree with np.quantile / np.percentile bit for bit. NaN when n = 0. */
double ld_quantile_sorted(const double *sorted /* [n] */, int n, double q);

/* ------------------------------------------------------------------------ */
/* The per-image view the detection metrics read                             */
/* ------------------------------------------------------------------------ */

typedef struct {
    int64_t id;          /* image id: COCO concatenates images in ascending id order */
    const ld_box *gt;    /* [n_gt] labelled boxes (not owned) */
    int n_gt;
    const ld_det *det;   /* [n_det] detections in any order (not owned) */
    int n_det;
} ld_eval_image;

/* Fills out[0..labels->n_images) with views of labels->images[i] and dets[i]
 * (dets may be NULL: no detections anywhere). No allocation. */
void ld_eval_view(ld_eval_image *out, const ld_labels *labels, const ld_dets *dets);

/* ------------------------------------------------------------------------ */
/* The paper's per-label IoU (its Fig. 9 box plot)                           */
/* ------------------------------------------------------------------------ */

/* For each labelled box: the highest IoU with any detection of its image (every
 * detection, whatever its score or category — this is a localisation measure;
 * categories count in the COCO metrics), 0 when the image has no detection.
 * Summary over all labelled boxes (NaN when there are none):
 *   mean, median (q = 0.5), q1 (0.25), q3 (0.75), min, max — quantiles by
 *     ld_quantile_sorted, i.e. numpy's default linear interpolation;
 *   found_fraction = share of labelled boxes with IoU > 0;
 *   mean_found     = mean IoU over the boxes with IoU > 0 (NaN when none).
 * Per image:
 *   dets_per_image = detections / images (all images, with labels or not; NaN
 *     when there are no images) — the paper's IoU looks good partly because its
 *     detector fires many boxes, so this number always travels with it;
 *   top1_iou = mean, over images with at least one label, of the IoU between the
 *     image's single highest-scoring detection (first in list order on a score
 *     tie) and the label it overlaps most; 0 for an image without detections.
 *     NaN when no image has labels. */
typedef struct {
    int n_labels, n_found, n_images, n_images_with_labels;
    long n_dets;
    double mean, median, q1, q3, min, max;
    double found_fraction, mean_found;
    double dets_per_image, top1_iou;
} ld_iou_stats;

/* best receives the per-label IoU [sum of n_gt] in image order then box order
 * (may be NULL). Allocates scratch for sorting: fails only with LD_ERR_NOMEM
 * (or LD_ERR_INPUT for more than 2^31 - 1 boxes). */
ld_status ld_label_iou(ld_iou_stats *s, double *best, const ld_eval_image *imgs,
                       int n_images, ld_error *err);

/* ------------------------------------------------------------------------ */
/* COCO detection metrics (pycocotools COCOeval, iouType 'bbox')             */
/* ------------------------------------------------------------------------ */

#define LD_COCO_N_IOU 10        /* IoU thresholds .50:.05:.95 */
#define LD_COCO_N_REC 101       /* recall points 0:.01:1 */
#define LD_COCO_MAX_DETS 100    /* per image and category */

/* The thresholds with the exact double values numpy's linspace gives pycocotools
 * (e.g. the 9th IoU threshold is 0.8999999999999999, recall point i is i * 0.01). */
void ld_coco_iou_thresholds(double t[LD_COCO_N_IOU]);
void ld_coco_recall_thresholds(double r[LD_COCO_N_REC]);

/* Exactly COCOeval.evaluate + accumulate + summarize for bounding boxes, area
 * range "all", maxDets 100, useCats 1 — the definitions, step by step:
 *  - per image and category: detections sorted by descending score (stable, as
 *    numpy's mergesort), at most 100 kept; ground truth with area w*h outside
 *    [0, 1e10] is "ignored" and sorted last (no real image has such boxes);
 *  - greedy matching per IoU threshold t (t = min(t, 1 - 1e-10)): each detection,
 *    in score order, takes the unmatched gt with the highest IoU >= t; on an IoU
 *    tie the LATER gt wins (pycocotools compares with '<'); a detection matched to
 *    an ignored gt, or unmatched with area outside [0, 1e10], is ignored;
 *  - per category, all images' detections concatenated (images in ascending id
 *    order), stable-sorted by descending score; cumulative tp, fp;
 *    recall = tp / n_gt, precision = tp / (tp + fp + 2^-52) (numpy's spacing(1));
 *    precision made non-increasing from the right; sampled at the 101 recall
 *    points by searchsorted(recall, r, side='left'), 0 beyond the last recall;
 *  - AP of a category at t = mean of the 101 samples; the category's recall at t
 *    is the final recall (0 without detections). Categories without gt (or
 *    without any image holding gt or detections) are left out, as pycocotools'
 *    -1 entries are;
 *  - ap = mean over the 10 thresholds and the categories left in; ap50, ap75 at
 *    one threshold; ar100 = mean final recall over thresholds and categories.
 * When no category has gt, pycocotools reports -1; we report NaN (undefined).
 * Differences from pycocotools, all deliberate: matching uses flags, not ids (its
 * gt id 0 counts as "unmatched", a bug ImgLab-style files could hit); gt area is
 * w*h (pycocotools reads the file's "area" field, which only matters outside
 * [0, 1e10]). Detections whose category is not in [0, n_categories) are an input
 * error (pycocotools silently drops them). */
typedef struct {
    double ap, ap50, ap75, ar100;
    double ap_at[LD_COCO_N_IOU];    /* AP at each IoU threshold */
    double ar_at[LD_COCO_N_IOU];    /* final recall at each threshold (maxDets 100) */
    long n_gt;                      /* gt boxes (not ignored) */
    long n_det;                     /* detections given */
    long n_det_eval;                /* after the 100-per-image-and-category cap */
    int n_categories;               /* categories with gt: what ap averages over */
} ld_coco_metrics;

/* per_category: [n_categories] (may be NULL), each with n_categories 1 or 0. */
ld_status ld_coco_eval(ld_coco_metrics *out, ld_coco_metrics *per_category,
                       const ld_eval_image *imgs, int n_images, int n_categories,
                       ld_error *err);

/* Precision, recall and F1 at one operating point: the detections with
 * score >= score_threshold (every one of them: no 100-per-image cap, so a
 * detector that fires too often pays for it), matched greedily per image and
 * category exactly as above at one IoU threshold (0.5 normally). Counts are
 * summed over images and categories (detections of a category without gt are
 * false positives):  precision = tp/(tp+fp), recall = tp/n_gt,
 * f1 = 2tp/(2tp+fp+fn); each NaN when its denominator is 0. Greedy matching by
 * score makes this point lie on the PR curve whenever no image holds more than
 * 100 detections of a category. */
typedef struct {
    double score_threshold, iou_threshold;
    long tp, fp, fn, n_gt;
    double precision, recall, f1;
} ld_det_point;

ld_status ld_det_operating_point(ld_det_point *out, const ld_eval_image *imgs,
                                 int n_images, int n_categories, double score_threshold,
                                 double iou_threshold, ld_error *err);

/* The precision-recall curve behind AP at one IoU threshold, for plotting:
 * the detections COCO counts (top 100 per image and category) of `category`
 * (-1: all categories pooled, a micro-average: categories concatenated in index
 * order, then sorted by score together), one point per detection in descending
 * score order (ignored detections keep their point, as in pycocotools).
 * precision[i] and recall[i] are the raw cumulative values after detection i;
 * interp[] is COCO's interpolated precision at recall r/100 and ap its mean —
 * for one category this is exactly the AP at that threshold. n_gt = 0 gives
 * NaN recall and interp/ap NaN. */
typedef struct {
    int n;                  /* points */
    double *score;          /* [n] descending */
    double *precision;      /* [n] tp / (tp + fp + 2^-52) */
    double *recall;         /* [n] tp / n_gt */
    double interp[LD_COCO_N_REC];
    double ap;
    double iou_threshold;
    long n_gt;
} ld_pr_curve;

ld_status ld_pr_curve_compute(ld_pr_curve *c, const ld_eval_image *imgs, int n_images,
                              int n_categories, int category, double iou_threshold,
                              ld_error *err);
void ld_pr_curve_free(ld_pr_curve *c);

/* ------------------------------------------------------------------------ */
/* Bootstrap confidence intervals over images                                */
/* ------------------------------------------------------------------------ */

/* 95% percentile intervals: B resamples of the images with replacement
 * (ld_rng seeded with `seed`; resample b draws ld_rng_below(rng, n_images) for
 * i = 0..n_images-1, b = 0..B-1, so the same seed gives the same interval on
 * every platform); each drawn copy counts as a separate image, in draw order.
 * The metric is recomputed on each resample with the definitions above (AP: all
 * categories with gt in the resample); resamples where it is undefined (e.g. no
 * gt drawn) are skipped and counted out of n_valid; lo and hi are the 2.5 and
 * 97.5 percentiles (ld_quantile_sorted, as np.percentile) of the valid values.
 * point is the value on the images as given. All NaN when n_valid = 0. */
typedef struct {
    double point, lo, hi;
    int n_valid;
} ld_ci;

typedef struct {
    ld_ci ap50, ap, mean_iou;   /* mean_iou: mean per-label IoU */
    int n_resamples;
    uint64_t seed;
} ld_bootstrap;

ld_status ld_bootstrap_ci(ld_bootstrap *out, const ld_eval_image *imgs, int n_images,
                          int n_categories, int n_resamples, uint64_t seed, ld_error *err);

/* ------------------------------------------------------------------------ */
/* Everything at once, for `lymphdet evaluate`                               */
/* ------------------------------------------------------------------------ */

typedef struct {
    double score_threshold;  /* operating point: detections with score >= this [0: all] */
    double iou_threshold;    /* operating point and PR curve [0.5] */
    int n_resamples;         /* bootstrap resamples; 0 skips the bootstrap [1000] */
    uint64_t seed;           /* bootstrap seed [0] */
} ld_eval_config;

typedef struct {
    ld_coco_metrics coco;
    ld_coco_metrics *per_category;  /* [n_categories], owned */
    int n_categories;
    ld_det_point point;
    ld_pr_curve pr;                 /* all categories pooled (-1) at iou_threshold */
    ld_iou_stats iou;
    double *label_iou;              /* [iou.n_labels] per-label IoU (box plot), owned */
    ld_bootstrap boot;              /* zeroed and NaN when n_resamples = 0 */
} ld_detection_metrics;

void ld_eval_config_default(ld_eval_config *cfg);
/* dets: [labels->n_images] aligned with labels->images (NULL: none). On failure
 * nothing is left allocated. */
ld_status ld_detection_metrics_compute(ld_detection_metrics *m, const ld_labels *labels,
                                       const ld_dets *dets, const ld_eval_config *cfg,
                                       ld_error *err);
void ld_detection_metrics_free(ld_detection_metrics *m);

#endif
