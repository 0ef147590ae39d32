/* kernels_impl.h — the one source of the fast kernels, compiled once per instruction
 * set: kernels_generic.c, kernels_avx2.c and kernels_avx512.c each define LDK_ISA
 * and LDK_TABLE, then include this file (kernels.h says what every kernel computes
 * and why the layouts are what they are).
 *
 * The kernels are written against a handful of vector operations (v_load, v_fma,
 * v_gt_sel, ...) defined below for each instruction set: VL float lanes, masked
 * loads and stores for the tails (AVX-512 masks, AVX2 maskload; plain loops in the
 * generic build), and the even/odd (de)interleave that 2x2 pooling needs.
 * The generic build uses GCC/Clang vector types of 4 floats: SSE2 on x86-64, NEON on
 * arm64, and it multiplies and adds separately (no -ffp-contract), so it rounds like
 * the reference kernels; the x86 builds use fused multiply-add.
 *
 * Accumulator arrays (acc[OB][NV]) are indexed only with constants after unrolling
 * (#pragma GCC unroll; both GCC and Clang honour it), so they live in registers. */
#include <stdint.h>
#include <string.h>
#include "kernels.h"

#define LDK_GENERIC 1
#define LDK_AVX2 2
#define LDK_AVX512 3

#if LDK_ISA == LDK_AVX512
#include <immintrin.h>
#define VL 16       /* float lanes */
#define NV 3        /* vectors per conv chunk: 4 outputs x 3 = 12 accumulators */
#define DW_OB 2     /* outputs per weight-gradient pass: 2 x 9 = 18 accumulators */
typedef __m512 vf;
static inline __mmask16 lane_mask(int n)
{
    return n <= 0 ? (__mmask16)0 : n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}
static inline vf v_zero(void) { return _mm512_setzero_ps(); }
static inline vf v_set1(float x) { return _mm512_set1_ps(x); }
static inline vf v_load(const float *p) { return _mm512_loadu_ps(p); }
static inline vf v_load_n(const float *p, int n) { return _mm512_maskz_loadu_ps(lane_mask(n), p); }
static inline void v_store(float *p, vf v) { _mm512_storeu_ps(p, v); }
static inline void v_store_n(float *p, vf v, int n) { _mm512_mask_storeu_ps(p, lane_mask(n), v); }
static inline vf v_add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf v_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf v_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf v_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
/* a > b ? x : y, and a == b ? x : y, lane by lane */
static inline vf v_gt_sel(vf a, vf b, vf x, vf y)
{
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), y, x);
}
static inline vf v_eq_sel(vf a, vf b, vf x, vf y)
{
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ), y, x);
}
static inline float v_hsum(vf v) { return _mm512_reduce_add_ps(v); }
/* lo = x[0..16), hi = x[16..32) -> even = x[0, 2, .., 30], odd = x[1, 3, .., 31] */
static inline void v_deinterleave(vf lo, vf hi, vf *even, vf *odd)
{
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    *even = _mm512_permutex2var_ps(lo, ie, hi);
    *odd = _mm512_permutex2var_ps(lo, io, hi);
}
static inline void v_interleave(vf even, vf odd, vf *lo, vf *hi)
{
    const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ih = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    *lo = _mm512_permutex2var_ps(even, il, odd);
    *hi = _mm512_permutex2var_ps(even, ih, odd);
}

#elif LDK_ISA == LDK_AVX2
#include <immintrin.h>
#define VL 8
#define NV 2        /* 4 x 2 = 8 accumulators of the 16 ymm registers */
#define DW_OB 1     /* 9 accumulators */
typedef __m256 vf;
static inline __m256i lane_mask(int n)
{
    static const int32_t bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    n = n < 0 ? 0 : n > 8 ? 8 : n;
    return _mm256_loadu_si256((const __m256i *)(const void *)(bits + 8 - n));
}
static inline vf v_zero(void) { return _mm256_setzero_ps(); }
static inline vf v_set1(float x) { return _mm256_set1_ps(x); }
static inline vf v_load(const float *p) { return _mm256_loadu_ps(p); }
/* masked-off lanes are neither read nor faulted on */
static inline vf v_load_n(const float *p, int n) { return _mm256_maskload_ps(p, lane_mask(n)); }
static inline void v_store(float *p, vf v) { _mm256_storeu_ps(p, v); }
static inline void v_store_n(float *p, vf v, int n) { _mm256_maskstore_ps(p, lane_mask(n), v); }
static inline vf v_add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf v_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf v_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf v_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf v_gt_sel(vf a, vf b, vf x, vf y)
{
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_GT_OQ));
}
static inline vf v_eq_sel(vf a, vf b, vf x, vf y)
{
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_EQ_OQ));
}
static inline float v_hsum(vf v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
static inline void v_deinterleave(vf lo, vf hi, vf *even, vf *odd)
{
    /* per 128-bit half: [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6], then 64-bit pairs 0,2,1,3 */
    vf e = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    vf o = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
    *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
    *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}
static inline void v_interleave(vf even, vf odd, vf *lo, vf *hi)
{
    vf l = _mm256_unpacklo_ps(even, odd), h = _mm256_unpackhi_ps(even, odd);
    *lo = _mm256_permute2f128_ps(l, h, 0x20);
    *hi = _mm256_permute2f128_ps(l, h, 0x31);
}

#else /* LDK_GENERIC */
#define VL 4
#define NV 2
#define DW_OB 1
typedef float vf __attribute__((vector_size(16)));
static inline vf v_zero(void) { vf v = {0.0f, 0.0f, 0.0f, 0.0f}; return v; }
static inline vf v_set1(float x) { vf v = {x, x, x, x}; return v; }
static inline vf v_load(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline vf v_load_n(const float *p, int n)
{
    vf v = v_zero();
    for (int i = 0; i < n && i < VL; i++) v[i] = p[i];
    return v;
}
static inline void v_store(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline void v_store_n(float *p, vf v, int n)
{
    for (int i = 0; i < n && i < VL; i++) p[i] = v[i];
}
static inline vf v_add(vf a, vf b) { return a + b; }
static inline vf v_sub(vf a, vf b) { return a - b; }
static inline vf v_mul(vf a, vf b) { return a * b; }
static inline vf v_fma(vf a, vf b, vf c) { return a * b + c; }
static inline vf v_gt_sel(vf a, vf b, vf x, vf y)
{
    vf r;
    for (int i = 0; i < VL; i++) r[i] = a[i] > b[i] ? x[i] : y[i];
    return r;
}
static inline vf v_eq_sel(vf a, vf b, vf x, vf y)
{
    vf r;
    for (int i = 0; i < VL; i++) r[i] = a[i] == b[i] ? x[i] : y[i];
    return r;
}
static inline float v_hsum(vf v) { return (v[0] + v[2]) + (v[1] + v[3]); }
static inline void v_deinterleave(vf lo, vf hi, vf *even, vf *odd)
{
    vf e = {lo[0], lo[2], hi[0], hi[2]}, o = {lo[1], lo[3], hi[1], hi[3]};
    *even = e;
    *odd = o;
}
static inline void v_interleave(vf even, vf odd, vf *lo, vf *hi)
{
    vf l = {even[0], odd[0], even[1], odd[1]}, h = {even[2], odd[2], even[3], odd[3]};
    *lo = l;
    *hi = h;
}
#endif

#define OB 4        /* conv outputs per pass over the input */
#define ALWAYS_INLINE static inline __attribute__((always_inline))

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* ---- convolution ----------------------------------------------------------- */

/* ob (a constant after inlining) outputs whose weights are wt[o * wstride + ch * 9 + t] */
ALWAYS_INLINE void conv_group(float *out, size_t out_plane, const float *in, size_t in_plane,
                              int w, const float *wt, size_t wstride, const float *bias,
                              int c, const int ob, long k0, long k1)
{
    long k = k0;
    for (; k + NV * VL <= k1; k += NV * VL) {
        vf acc[OB][NV];
#pragma GCC unroll 4
        for (int o = 0; o < ob; o++) {
            vf b0 = v_set1(bias ? bias[o] : 0.0f);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[o][v] = b0;
        }
        for (int ch = 0; ch < c; ch++) {
            const float *ip = in + (size_t)ch * in_plane + k;
            const float *wp = wt + (size_t)ch * 9;
#pragma GCC unroll 9
            for (int t = 0; t < 9; t++) {
                const float *src = ip + (t / 3) * (long)w + t % 3;
                vf x[NV];
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++) x[v] = v_load(src + v * VL);
#pragma GCC unroll 4
                for (int o = 0; o < ob; o++) {
                    vf wv = v_set1(wp[o * wstride + t]);
#pragma GCC unroll 4
                    for (int v = 0; v < NV; v++) acc[o][v] = v_fma(wv, x[v], acc[o][v]);
                }
            }
        }
#pragma GCC unroll 4
        for (int o = 0; o < ob; o++)
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) v_store(out + o * out_plane + k + v * VL, acc[o][v]);
    }
    for (; k < k1; k += VL) {   /* the tail, one (masked) vector at a time */
        int n = k1 - k < VL ? (int)(k1 - k) : VL;
        vf acc[OB];
#pragma GCC unroll 4
        for (int o = 0; o < ob; o++) acc[o] = v_set1(bias ? bias[o] : 0.0f);
        for (int ch = 0; ch < c; ch++) {
            const float *ip = in + (size_t)ch * in_plane + k;
            const float *wp = wt + (size_t)ch * 9;
#pragma GCC unroll 9
            for (int t = 0; t < 9; t++) {
                vf x = v_load_n(ip + (t / 3) * (long)w + t % 3, n);
#pragma GCC unroll 4
                for (int o = 0; o < ob; o++) acc[o] = v_fma(v_set1(wp[o * wstride + t]), x, acc[o]);
            }
        }
#pragma GCC unroll 4
        for (int o = 0; o < ob; o++) v_store_n(out + o * out_plane + k, acc[o], n);
    }
}

static void conv3x3(float *out, size_t out_plane, const float *in, size_t in_plane, int w,
                    const float *weight, const float *bias, int c, int f, long k0, long k1)
{
    size_t ws = (size_t)c * 9;
    for (int o = 0; o < f; o += OB) {
        float *op = out + (size_t)o * out_plane;
        const float *wp = weight + (size_t)o * ws, *bp = bias ? bias + o : NULL;
        switch (imin(OB, f - o)) {
        case 4: conv_group(op, out_plane, in, in_plane, w, wp, ws, bp, c, 4, k0, k1); break;
        case 3: conv_group(op, out_plane, in, in_plane, w, wp, ws, bp, c, 3, k0, k1); break;
        case 2: conv_group(op, out_plane, in, in_plane, w, wp, ws, bp, c, 2, k0, k1); break;
        default: conv_group(op, out_plane, in, in_plane, w, wp, ws, bp, c, 1, k0, k1); break;
        }
    }
}

/* ob outputs' weight gradients for every input channel: part[(o * c + ch) * 9 + t] */
ALWAYS_INLINE void dweight_group(float *part, const float *dout, size_t dout_plane,
                                 const float *in, size_t in_plane, int w, int c, const int ob,
                                 long k0, long k1)
{
    for (int ch = 0; ch < c; ch++) {
        const float *ip = in + (size_t)ch * in_plane;
        vf acc[DW_OB][9];
#pragma GCC unroll 4
        for (int o = 0; o < ob; o++)
#pragma GCC unroll 9
            for (int t = 0; t < 9; t++) acc[o][t] = v_zero();
        long k = k0;
        for (; k + VL <= k1; k += VL) {
            vf d[DW_OB];
#pragma GCC unroll 4
            for (int o = 0; o < ob; o++) d[o] = v_load(dout + o * dout_plane + k);
#pragma GCC unroll 9
            for (int t = 0; t < 9; t++) {
                vf x = v_load(ip + k + (t / 3) * (long)w + t % 3);
#pragma GCC unroll 4
                for (int o = 0; o < ob; o++) acc[o][t] = v_fma(d[o], x, acc[o][t]);
            }
        }
        if (k < k1) {
            int n = (int)(k1 - k);
            vf d[DW_OB];
#pragma GCC unroll 4
            for (int o = 0; o < ob; o++) d[o] = v_load_n(dout + o * dout_plane + k, n);
#pragma GCC unroll 9
            for (int t = 0; t < 9; t++) {
                vf x = v_load_n(ip + k + (t / 3) * (long)w + t % 3, n);
#pragma GCC unroll 4
                for (int o = 0; o < ob; o++) acc[o][t] = v_fma(d[o], x, acc[o][t]);
            }
        }
#pragma GCC unroll 4
        for (int o = 0; o < ob; o++)
#pragma GCC unroll 9
            for (int t = 0; t < 9; t++) part[((size_t)o * c + ch) * 9 + t] = v_hsum(acc[o][t]);
    }
}

static void conv3x3_dweight(float *part, const float *dout, size_t dout_plane, const float *in,
                            size_t in_plane, int w, int c, int f, long k0, long k1)
{
    for (int o = 0; o < f; o += DW_OB) {
        float *pp = part + (size_t)o * c * 9;
        const float *dp = dout + (size_t)o * dout_plane;
        if (f - o >= 2 && DW_OB >= 2)
            dweight_group(pp, dp, dout_plane, in, in_plane, w, c, DW_OB >= 2 ? 2 : 1, k0, k1);
        else
            dweight_group(pp, dp, dout_plane, in, in_plane, w, c, 1, k0, k1);
    }
}

/* ---- batch-norm statistics ------------------------------------------------- */

static float rows_sum(const float *x, int rows, int cols, int stride)
{
    vf a0 = v_zero(), a1 = v_zero();
    for (int i = 0; i < rows; i++) {
        const float *r = x + (size_t)i * stride;
        int j = 0;
        for (; j + 2 * VL <= cols; j += 2 * VL) {
            a0 = v_add(a0, v_load(r + j));
            a1 = v_add(a1, v_load(r + j + VL));
        }
        for (; j < cols; j += VL) a0 = v_add(a0, v_load_n(r + j, cols - j));
    }
    return v_hsum(v_add(a0, a1));
}

static float rows_sqdev(const float *x, int rows, int cols, int stride, float mu)
{
    vf a0 = v_zero(), a1 = v_zero(), m = v_set1(mu);
    float mus[VL];   /* for the tail: mu in the loaded lanes, 0 in the masked ones */
    for (int t = 0; t < VL; t++) mus[t] = mu;
    for (int i = 0; i < rows; i++) {
        const float *r = x + (size_t)i * stride;
        int j = 0;
        for (; j + 2 * VL <= cols; j += 2 * VL) {
            vf d0 = v_sub(v_load(r + j), m), d1 = v_sub(v_load(r + j + VL), m);
            a0 = v_fma(d0, d0, a0);
            a1 = v_fma(d1, d1, a1);
        }
        for (; j < cols; j += VL) {
            int n = cols - j;
            vf d = v_sub(v_load_n(r + j, n), v_load_n(mus, n));
            a0 = v_fma(d, d, a0);
        }
    }
    return v_hsum(v_add(a0, a1));
}

/* ---- batch norm + ReLU + 2x2 max-pool (+ dropout) and its gradient ----------- */

/* full-width operations when n == VL: AVX2's masked moves are slower than plain ones */
static inline vf ld_n(const float *p, int n) { return n >= VL ? v_load(p) : v_load_n(p, n); }
static inline void st_n(float *p, vf v, int n)
{
    if (n >= VL)
        v_store(p, v);
    else
        v_store_n(p, v, n);
}

static void bn_relu_pool(float *out, float *code, float *xw, const float *x, int stride,
                         const float *mask, int p, float mu, float invstd, float gamma,
                         float beta, int r0, int r1)
{
    const vf vmu = v_set1(mu), vis = v_set1(invstd), vg = v_set1(gamma), vb = v_set1(beta);
    const vf zero = v_zero(), c1 = v_set1(1.0f), c2 = v_set1(2.0f), c3 = v_set1(3.0f);
    const vf dead = v_set1(LD_POOL_DEAD);
    for (int r = r0; r < r1; r++) {
        const float *x0 = x + (size_t)(2 * r) * stride, *x1 = x0 + stride;
        for (int q = 0; q < p; q += VL) {
            int n = imin(VL, p - q), nlo = imin(2 * n, VL), nhi = 2 * n - VL;
            vf tl, tr, bl, br;
            v_deinterleave(ld_n(x0 + 2 * q, nlo), ld_n(x0 + 2 * q + VL, nhi), &tl, &tr);
            v_deinterleave(ld_n(x1 + 2 * q, nlo), ld_n(x1 + 2 * q + VL, nhi), &bl, &br);
            vf h0 = v_mul(v_sub(tl, vmu), vis), h1 = v_mul(v_sub(tr, vmu), vis);
            vf h2 = v_mul(v_sub(bl, vmu), vis), h3 = v_mul(v_sub(br, vmu), vis);
            vf y1 = v_fma(vg, h1, vb), y2 = v_fma(vg, h2, vb), y3 = v_fma(vg, h3, vb);
            vf best = v_fma(vg, h0, vb), bh = h0, cd = zero;
            /* strictly greater replaces: the first maximum wins, as in the reference */
            bh = v_gt_sel(y1, best, h1, bh); cd = v_gt_sel(y1, best, c1, cd); best = v_gt_sel(y1, best, y1, best);
            bh = v_gt_sel(y2, best, h2, bh); cd = v_gt_sel(y2, best, c2, cd); best = v_gt_sel(y2, best, y2, best);
            bh = v_gt_sel(y3, best, h3, bh); cd = v_gt_sel(y3, best, c3, cd); best = v_gt_sel(y3, best, y3, best);
            size_t at = (size_t)r * p + q;
            vf o = v_gt_sel(best, zero, best, zero);   /* ReLU after the max: they commute */
            if (mask) o = v_mul(o, ld_n(mask + at, n));
            st_n(out + at, o, n);
            if (code) st_n(code + at, v_gt_sel(best, zero, cd, dead), n);
            if (xw) st_n(xw + at, v_gt_sel(best, zero, bh, zero), n);
        }
    }
}

static void pool_bwd_sums(float *gval, float *sums, const float *dout, int dstride,
                          const float *mask, const float *code, const float *xw, int p,
                          int r0, int r1)
{
    const vf zero = v_zero(), half = v_set1(-0.5f);
    vf s0 = zero, s1 = zero;
    for (int r = r0; r < r1; r++) {
        for (int q = 0; q < p; q += VL) {
            int n = imin(VL, p - q);
            size_t at = (size_t)r * p + q;
            vf d = ld_n(dout + (size_t)r * dstride + q, n);
            if (mask) d = v_mul(d, ld_n(mask + at, n));
            /* masked lanes load code 0 but dout 0: they add nothing */
            vf g = v_gt_sel(ld_n(code + at, n), half, d, zero);
            st_n(gval + at, g, n);
            s0 = v_add(s0, g);
            s1 = v_fma(g, ld_n(xw + at, n), s1);
        }
    }
    sums[0] = v_hsum(s0);
    sums[1] = v_hsum(s1);
}

/* one conv row of the BN input gradient from its pool-gradient row G (lo, hi halves) */
ALWAYS_INLINE void dconv_emit(float *dc, float *dp, const float *x, vf glo, vf ghi, int ncol,
                              vf vmu, vf vis, vf vsc, vf vmd, vf vnmdx)
{
    int nlo = imin(ncol, VL), nhi = ncol - VL;
    vf hlo = v_mul(v_sub(ld_n(x, nlo), vmu), vis);
    vf dlo = v_mul(v_fma(vnmdx, hlo, v_sub(glo, vmd)), vsc);
    st_n(dc, dlo, nlo);
    if (dp) st_n(dp, dlo, nlo);
    if (nhi > 0) {
        vf hhi = v_mul(v_sub(ld_n(x + VL, nhi), vmu), vis);
        vf dhi = v_mul(v_fma(vnmdx, hhi, v_sub(ghi, vmd)), vsc);
        st_n(dc + VL, dhi, nhi);
        if (dp) st_n(dp + VL, dhi, nhi);
    }
}

static void bn_pool_dconv(float *dconv, float *dpad, const float *x, int stride, int cc,
                          const float *gval, const float *code, int p, float mu,
                          float invstd, float scale, float mean_d, float mean_dx,
                          int i0, int i1)
{
    const vf vmu = v_set1(mu), vis = v_set1(invstd), vsc = v_set1(scale);
    const vf vmd = v_set1(mean_d), vnmdx = v_set1(-mean_dx), zero = v_zero();
    const vf c1 = v_set1(1.0f), c2 = v_set1(2.0f), c3 = v_set1(3.0f);
    int wp = cc + 4;
    for (int i = i0; i < i1; i += 2) {
        int r = i / 2, both = i + 1 < i1;   /* an odd plane's last row comes alone */
        for (int j = 0; j < cc; j += 2 * VL) {
            int q = j / 2, nq = r < p ? imin(VL, p - q) : 0, ncol = imin(2 * VL, cc - j);
            vf gv = zero, cd = zero;   /* rows and columns past 2p have no pool window */
            if (nq > 0) {
                gv = ld_n(gval + (size_t)r * p + q, nq);
                cd = ld_n(code + (size_t)r * p + q, nq);
            }
            vf g0lo, g0hi, g1lo, g1hi;
            v_interleave(v_eq_sel(cd, zero, gv, zero), v_eq_sel(cd, c1, gv, zero), &g0lo, &g0hi);
            v_interleave(v_eq_sel(cd, c2, gv, zero), v_eq_sel(cd, c3, gv, zero), &g1lo, &g1hi);
            dconv_emit(dconv + (size_t)i * stride + j, dpad ? dpad + (size_t)(i + 2) * wp + 2 + j : NULL,
                       x + (size_t)i * stride + j, g0lo, g0hi, ncol, vmu, vis, vsc, vmd, vnmdx);
            if (both)
                dconv_emit(dconv + (size_t)(i + 1) * stride + j,
                           dpad ? dpad + (size_t)(i + 3) * wp + 2 + j : NULL,
                           x + (size_t)(i + 1) * stride + j, g1lo, g1hi, ncol, vmu, vis, vsc, vmd,
                           vnmdx);
        }
        /* the flattened weight gradient reads the garbage columns: make them add 0 */
        for (int j = cc; j < stride; j++) {
            dconv[(size_t)i * stride + j] = 0.0f;
            if (both) dconv[(size_t)(i + 1) * stride + j] = 0.0f;
        }
    }
}

/* ---- scanning ------------------------------------------------------------------ */

static void relu_pool(float *out, size_t out_plane, const float *x, size_t x_plane, int xstride,
                      int f, int w2)
{
    const vf zero = v_zero();
    for (int o = 0; o < f; o++) {
        const float *x0 = x + (size_t)o * x_plane, *x1 = x0 + xstride;
        float *dst = out + (size_t)o * out_plane;
        for (int q = 0; q < w2; q += VL) {
            int n = imin(VL, w2 - q), nlo = imin(2 * n, VL), nhi = 2 * n - VL;
            vf tl, tr, bl, br;
            v_deinterleave(ld_n(x0 + 2 * q, nlo), ld_n(x0 + 2 * q + VL, nhi), &tl, &tr);
            v_deinterleave(ld_n(x1 + 2 * q, nlo), ld_n(x1 + 2 * q + VL, nhi), &bl, &br);
            /* the same comparisons as the scalar "if (b > m) m = b": NaN-free data */
            vf m = v_gt_sel(tr, tl, tr, tl);
            m = v_gt_sel(bl, m, bl, m);
            m = v_gt_sel(br, m, br, m);
            st_n(dst + q, v_gt_sel(m, zero, m, zero), n);
        }
    }
}

static void dense_conv(float *part, size_t part_plane, const float *map, size_t map_plane, int w,
                       const float *wd, int c, int s, long n)
{
    for (int ch = 0; ch < c; ch++) {
        const float *mp = map + (size_t)ch * map_plane, *wc = wd + (size_t)ch * s * s;
        float *dst = part + (size_t)ch * part_plane;
        long k = 0;
        for (; k + NV * VL <= n; k += NV * VL) {
            vf acc[NV];
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[v] = v_zero();
            for (int u = 0; u < s; u++) {
                const float *row = mp + k + (long)u * w, *wr = wc + (size_t)u * s;
                for (int t = 0; t < s; t++) {
                    vf wv = v_set1(wr[t]);
#pragma GCC unroll 4
                    for (int v = 0; v < NV; v++) acc[v] = v_fma(wv, v_load(row + t + v * VL), acc[v]);
                }
            }
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) v_store(dst + k + v * VL, acc[v]);
        }
        for (; k < n; k += VL) {
            int m = n - k < VL ? (int)(n - k) : VL;
            vf acc = v_zero();
            for (int u = 0; u < s; u++) {
                const float *row = mp + k + (long)u * w, *wr = wc + (size_t)u * s;
                for (int t = 0; t < s; t++) acc = v_fma(v_set1(wr[t]), ld_n(row + t, m), acc);
            }
            st_n(dst + k, acc, m);
        }
    }
}

const ld_kernels LDK_TABLE = {
    LDK_NAME, conv3x3, conv3x3_dweight, rows_sum, rows_sqdev, bn_relu_pool, pool_bwd_sums,
    bn_pool_dconv, relu_pool, dense_conv,
};
