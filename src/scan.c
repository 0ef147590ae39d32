/* scan.c — the network run fully-convolutionally over a whole grey image (detect.h §1).
 *
 * Why it is exact. Every block is a 3x3 valid conv followed by a 2x2 stride-2
 * floor pool. Take a window whose top-left corner is (P t_y, P t_x) with
 * P = 2^n_blocks. Its conv-1 output at (a, b) is the image's conv-1 output at
 * (P t_y + a, P t_x + b); since P t is even, its pool cell (p, q) covers the same
 * four conv values as the image's pool cell (P t_y / 2 + p, P t_x / 2 + q). By
 * induction the window's last feature map is the image's last map shifted by
 * (t_y, t_x), and the dense layer over it is an F_last x s_out x s_out
 * convolution of the image's map evaluated at (t_y, t_x). Windows at other
 * offsets come from passes over the image shifted by (dy, dx), multiples of the
 * stride below P: the passes compute disjoint sets of windows.
 *
 * Each pass reads only the rows and columns its windows cover, E = P q (n - 1) + S
 * per axis for n windows q P apart, and the floor in each pool then yields a last
 * map of exactly s_out + q (n - 1): no window beyond the image is ever formed.
 *
 * Inference BN is folded into the conv: with k = gamma / sqrt(var + eps),
 * BN(conv(x) + b) = conv_{k w}(x) + (b - mean) k + beta. The network's input has
 * C equal channels (grey / 255), so conv 1 sums its kernel over them and reads the
 * grey plane once. ReLU and max commute, so each block computes two conv rows,
 * then pools them and applies ReLU to the maximum: the full-resolution conv map
 * is never stored. The blocks run as a pipeline of rows (ld_fast_scan_pass in
 * kernels_scan.c): no block's whole map is stored either, only a few rows of each,
 * and the dense layer runs on each window row as soon as its map rows exist,
 * summing each channel in float and the channels in double. The arithmetic is the
 * fast kernels' for this CPU (kernels.h: SIMD along the rows).
 * Results match ld_model_predict on cropped windows to ~1e-7 (tests/test_scan.c). */
#include <math.h>
#include <string.h>
#include "alloc.h"
#include "kernels.h"
#include "lymphdet/detect.h"

ld_status ld_scanner_init(ld_scanner *sc, const ld_model *m, ld_error *err)
{
    memset(sc, 0, sizeof *sc);
    const ld_arch *a = &m->arch;
    if (a->n_blocks < 1 || a->n_blocks > LD_MAX_BLOCKS || a->in_channels < 1)
        return ld_fail(err, LD_ERR_USAGE, "scanner: the model has %d blocks and %d input channels",
                       a->n_blocks, a->in_channels);
    int s = a->input_size;
    for (int k = 0; k < a->n_blocks; k++) s = (s - 2) / 2;
    if (s < 1) return ld_fail(err, LD_ERR_USAGE, "scanner: input size %d is too small for %d blocks",
                              a->input_size, a->n_blocks);
    sc->size = a->input_size;
    sc->period = 1 << a->n_blocks;
    sc->n_blocks = a->n_blocks;
    sc->in_channels = a->in_channels;
    sc->s_out = s;
    memcpy(sc->filters, a->filters, sizeof sc->filters);

    size_t n = 0;
    for (int k = 0; k < a->n_blocks; k++) {
        int cin = k ? a->filters[k - 1] : 1;
        n += (size_t)a->filters[k] * cin * 9 + a->filters[k];
    }
    size_t n_dense = (size_t)a->filters[a->n_blocks - 1] * s * s;
    int heads = 1 + (a->box_head ? 4 : 0);   /* objectness, and the box offsets */
    sc->weights = ld_alloc(n + n_dense * heads, sizeof(float), "scanner weights", err);
    if (!sc->weights) return err->status;

    float *w = sc->weights;
    for (int k = 0; k < a->n_blocks; k++) {
        const ld_block_params *p = &m->p[k];
        int f = a->filters[k], cin = k ? a->filters[k - 1] : a->in_channels;
        int cout_in = k ? cin : 1;
        float *cw = w, *cb = w + (size_t)f * cout_in * 9;
        for (int o = 0; o < f; o++) {
            double scale = p->bn_gamma[o] / sqrt((double)p->bn_var[o] + a->bn_eps);
            for (int t = 0; t < 9; t++) {
                if (k == 0) {
                    double sum = 0;
                    for (int c = 0; c < cin; c++) sum += p->conv_w[((size_t)o * cin + c) * 9 + t];
                    cw[(size_t)o * 9 + t] = (float)(sum * scale);
                } else {
                    for (int c = 0; c < cin; c++) {
                        size_t i = ((size_t)o * cin + c) * 9 + t;
                        cw[i] = (float)(p->conv_w[i] * scale);
                    }
                }
            }
            cb[o] = (float)(((double)p->conv_b[o] - p->bn_mean[o]) * scale + p->bn_beta[o]);
        }
        sc->conv_w[k] = cw;
        sc->conv_b[k] = cb;
        w = cb + f;
    }
    memcpy(w, m->dense_w, n_dense * sizeof(float));
    sc->dense_w = w;
    sc->dense_b = m->dense_b[0];
    if (a->box_head) {
        memcpy(w + n_dense, m->box_w, 4 * n_dense * sizeof(float));
        sc->box_head = 4;
        sc->anchor = a->anchor ? a->anchor : a->input_size;
        sc->box_w = w + n_dense;
        memcpy(sc->box_b, m->box_b, sizeof sc->box_b);
    }
    return LD_OK;
}

void ld_scanner_free(ld_scanner *sc)
{
    ld_free(sc->weights);
    ld_free(sc->scratch);
    memset(sc, 0, sizeof *sc);
}

/* A stride works when it divides P (P / stride shifted passes per axis) or is a
 * multiple of P (one pass, the dense layer read every stride / P map points). */
static int stride_ok(const ld_scanner *sc, int stride)
{
    return stride > 0 && (sc->period % stride == 0 || stride % sc->period == 0);
}

ld_status ld_scan_grid(int *nx, int *ny, const ld_scanner *sc, int w, int h, int stride,
                       ld_error *err)
{
    *nx = *ny = 0;
    if (!stride_ok(sc, stride))
        return ld_fail(err, LD_ERR_USAGE, "stride %d must divide %d or be a multiple of it",
                       stride, sc->period);
    if (w < sc->size || h < sc->size)
        return ld_fail(err, LD_ERR_INPUT, "image is %dx%d, smaller than the %d px window",
                       w, h, sc->size);
    *nx = (w - sc->size) / stride + 1;
    *ny = (h - sc->size) / stride + 1;
    return LD_OK;
}

/* Scratch layout for a pass whose input is eh x ew: the dense sums (double [nx])
 * first, for alignment, then the dense layer's per-channel sums and the blocks'
 * row pipeline (ld_fast_scan_scratch). */
typedef struct {
    size_t acc, part, pipe, total;   /* offsets in floats; total size */
} scratch_plan;

static scratch_plan plan_scratch(const ld_scanner *sc, int eh, int ew, int n_x)
{
    scratch_plan pl;
    pl.acc = 0;
    pl.part = 2 * (size_t)n_x;
    /* the windows' map columns span (ew - S) / P + 1 */
    pl.pipe = pl.part + (size_t)sc->filters[sc->n_blocks - 1] * ((ew - sc->size) / sc->period + 1);
    pl.total = pl.pipe + ld_fast_scan_scratch(sc->filters, sc->n_blocks, sc->s_out, eh, ew);
    return pl;
}

static float sigmoid(double z)
{
    return (float)(z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z)));
}

/* Where a pass's window rows go (scan_pass, emit_row). */
typedef struct {
    const ld_scanner *sc;
    const ld_kernels *K;
    float *probs, *deltas;
    int nx, i0, j0, step, n_x, q;
    double *acc;        /* [n_x] */
    float *part;        /* [F_last, (n_x - 1) q + 1] */
} pass_out;

/* The dense layer as a convolution over the last map, for window row ty
 * (ld_fast_scan_dense: each channel in float, the channels summed in double). */
static void emit_row(void *ctx, int ty, const float *map, size_t ps, size_t rs)
{
    const pass_out *o = ctx;
    const ld_scanner *sc = o->sc;
    int s = sc->s_out, f_last = sc->filters[sc->n_blocks - 1];
    ld_fast_scan_dense(o->K, o->acc, o->part, map, ps, rs, sc->dense_w, sc->dense_b, f_last, s,
                       o->n_x, o->q);
    float *dst = o->probs + (size_t)(o->i0 + ty * o->step) * o->nx + o->j0;
    for (int tx = 0; tx < o->n_x; tx++) dst[(size_t)tx * o->step] = sigmoid(o->acc[tx]);
    /* the box head: four more kernels over the same map, summed the same way */
    for (int h = 0; o->deltas && h < sc->box_head; h++) {
        const float *kw = sc->box_w + (size_t)h * f_last * s * s;
        ld_fast_scan_dense(o->K, o->acc, o->part, map, ps, rs, kw, sc->box_b[h], f_last, s,
                           o->n_x, o->q);
        float *dd = o->deltas + ((size_t)(o->i0 + ty * o->step) * o->nx + o->j0) * 4 + h;
        for (int tx = 0; tx < o->n_x; tx++) dd[(size_t)tx * o->step * 4] = (float)o->acc[tx];
    }
}

/* One pass over the n_y x n_x windows whose corners are (P q t_y, P q t_x) in
 * img; window (t_y, t_x) is written to probs[(i0 + t_y step) * nx + j0 + t_x step]. */
static void scan_pass(ld_scanner *sc, float *probs, float *deltas, int nx, int i0, int j0,
                      int step, const float *img, size_t row_stride, int n_y, int n_x, int q)
{
    int eh = sc->period * q * (n_y - 1) + sc->size, ew = sc->period * q * (n_x - 1) + sc->size;
    scratch_plan pl = plan_scratch(sc, eh, ew, n_x);
    pass_out o = {sc, ld_kernels_best(), probs, deltas, nx, i0, j0, step, n_x, q,
                  (double *)(void *)(sc->scratch + pl.acc), sc->scratch + pl.part};
    ld_fast_scan_pass(o.K, sc->scratch + pl.pipe, sc->conv_w, sc->conv_b, sc->filters,
                      sc->n_blocks, sc->s_out, img, row_stride, eh, ew, n_y, q, emit_row, &o);
}

ld_status ld_scanner_run(ld_scanner *sc, float *probs, const float *img, int w, int h,
                         size_t row_stride, int stride, ld_error *err)
{
    return ld_scanner_run_boxes(sc, probs, NULL, img, w, h, row_stride, stride, err);
}

ld_status ld_scanner_run_boxes(ld_scanner *sc, float *probs, float *deltas, const float *img,
                               int w, int h, size_t row_stride, int stride, ld_error *err)
{
    int nx, ny;
    if (ld_scan_grid(&nx, &ny, sc, w, h, stride, err)) return err->status;
    int P = sc->period, S = sc->size;
    int q = stride >= P ? stride / P : 1;          /* last-map step between windows */
    int n_off = stride >= P ? 1 : P / stride;      /* shifted passes per axis */
    int step = stride >= P ? 1 : P / stride;       /* output index step within a pass */

    /* the pass at offset (0, 0) has the most windows and the largest input */
    int n_y0 = (h - S) / (P * q) + 1, n_x0 = (w - S) / (P * q) + 1;
    scratch_plan pl = plan_scratch(sc, P * q * (n_y0 - 1) + S, P * q * (n_x0 - 1) + S, n_x0);
    if (pl.total > sc->scratch_cap) {
        float *p = ld_alloc(pl.total, sizeof(float), "scanner scratch", err);
        if (!p) return err->status;
        ld_free(sc->scratch);
        sc->scratch = p;
        sc->scratch_cap = pl.total;
    }
    for (int oy = 0; oy < n_off; oy++) {
        int dy = oy * stride;
        if (dy > h - S) break;
        for (int ox = 0; ox < n_off; ox++) {
            int dx = ox * stride;
            if (dx > w - S) break;
            int n_y = (h - S - dy) / (P * q) + 1, n_x = (w - S - dx) / (P * q) + 1;
            scan_pass(sc, probs, deltas, nx, oy, ox, step, img + (size_t)dy * row_stride + dx,
                      row_stride, n_y, n_x, q);
        }
    }
    return LD_OK;
}
