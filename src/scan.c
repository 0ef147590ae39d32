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
 * is never stored. The dense layer accumulates in double, as the model does.
 * Results match ld_model_predict on cropped windows to ~1e-7 (tests/test_scan.c). */
#include <math.h>
#include <string.h>
#include "alloc.h"
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
    sc->weights = ld_alloc(n + n_dense, sizeof(float), "scanner weights", err);
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
 * first, for alignment, then two ping-pong pooled maps and the conv rows. */
typedef struct {
    size_t acc, map, rows, total;   /* offsets in floats; total size */
} scratch_plan;

static scratch_plan plan_scratch(const ld_scanner *sc, int eh, int ew, int n_x)
{
    scratch_plan pl;
    size_t map = 0, rows = 0;
    int h = eh, w = ew;
    for (int k = 0; k < sc->n_blocks; k++) {
        int h2 = (h - 2) / 2, w2 = (w - 2) / 2;
        size_t pooled = (size_t)sc->filters[k] * h2 * w2;
        size_t r = (size_t)2 * 2 * w2;
        if (pooled > map) map = pooled;
        if (r > rows) rows = r;
        h = h2;
        w = w2;
    }
    pl.acc = 0;
    pl.map = 2 * (size_t)n_x;
    pl.rows = pl.map + 2 * map;
    pl.total = pl.rows + rows;
    return pl;
}

/* Conv rows 2r and 2r+1 of one output channel at columns x0..x0+n-1 (n <= CHUNK),
 * summed in registers over every input channel and kernel row: input rows
 * 2r..2r+3 feed conv row 2r (kernel rows 0-2) and 2r+1 (rows 1-3).
 * r0, r1 [cw] conv rows; inp as in conv_relu_pool, from row 2r; wt [c, 3, 3].
 * Called with n = CHUNK, a constant once inlined, the loops over t become SIMD. */
#define CHUNK 8
static inline void conv_rows(float *restrict r0, float *restrict r1, const float *restrict inp,
                             size_t rs, size_t ps, const float *restrict wt, float b, int c,
                             int x0, int n)
{
    float a0[CHUNK], a1[CHUNK];
    for (int t = 0; t < n; t++) a0[t] = a1[t] = b;
    for (int ci = 0; ci < c; ci++) {
        const float *plane = inp + (size_t)ci * ps + x0;
        const float *k = wt + (size_t)ci * 9;
        for (int a = 0; a < 3; a++) {
            const float *s0 = plane + (size_t)a * rs, *s1 = s0 + rs;
            float k0 = k[a * 3], k1 = k[a * 3 + 1], k2 = k[a * 3 + 2];
#pragma GCC unroll 8
            for (int t = 0; t < n; t++) {
                a0[t] += k0 * s0[t] + k1 * s0[t + 1] + k2 * s0[t + 2];
                a1[t] += k0 * s1[t] + k1 * s1[t + 1] + k2 * s1[t + 2];
            }
        }
    }
    for (int t = 0; t < n; t++) {
        r0[x0 + t] = a0[t];
        r1[x0 + t] = a1[t];
    }
}

/* One block: out = maxpool2(relu(conv3x3(inp))) with folded BN.
 * out [f, (h-2)/2, (w-2)/2] contiguous; inp [c, h, w] with rows rs and planes ps
 * floats apart; wt [f, c, 3, 3], bias [f]; rows [2, 2 * ((w-2)/2)] scratch.
 * Only the conv rows and columns a pool cell reads are computed. */
static void conv_relu_pool(float *restrict out, float *restrict rows, const float *restrict inp,
                           size_t rs, size_t ps, const float *restrict wt,
                           const float *restrict bias, int c, int f, int h, int w)
{
    int h2 = (h - 2) / 2, w2 = (w - 2) / 2, cw = 2 * w2;
    for (int r = 0; r < h2; r++) {
        for (int o = 0; o < f; o++) {
            float *r0 = rows, *r1 = rows + cw, b = bias[o];
            int x0 = 0;
            const float *in2r = inp + (size_t)(2 * r) * rs, *wo = wt + (size_t)o * c * 9;
            for (; x0 + CHUNK <= cw; x0 += CHUNK) conv_rows(r0, r1, in2r, rs, ps, wo, b, c, x0, CHUNK);
            if (x0 < cw) conv_rows(r0, r1, in2r, rs, ps, wo, b, c, x0, cw - x0);
            float *dst = out + ((size_t)o * h2 + r) * w2;
            for (int q = 0; q < w2; q++) {
                float m = r0[2 * q];
                if (r0[2 * q + 1] > m) m = r0[2 * q + 1];
                if (r1[2 * q] > m) m = r1[2 * q];
                if (r1[2 * q + 1] > m) m = r1[2 * q + 1];
                dst[q] = m > 0.0f ? m : 0.0f;
            }
        }
    }
}

/* One kernel row wd[0..s) of the dense layer for windows tx..tx+n-1 (n <= CHUNK),
 * whose map columns are q apart from src: their row sums, in float, are added to
 * acc[tx..tx+n) in double. */
static inline void dense_row(double *restrict acc, const float *restrict src,
                             const float *restrict wd, int s, int q, int tx, int n)
{
    float t[CHUNK] = {0};
    for (int v = 0; v < s; v++) {
        float wv = wd[v];
        const float *sv = src + (size_t)tx * q + v;
#pragma GCC unroll 8
        for (int k = 0; k < n; k++) t[k] += wv * sv[(size_t)k * q];
    }
    for (int k = 0; k < n; k++) acc[tx + k] += t[k];
}

static float sigmoid(double z)
{
    return (float)(z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z)));
}

/* One pass over the n_y x n_x windows whose corners are (P q t_y, P q t_x) in
 * img; window (t_y, t_x) is written to probs[(i0 + t_y step) * nx + j0 + t_x step]. */
static void scan_pass(ld_scanner *sc, float *probs, int nx, int i0, int j0, int step,
                      const float *img, size_t row_stride, int n_y, int n_x, int q)
{
    int eh = sc->period * q * (n_y - 1) + sc->size, ew = sc->period * q * (n_x - 1) + sc->size;
    scratch_plan pl = plan_scratch(sc, eh, ew, n_x);
    double *acc = (double *)(void *)(sc->scratch + pl.acc);   /* [n_x] */
    float *maps[2] = {sc->scratch + pl.map, sc->scratch + pl.map + (pl.rows - pl.map) / 2};
    float *rows = sc->scratch + pl.rows;

    const float *in = img;
    size_t rs = row_stride, ps = 0;
    int h = eh, w = ew;
    for (int k = 0; k < sc->n_blocks; k++) {
        int cin = k ? sc->filters[k - 1] : 1;
        float *out = maps[k & 1];
        conv_relu_pool(out, rows, in, rs, ps, sc->conv_w[k], sc->conv_b[k], cin, sc->filters[k], h, w);
        h = (h - 2) / 2;
        w = (w - 2) / 2;
        in = out;
        rs = (size_t)w;
        ps = (size_t)h * w;
    }
    /* the dense layer as a convolution over the last map in [F, h, w]: each
     * kernel row's s products are summed in float (SIMD across windows), the
     * F * s row sums in double, as the model's dense layer sums */
    int s = sc->s_out, f_last = sc->filters[sc->n_blocks - 1];
    for (int ty = 0; ty < n_y; ty++) {
        for (int tx = 0; tx < n_x; tx++) acc[tx] = 0.0;
        for (int f = 0; f < f_last; f++) {
            for (int u = 0; u < s; u++) {
                const float *src = in + (size_t)f * ps + (size_t)(ty * q + u) * rs;
                const float *wd = sc->dense_w + ((size_t)f * s + u) * s;
                int tx = 0;
                for (; tx + CHUNK <= n_x; tx += CHUNK) dense_row(acc, src, wd, s, q, tx, CHUNK);
                if (tx < n_x) dense_row(acc, src, wd, s, q, tx, n_x - tx);
            }
        }
        float *dst = probs + (size_t)(i0 + ty * step) * nx + j0;
        for (int tx = 0; tx < n_x; tx++) dst[(size_t)tx * step] = sigmoid(sc->dense_b + acc[tx]);
    }
}

ld_status ld_scanner_run(ld_scanner *sc, float *probs, const float *img, int w, int h,
                         size_t row_stride, int stride, ld_error *err)
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
            scan_pass(sc, probs, nx, oy, ox, step, img + (size_t)dy * row_stride + dx, row_stride,
                      n_y, n_x, q);
        }
    }
    return LD_OK;
}
