/* metrics_bootstrap.c — bootstrap confidence intervals over images, and the one
 * call `lymphdet evaluate` makes to get every detection metric.
 *
 * Why images are the unit: detections in one image are not independent (one
 * lesion, one scanner setting), so resampling boxes would understate the
 * uncertainty. Each resample reuses the per-image COCO matching (it does not
 * depend on the other images) and only re-runs accumulate on the drawn image
 * list, so B = 1000 costs about B sorts of the detections. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "lymphdet/rng.h"
#include "metrics_internal.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile interval of the valid (non-NaN) values v[0..n); sorts v in place. */
static void interval(ld_ci *ci, double *v, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(v[i])) v[k++] = v[i];
    qsort(v, (size_t)k, sizeof *v, cmp_double);
    ci->n_valid = k;
    /* np.percentile(x, [2.5, 97.5]) divides by 100: 2.5/100 is the double 0.025 */
    ci->lo = ld_quantile_sorted(v, k, 2.5 / 100);
    ci->hi = ld_quantile_sorted(v, k, 97.5 / 100);
}

static void nan_ci(ld_ci *ci)
{
    ci->point = ci->lo = ci->hi = NAN;
    ci->n_valid = 0;
}

ld_status ld_bootstrap_ci(ld_bootstrap *out, const ld_eval_image *imgs, int n_images,
                          int n_categories, int n_resamples, uint64_t seed, ld_error *err)
{
    memset(out, 0, sizeof *out);
    nan_ci(&out->ap50);
    nan_ci(&out->ap);
    nan_ci(&out->mean_iou);
    out->n_resamples = n_resamples;
    out->seed = seed;
    if (n_resamples < 0 || n_images < 0)
        return ld_fail(err, LD_ERR_USAGE, "bootstrap: %d resamples of %d images", n_resamples,
                       n_images);
    double thr[LD_COCO_N_IOU];
    ld_coco_iou_thresholds(thr);
    ld_coco_state st;
    ld_status rc = ld_coco_state_run(&st, imgs, n_images, n_categories, thr, LD_COCO_N_IOU,
                                     LD_COCO_MAX_DETS, -INFINITY, err);
    if (rc) return rc;

    ld_coco_work w = {0};
    int *order = NULL, *draw = NULL;
    double *iou_sum = NULL;     /* [n_images] sum of the per-label IoU of each image */
    double *v_ap50 = NULL, *v_ap = NULL, *v_iou = NULL;   /* [n_resamples] */
    rc = ld_coco_id_order(&order, imgs, n_images, err);
    if (!rc) {
        draw = ld_alloc((size_t)n_images, sizeof *draw, "bootstrap draw", err);
        iou_sum = ld_zalloc((size_t)n_images, sizeof *iou_sum, "bootstrap IoU sums", err);
        v_ap50 = ld_alloc((size_t)n_resamples, sizeof *v_ap50, "bootstrap values", err);
        v_ap = ld_alloc((size_t)n_resamples, sizeof *v_ap, "bootstrap values", err);
        v_iou = ld_alloc((size_t)n_resamples, sizeof *v_iou, "bootstrap values", err);
        if (!draw || !iou_sum || !v_ap50 || !v_ap || !v_iou) rc = LD_ERR_NOMEM;
    }
    /* per-image sums of the per-label IoU (ld_label_iou's definition), and the
     * point estimates on the images as given */
    long n_labels = 0;
    double all_iou = 0;
    if (!rc) {
        for (int i = 0; i < n_images; i++) {
            const ld_eval_image *im = &imgs[i];
            for (int g = 0; g < im->n_gt; g++) {
                const ld_box *b = &im->gt[g];
                double best = 0;
                for (int d = 0; d < im->n_det; d++) {
                    const ld_det *t = &im->det[d];
                    best = fmax(best, ld_iou_xywh(t->x, t->y, t->w, t->h, b->x, b->y, b->w, b->h));
                }
                iou_sum[i] += best;
            }
            n_labels += im->n_gt;
            all_iou += iou_sum[i];
        }
        out->mean_iou.point = n_labels ? all_iou / (double)n_labels : NAN;
        ld_coco_summary s;
        rc = ld_coco_summarize(&s, NULL, &st, order, n_images, &w, err);
        out->ap50.point = s.ap50;
        out->ap.point = s.ap;
    }
    ld_rng rng;
    ld_rng_seed(&rng, seed);
    for (int b = 0; !rc && b < n_resamples; b++) {
        long nl = 0;
        double sum = 0;
        for (int i = 0; i < n_images; i++) {
            draw[i] = (int)ld_rng_below(&rng, (uint64_t)n_images);
            nl += imgs[draw[i]].n_gt;
            sum += iou_sum[draw[i]];
        }
        v_iou[b] = nl ? sum / (double)nl : NAN;
        ld_coco_summary s;
        rc = ld_coco_summarize(&s, NULL, &st, draw, n_images, &w, err);
        v_ap50[b] = s.ap50;
        v_ap[b] = s.ap;
    }
    if (!rc && n_resamples > 0) {
        interval(&out->ap50, v_ap50, n_resamples);
        interval(&out->ap, v_ap, n_resamples);
        interval(&out->mean_iou, v_iou, n_resamples);
    }
    ld_free(order);
    ld_free(draw);
    ld_free(iou_sum);
    ld_free(v_ap50);
    ld_free(v_ap);
    ld_free(v_iou);
    ld_coco_work_free(&w);
    ld_coco_state_free(&st);
    return rc;
}

void ld_eval_config_default(ld_eval_config *cfg)
{
    cfg->score_threshold = 0.0;
    cfg->iou_threshold = 0.5;
    cfg->n_resamples = 1000;
    cfg->seed = 0;
}

void ld_detection_metrics_free(ld_detection_metrics *m)
{
    ld_free(m->per_category);
    ld_free(m->label_iou);
    ld_pr_curve_free(&m->pr);
    memset(m, 0, sizeof *m);
}

ld_status ld_detection_metrics_compute(ld_detection_metrics *m, const ld_labels *labels,
                                       const ld_dets *dets, const ld_eval_config *cfg,
                                       ld_error *err)
{
    memset(m, 0, sizeof *m);
    int n = labels->n_images, nc = labels->n_categories;
    long n_labels = 0;
    for (int i = 0; i < n; i++) n_labels += labels->images[i].n_boxes;
    ld_eval_image *imgs = ld_alloc((size_t)n, sizeof *imgs, "evaluation view", err);
    if (!imgs) return LD_ERR_NOMEM;
    ld_eval_view(imgs, labels, dets);
    m->n_categories = nc;
    m->per_category = ld_alloc((size_t)nc, sizeof *m->per_category, "per-category metrics", err);
    m->label_iou = ld_alloc((size_t)n_labels, sizeof *m->label_iou, "per-label IoU", err);
    ld_status rc = m->per_category && m->label_iou ? LD_OK : LD_ERR_NOMEM;
    if (!rc) rc = ld_coco_eval(&m->coco, m->per_category, imgs, n, nc, err);
    if (!rc)
        rc = ld_det_operating_point(&m->point, imgs, n, nc, cfg->score_threshold,
                                    cfg->iou_threshold, err);
    if (!rc) rc = ld_pr_curve_compute(&m->pr, imgs, n, nc, -1, cfg->iou_threshold, err);
    if (!rc) rc = ld_label_iou(&m->iou, m->label_iou, imgs, n, err);
    if (!rc && cfg->n_resamples > 0)
        rc = ld_bootstrap_ci(&m->boot, imgs, n, nc, cfg->n_resamples, cfg->seed, err);
    else if (!rc) {
        nan_ci(&m->boot.ap50);
        nan_ci(&m->boot.ap);
        nan_ci(&m->boot.mean_iou);
    }
    ld_free(imgs);
    if (rc) ld_detection_metrics_free(m);
    return rc;
}
