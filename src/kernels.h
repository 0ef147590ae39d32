/* kernels.h — fast kernels for the paper's CNN and the thread pool that runs them
 * (internal; the plain reference kernels are layers.h, and every kernel here is
 * tested against them in tests/test_kernels.c).
 *
 * Why these kernels look the way they do. The network has 3, 4 and 8 channels, so
 * nothing is gained by vectorising across channels; everything is vectorised along
 * the pixels of a plane instead:
 *
 * - "Flattened" 3x3 convolution. An h x w plane is one array; the valid conv output
 *   at flat index k = i*w + j is sum_{a,b} wt[a,b] * in[k + a*w + b], a 1-D
 *   correlation with nine fixed offsets. Computing it for every k < (h-3)*w + w-2
 *   yields the (h-2) x (w-2) output in rows of stride w, two "garbage" columns per
 *   row (j = w-2, w-1) included: vector loads never stop at a row end, which on a
 *   21- or 47-wide plane would waste a third of every vector. The garbage columns are
 *   never read as data (statistics and pooling skip them); where an output is fed
 *   back into a flattened sum (the conv weight gradient), they are written as 0.
 * - The input gradient of a conv is a valid conv of the output gradient, zero-
 *   padded by 2, with the kernel transposed and flipped: the same flattened kernel.
 * - Batch norm, ReLU, 2x2 max-pool and dropout are one pass (bn_relu_pool) that
 *   writes the block output, the winner of each pool window (or "dead" when ReLU
 *   zeroes it) and the normalised value of that winner, which is all the backward
 *   pass needs: the BN/ReLU/pool gradient is then two passes (pool_bwd_sums and
 *   bn_pool_dconv) and no full-resolution BN, ReLU or argmax tensor is kept.
 *
 * Sums are formed per work unit (a range of flat indices, a tile of rows) in float
 * SIMD lanes and returned as float partials that the caller adds in double in a
 * fixed order: results are the same for any number of threads, and close to the
 * reference kernels' double sums (tests: <= 1e-5 relative to the tensor's scale).
 *
 * One source (kernels_impl.h) is compiled once per instruction set: generic (plain C
 * on GCC vector types: SSE2 on x86-64, NEON on arm64), AVX2+FMA and AVX-512; the
 * best one the CPU supports is picked at run time (__builtin_cpu_supports). Results
 * are deterministic for a given instruction set; different sets round differently
 * (FMA or not, lane count), within the tolerance above. */
#ifndef LYMPHDET_KERNELS_H
#define LYMPHDET_KERNELS_H

#include <stddef.h>
#include "lymphdet/error.h"
#include "lymphdet/model.h"
#include "lymphdet/rng.h"

/* Winner codes of a 2x2 pool window, stored as floats: 0 top-left, 1 top-right,
 * 2 bottom-left, 3 bottom-right; LD_POOL_DEAD when the window's maximum is <= 0
 * (ReLU zeroes it, so no gradient flows through it). */
#define LD_POOL_DEAD (-1.0f)

typedef struct {
    const char *name;   /* "generic", "avx2", "avx512" */

    /* Flattened valid 3x3 correlation, output indices k in [k0, k1):
     *   out[o][k] = bias[o] + sum_{ch,a,b} weight[o,ch,a,b] * in[ch][k + a*w + b]
     * out planes out_plane floats apart, in planes in_plane apart; weight [f, c, 3, 3],
     * bias [f] (NULL: 0). Reads in[ch][k0 .. k1 + 2w + 1] only. */
    void (*conv3x3)(float *out, size_t out_plane, const float *in, size_t in_plane, int w,
                    const float *weight, const float *bias, int c, int f, long k0, long k1);
    /* Partial weight gradient over k in [k0, k1):
     *   part[o, ch, a, b] = sum_k dout[o][k] * in[ch][k + a*w + b]
     * part [f, c, 3, 3] (overwritten); dout planes dout_plane apart, in planes in_plane. */
    void (*conv3x3_dweight)(float *part, const float *dout, size_t dout_plane, const float *in,
                            size_t in_plane, int w, int c, int f, long k0, long k1);
    /* Sum of rows x cols values, rows `stride` apart. */
    float (*rows_sum)(const float *x, int rows, int cols, int stride);
    /* Sum of (x - mu)^2 over the same values. */
    float (*rows_sqdev)(const float *x, int rows, int cols, int stride, float mu);
    /* Pooled rows [r0, r1) of one plane: with y = gamma * ((x - mu) * invstd) + beta
     * on the conv plane x (rows `stride` apart), out = max(0, max over the 2x2 window
     * of y) * mask (mask NULL: 1); code = the winner (first maximum in the order
     * top-left, top-right, bottom-left, bottom-right) or LD_POOL_DEAD; xw = the
     * winner's (x - mu) * invstd, 0 when dead. out, mask, code, xw [p, p]; code and
     * xw may be NULL (inference). */
    void (*bn_relu_pool)(float *out, float *code, float *xw, const float *x, int stride,
                         const float *mask, int p, float mu, float invstd, float gamma,
                         float beta, int r0, int r1);
    /* Pooled rows [r0, r1): gval = code >= 0 ? dout * mask : 0 (mask NULL: 1), and
     * sums[0] = sum gval, sums[1] = sum gval * xw over those rows.
     * gval, mask, code, xw [p, p]; dout [p, dstride]. */
    void (*pool_bwd_sums)(float *gval, float *sums, const float *dout, int dstride,
                          const float *mask, const float *code, const float *xw, int p,
                          int r0, int r1);
    /* Conv rows [i0, i1) (i0 even) of the BN/ReLU/pool input gradient of one plane:
     *   dconv = scale * (G - mean_d - xhat * mean_dx),  xhat = (x - mu) * invstd,
     * G = gval of the pool window where this element is the winner, else 0.
     * x, dconv [cc, stride] (dconv's columns cc..stride-1 are written as 0);
     * gval, code [p, p]; dpad (may be NULL) receives dconv too, at row i + 2,
     * column 2 of a [cc + 4, cc + 4] plane whose border the caller zeroes. */
    void (*bn_pool_dconv)(float *dconv, float *dpad, const float *x, int stride, int cc,
                          const float *gval, const float *code, int p, float mu,
                          float invstd, float scale, float mean_d, float mean_dx,
                          int i0, int i1);

    /* Scanning (inference, BN folded into the conv). For each channel o < f:
     *   out[o][q] = max(0, max of x[o] rows 0 and 1 at columns 2q, 2q+1), q < w2
     * out planes out_plane apart; x planes x_plane apart, its second row xstride on. */
    void (*relu_pool)(float *out, size_t out_plane, const float *x, size_t x_plane, int xstride,
                      int f, int w2);
    /* The dense layer as an s x s correlation over a map, one float sum per channel:
     *   part[ch][k] = sum_{u,v} wd[ch, u, v] * map[ch][k + u*w + v],  k in [0, n)
     * part planes part_plane apart, map planes map_plane apart with rows w apart. */
    void (*dense_conv)(float *part, size_t part_plane, const float *map, size_t map_plane, int w,
                       const float *wd, int c, int s, long n);
} ld_kernels;

/* One table per instruction set (kernels_generic.c, kernels_avx2.c, kernels_avx512.c;
 * the last two exist on x86-64 only): use ld_kernels_get, which checks the CPU. */
extern const ld_kernels ld_kernels_generic, ld_kernels_avx2, ld_kernels_avx512;

/* The fastest kernels this CPU runs. */
const ld_kernels *ld_kernels_best(void);
/* Kernels by name ("generic", "avx2", "avx512"; "auto" or NULL: the best), or NULL
 * when they were not compiled in or this CPU lacks the instructions. */
const ld_kernels *ld_kernels_get(const char *name);

/* The same mask as ld_dropout_mask (layers.h), value for value and draw for draw,
 * with the generator inlined: the reference spends more on calls than on drawing. */
void ld_dropout_mask_fast(float *mask, ld_rng *rng, float rate, long count);

/* ---- the paper's CNN on these kernels (model_fast.c) --------------------------- */

typedef struct ld_pool ld_pool;

/* The buffers of the fast forward/backward for `arch` and batches up to batch_cap,
 * laid out at base (64-byte aligned, zeroed; NULL: only measured). Returns the bytes
 * they take, 0 if a size would overflow. The model carves them inside its activation
 * block (model.c) and casts base to the ld_fastnet. */
typedef struct ld_fastnet ld_fastnet;
size_t ld_fastnet_layout(void *base, const ld_arch *arch, int batch_cap);
/* ld_model_forward's contract on the fast kernels; masks[k] is block k's dropout mask
 * [batch_cap, F, s, s], drawn from rng when rng is non-NULL (the reference's draws),
 * else used as it is. */
void ld_fastnet_forward(ld_fastnet *net, const ld_kernels *K, ld_pool *pool, ld_model *m,
                        float *const *masks, const float *x, int n, int training, ld_rng *rng,
                        float *logits);
/* ld_model_backward's, after a training ld_fastnet_forward of the same n; writes the
 * gradients of every trainable tensor but the conv biases (the caller zeroes them). */
void ld_fastnet_backward(ld_fastnet *net, const ld_kernels *K, ld_pool *pool, ld_model *m,
                         float *const *masks, const float *dlogits, int n);

/* ---- the scanner's pass on these kernels (kernels_scan.c) ------------------------ */

/* Called by ld_fast_scan_pass for window row ty once the last map holds the rows
 * ty*q .. ty*q + s_out - 1: map points at row ty*q of channel 0, rows rs floats
 * apart, channels ps apart. */
typedef void (*ld_scan_emit)(void *ctx, int ty, const float *map, size_t ps, size_t rs);
/* Floats of scratch ld_fast_scan_pass needs for an eh x ew input region. */
size_t ld_fast_scan_scratch(const int *filters, int n_blocks, int s_out, int eh, int ew);
/* The blocks of a scanner pass (folded conv weights wt[k], bias[k]; filters[k]) over
 * the eh x ew region at img (rows row_stride apart, one grey plane) as a pipeline of
 * rows: a pooled row of block k is made as soon as the four rows of block k-1 it
 * reads exist, into a ring of a few rows, so no block's map is ever whole and the
 * working set stays in cache whatever the frame size. emit is called for window
 * rows 0 .. n_y-1 in order (q: map rows between window rows). */
void ld_fast_scan_pass(const ld_kernels *K, float *scratch, const float *const *wt,
                       const float *const *bias, const int *filters, int n_blocks, int s_out,
                       const float *img, size_t row_stride, int eh, int ew, int n_y, int q,
                       ld_scan_emit emit, void *ctx);
/* The dense layer over the last map for n_x windows q map columns apart from src
 * (the map row of the windows' top): logit[t] = b + sum over channels, in double, of
 * each channel's float sum (dense_conv); part: c * ((n_x - 1) q + 1) floats scratch.
 * map planes ps floats apart, rows rs apart; wd [c, s, s]. */
void ld_fast_scan_dense(const ld_kernels *K, double *logit, float *part, const float *src,
                        size_t ps, size_t rs, const float *wd, double b, int c, int s, int n_x,
                        int q);

/* ---- thread pool ------------------------------------------------------------ */

/* A fixed team of threads-1 workers plus the caller. ld_pool_run(pool, fn, ctx, n)
 * calls fn(ctx, u) once for every unit u in [0, n), on whichever thread claims it
 * first (chunks of consecutive units), and returns when all are done. A NULL pool,
 * or a pool of 1, runs everything on the caller in order. Results never depend on
 * the threads as long as the units write disjoint outputs (the callers make sure). */
typedef void (*ld_pool_fn)(void *ctx, int unit);

ld_status ld_pool_init(ld_pool **pool, int threads, ld_error *err);
void      ld_pool_free(ld_pool *pool);
int       ld_pool_threads(const ld_pool *pool);
void      ld_pool_run(ld_pool *pool, ld_pool_fn fn, void *ctx, int n_units);

#endif
