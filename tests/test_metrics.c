/* test_metrics.c — patch metrics, IoU, quantiles, per-label IoU, COCO AP (by hand
 * and against the pycocotools transcription's golden file), the operating point,
 * the PR curve, the bootstrap and every degenerate case. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "lymphdet/metrics.h"
#include "lymphdet/rng.h"
#include "test.h"

#define EXACT 1e-12

static ld_box box(double x, double y, double w, double h, int cat)
{
    ld_box b = {x, y, w, h, cat};
    return b;
}

static ld_det det(double x, double y, double w, double h, float score, int cat)
{
    ld_det d = {x, y, w, h, score, cat};
    return d;
}

static ld_eval_image view(int64_t id, const ld_box *gt, int n_gt, const ld_det *dt, int n_dt)
{
    ld_eval_image v = {id, gt, n_gt, dt, n_dt};
    return v;
}

TEST_SUITE(metrics_patch)
{
    /* the paper's Table 2: 63 TP, 1 FP, 13 FN, 97 TN */
    float p[174], y[174];
    int k = 0;
    for (int i = 0; i < 62; i++, k++) { p[k] = 0.9f; y[k] = 1; }
    p[k] = 0.5000001f; y[k++] = 1;          /* just above 0.5: positive */
    p[k] = 0.7f; y[k++] = 0;                /* the false positive */
    for (int i = 0; i < 12; i++, k++) { p[k] = 0.2f; y[k] = 1; }
    p[k] = 0.5f; y[k++] = 1;                /* exactly 0.5 is NOT positive (strict) */
    for (int i = 0; i < 97; i++, k++) { p[k] = 0.1f; y[k] = 0; }
    CHECK_INT(k, 174);
    ld_patch_metrics m;
    ld_patch_metrics_compute(&m, p, y, 174, 0.5f);
    CHECK_INT(m.tp, 63);
    CHECK_INT(m.fp, 1);
    CHECK_INT(m.fn, 13);
    CHECK_INT(m.tn, 97);
    CHECK_INT(m.n, 174);
    CHECK_NEAR(m.accuracy, 160.0 / 174, EXACT);     /* 0.91954 */
    CHECK_NEAR(m.precision, 63.0 / 64, EXACT);      /* 0.984375 */
    CHECK_NEAR(m.recall, 63.0 / 76, EXACT);         /* 0.82895 */
    CHECK_NEAR(m.specificity, 97.0 / 98, EXACT);    /* 0.98980 */
    CHECK_NEAR(m.f1, 0.9, EXACT);                   /* 126 / 140 */
    CHECK_NEAR(m.paper_dsc, 128.0 / 140, EXACT);    /* 2*64 / (64 + 76) = 0.91429 */

    /* the paper's "DSC" is not Dice: calling exactly the wrong patches positive
     * gives it 1 and Dice 0 */
    float p2[4] = {0.9f, 0.9f, 0.1f, 0.1f}, y2[4] = {0, 0, 1, 1};
    ld_patch_metrics_compute(&m, p2, y2, 4, 0.5f);
    CHECK_NEAR(m.paper_dsc, 1.0, EXACT);
    CHECK_NEAR(m.f1, 0.0, EXACT);
    CHECK_NEAR(m.accuracy, 0.0, EXACT);

    /* 0/0: nothing predicted positive and no positive label */
    float p3[3] = {0.1f, 0.2f, 0.3f}, y3[3] = {0, 0, 0};
    ld_patch_metrics_compute(&m, p3, y3, 3, 0.5f);
    CHECK_NEAR(m.accuracy, 1.0, EXACT);
    CHECK_NEAR(m.specificity, 1.0, EXACT);
    CHECK(isnan(m.precision));
    CHECK(isnan(m.recall));
    CHECK(isnan(m.f1));
    CHECK(isnan(m.paper_dsc));
    /* no negative label: specificity undefined; predictions all negative: precision undefined */
    float y4[3] = {1, 1, 1};
    ld_patch_metrics_compute(&m, p3, y4, 3, 0.5f);
    CHECK(isnan(m.specificity));
    CHECK(isnan(m.precision));
    CHECK_NEAR(m.recall, 0.0, EXACT);
    CHECK_NEAR(m.f1, 0.0, EXACT);
    CHECK_NEAR(m.paper_dsc, 0.0, EXACT);
    /* no patches at all */
    ld_patch_metrics_compute(&m, p3, y3, 0, 0.5f);
    CHECK_INT(m.n, 0);
    CHECK(isnan(m.accuracy));
    /* the threshold is a parameter: 0.95 as the detector uses */
    float p5[3] = {0.95f, 0.96f, 0.99f}, y5[3] = {1, 1, 1};
    ld_patch_metrics_compute(&m, p5, y5, 3, 0.95f);
    CHECK_INT(m.tp, 2);
    CHECK_INT(m.fn, 1);
}

TEST_SUITE(metrics_iou)
{
    CHECK_NEAR(ld_iou_xywh(0, 0, 10, 10, 0, 0, 10, 10), 1.0, 0);
    CHECK_NEAR(ld_iou_xywh(0, 0, 10, 10, 5, 0, 10, 10), 50.0 / 150, EXACT);
    CHECK_NEAR(ld_iou_xywh(0, 0, 10, 10, 2, 2, 5, 5), 0.25, EXACT);        /* contained */
    CHECK_NEAR(ld_iou_xywh(0.5, 0.5, 2, 2, 1.5, 0.5, 2, 2), 2.0 / 6, EXACT); /* fractional */
    CHECK_NEAR(ld_iou_xywh(0, 0, 10, 10, 0, 0, 5, 10), 0.5, 0);             /* exactly 0.5 */
    /* continuous coordinates, no +1: boxes that share an edge do not overlap */
    CHECK(ld_iou_xywh(0, 0, 10, 10, 10, 0, 10, 10) == 0.0);
    CHECK(ld_iou_xywh(0, 0, 10, 10, 0, 10, 10, 10) == 0.0);
    CHECK(ld_iou_xywh(0, 0, 10, 10, 50, 50, 10, 10) == 0.0);
    /* zero-area boxes: 0, never NaN (no division happens) */
    CHECK(ld_iou_xywh(0, 0, 0, 10, 0, 0, 10, 10) == 0.0);
    CHECK(ld_iou_xywh(3, 3, 0, 0, 3, 3, 0, 0) == 0.0);
    CHECK(ld_iou_xywh(0, 0, 10, 0, 0, 0, 10, 0) == 0.0);
    /* symmetric, bit for bit */
    CHECK(ld_iou_xywh(1.3, 2.7, 40.1, 33.3, 5.9, 0.2, 31.7, 52.9) ==
          ld_iou_xywh(5.9, 0.2, 31.7, 52.9, 1.3, 2.7, 40.1, 33.3));
}

TEST_SUITE(metrics_quantile)
{
    /* np.percentile([1, 2, 3, 4], [0, 25, 50, 75, 100]) = [1, 1.75, 2.5, 3.25, 4] */
    double v[4] = {1, 2, 3, 4};
    CHECK_NEAR(ld_quantile_sorted(v, 4, 0.0), 1.0, 0);
    CHECK_NEAR(ld_quantile_sorted(v, 4, 0.25), 1.75, 0);
    CHECK_NEAR(ld_quantile_sorted(v, 4, 0.5), 2.5, 0);
    CHECK_NEAR(ld_quantile_sorted(v, 4, 0.75), 3.25, 0);
    CHECK_NEAR(ld_quantile_sorted(v, 4, 1.0), 4.0, 0);
    /* np.percentile([0.1, 0.2, 0.7], 97.5) = 0.675 (h = 1.95: from the upper end) */
    double w[3] = {0.1, 0.2, 0.7};
    CHECK_NEAR(ld_quantile_sorted(w, 3, 0.975), 0.675, EXACT);
    CHECK_NEAR(ld_quantile_sorted(w, 3, 0.025), 0.105, EXACT);   /* h = 0.05 */
    double one = 0.42;
    CHECK_NEAR(ld_quantile_sorted(&one, 1, 0.3), 0.42, 0);
    CHECK(isnan(ld_quantile_sorted(v, 0, 0.5)));
}

TEST_SUITE(metrics_label_iou)
{
    /* image 1: labels A and B; image 2: label C and no detection; image 3: no label */
    ld_box g1[2] = {box(0, 0, 10, 10, 0), box(100, 100, 20, 20, 0)};
    ld_det d1[3] = {det(5, 0, 10, 10, 0.3f, 0),       /* A: 1/3 */
                    det(0, 0, 10, 10, 0.9f, 0),       /* A: 1, the top detection */
                    det(100, 100, 10, 10, 0.5f, 0)};  /* B: 100/400 = 0.25 */
    ld_box g2[1] = {box(0, 0, 10, 10, 0)};
    ld_det d3[2] = {det(0, 0, 5, 5, 0.9f, 0), det(9, 9, 5, 5, 0.1f, 0)};
    ld_eval_image im[3] = {view(1, g1, 2, d1, 3), view(2, g2, 1, NULL, 0), view(3, NULL, 0, d3, 2)};
    ld_iou_stats s;
    double best[3];
    ld_error err = {0};
    CHECK_INT(ld_label_iou(&s, best, im, 3, &err), LD_OK);
    CHECK_NEAR(best[0], 1.0, EXACT);
    CHECK_NEAR(best[1], 0.25, EXACT);
    CHECK_NEAR(best[2], 0.0, 0);
    CHECK_INT(s.n_labels, 3);
    CHECK_INT(s.n_found, 2);
    CHECK_INT(s.n_images, 3);
    CHECK_INT(s.n_images_with_labels, 2);
    CHECK_INT(s.n_dets, 5);
    CHECK_NEAR(s.mean, 1.25 / 3, EXACT);
    /* sorted 0, 0.25, 1: median 0.25, q1 at h = 0.5: 0.125, q3 at h = 1.5: 0.625 */
    CHECK_NEAR(s.median, 0.25, EXACT);
    CHECK_NEAR(s.q1, 0.125, EXACT);
    CHECK_NEAR(s.q3, 0.625, EXACT);
    CHECK_NEAR(s.min, 0.0, 0);
    CHECK_NEAR(s.max, 1.0, 0);
    CHECK_NEAR(s.found_fraction, 2.0 / 3, EXACT);
    CHECK_NEAR(s.mean_found, 0.625, EXACT);
    CHECK_NEAR(s.dets_per_image, 5.0 / 3, EXACT);
    CHECK_NEAR(s.top1_iou, 0.5, EXACT);      /* image 1: 1 (the 0.9 box on A), image 2: 0 */

    /* a score tie for the top detection: the first in list order counts */
    ld_det d4[2] = {det(100, 100, 10, 10, 0.9f, 0), det(0, 0, 10, 10, 0.9f, 0)};
    ld_eval_image im4 = view(1, g1, 2, d4, 2);
    CHECK_INT(ld_label_iou(&s, NULL, &im4, 1, &err), LD_OK);
    CHECK_NEAR(s.top1_iou, 0.25, EXACT);
    /* categories are ignored here: a detection of another category still localises */
    ld_det d5[1] = {det(0, 0, 10, 10, 0.9f, 1)};
    ld_eval_image im5 = view(1, g2, 1, d5, 1);
    CHECK_INT(ld_label_iou(&s, NULL, &im5, 1, &err), LD_OK);
    CHECK_NEAR(s.mean, 1.0, 0);

    /* no labels at all: every summary is undefined */
    ld_eval_image im6 = view(1, NULL, 0, d3, 2);
    CHECK_INT(ld_label_iou(&s, NULL, &im6, 1, &err), LD_OK);
    CHECK_INT(s.n_labels, 0);
    CHECK(isnan(s.mean) && isnan(s.median) && isnan(s.q1) && isnan(s.min) && isnan(s.max));
    CHECK(isnan(s.found_fraction) && isnan(s.mean_found) && isnan(s.top1_iou));
    CHECK_NEAR(s.dets_per_image, 2.0, 0);
    /* no images */
    CHECK_INT(ld_label_iou(&s, NULL, NULL, 0, &err), LD_OK);
    CHECK(isnan(s.dets_per_image));
    /* labels but no detection anywhere: IoU 0 everywhere, nothing found */
    ld_eval_image im7 = view(1, g1, 2, NULL, 0);
    CHECK_INT(ld_label_iou(&s, NULL, &im7, 1, &err), LD_OK);
    CHECK_NEAR(s.mean, 0.0, 0);
    CHECK_NEAR(s.found_fraction, 0.0, 0);
    CHECK(isnan(s.mean_found));
    CHECK_NEAR(s.top1_iou, 0.0, 0);
}

/* The worked example (also case "hand_3gt_5det" of the golden file):
 *   image 1: gt A = [0,0,10,10], B = [100,100,10,10]; image 2: gt C = [0,0,20,20]
 *   detections by score: 0.9 on A (IoU 1), 0.8 nowhere, 0.7 on B (IoU 1),
 *   0.6 nowhere, 0.5 on C (IoU 1)  ->  TP FP TP FP TP, n_gt = 3
 *   cumulative recall     1/3  1/3  2/3  2/3  1
 *   cumulative precision  1    1/2  2/3  1/2  3/5
 *   made non-increasing from the right: 1, 2/3, 2/3, 3/5, 3/5
 *   101 recall points r = 0, .01, ..., 1; each takes the precision at the first
 *   detection whose recall >= r:
 *     r = 0 .. 0.33 (34 points)    -> detection 1: 1
 *     r = 0.34 .. 0.66 (33 points) -> detection 3: 2/3
 *     r = 0.67 .. 1 (34 points)    -> detection 5: 3/5
 *   AP50 = (34 * 1 + 33 * 2/3 + 34 * 3/5) / 101 = 76.4 / 101 = 0.756435...
 *   Every match has IoU 1, so AP at every threshold is the same; AR100 = 1. */
TEST_SUITE(metrics_coco_hand)
{
    ld_box g1[2] = {box(0, 0, 10, 10, 0), box(100, 100, 10, 10, 0)};
    ld_box g2[1] = {box(0, 0, 20, 20, 0)};
    /* given out of score order: the evaluation sorts */
    ld_det d1[3] = {det(100, 100, 10, 10, 0.7f, 0), det(0, 0, 10, 10, 0.9f, 0),
                    det(50, 50, 10, 10, 0.8f, 0)};
    ld_det d2[2] = {det(0, 0, 20, 20, 0.5f, 0), det(200, 200, 10, 10, 0.6f, 0)};
    ld_eval_image im[2] = {view(1, g1, 2, d1, 3), view(2, g2, 1, d2, 2)};
    ld_error err = {0};
    ld_coco_metrics m, pc[1];
    CHECK_INT(ld_coco_eval(&m, pc, im, 2, 1, &err), LD_OK);
    double ap = 76.4 / 101;
    CHECK_NEAR(m.ap50, ap, EXACT);
    CHECK_NEAR(m.ap75, ap, EXACT);
    CHECK_NEAR(m.ap, ap, EXACT);
    CHECK_NEAR(m.ar100, 1.0, EXACT);
    for (int t = 0; t < LD_COCO_N_IOU; t++) CHECK_NEAR(m.ap_at[t], ap, EXACT);
    CHECK_INT(m.n_gt, 3);
    CHECK_INT(m.n_det, 5);
    CHECK_INT(m.n_det_eval, 5);
    CHECK_INT(m.n_categories, 1);
    CHECK_NEAR(pc[0].ap, ap, EXACT);
    CHECK_INT(pc[0].n_gt, 3);

    /* the PR curve behind it */
    ld_pr_curve c;
    CHECK_INT(ld_pr_curve_compute(&c, im, 2, 1, 0, 0.5, &err), LD_OK);
    CHECK_INT(c.n, 5);
    CHECK_INT(c.n_gt, 3);
    double rc[5] = {1.0 / 3, 1.0 / 3, 2.0 / 3, 2.0 / 3, 1}, pr[5] = {1, 0.5, 2.0 / 3, 0.5, 0.6};
    double sc[5] = {0.9f, 0.8f, 0.7f, 0.6f, 0.5f};
    for (int i = 0; i < 5 && c.n == 5; i++) {
        CHECK_NEAR(c.recall[i], rc[i], EXACT);
        CHECK_NEAR(c.precision[i], pr[i], EXACT);
        CHECK_NEAR(c.score[i], sc[i], 0);
    }
    for (int r = 0; r < LD_COCO_N_REC; r++)
        CHECK_NEAR(c.interp[r], r <= 33 ? 1.0 : r <= 66 ? 2.0 / 3 : 0.6, EXACT);
    CHECK_NEAR(c.ap, ap, EXACT);
    ld_pr_curve_free(&c);

    /* operating points: score >= 0.65 keeps 0.9 (TP), 0.8 (FP), 0.7 (TP) */
    ld_det_point op;
    CHECK_INT(ld_det_operating_point(&op, im, 2, 1, 0.65, 0.5, &err), LD_OK);
    CHECK_INT(op.tp, 2);
    CHECK_INT(op.fp, 1);
    CHECK_INT(op.fn, 1);
    CHECK_INT(op.n_gt, 3);
    CHECK_NEAR(op.precision, 2.0 / 3, EXACT);
    CHECK_NEAR(op.recall, 2.0 / 3, EXACT);
    CHECK_NEAR(op.f1, 2.0 / 3, EXACT);
    /* threshold 0: all five, TP 3, FP 2: P 0.6, R 1, F1 6/8 */
    CHECK_INT(ld_det_operating_point(&op, im, 2, 1, 0.0, 0.5, &err), LD_OK);
    CHECK_NEAR(op.precision, 0.6, EXACT);
    CHECK_NEAR(op.recall, 1.0, EXACT);
    CHECK_NEAR(op.f1, 0.75, EXACT);
    /* ">=": a detection scored exactly at the threshold counts */
    CHECK_INT(ld_det_operating_point(&op, im, 2, 1, (double)0.7f, 0.5, &err), LD_OK);
    CHECK_INT(op.tp + op.fp, 3);
    /* bad thresholds are usage errors */
    CHECK_INT(ld_det_operating_point(&op, im, 2, 1, 0.5, 0.0, &err), LD_ERR_USAGE);
    CHECK_INT(ld_pr_curve_compute(&c, im, 2, 1, 1, 0.5, &err), LD_ERR_USAGE);

    /* the thresholds are numpy's values */
    double t[LD_COCO_N_IOU], r[LD_COCO_N_REC];
    ld_coco_iou_thresholds(t);
    ld_coco_recall_thresholds(r);
    CHECK(t[0] == 0.5 && t[5] == 0.75 && t[8] == 0.8999999999999999 && t[9] == 0.95);
    CHECK(r[0] == 0.0 && r[50] == 0.5 && r[100] == 1.0);
    /* 35 * 0.01 = 0.35000000000000003, as numpy has it, not 35/100: a recall of
     * exactly 7/20 therefore falls BELOW recall point 35 */
    CHECK(r[35] == 0.35000000000000003 && r[35] != 0.35);
}

TEST_SUITE(metrics_coco_degenerate)
{
    ld_error err = {0};
    ld_coco_metrics m;
    ld_det_point op;
    ld_box g[2] = {box(0, 0, 10, 10, 0), box(20, 20, 10, 10, 0)};
    ld_det d[2] = {det(0, 0, 10, 10, 0.9f, 0), det(50, 50, 10, 10, 0.8f, 0)};

    /* no detections: AP and AR are 0, precision undefined, recall 0 */
    ld_eval_image a[2] = {view(1, g, 2, NULL, 0), view(2, NULL, 0, NULL, 0)};
    CHECK_INT(ld_coco_eval(&m, NULL, a, 2, 1, &err), LD_OK);
    CHECK_NEAR(m.ap, 0.0, 0);
    CHECK_NEAR(m.ap50, 0.0, 0);
    CHECK_NEAR(m.ar100, 0.0, 0);
    CHECK_INT(m.n_gt, 2);
    CHECK_INT(m.n_det, 0);
    CHECK_INT(ld_det_operating_point(&op, a, 2, 1, 0.0, 0.5, &err), LD_OK);
    CHECK(isnan(op.precision));
    CHECK_NEAR(op.recall, 0.0, 0);
    CHECK_NEAR(op.f1, 0.0, 0);

    /* no labels anywhere: AP undefined (pycocotools -1), every detection is a FP */
    ld_eval_image b[1] = {view(1, NULL, 0, d, 2)};
    CHECK_INT(ld_coco_eval(&m, NULL, b, 1, 1, &err), LD_OK);
    CHECK(isnan(m.ap) && isnan(m.ap50) && isnan(m.ap75) && isnan(m.ar100));
    CHECK_INT(m.n_categories, 0);
    CHECK_INT(m.n_det, 2);
    CHECK_INT(ld_det_operating_point(&op, b, 1, 1, 0.0, 0.5, &err), LD_OK);
    CHECK_INT(op.fp, 2);
    CHECK_NEAR(op.precision, 0.0, 0);
    CHECK(isnan(op.recall));
    CHECK(isnan(op.f1) == 0 && op.f1 == 0.0);     /* 0 / (0 + 2 + 0) */
    ld_pr_curve c;
    CHECK_INT(ld_pr_curve_compute(&c, b, 1, 1, 0, 0.5, &err), LD_OK);
    CHECK_INT(c.n, 2);
    CHECK(isnan(c.ap) && isnan(c.interp[0]) && isnan(c.recall[0]));
    ld_pr_curve_free(&c);

    /* no images, no categories */
    CHECK_INT(ld_coco_eval(&m, NULL, NULL, 0, 0, &err), LD_OK);
    CHECK(isnan(m.ap));
    CHECK_INT(m.n_gt, 0);

    /* an image with detections but no labels adds false positives to a labelled set:
     * gt on image 1 found at 0.5; image 2 (no gt) has a 0.9 false positive first.
     * TP after FP: recall 1 at precision 1/2 -> AP50 = 0.5 */
    ld_det d1[1] = {det(0, 0, 10, 10, 0.5f, 0)};
    ld_det d2[1] = {det(0, 0, 10, 10, 0.9f, 0)};
    ld_eval_image e[2] = {view(1, g, 1, d1, 1), view(2, NULL, 0, d2, 1)};
    CHECK_INT(ld_coco_eval(&m, NULL, e, 2, 1, &err), LD_OK);
    CHECK_NEAR(m.ap50, 0.5, EXACT);
    CHECK_NEAR(m.ar100, 1.0, 0);

    /* zero-area boxes never match and never divide by zero */
    ld_box gz[1] = {box(0, 0, 0, 10, 0)};
    ld_det dz[1] = {det(0, 0, 0, 10, 0.9f, 0)};
    ld_eval_image z[1] = {view(1, gz, 1, dz, 1)};
    CHECK_INT(ld_coco_eval(&m, NULL, z, 1, 1, &err), LD_OK);
    CHECK_NEAR(m.ap, 0.0, 0);
    CHECK_NEAR(m.ar100, 0.0, 0);

    /* a category without gt is left out of the mean; one with gt but no dets counts 0 */
    ld_box g3[1] = {box(0, 0, 10, 10, 0)};
    ld_det d3[2] = {det(0, 0, 10, 10, 0.9f, 0), det(0, 0, 10, 10, 0.8f, 2)};
    ld_eval_image f[1] = {view(1, g3, 1, d3, 2)};
    ld_coco_metrics pc[3];
    CHECK_INT(ld_coco_eval(&m, pc, f, 1, 3, &err), LD_OK);
    CHECK_INT(m.n_categories, 1);
    CHECK_NEAR(m.ap, pc[0].ap, 0);
    CHECK(isnan(pc[1].ap) && isnan(pc[2].ap));
    CHECK_INT(pc[2].n_det, 1);
    CHECK_INT(pc[2].n_gt, 0);
    /* operating point counts the category-2 detection as a false positive */
    CHECK_INT(ld_det_operating_point(&op, f, 1, 3, 0.0, 0.5, &err), LD_OK);
    CHECK_INT(op.tp, 1);
    CHECK_INT(op.fp, 1);

    /* a category outside the labels' is an input error naming the image */
    ld_det bad[1] = {det(0, 0, 10, 10, 0.9f, 1)};
    ld_eval_image h[1] = {view(42, g3, 1, bad, 1)};
    CHECK_INT(ld_coco_eval(&m, NULL, h, 1, 1, &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, "image 42") != NULL);
    ld_det nan_det[1] = {det(NAN, 0, 10, 10, 0.9f, 0)};
    ld_eval_image hn[1] = {view(7, g3, 1, nan_det, 1)};
    CHECK_INT(ld_coco_eval(&m, NULL, hn, 1, 1, &err), LD_ERR_INPUT);

    /* more than 100 detections: only the top 100 count for AP, all count for the
     * operating point */
    ld_det many[101];
    for (int i = 0; i < 100; i++) many[i] = det(200 + i, 200, 10, 10, 0.9f, 0);
    many[100] = det(0, 0, 10, 10, 0.1f, 0);   /* the only true match, ranked 101st */
    ld_eval_image mm[1] = {view(1, g3, 1, many, 101)};
    CHECK_INT(ld_coco_eval(&m, NULL, mm, 1, 1, &err), LD_OK);
    CHECK_NEAR(m.ap50, 0.0, 0);
    CHECK_INT(m.n_det, 101);
    CHECK_INT(m.n_det_eval, 100);
    CHECK_INT(ld_det_operating_point(&op, mm, 1, 1, 0.0, 0.5, &err), LD_OK);
    CHECK_INT(op.tp, 1);
    CHECK_INT(op.fp, 100);
}

/* ---- golden: tests/golden/coco_cases.json from tools/coco_reference.py ---- */

typedef struct {
    ld_eval_image *im;
    ld_box **gt;
    ld_det **dt;
    int n;
} golden_case;

static void case_free(golden_case *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->gt[i]);
        free(c->dt[i]);
    }
    free(c->gt);
    free(c->dt);
    free(c->im);
}

static void case_read(golden_case *c, const json_t *images)
{
    c->n = (int)json_array_size(images);
    c->im = calloc((size_t)c->n + 1, sizeof *c->im);
    c->gt = calloc((size_t)c->n + 1, sizeof *c->gt);
    c->dt = calloc((size_t)c->n + 1, sizeof *c->dt);
    for (int i = 0; i < c->n; i++) {
        const json_t *img = json_array_get(images, (size_t)i);
        const json_t *gt = json_object_get(img, "gt"), *dt = json_object_get(img, "dt");
        int ng = (int)json_array_size(gt), nd = (int)json_array_size(dt);
        c->gt[i] = calloc((size_t)ng + 1, sizeof **c->gt);
        c->dt[i] = calloc((size_t)nd + 1, sizeof **c->dt);
        for (int g = 0; g < ng; g++) {
            const json_t *b = json_array_get(gt, (size_t)g);
            c->gt[i][g] = box(json_number_value(json_array_get(b, 0)),
                              json_number_value(json_array_get(b, 1)),
                              json_number_value(json_array_get(b, 2)),
                              json_number_value(json_array_get(b, 3)),
                              (int)json_integer_value(json_array_get(b, 4)));
        }
        for (int d = 0; d < nd; d++) {
            const json_t *b = json_array_get(dt, (size_t)d);
            c->dt[i][d] = det(json_number_value(json_array_get(b, 0)),
                              json_number_value(json_array_get(b, 1)),
                              json_number_value(json_array_get(b, 2)),
                              json_number_value(json_array_get(b, 3)),
                              (float)json_number_value(json_array_get(b, 4)),
                              (int)json_integer_value(json_array_get(b, 5)));
        }
        c->im[i] = view(json_integer_value(json_object_get(img, "id")), c->gt[i], ng, c->dt[i], nd);
    }
}

/* expected value: a number, or null for "undefined" (NaN here) */
static int same(double got, const json_t *want, double *maxdiff)
{
    if (json_is_null(want)) return isnan(got);
    double d = fabs(got - json_number_value(want));
    if (d > *maxdiff) *maxdiff = d;
    return d <= EXACT;
}

TEST_SUITE(metrics_coco_golden)
{
    json_error_t jerr;
    json_t *root = json_load_file("tests/golden/coco_cases.json", 0, &jerr);
    CHECK_MSG(root != NULL, "tests/golden/coco_cases.json: %s", jerr.text);
    if (!root) return;
    /* the thresholds are numpy's, bit for bit */
    double t[LD_COCO_N_IOU], r[LD_COCO_N_REC];
    ld_coco_iou_thresholds(t);
    ld_coco_recall_thresholds(r);
    const json_t *jt = json_object_get(root, "iou_thrs"), *jr = json_object_get(root, "rec_thrs");
    CHECK_INT(json_array_size(jt), LD_COCO_N_IOU);
    CHECK_INT(json_array_size(jr), LD_COCO_N_REC);
    int thr_same = 1;
    for (int i = 0; i < LD_COCO_N_IOU; i++) thr_same &= t[i] == json_real_value(json_array_get(jt, (size_t)i));
    for (int i = 0; i < LD_COCO_N_REC; i++)
        thr_same &= r[i] == json_number_value(json_array_get(jr, (size_t)i));
    CHECK(thr_same);

    const json_t *cases = json_object_get(root, "cases");
    CHECK(json_array_size(cases) >= 20);
    double maxdiff = 0;
    int n_values = 0;
    for (size_t k = 0; k < json_array_size(cases); k++) {
        const json_t *jc = json_array_get(cases, k);
        const char *name = json_string_value(json_object_get(jc, "name"));
        int n_cat = (int)json_integer_value(json_object_get(jc, "n_categories"));
        const json_t *exp = json_object_get(jc, "expected");
        golden_case c;
        case_read(&c, json_object_get(jc, "images"));
        ld_error err = {0};
        ld_coco_metrics m, *pc = calloc((size_t)n_cat, sizeof *pc);
        ld_status st = ld_coco_eval(&m, pc, c.im, c.n, n_cat, &err);
        CHECK_MSG(st == LD_OK, "%s: %s", name, err.msg);
        CHECK_MSG(same(m.ap, json_object_get(exp, "ap"), &maxdiff), "%s: AP %.17g", name, m.ap);
        CHECK_MSG(same(m.ap50, json_object_get(exp, "ap50"), &maxdiff), "%s: AP50 %.17g", name, m.ap50);
        CHECK_MSG(same(m.ap75, json_object_get(exp, "ap75"), &maxdiff), "%s: AP75 %.17g", name, m.ap75);
        CHECK_MSG(same(m.ar100, json_object_get(exp, "ar100"), &maxdiff), "%s: AR100 %.17g", name,
                  m.ar100);
        n_values += 4;
        const json_t *jpc = json_object_get(exp, "per_category_ap");
        for (int i = 0; i < n_cat; i++) {
            CHECK_MSG(same(pc[i].ap, json_array_get(jpc, (size_t)i), &maxdiff),
                      "%s: category %d AP %.17g", name, i, pc[i].ap);
            n_values++;
        }
        /* the interpolated precision at IoU 0.5 of category 0 = the PR curve's */
        const json_t *p50 = json_object_get(exp, "precision50_cat0");
        if (n_cat >= 1) {
            ld_pr_curve curve;
            st = ld_pr_curve_compute(&curve, c.im, c.n, n_cat, 0, 0.5, &err);
            CHECK_MSG(st == LD_OK, "%s: %s", name, err.msg);
            int ok = 1;
            for (int i = 0; i < LD_COCO_N_REC && st == LD_OK; i++) {
                ok &= same(curve.interp[i], json_is_array(p50) ? json_array_get(p50, (size_t)i)
                                                              : json_null(), &maxdiff);
                n_values++;
            }
            CHECK_MSG(ok, "%s: interpolated precision at IoU 0.5", name);
            if (n_cat == 1 && json_is_array(p50)) CHECK_NEAR(curve.ap, m.ap50, EXACT);
            ld_pr_curve_free(&curve);
        }
        /* the operating point (score >= 0.5 as float32, IoU 0.5) */
        const json_t *jp = json_object_get(exp, "point");
        ld_det_point op;
        st = ld_det_operating_point(&op, c.im, c.n, n_cat,
                                    json_number_value(json_object_get(jp, "score_threshold")), 0.5,
                                    &err);
        CHECK_MSG(st == LD_OK && op.tp == json_integer_value(json_object_get(jp, "tp")) &&
                      op.fp == json_integer_value(json_object_get(jp, "fp")) &&
                      op.fn == json_integer_value(json_object_get(jp, "fn")),
                  "%s: operating point tp %ld fp %ld fn %ld", name, op.tp, op.fp, op.fn);
        CHECK_INT(m.n_gt, json_integer_value(json_object_get(exp, "n_gt")));
        free(pc);
        case_free(&c);
    }
    fprintf(stderr, "  coco golden: %zu cases, %d values, max |C - numpy| = %.3g\n",
            json_array_size(cases), n_values, maxdiff);
    json_decref(root);
}

/* ---- bootstrap ---- */

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

TEST_SUITE(metrics_bootstrap)
{
    ld_error err = {0};
    ld_bootstrap b1, b2, b3;
    /* image 1: found exactly (IoU 1); image 2: missed (IoU 0, a FP elsewhere);
     * image 3: no labels, one FP. */
    ld_box g1[1] = {box(0, 0, 10, 10, 0)}, g2[1] = {box(0, 0, 10, 10, 0)};
    ld_det d1[1] = {det(0, 0, 10, 10, 0.9f, 0)}, d2[1] = {det(50, 50, 10, 10, 0.8f, 0)};
    ld_det d3[1] = {det(50, 50, 10, 10, 0.95f, 0)};
    ld_eval_image im[3] = {view(1, g1, 1, d1, 1), view(2, g2, 1, d2, 1), view(3, NULL, 0, d3, 1)};
    int B = 300;
    CHECK_INT(ld_bootstrap_ci(&b1, im, 3, 1, B, 7, &err), LD_OK);
    CHECK_INT(ld_bootstrap_ci(&b2, im, 3, 1, B, 7, &err), LD_OK);
    CHECK_INT(ld_bootstrap_ci(&b3, im, 3, 1, B, 8, &err), LD_OK);
    /* same seed, same interval, bit for bit */
    CHECK(b1.ap50.lo == b2.ap50.lo && b1.ap50.hi == b2.ap50.hi);
    CHECK(b1.mean_iou.lo == b2.mean_iou.lo && b1.mean_iou.hi == b2.mean_iou.hi);
    CHECK(b1.ap.lo == b2.ap.lo && b1.ap.hi == b2.ap.hi && b1.ap50.n_valid == b2.ap50.n_valid);
    CHECK(b1.ap50.n_valid != b3.ap50.n_valid || b1.ap50.lo != b3.ap50.lo ||
          b1.ap50.hi != b3.ap50.hi || b1.mean_iou.lo != b3.mean_iou.lo);
    /* point estimates are the full-set values */
    ld_coco_metrics m;
    CHECK_INT(ld_coco_eval(&m, NULL, im, 3, 1, &err), LD_OK);
    CHECK_NEAR(b1.ap50.point, m.ap50, 0);
    CHECK_NEAR(b1.ap.point, m.ap, 0);
    CHECK_NEAR(b1.mean_iou.point, 0.5, 0);
    CHECK(b1.ap50.lo <= b1.ap50.hi && b1.mean_iou.lo <= b1.mean_iou.hi);

    /* recompute the resamples independently: same draws, ld_coco_eval on a copy of
     * the drawn images (ids in draw order), the mean IoU by hand */
    ld_rng rng;
    ld_rng_seed(&rng, 7);
    double *v50 = malloc((size_t)B * sizeof *v50), *viou = malloc((size_t)B * sizeof *viou);
    int n50 = 0, niou = 0;
    double iou_of[3] = {1.0, 0.0, 0.0};
    for (int b = 0; b < B; b++) {
        ld_eval_image rs[3];
        int labels = 0;
        double sum = 0;
        for (int i = 0; i < 3; i++) {
            int k = (int)ld_rng_below(&rng, 3);
            rs[i] = im[k];
            rs[i].id = i;
            labels += im[k].n_gt;
            sum += iou_of[k] * im[k].n_gt;
        }
        ld_coco_metrics r;
        ld_coco_eval(&r, NULL, rs, 3, 1, &err);
        if (!isnan(r.ap50)) v50[n50++] = r.ap50;
        if (labels) viou[niou++] = sum / labels;
    }
    qsort(v50, (size_t)n50, sizeof *v50, cmp_dbl);
    qsort(viou, (size_t)niou, sizeof *viou, cmp_dbl);
    CHECK_INT(b1.ap50.n_valid, n50);
    CHECK_INT(b1.mean_iou.n_valid, niou);
    CHECK(niou < B);   /* some resamples drew only image 3: no labels, skipped */
    CHECK_NEAR(b1.ap50.lo, ld_quantile_sorted(v50, n50, 0.025), 0);
    CHECK_NEAR(b1.ap50.hi, ld_quantile_sorted(v50, n50, 0.975), 0);
    CHECK_NEAR(b1.mean_iou.lo, ld_quantile_sorted(viou, niou, 0.025), 0);
    CHECK_NEAR(b1.mean_iou.hi, ld_quantile_sorted(viou, niou, 0.975), 0);
    /* the mean IoU of a resample is 0, 1/3, 1/2, 2/3 or 1: the interval spans 0..1 */
    CHECK_NEAR(b1.mean_iou.lo, 0.0, 0);
    CHECK_NEAR(b1.mean_iou.hi, 1.0, 0);
    free(v50);
    free(viou);

    /* identical images: every resample is the same set, the interval is a point */
    ld_eval_image same4[4] = {view(1, g1, 1, d1, 1), view(2, g1, 1, d1, 1),
                              view(3, g1, 1, d1, 1), view(4, g1, 1, d1, 1)};
    CHECK_INT(ld_bootstrap_ci(&b1, same4, 4, 1, 100, 1, &err), LD_OK);
    CHECK_NEAR(b1.ap50.lo, b1.ap50.point, EXACT);
    CHECK_NEAR(b1.ap50.hi, b1.ap50.point, EXACT);
    CHECK_NEAR(b1.ap50.point, 1.0, EXACT);
    CHECK_NEAR(b1.mean_iou.lo, 1.0, 0);
    CHECK_INT(b1.ap50.n_valid, 100);

    /* nothing to resample: NaN, not a crash */
    CHECK_INT(ld_bootstrap_ci(&b1, NULL, 0, 1, 50, 1, &err), LD_OK);
    CHECK(isnan(b1.ap50.lo) && isnan(b1.mean_iou.hi));
    CHECK_INT(b1.ap50.n_valid, 0);
    /* no labels: every resample undefined */
    ld_eval_image nl[1] = {view(1, NULL, 0, d3, 1)};
    CHECK_INT(ld_bootstrap_ci(&b1, nl, 1, 1, 50, 1, &err), LD_OK);
    CHECK(isnan(b1.ap50.lo) && isnan(b1.ap50.point));
}

/* ---- everything at once from an ld_labels, with allocation failures ---- */

TEST_SUITE(metrics_detection_all)
{
    ld_box b1[2] = {box(0, 0, 10, 10, 0), box(100, 100, 10, 10, 0)};
    ld_box b2[1] = {box(0, 0, 20, 20, 0)};
    ld_label_image li[3] = {
        {.id = 10, .file_name = "a.png", .width = 469, .height = 469, .boxes = b1, .n_boxes = 2},
        {.id = 11, .file_name = "b.png", .width = 469, .height = 469, .boxes = b2, .n_boxes = 1},
        {.id = 12, .file_name = "c.png", .width = 469, .height = 469}};
    char *cats[1] = {"lesion"};
    ld_labels labels = {.images = li, .n_images = 3, .categories = cats, .n_categories = 1};
    ld_det d1[3] = {det(100, 100, 10, 10, 0.7f, 0), det(0, 0, 10, 10, 0.9f, 0),
                    det(50, 50, 10, 10, 0.8f, 0)};
    ld_det d2[2] = {det(0, 0, 20, 20, 0.5f, 0), det(200, 200, 10, 10, 0.6f, 0)};
    ld_dets dets[3] = {{d1, 3, 3}, {d2, 2, 2}, {NULL, 0, 0}};
    ld_eval_config cfg;
    ld_eval_config_default(&cfg);
    CHECK_NEAR(cfg.iou_threshold, 0.5, 0);
    CHECK_INT(cfg.n_resamples, 1000);
    cfg.n_resamples = 50;
    cfg.score_threshold = 0.65;
    ld_detection_metrics m;
    ld_error err = {0};
    CHECK_INT(ld_detection_metrics_compute(&m, &labels, dets, &cfg, &err), LD_OK);
    CHECK_NEAR(m.coco.ap50, 76.4 / 101, EXACT);   /* the worked example above */
    CHECK_NEAR(m.per_category[0].ap50, 76.4 / 101, EXACT);
    CHECK_INT(m.point.tp, 2);
    CHECK_INT(m.point.fp, 1);
    CHECK_INT(m.pr.n, 5);
    CHECK_NEAR(m.pr.ap, 76.4 / 101, EXACT);
    CHECK_INT(m.iou.n_labels, 3);
    CHECK_NEAR(m.label_iou[0], 1.0, 0);
    CHECK_NEAR(m.iou.mean, 1.0, 0);
    CHECK_NEAR(m.iou.dets_per_image, 5.0 / 3, EXACT);
    CHECK_INT(m.boot.n_resamples, 50);
    CHECK(m.boot.ap50.n_valid > 0);
    ld_detection_metrics_free(&m);

    /* no bootstrap asked: NaN intervals */
    cfg.n_resamples = 0;
    CHECK_INT(ld_detection_metrics_compute(&m, &labels, NULL, &cfg, &err), LD_OK);
    CHECK(isnan(m.boot.ap50.lo));
    CHECK_NEAR(m.coco.ap50, 0.0, 0);        /* no detections at all */
    ld_detection_metrics_free(&m);

    /* every allocation failing in turn: a clean LD_ERR_NOMEM, nothing leaked (ASan) */
    cfg.n_resamples = 5;
    int failures = 0, k;
    for (k = 1; k < 400; k++) {
        ld_alloc_fail_after(k);
        ld_status st = ld_detection_metrics_compute(&m, &labels, dets, &cfg, &err);
        ld_alloc_fail_after(0);
        if (st == LD_OK) {
            ld_detection_metrics_free(&m);
            break;
        }
        failures += st == LD_ERR_NOMEM;
    }
    CHECK(k < 400);
    CHECK_INT(failures, k - 1);
}
