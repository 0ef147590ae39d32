/* merge.c — from positive windows to boxes: none, greedy NMS, clustering (detect.h §2).
 *
 * Every ordering is total (score, then input position), so results never depend
 * on the sort algorithm; the sort is a stable bottom-up merge sort on indices in
 * the merger's scratch, because qsort may allocate behind our back and the
 * detector promises no allocation once warm.
 *
 * IoU is continuous, as pycocotools' bbIou computes it: intersection of
 * [x, x + w) x [y, y + h) over the sum of areas minus the intersection, no +1.
 *
 * Clustering links boxes with IoU > iou through a sweep over boxes sorted by
 * their left edge: a box can only overlap earlier boxes whose left edge is
 * within the widest box's width, so the work is proportional to the number of
 * overlapping pairs, not n^2. Union-find keeps the smallest index as the root,
 * so a group's root is its first member in input order. */
#include <string.h>
#include "alloc.h"
#include "lymphdet/detect.h"

static const char *const merge_names[] = {"none", "nms", "cluster"};

int ld_merge_parse(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, merge_names[i]) == 0) return i;
    return -1;
}

const char *ld_merge_name(ld_merge_mode mode)
{
    return (unsigned)mode < 3 ? merge_names[mode] : "?";
}

double ld_det_iou(const ld_det *a, const ld_det *b)
{
    double ix = (a->x + a->w < b->x + b->w ? a->x + a->w : b->x + b->w) - (a->x > b->x ? a->x : b->x);
    double iy = (a->y + a->h < b->y + b->h ? a->y + a->h : b->y + b->h) - (a->y > b->y ? a->y : b->y);
    if (ix <= 0 || iy <= 0) return 0.0;
    double inter = ix * iy, uni = a->w * a->h + b->w * b->h - inter;
    return uni > 0 ? inter / uni : 0.0;
}

ld_status ld_dets_reserve(ld_dets *dets, int n, ld_error *err)
{
    if (n <= dets->cap) return LD_OK;
    ld_det *d = ld_realloc(dets->d, (size_t)n, sizeof *d, "detections", err);
    if (!d) return err->status;
    dets->d = d;
    dets->cap = n;
    return LD_OK;
}

void ld_merger_free(ld_merger *mg)
{
    ld_free(mg->idx);
    ld_free(mg->acc);
    memset(mg, 0, sizeof *mg);
}

/* Scratch per box: 4 ints (order, sort buffer, union-find parent, the group's best
 * member) and ACC doubles of group sums (see cluster). */
#define ACC 10
ld_status ld_merger_reserve(ld_merger *mg, int n, ld_error *err)
{
    if (n < 0) return ld_fail(err, LD_ERR_USAGE, "merge: %d boxes", n);
    if ((size_t)n <= mg->cap) return LD_OK;
    int *idx = ld_alloc(n, 4 * sizeof(int), "merge indices", err);
    double *acc = idx ? ld_alloc(n, ACC * sizeof(double), "merge sums", err) : NULL;
    if (!acc) {
        ld_free(idx);
        return err->status;
    }
    ld_free(mg->idx);
    ld_free(mg->acc);
    mg->idx = idx;
    mg->acc = acc;
    mg->cap = (size_t)n;
    return LD_OK;
}

typedef enum { BY_SCORE, BY_LEFT } sort_key;

/* 1 when index a sorts before b: descending score or ascending left edge, ties by
 * index. With `rep` non-NULL an index stands for a group and its score is that
 * of its representative box rep[index]. */
static int before(const ld_det *d, const int *rep, sort_key key, int a, int b)
{
    if (key == BY_SCORE) {
        float sa = d[rep ? rep[a] : a].score, sb = d[rep ? rep[b] : b].score;
        if (sa != sb) return sa > sb;
    } else if (d[a].x != d[b].x) {
        return d[a].x < d[b].x;
    }
    return a < b;
}

/* Stable bottom-up merge sort of idx[0..n) using tmp[0..n). */
static void sort_idx(int *idx, int *tmp, int n, const ld_det *d, const int *rep, sort_key key)
{
    int *src = idx, *dst = tmp;
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            int mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi) dst[k++] = before(d, rep, key, src[j], src[i]) ? src[j++] : src[i++];
            while (i < mid) dst[k++] = src[i++];
            while (j < hi) dst[k++] = src[j++];
        }
        int *t = src;
        src = dst;
        dst = t;
    }
    if (src != idx) memcpy(idx, src, (size_t)n * sizeof *idx);
}

static int find_root(int *parent, int i)
{
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

static void cluster(ld_merger *mg, ld_dets *out, const ld_det *in, int n, double iou)
{
    int *order = mg->idx, *tmp = order + n, *parent = tmp + n, *best = parent + n;
    double *acc = mg->acc;

    double wmax = 0;
    for (int i = 0; i < n; i++) {
        order[i] = parent[i] = i;
        if (in[i].w > wmax) wmax = in[i].w;
    }
    sort_idx(order, tmp, n, in, NULL, BY_LEFT);
    for (int p = 0; p < n; p++) {
        int i = order[p];
        for (int r = p - 1; r >= 0 && in[order[r]].x + wmax > in[i].x; r--) {
            int j = order[r], ri = find_root(parent, i), rj = find_root(parent, j);
            if (ri != rj && ld_det_iou(&in[i], &in[j]) > iou) {
                if (ri < rj) parent[rj] = ri;
                else parent[ri] = rj;
            }
        }
    }

    /* per root: score-weighted corners, total score, plain corners, member count */
    memset(acc, 0, (size_t)n * ACC * sizeof *acc);
    for (int i = 0; i < n; i++) {
        int r = find_root(parent, i);
        double s = in[i].score, *a = acc + (size_t)r * ACC;
        double c[4] = {in[i].x, in[i].y, in[i].x + in[i].w, in[i].y + in[i].h};
        for (int k = 0; k < 4; k++) {
            a[k] += s * c[k];
            a[5 + k] += c[k];
        }
        a[4] += s;
        a[9] += 1;
        if (r == i || in[i].score > in[best[r]].score) best[r] = i;
    }

    int n_groups = 0;
    for (int i = 0; i < n; i++)
        if (parent[i] == i) order[n_groups++] = i;
    sort_idx(order, tmp, n_groups, in, best, BY_SCORE);
    for (int g = 0; g < n_groups; g++) {
        int r = order[g];
        const double *a = acc + (size_t)r * ACC;
        double c[4];
        /* all-zero scores cannot weight anything: fall back to the plain mean */
        for (int k = 0; k < 4; k++) c[k] = a[4] > 0 ? a[k] / a[4] : a[5 + k] / a[9];
        ld_det d = {c[0], c[1], c[2] - c[0], c[3] - c[1], in[best[r]].score, in[best[r]].category};
        out->d[out->n++] = d;
    }
}

ld_status ld_merge(ld_merger *mg, ld_dets *out, const ld_det *in, int n, ld_merge_mode mode,
                   double iou, ld_error *err)
{
    out->n = 0;
    if (n < 0 || (unsigned)mode > LD_MERGE_CLUSTER)
        return ld_fail(err, LD_ERR_USAGE, "merge: bad arguments (n %d, mode %d)", n, (int)mode);
    if (n == 0) return LD_OK;
    if (ld_merger_reserve(mg, n, err) || ld_dets_reserve(out, n, err)) return err->status;
    if (mode == LD_MERGE_CLUSTER) {
        cluster(mg, out, in, n, iou);
        return LD_OK;
    }
    int *order = mg->idx, *tmp = order + n;
    for (int i = 0; i < n; i++) order[i] = i;
    sort_idx(order, tmp, n, in, NULL, BY_SCORE);
    for (int k = 0; k < n; k++) {
        const ld_det *d = &in[order[k]];
        int keep = 1;
        for (int j = 0; mode == LD_MERGE_NMS && keep && j < out->n; j++)
            keep = ld_det_iou(d, &out->d[j]) <= iou;
        if (keep) out->d[out->n++] = *d;
    }
    return LD_OK;
}
