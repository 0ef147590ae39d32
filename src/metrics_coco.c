/* metrics_coco.c — COCO detection metrics exactly as pycocotools' COCOeval computes
 * them for boxes, plus the operating point and the precision-recall curve.
 *
 * The code follows cocoeval.py step by step (evaluateImg, accumulate, summarize;
 * see the definitions in include/lymphdet/metrics.h and the numpy transcription in
 * tools/coco_reference.py, which generates tests/golden/coco_cases.json). Where
 * pycocotools' result depends on an order — stable sorts, ties in IoU, the image
 * concatenation order — this code uses the same order, so results agree to the
 * last bit, not only approximately. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "metrics_internal.h"

/* areaRng 'all' = [0, 1e5 ** 2]: gt outside it is ignored, unmatched dets too */
#define AREA_MAX 1e10

/* The values np.linspace(.5, 0.95, 10) produces (start + i * step, the last
 * forced to stop). Written out rather than computed so that no compiler
 * contraction (a fused multiply-add) can change one of them. */
static const double IOU_THRS[LD_COCO_N_IOU] = {
    0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.8999999999999999, 0.95};

void ld_coco_iou_thresholds(double t[LD_COCO_N_IOU])
{
    memcpy(t, IOU_THRS, sizeof IOU_THRS);
}

void ld_coco_recall_thresholds(double r[LD_COCO_N_REC])
{
    /* np.linspace(0, 1, 101): i * (1/100); the endpoint is set to 1 */
    for (int i = 0; i < LD_COCO_N_REC; i++) r[i] = (double)i * 0.01;
    r[LD_COCO_N_REC - 1] = 1.0;
}

/* Stable sort of idx[0..n) by descending key[idx[i]] (bottom-up merge sort): the
 * order numpy's argsort(-key, kind='mergesort') gives. tmp has n elements. */
static void sort_desc(long *idx, long *tmp, long n, const double *key)
{
    long *a = idx, *b = tmp;
    for (long width = 1; width < n; width *= 2) {
        for (long lo = 0; lo < n; lo += 2 * width) {
            long mid = lo + width < n ? lo + width : n;
            long hi = lo + 2 * width < n ? lo + 2 * width : n;
            long i = lo, j = mid, k = lo;
            while (i < mid && j < hi) b[k++] = key[a[j]] > key[a[i]] ? a[j++] : a[i++];
            while (i < mid) b[k++] = a[i++];
            while (j < hi) b[k++] = a[j++];
        }
        long *t = a; a = b; b = t;
    }
    if (a != idx) memcpy(idx, a, (size_t)n * sizeof *idx);
}

static int bad_number(double v) { return !isfinite(v); }

static ld_status validate(const ld_eval_image *imgs, int n_img, int n_cat, ld_error *err)
{
    for (int i = 0; i < n_img; i++) {
        const ld_eval_image *im = &imgs[i];
        if (im->n_gt < 0 || im->n_det < 0 || (im->n_gt && !im->gt) || (im->n_det && !im->det))
            return ld_fail(err, LD_ERR_USAGE, "image %lld: bad box or detection array",
                           (long long)im->id);
        for (int g = 0; g < im->n_gt; g++) {
            const ld_box *b = &im->gt[g];
            if (b->category < 0 || b->category >= n_cat)
                return ld_fail(err, LD_ERR_INPUT, "image %lld: box %d has category %d, not in [0, %d)",
                               (long long)im->id, g, b->category, n_cat);
            if (bad_number(b->x) || bad_number(b->y) || bad_number(b->w) || bad_number(b->h))
                return ld_fail(err, LD_ERR_INPUT, "image %lld: box %d is not finite",
                               (long long)im->id, g);
        }
        for (int d = 0; d < im->n_det; d++) {
            const ld_det *t = &im->det[d];
            if (t->category < 0 || t->category >= n_cat)
                return ld_fail(err, LD_ERR_INPUT,
                               "image %lld: detection %d has category %d, not in [0, %d)",
                               (long long)im->id, d, t->category, n_cat);
            if (bad_number(t->x) || bad_number(t->y) || bad_number(t->w) || bad_number(t->h) ||
                bad_number(t->score))
                return ld_fail(err, LD_ERR_INPUT, "image %lld: detection %d is not finite",
                               (long long)im->id, d);
        }
    }
    return LD_OK;
}

void ld_coco_state_free(ld_coco_state *st)
{
    ld_free(st->cells);
    ld_free(st->score);
    ld_free(st->flag);
    memset(st, 0, sizeof *st);
}

/* Scratch for one cell, sized for the largest image. */
typedef struct {
    int *gi, *gig;          /* [max_gt] gt indices (ignore-sorted), their ignore flags */
    int *gtm;               /* [max_gt] matched at the current threshold */
    long *di, *tmp;         /* [max_det] detection positions, sort scratch */
    double *key;            /* [max_det] their scores */
    double *ious;           /* [max_kept, max_gt] */
} cell_scratch;

static void scratch_free(cell_scratch *s)
{
    ld_free(s->gi);
    ld_free(s->gig);
    ld_free(s->gtm);
    ld_free(s->di);
    ld_free(s->tmp);
    ld_free(s->key);
    ld_free(s->ious);
}

/* pycocotools evaluateImg for one (category, image) cell. */
static void evaluate_cell(ld_coco_state *st, ld_coco_cell *cell, const ld_eval_image *im, int cat,
                          int max_dets, double score_min, cell_scratch *s)
{
    int n_t = st->n_t;
    /* gt of this category, non-ignored first, each group in file order
     * (np.argsort(ignore, kind='mergesort')) */
    int G = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int g = 0; g < im->n_gt; g++) {
            const ld_box *b = &im->gt[g];
            if (b->category != cat) continue;
            double area = b->w * b->h;
            int ig = area < 0 || area > AREA_MAX;
            if (ig != pass) continue;
            s->gi[G] = g;
            s->gig[G] = ig;
            G++;
        }
    /* candidates: this category's detections with score >= score_min, in list order;
     * key[] is indexed by detection index */
    long D = 0;
    for (int d = 0; d < im->n_det; d++) {
        const ld_det *t = &im->det[d];
        s->key[d] = (double)t->score;
        if (t->category != cat || !((double)t->score >= score_min)) continue;
        s->di[D++] = d;
    }
    cell->n_gt = G;
    cell->npig = 0;
    for (int g = 0; g < G; g++) cell->npig += !s->gig[g];
    cell->present = G > 0 || D > 0;
    cell->off = st->n_kept;
    cell->n_det = 0;
    if (!cell->present) return;
    sort_desc(s->di, s->tmp, D, s->key);
    if (D > max_dets) D = max_dets;
    cell->n_det = (int)D;

    for (long j = 0; j < D; j++) {
        const ld_det *t = &im->det[s->di[j]];
        st->score[cell->off + j] = (double)t->score;
        for (int g = 0; g < G; g++) {
            const ld_box *b = &im->gt[s->gi[g]];
            s->ious[j * G + g] = ld_iou_xywh(t->x, t->y, t->w, t->h, b->x, b->y, b->w, b->h);
        }
    }
    unsigned char *flag = st->flag + cell->off * n_t;
    memset(flag, 0, (size_t)(D * n_t));
    for (int ti = 0; ti < n_t; ti++) {
        for (int g = 0; g < G; g++) s->gtm[g] = 0;
        for (long j = 0; j < D; j++) {
            double best = st->thr[ti];
            int m = -1;
            for (int g = 0; g < G; g++) {
                if (s->gtm[g]) continue;                       /* taken (no crowd gt here) */
                if (m > -1 && !s->gig[m] && s->gig[g]) break;  /* only ignored gt left */
                if (s->ious[j * G + g] < best) continue;       /* '<': a tie moves to this gt */
                best = s->ious[j * G + g];
                m = g;
            }
            if (m == -1) continue;
            flag[j * n_t + ti] = (unsigned char)(LD_COCO_MATCHED | (s->gig[m] ? LD_COCO_IGNORED : 0));
            s->gtm[m] = 1;
        }
        for (long j = 0; j < D; j++) {
            const ld_det *t = &im->det[s->di[j]];
            double area = t->w * t->h;
            if (!(flag[j * n_t + ti] & LD_COCO_MATCHED) && (area < 0 || area > AREA_MAX))
                flag[j * n_t + ti] |= LD_COCO_IGNORED;
        }
    }
    st->n_kept += D;
}

ld_status ld_coco_state_run(ld_coco_state *st, const ld_eval_image *imgs, int n_img, int n_cat,
                            const double *thr, int n_t, int max_dets, double score_min,
                            ld_error *err)
{
    memset(st, 0, sizeof *st);
    if (n_img < 0 || n_cat < 0 || n_t < 1 || n_t > LD_COCO_N_IOU || max_dets < 1)
        return ld_fail(err, LD_ERR_USAGE, "COCO evaluation: bad sizes");
    ld_status rc = validate(imgs, n_img, n_cat, err);
    if (rc) return rc;
    st->n_cat = n_cat;
    st->n_img = n_img;
    st->n_t = n_t;
    for (int t = 0; t < n_t; t++) st->thr[t] = fmin(thr[t], 1 - 1e-10);

    long total = 0;
    int max_gt = 0, max_det = 0;
    for (int i = 0; i < n_img; i++) {
        total += imgs[i].n_det;
        if (imgs[i].n_gt > max_gt) max_gt = imgs[i].n_gt;
        if (imgs[i].n_det > max_det) max_det = imgs[i].n_det;
    }
    st->n_det = total;
    int max_kept = max_det < max_dets ? max_det : max_dets;
    int of = 0;
    size_t n_ious = ld_mul2((size_t)max_kept, (size_t)max_gt, &of);
    size_t n_flag = ld_mul2((size_t)total, (size_t)n_t, &of);
    size_t n_cells = ld_mul2((size_t)n_cat, (size_t)n_img, &of);
    if (of) return ld_fail(err, LD_ERR_NOMEM, "COCO evaluation: sizes overflow");

    cell_scratch s = {0};
    st->cells = ld_zalloc(n_cells, sizeof *st->cells, "COCO cells", err);
    st->score = ld_alloc((size_t)total, sizeof *st->score, "COCO scores", err);
    st->flag = ld_alloc(n_flag, 1, "COCO match flags", err);
    s.gi = ld_alloc((size_t)max_gt, sizeof *s.gi, "COCO scratch", err);
    s.gig = ld_alloc((size_t)max_gt, sizeof *s.gig, "COCO scratch", err);
    s.gtm = ld_alloc((size_t)max_gt, sizeof *s.gtm, "COCO scratch", err);
    s.di = ld_alloc((size_t)max_det, sizeof *s.di, "COCO scratch", err);
    s.tmp = ld_alloc((size_t)max_det, sizeof *s.tmp, "COCO scratch", err);
    s.key = ld_alloc((size_t)max_det, sizeof *s.key, "COCO scratch", err);
    s.ious = ld_alloc(n_ious, sizeof *s.ious, "COCO IoU matrix", err);
    if (!st->cells || !st->score || !st->flag || !s.gi || !s.gig || !s.gtm || !s.di || !s.tmp ||
        !s.key || !s.ious) {
        scratch_free(&s);
        ld_coco_state_free(st);
        return LD_ERR_NOMEM;
    }
    for (int k = 0; k < n_cat; k++)
        for (int i = 0; i < n_img; i++)
            evaluate_cell(st, &st->cells[(size_t)k * (size_t)n_img + (size_t)i], &imgs[i], k,
                          max_dets, score_min, &s);
    scratch_free(&s);
    return LD_OK;
}

void ld_coco_work_free(ld_coco_work *w)
{
    ld_free(w->idx);
    ld_free(w->tmp);
    ld_free(w->rc);
    ld_free(w->pr);
    memset(w, 0, sizeof *w);
}

static ld_status work_reserve(ld_coco_work *w, long n, ld_error *err)
{
    if (n <= w->cap) return LD_OK;
    long cap = n > 2 * w->cap ? n : 2 * w->cap;
    long *idx = ld_realloc(w->idx, (size_t)cap, sizeof *idx, "COCO accumulate", err);
    if (!idx) return LD_ERR_NOMEM;
    w->idx = idx;
    long *tmp = ld_realloc(w->tmp, (size_t)cap, sizeof *tmp, "COCO accumulate", err);
    if (!tmp) return LD_ERR_NOMEM;
    w->tmp = tmp;
    double *rc = ld_realloc(w->rc, (size_t)cap, sizeof *rc, "COCO accumulate", err);
    if (!rc) return LD_ERR_NOMEM;
    w->rc = rc;
    double *pr = ld_realloc(w->pr, (size_t)cap, sizeof *pr, "COCO accumulate", err);
    if (!pr) return LD_ERR_NOMEM;
    w->pr = pr;
    w->cap = cap;
    return LD_OK;
}

/* Cumulative recall and precision of threshold t along the sorted detections. */
static void curve(double *rc, double *pr, const ld_coco_state *st, const long *idx, long nd,
                  long npig, int t)
{
    long tp = 0, fp = 0;
    for (long i = 0; i < nd; i++) {
        unsigned char f = st->flag[idx[i] * st->n_t + t];
        if (!(f & LD_COCO_IGNORED)) {
            if (f & LD_COCO_MATCHED) tp++;
            else fp++;
        }
        rc[i] = npig ? (double)tp / (double)npig : NAN;
        /* np.spacing(1) = 2^-52 keeps pycocotools' 0/0 at 0; it is also why a
         * first true positive has precision 0.9999999999999998, not 1 */
        pr[i] = (double)tp / ((double)fp + (double)tp + DBL_EPSILON);
    }
}

/* accumulate's interpolation: max from the right, then searchsorted(side='left'). */
static void interpolate(double *q, double *pr, const double *rc, long nd)
{
    double r[LD_COCO_N_REC];
    ld_coco_recall_thresholds(r);
    for (long i = nd - 1; i > 0; i--)
        if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
    long j = 0;
    for (int k = 0; k < LD_COCO_N_REC; k++) {
        while (j < nd && rc[j] < r[k]) j++;
        q[k] = j < nd ? pr[j] : 0.0;   /* pycocotools' IndexError leaves 0 */
    }
}

ld_status ld_coco_accumulate(int *valid, double *q, double *rec, long *npig_out, long *nd_out,
                             const ld_coco_state *st, int cat, const int *order, int n_order,
                             int curve_t, ld_coco_work *w, ld_error *err)
{
    int k0 = cat < 0 ? 0 : cat, k1 = cat < 0 ? st->n_cat : cat + 1;
    long nd = 0, npig = 0;
    int present = 0;
    for (int k = k0; k < k1; k++)
        for (int o = 0; o < n_order; o++) {
            const ld_coco_cell *c = &st->cells[(size_t)k * (size_t)st->n_img + (size_t)order[o]];
            if (!c->present) continue;
            present = 1;
            npig += c->npig;
            nd += c->n_det;
        }
    *valid = 0;
    if (npig_out) *npig_out = npig;
    if (nd_out) *nd_out = 0;
    ld_status rc = work_reserve(w, nd, err);
    if (rc) return rc;
    long n = 0;
    for (int k = k0; k < k1; k++)
        for (int o = 0; o < n_order; o++) {
            const ld_coco_cell *c = &st->cells[(size_t)k * (size_t)st->n_img + (size_t)order[o]];
            for (int j = 0; j < c->n_det; j++) w->idx[n++] = c->off + j;
        }
    sort_desc(w->idx, w->tmp, nd, st->score);
    if (nd_out) *nd_out = nd;
    if (present && npig > 0) {   /* else pycocotools skips: len(E) == 0 or npig == 0 */
        *valid = 1;
        for (int t = 0; t < st->n_t; t++) {
            curve(w->rc, w->pr, st, w->idx, nd, npig, t);
            rec[t] = nd ? w->rc[nd - 1] : 0.0;
            interpolate(q + (size_t)t * LD_COCO_N_REC, w->pr, w->rc, nd);
        }
    }
    /* the raw curve for plotting (interpolate overwrote pr) */
    if (curve_t >= 0) curve(w->rc, w->pr, st, w->idx, nd, npig, curve_t);
    return LD_OK;
}

static void nan_summary(ld_coco_summary *s)
{
    s->ap = s->ap50 = s->ap75 = s->ar100 = NAN;
    for (int t = 0; t < LD_COCO_N_IOU; t++) s->ap_at[t] = s->ar_at[t] = NAN;
    s->n_valid = 0;
}

ld_status ld_coco_summarize(ld_coco_summary *s, ld_coco_summary *per_cat,
                            const ld_coco_state *st, const int *order, int n_order,
                            ld_coco_work *w, ld_error *err)
{
    int T = st->n_t;
    double q[LD_COCO_N_IOU * LD_COCO_N_REC], rec[LD_COCO_N_IOU];
    double sum_t[LD_COCO_N_IOU] = {0}, sum_r[LD_COCO_N_IOU] = {0};
    nan_summary(s);
    int n_valid = 0;
    for (int k = 0; k < st->n_cat; k++) {
        int valid;
        ld_status rc = ld_coco_accumulate(&valid, q, rec, NULL, NULL, st, k, order, n_order, -1,
                                          w, err);
        if (rc) return rc;
        if (per_cat) nan_summary(&per_cat[k]);
        if (!valid) continue;
        n_valid++;
        double cat_sum = 0, cat_rsum = 0;
        for (int t = 0; t < T; t++) {
            double st_sum = 0;
            for (int r = 0; r < LD_COCO_N_REC; r++) st_sum += q[t * LD_COCO_N_REC + r];
            sum_t[t] += st_sum;
            sum_r[t] += rec[t];
            cat_sum += st_sum;
            cat_rsum += rec[t];
            if (per_cat) {
                per_cat[k].ap_at[t] = st_sum / LD_COCO_N_REC;
                per_cat[k].ar_at[t] = rec[t];
            }
        }
        if (per_cat) {
            per_cat[k].n_valid = 1;
            per_cat[k].ap = cat_sum / ((double)T * LD_COCO_N_REC);
            per_cat[k].ar100 = cat_rsum / T;
            per_cat[k].ap50 = per_cat[k].ap_at[0];
            per_cat[k].ap75 = T > 5 ? per_cat[k].ap_at[5] : NAN;
        }
    }
    if (n_valid == 0) return LD_OK;
    s->n_valid = n_valid;
    double all = 0, all_r = 0;
    for (int t = 0; t < T; t++) {
        all += sum_t[t];
        all_r += sum_r[t];
        s->ap_at[t] = sum_t[t] / ((double)n_valid * LD_COCO_N_REC);
        s->ar_at[t] = sum_r[t] / n_valid;
    }
    s->ap = all / ((double)T * n_valid * LD_COCO_N_REC);
    s->ar100 = all_r / ((double)T * n_valid);
    s->ap50 = s->ap_at[0];
    s->ap75 = T > 5 ? s->ap_at[5] : NAN;
    return LD_OK;
}

typedef struct {
    int64_t id;
    int pos;
} id_pos;

static int cmp_id_pos(const void *a, const void *b)
{
    const id_pos *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

ld_status ld_coco_id_order(int **order, const ld_eval_image *imgs, int n_img, ld_error *err)
{
    *order = NULL;
    id_pos *v = ld_alloc((size_t)n_img, sizeof *v, "image order", err);
    int *o = ld_alloc((size_t)n_img, sizeof *o, "image order", err);
    if (!v || !o) {
        ld_free(v);
        ld_free(o);
        return LD_ERR_NOMEM;
    }
    for (int i = 0; i < n_img; i++) {
        v[i].id = imgs[i].id;
        v[i].pos = i;
    }
    qsort(v, (size_t)n_img, sizeof *v, cmp_id_pos);
    for (int i = 0; i < n_img; i++) o[i] = v[i].pos;
    ld_free(v);
    *order = o;
    return LD_OK;
}

static void copy_summary(ld_coco_metrics *m, const ld_coco_summary *s)
{
    m->ap = s->ap;
    m->ap50 = s->ap50;
    m->ap75 = s->ap75;
    m->ar100 = s->ar100;
    memcpy(m->ap_at, s->ap_at, sizeof m->ap_at);
    memcpy(m->ar_at, s->ar_at, sizeof m->ar_at);
    m->n_categories = s->n_valid;
}

ld_status ld_coco_eval(ld_coco_metrics *out, ld_coco_metrics *per_category,
                       const ld_eval_image *imgs, int n_images, int n_categories,
                       ld_error *err)
{
    ld_coco_state st;
    ld_coco_work w = {0};
    int *order = NULL;
    ld_coco_summary s, *pc = NULL;
    memset(out, 0, sizeof *out);
    ld_status rc = ld_coco_state_run(&st, imgs, n_images, n_categories, IOU_THRS, LD_COCO_N_IOU,
                                     LD_COCO_MAX_DETS, -INFINITY, err);
    if (rc) return rc;
    rc = ld_coco_id_order(&order, imgs, n_images, err);
    if (!rc && per_category) {
        pc = ld_alloc((size_t)n_categories, sizeof *pc, "per-category metrics", err);
        if (!pc) rc = LD_ERR_NOMEM;
    }
    if (!rc) rc = ld_coco_summarize(&s, pc, &st, order, n_images, &w, err);
    if (!rc) {
        copy_summary(out, &s);
        out->n_det = st.n_det;
        out->n_det_eval = st.n_kept;
        for (int k = 0; k < n_categories; k++) {
            long npig = 0, kept = 0, given = 0;
            for (int i = 0; i < n_images; i++) {
                const ld_coco_cell *c = &st.cells[(size_t)k * (size_t)n_images + (size_t)i];
                npig += c->npig;
                kept += c->n_det;
            }
            for (int i = 0; i < n_images; i++)
                for (int d = 0; d < imgs[i].n_det; d++) given += imgs[i].det[d].category == k;
            out->n_gt += npig;
            if (per_category) {
                memset(&per_category[k], 0, sizeof per_category[k]);
                copy_summary(&per_category[k], &pc[k]);
                per_category[k].n_gt = npig;
                per_category[k].n_det = given;
                per_category[k].n_det_eval = kept;
            }
        }
    }
    ld_free(pc);
    ld_free(order);
    ld_coco_work_free(&w);
    ld_coco_state_free(&st);
    return rc;
}

static double ratio(double num, double den) { return den > 0 ? num / den : NAN; }

ld_status ld_det_operating_point(ld_det_point *out, const ld_eval_image *imgs, int n_images,
                                 int n_categories, double score_threshold, double iou_threshold,
                                 ld_error *err)
{
    memset(out, 0, sizeof *out);
    if (!(iou_threshold > 0 && iou_threshold <= 1))
        return ld_fail(err, LD_ERR_USAGE, "operating point: IoU threshold %g is not in (0, 1]",
                       iou_threshold);
    if (isnan(score_threshold))
        return ld_fail(err, LD_ERR_USAGE, "operating point: the score threshold is NaN");
    ld_coco_state st;
    ld_status rc = ld_coco_state_run(&st, imgs, n_images, n_categories, &iou_threshold, 1,
                                     INT_MAX, score_threshold, err);
    if (rc) return rc;
    long tp = 0, fp = 0, npig = 0;
    for (long j = 0; j < st.n_kept; j++) {
        unsigned char f = st.flag[j];
        if (f & LD_COCO_IGNORED) continue;
        if (f & LD_COCO_MATCHED) tp++;
        else fp++;
    }
    for (size_t c = 0; c < (size_t)n_categories * (size_t)n_images; c++) npig += st.cells[c].npig;
    ld_coco_state_free(&st);
    out->score_threshold = score_threshold;
    out->iou_threshold = iou_threshold;
    out->tp = tp;
    out->fp = fp;
    out->n_gt = npig;
    out->fn = npig - tp;
    out->precision = ratio((double)tp, (double)(tp + fp));
    out->recall = ratio((double)tp, (double)npig);
    out->f1 = ratio(2.0 * (double)tp, (double)(2 * tp + fp + out->fn));
    return LD_OK;
}

void ld_pr_curve_free(ld_pr_curve *c)
{
    ld_free(c->score);
    ld_free(c->precision);
    ld_free(c->recall);
    memset(c, 0, sizeof *c);
}

ld_status ld_pr_curve_compute(ld_pr_curve *c, const ld_eval_image *imgs, int n_images,
                              int n_categories, int category, double iou_threshold,
                              ld_error *err)
{
    memset(c, 0, sizeof *c);
    if (category < -1 || category >= n_categories)
        return ld_fail(err, LD_ERR_USAGE, "PR curve: category %d not in [-1, %d)", category,
                       n_categories);
    if (!(iou_threshold > 0 && iou_threshold <= 1))
        return ld_fail(err, LD_ERR_USAGE, "PR curve: IoU threshold %g is not in (0, 1]",
                       iou_threshold);
    ld_coco_state st;
    ld_coco_work w = {0};
    int *order = NULL;
    ld_status rc = ld_coco_state_run(&st, imgs, n_images, n_categories, &iou_threshold, 1,
                                     LD_COCO_MAX_DETS, -INFINITY, err);
    if (rc) return rc;
    rc = ld_coco_id_order(&order, imgs, n_images, err);
    int valid = 0;
    long npig = 0, nd = 0;
    double rec;
    if (!rc)
        rc = ld_coco_accumulate(&valid, c->interp, &rec, &npig, &nd, &st, category, order,
                                n_images, 0, &w, err);
    if (!rc) {
        c->score = ld_alloc((size_t)nd, sizeof *c->score, "PR curve", err);
        c->precision = ld_alloc((size_t)nd, sizeof *c->precision, "PR curve", err);
        c->recall = ld_alloc((size_t)nd, sizeof *c->recall, "PR curve", err);
        if (!c->score || !c->precision || !c->recall) rc = LD_ERR_NOMEM;
    }
    if (!rc) {
        c->n = (int)nd;
        for (long i = 0; i < nd; i++) {
            c->score[i] = st.score[w.idx[i]];
            c->precision[i] = w.pr[i];
            c->recall[i] = w.rc[i];
        }
        c->iou_threshold = iou_threshold;
        c->n_gt = npig;
        if (valid) {
            double sum = 0;
            for (int r = 0; r < LD_COCO_N_REC; r++) sum += c->interp[r];
            c->ap = sum / LD_COCO_N_REC;
        } else {
            for (int r = 0; r < LD_COCO_N_REC; r++) c->interp[r] = NAN;
            c->ap = NAN;
        }
    }
    ld_free(order);
    ld_coco_work_free(&w);
    ld_coco_state_free(&st);
    if (rc) ld_pr_curve_free(c);
    return rc;
}
