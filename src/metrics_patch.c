/* metrics_patch.c — patch-level metrics, box IoU, quantiles and the paper's
 * per-label IoU statistics (definitions in include/lymphdet/metrics.h).
 *
 * Every ratio goes through ratio(), so "0/0 is NaN" is decided in one place. */
#include <math.h>
#include <stdlib.h>
#include "alloc.h"
#include "lymphdet/metrics.h"

static double ratio(double num, double den) { return den > 0 ? num / den : NAN; }

void ld_patch_metrics_from_counts(ld_patch_metrics *m, long tp, long fp, long fn, long tn)
{
    m->tp = tp;
    m->fp = fp;
    m->fn = fn;
    m->tn = tn;
    m->n = tp + fp + fn + tn;
    m->accuracy = ratio((double)(tp + tn), (double)m->n);
    m->precision = ratio((double)tp, (double)(tp + fp));
    m->recall = ratio((double)tp, (double)(tp + fn));
    m->specificity = ratio((double)tn, (double)(tn + fp));
    m->f1 = ratio(2.0 * (double)tp, (double)(2 * tp + fp + fn));
    /* sum(pred) = tp + fp, sum(y) = tp + fn: the paper's formula in counts */
    m->paper_dsc = ratio(2.0 * (double)(tp + fp), (double)((tp + fp) + (tp + fn)));
}

void ld_patch_metrics_compute(ld_patch_metrics *m, const float *p, const float *y, int n,
                              float threshold)
{
    long tp = 0, fp = 0, fn = 0, tn = 0;
    for (int i = 0; i < n; i++) {
        int pred = p[i] > threshold;   /* strict, in float: Keras' binary_accuracy */
        int pos = y[i] > 0.5f;
        tp += pred && pos;
        fp += pred && !pos;
        fn += !pred && pos;
        tn += !pred && !pos;
    }
    ld_patch_metrics_from_counts(m, tp, fp, fn, tn);
}

double ld_iou_xywh(double ax, double ay, double aw, double ah,
                   double bx, double by, double bw, double bh)
{
    /* the operations and their order are maskApi.c bbIou's, so results agree bit for bit */
    double iw = fmin(aw + ax, bw + bx) - fmax(ax, bx);
    if (iw <= 0) return 0.0;
    double ih = fmin(ah + ay, bh + by) - fmax(ay, by);
    if (ih <= 0) return 0.0;
    double inter = iw * ih;
    return inter / (aw * ah + bw * bh - inter);
}

double ld_quantile_sorted(const double *sorted, int n, double q)
{
    if (n <= 0) return NAN;
    double h = q * (double)(n - 1);
    double lo = floor(h);
    int i = (int)lo;
    if (i < 0) i = 0;
    if (i > n - 1) i = n - 1;
    int j = i + 1 < n ? i + 1 : n - 1;
    double t = h - lo, a = sorted[i], b = sorted[j], d = b - a;
    /* numpy's _lerp: from the nearer end, so q = 1 gives the maximum exactly */
    return t >= 0.5 ? b - d * (1.0 - t) : a + d * t;
}

void ld_eval_view(ld_eval_image *out, const ld_labels *labels, const ld_dets *dets)
{
    for (int i = 0; i < labels->n_images; i++) {
        const ld_label_image *im = &labels->images[i];
        out[i].id = im->id;
        out[i].gt = im->boxes;
        out[i].n_gt = im->n_boxes;
        out[i].det = dets ? dets[i].d : NULL;
        out[i].n_det = dets ? dets[i].n : 0;
    }
}

static double det_gt_iou(const ld_det *d, const ld_box *g)
{
    return ld_iou_xywh(d->x, d->y, d->w, d->h, g->x, g->y, g->w, g->h);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

ld_status ld_label_iou(ld_iou_stats *s, double *best, const ld_eval_image *imgs, int n_images,
                       ld_error *err)
{
    long n_labels = 0, n_dets = 0;
    for (int i = 0; i < n_images; i++) {
        n_labels += imgs[i].n_gt;
        n_dets += imgs[i].n_det;
    }
    if (n_labels > INT32_MAX)
        return ld_fail(err, LD_ERR_INPUT, "too many labelled boxes (%ld)", n_labels);
    double *v = ld_alloc((size_t)n_labels, sizeof *v, "per-label IoU", err);  /* [n_labels] */
    if (!v) return LD_ERR_NOMEM;

    s->n_labels = (int)n_labels;
    s->n_images = n_images;
    s->n_dets = n_dets;
    s->n_images_with_labels = 0;
    double top1_sum = 0;
    long k = 0;
    for (int i = 0; i < n_images; i++) {
        const ld_eval_image *im = &imgs[i];
        for (int g = 0; g < im->n_gt; g++) {
            double b = 0;
            for (int d = 0; d < im->n_det; d++) b = fmax(b, det_gt_iou(&im->det[d], &im->gt[g]));
            v[k++] = b;
        }
        if (im->n_gt == 0) continue;
        s->n_images_with_labels++;
        int top = -1;
        for (int d = 0; d < im->n_det; d++)
            if (top < 0 || im->det[d].score > im->det[top].score) top = d;
        if (top < 0) continue;   /* no detection: contributes 0 */
        double b = 0;
        for (int g = 0; g < im->n_gt; g++) b = fmax(b, det_gt_iou(&im->det[top], &im->gt[g]));
        top1_sum += b;
    }
    if (best)
        for (long i = 0; i < n_labels; i++) best[i] = v[i];

    double sum = 0, sum_found = 0;
    int found = 0;
    for (long i = 0; i < n_labels; i++) {
        sum += v[i];
        if (v[i] > 0) {
            found++;
            sum_found += v[i];
        }
    }
    qsort(v, (size_t)n_labels, sizeof *v, cmp_double);
    int n = (int)n_labels;
    s->n_found = found;
    s->mean = ratio(sum, n);
    s->median = ld_quantile_sorted(v, n, 0.5);
    s->q1 = ld_quantile_sorted(v, n, 0.25);
    s->q3 = ld_quantile_sorted(v, n, 0.75);
    s->min = n ? v[0] : NAN;
    s->max = n ? v[n - 1] : NAN;
    s->found_fraction = ratio(found, n);
    s->mean_found = ratio(sum_found, found);
    s->dets_per_image = ratio((double)n_dets, n_images);
    s->top1_iou = ratio(top1_sum, s->n_images_with_labels);
    ld_free(v);
    return LD_OK;
}
