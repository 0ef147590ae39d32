/* test_kernels.c — the fast kernels (src/kernels.h) against the reference kernels of
 * layers.c, for every instruction set this CPU runs (generic always; avx2, avx512
 * when present), then whole forward/backward passes of the fast network against the
 * reference path, determinism across thread counts, and the thread pool.
 *
 * Tolerance: |fast - reference| <= 1e-5 * max(1, max |reference|) per tensor (the
 * fast kernels sum in float lanes, and use FMA on x86, where the reference sums in
 * double). Shapes include the paper's (100 -> 98 -> 49 -> 47 -> 23 -> 21 -> 10),
 * odd sides, non-square planes, and channel counts that are not multiples of the
 * kernels' register blocking. Each comparison prints its largest difference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"
#include "lymphdet/layers.h"
#include "lymphdet/model.h"
#include "test.h"

#define TOL 1e-5

static const char *const isas[] = {"generic", "avx2", "avx512"};
#define N_ISAS 3

static void fill(float *x, size_t n, ld_rng *r, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * ld_rng_float(r);
}

/* Checks |got - ref| <= TOL * max(1, max|ref|) over a [rows, cols] block, got rows
 * gstride apart, ref rows rstride apart; prints and returns the worst difference. */
static double cmp2(const char *what, const char *isa, const float *got, int gstride,
                   const float *ref, int rstride, int rows, int cols, int line)
{
    double worst = 0, scale = 1;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            double r = fabs(ref[(size_t)i * rstride + j]);
            if (r > scale) scale = r;
        }
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            double d = fabs((double)got[(size_t)i * gstride + j] - ref[(size_t)i * rstride + j]);
            if (!(d <= worst)) worst = d;   /* NaN counts as the worst */
        }
    int ok = worst <= TOL * scale;
    test_record(ok, __FILE__, line, "%s [%s]: max |diff| %.3g > %g * %.3g", what, isa, worst,
                TOL, scale);
    if (!ok || getenv("LD_TEST_VERBOSE"))
        fprintf(stderr, "  %-44s %-8s max |diff| %.3g (scale %.3g)\n", what, isa, worst, scale);
    return worst / scale;
}
#define CMP(what, isa, got, gs, ref, rs, rows, cols) cmp2(what, isa, got, gs, ref, rs, rows, cols, __LINE__)

/* ---- conv: forward, weight gradient, input gradient ----------------------------- */

typedef struct { int c, f, h, w; } conv_shape;

static double check_conv(const ld_kernels *K, const conv_shape *sh, ld_rng *r)
{
    int c = sh->c, f = sh->f, h = sh->h, w = sh->w, oh = h - 2, ow = w - 2;
    size_t in_n = (size_t)c * h * w, out_n = (size_t)f * oh * ow;
    float *in = malloc(in_n * sizeof *in), *wt = malloc((size_t)f * c * 9 * sizeof *wt);
    float *bias = malloc((size_t)f * sizeof *bias), *ref = malloc(out_n * sizeof *ref);
    float *got = malloc((size_t)f * oh * w * sizeof *got);
    float *dout = malloc(out_n * sizeof *dout), *rdw = malloc((size_t)f * c * 9 * sizeof *rdw);
    float *rdin = malloc(in_n * sizeof *rdin), *gdw = malloc((size_t)f * c * 9 * sizeof *gdw);
    float *dflat = calloc((size_t)f * oh * w, sizeof *dflat);
    size_t pw = (size_t)ow + 4, ph = (size_t)oh + 4;
    float *dpad = calloc((size_t)f * ph * pw, sizeof *dpad);
    float *wflip = malloc((size_t)f * c * 9 * sizeof *wflip);
    float *gdin = malloc((size_t)c * h * (w + 2) * sizeof *gdin);
    fill(in, in_n, r, 0.0f, 1.0f);
    fill(wt, (size_t)f * c * 9, r, -0.5f, 0.5f);
    fill(bias, (size_t)f, r, -0.2f, 0.2f);
    fill(dout, out_n, r, -1.0f, 1.0f);
    char what[96];
    double worst = 0;

    /* forward, in three uneven pieces of the flattened range (any split gives the
     * same values: every lane follows the same sequence of operations) */
    ld_conv3x3_forward(ref, in, wt, bias, 1, c, f, h, w);
    long flat = (long)(oh - 1) * w + ow, k1 = flat / 3, k2 = flat / 3 + flat / 5 + 1;
    K->conv3x3(got, (size_t)oh * w, in, (size_t)h * w, w, wt, bias, c, f, 0, k1);
    K->conv3x3(got, (size_t)oh * w, in, (size_t)h * w, w, wt, bias, c, f, k1, k2);
    K->conv3x3(got, (size_t)oh * w, in, (size_t)h * w, w, wt, bias, c, f, k2, flat);
    snprintf(what, sizeof what, "conv3x3 c%d f%d %dx%d forward", c, f, h, w);
    for (int o = 0; o < f; o++) {
        double d = CMP(what, K->name, got + (size_t)o * oh * w, w, ref + (size_t)o * oh * ow, ow, oh, ow);
        if (d > worst) worst = d;
    }

    /* weight gradient: the flattened gradient has its garbage columns at 0 */
    ld_conv3x3_backward(rdin, rdw, NULL, dout, in, wt, 1, c, f, h, w);
    for (int o = 0; o < f; o++)
        for (int i = 0; i < oh; i++)
            memcpy(dflat + ((size_t)o * oh + i) * w, dout + ((size_t)o * oh + i) * ow, (size_t)ow * sizeof *dout);
    K->conv3x3_dweight(gdw, dflat, (size_t)oh * w, in, (size_t)h * w, w, c, f, 0, flat);
    snprintf(what, sizeof what, "conv3x3 c%d f%d %dx%d dweight", c, f, h, w);
    double d = CMP(what, K->name, gdw, c * 9, rdw, c * 9, f, c * 9);
    if (d > worst) worst = d;

    /* input gradient: valid conv of the 2-padded gradient, kernel transposed + flipped */
    for (int o = 0; o < f; o++)
        for (int i = 0; i < oh; i++)
            memcpy(dpad + ((size_t)o * ph + i + 2) * pw + 2, dout + ((size_t)o * oh + i) * ow,
                   (size_t)ow * sizeof *dout);
    for (int o = 0; o < f; o++)
        for (int ch = 0; ch < c; ch++)
            for (int t = 0; t < 9; t++) wflip[((size_t)ch * f + o) * 9 + 8 - t] = wt[((size_t)o * c + ch) * 9 + t];
    long dflat_n = (long)(h - 1) * (w + 2) + w;
    K->conv3x3(gdin, (size_t)h * (w + 2), dpad, ph * pw, (int)pw, wflip, NULL, f, c, 0, dflat_n);
    snprintf(what, sizeof what, "conv3x3 c%d f%d %dx%d dinput", c, f, h, w);
    for (int ch = 0; ch < c; ch++) {
        d = CMP(what, K->name, gdin + (size_t)ch * h * (w + 2), w + 2, rdin + (size_t)ch * h * w, w, h, w);
        if (d > worst) worst = d;
    }
    free(in); free(wt); free(bias); free(ref); free(got); free(dout); free(rdw); free(rdin);
    free(gdw); free(dflat); free(dpad); free(wflip); free(gdin);
    return worst;
}

TEST_SUITE(kernels_conv)
{
    static const conv_shape shapes[] = {
        {1, 4, 100, 100}, {3, 4, 100, 100}, {4, 4, 49, 49}, {4, 8, 23, 23},   /* the paper */
        {3, 5, 7, 9}, {2, 3, 5, 5}, {1, 1, 3, 3}, {5, 7, 11, 6}, {16, 16, 14, 14},
        {8, 16, 31, 31}, {1, 2, 4, 40}, {2, 9, 37, 3},
    };
    int tested = 0;
    for (int i = 0; i < N_ISAS; i++) {
        const ld_kernels *K = ld_kernels_get(isas[i]);
        if (!K) continue;
        ld_rng r;
        ld_rng_seed(&r, 11);
        double worst = 0;
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            double d = check_conv(K, &shapes[s], &r);
            if (d > worst) worst = d;
        }
        fprintf(stderr, "  conv3x3 forward/dweight/dinput [%s]: worst |diff| / scale %.3g over %zu shapes\n",
                K->name, worst, sizeof shapes / sizeof *shapes);
        tested++;
    }
    CHECK(tested >= 1);
}

/* ---- BN statistics --------------------------------------------------------------- */

TEST_SUITE(kernels_stats)
{
    for (int i = 0; i < N_ISAS; i++) {
        const ld_kernels *K = ld_kernels_get(isas[i]);
        if (!K) continue;
        ld_rng r;
        ld_rng_seed(&r, 5);
        static const int dims[][3] = {{98, 98, 100}, {8, 47, 49}, {3, 21, 23}, {1, 1, 3}, {5, 17, 19}};
        double worst = 0;
        for (size_t s = 0; s < sizeof dims / sizeof *dims; s++) {
            int rows = dims[s][0], cols = dims[s][1], stride = dims[s][2];
            float *x = malloc((size_t)rows * stride * sizeof *x);
            fill(x, (size_t)rows * stride, &r, -1.0f, 3.0f);
            /* the columns past `cols` hold garbage that must not count */
            for (int a = 0; a < rows; a++)
                for (int b = cols; b < stride; b++) x[(size_t)a * stride + b] = 1e6f;
            double sum = 0, sq = 0, absum = 0;
            for (int a = 0; a < rows; a++)
                for (int b = 0; b < cols; b++) {
                    sum += x[(size_t)a * stride + b];
                    absum += fabs(x[(size_t)a * stride + b]);
                }
            float mu = (float)(sum / ((double)rows * cols));
            for (int a = 0; a < rows; a++)
                for (int b = 0; b < cols; b++) {
                    double dd = x[(size_t)a * stride + b] - (double)mu;
                    sq += dd * dd;
                }
            double e1 = fabs(K->rows_sum(x, rows, cols, stride) - sum) / (absum > 1 ? absum : 1);
            double e2 = fabs(K->rows_sqdev(x, rows, cols, stride, mu) - sq) / (sq > 1 ? sq : 1);
            CHECK_MSG(e1 <= 1e-6, "rows_sum %dx%d [%s]: relative error %.3g", rows, cols, K->name, e1);
            CHECK_MSG(e2 <= 1e-6, "rows_sqdev %dx%d [%s]: relative error %.3g", rows, cols, K->name, e2);
            if (e1 > worst) worst = e1;
            if (e2 > worst) worst = e2;
            free(x);
        }
        fprintf(stderr, "  rows_sum / rows_sqdev [%s]: worst relative error %.3g\n", K->name, worst);
    }
    /* by hand: rows {1, 2, | 9} and {3, 4, | 9} with 2 columns of stride 3 */
    float small[6] = {1, 2, 9, 3, 4, 9};
    const ld_kernels *G = ld_kernels_get("generic");
    CHECK(G->rows_sum(small, 2, 2, 3) == 10.0f);
    CHECK(G->rows_sqdev(small, 2, 2, 3, 2.5f) == 5.0f);   /* 2.25 + 0.25 + 0.25 + 2.25 */
}

/* ---- BN + ReLU + pool + dropout, and its gradient ----------------------------------- */

/* One plane of side cc through the reference chain (BN train forward on n = 1, ReLU,
 * pool, dropout; and back), against bn_relu_pool / pool_bwd_sums / bn_pool_dconv. */
static void check_bn_pool(const ld_kernels *K, int cc, ld_rng *r, double *worst)
{
    int p = cc / 2, hw = cc * cc, stride = cc + 2;
    size_t pp = (size_t)p * p;
    float *x = malloc((size_t)hw * sizeof *x), *xs = calloc((size_t)cc * stride + 64, sizeof *xs);
    float *bn = malloc((size_t)hw * sizeof *bn), *xhat = malloc((size_t)hw * sizeof *xhat);
    float *relu = malloc((size_t)hw * sizeof *relu), *pool = malloc(pp * sizeof *pool);
    int *argmax = malloc(pp * sizeof *argmax);
    float *mask = malloc(pp * sizeof *mask), *drop = malloc(pp * sizeof *drop);
    float *out = malloc(pp * sizeof *out), *code = malloc(pp * sizeof *code), *xw = malloc(pp * sizeof *xw);
    float *dout = malloc(pp * sizeof *dout), *dpool = malloc(pp * sizeof *dpool);
    float *dbig = malloc((size_t)hw * sizeof *dbig), *dref = malloc((size_t)hw * sizeof *dref);
    float *gval = malloc(pp * sizeof *gval), *dconv = malloc((size_t)cc * stride * sizeof *dconv);
    float *dpad = calloc((size_t)(cc + 4) * (cc + 4), sizeof *dpad);
    fill(x, (size_t)hw, r, -1.0f, 2.0f);
    for (int i = 0; i < cc; i++) {
        memcpy(xs + (size_t)i * stride, x + (size_t)i * cc, (size_t)cc * sizeof *x);
        xs[(size_t)i * stride + cc] = xs[(size_t)i * stride + cc + 1] = 1e3f;   /* garbage */
    }
    ld_dropout_mask(mask, r, 0.3f, (long)pp);
    fill(dout, pp, r, -1.0f, 1.0f);
    float gamma = 0.8f + 0.4f * ld_rng_float(r), beta = 0.3f * ld_rng_float(r) - 0.1f;
    float mean, invstd, rm = 0, rv = 1;
    ld_batchnorm_train_forward(bn, xhat, &mean, &invstd, &rm, &rv, x, &gamma, &beta, 1e-3f, 0.99f, 1, 1, hw);
    ld_relu_forward(relu, bn, hw);
    ld_maxpool2_forward(pool, argmax, relu, 1, cc, cc);
    ld_dropout_apply(drop, pool, mask, (long)pp);

    K->bn_relu_pool(out, code, xw, xs, stride, mask, p, mean, invstd, gamma, beta, 0, p / 2);
    K->bn_relu_pool(out, code, xw, xs, stride, mask, p, mean, invstd, gamma, beta, p / 2, p);
    char what[64];
    snprintf(what, sizeof what, "bn_relu_pool %dx%d out", cc, cc);
    double d = CMP(what, K->name, out, p, drop, p, p, p);
    if (d > *worst) *worst = d;
    int codes_ok = 1;
    float xw_ref[4096];
    for (size_t k = 0; k < pp && k < 4096; k++) {
        int alive = pool[k] > 0.0f, i = argmax[k] / cc, j = argmax[k] % cc;
        int pos = (i % 2) * 2 + (j % 2);
        codes_ok &= alive ? code[k] == (float)pos : code[k] == LD_POOL_DEAD;
        xw_ref[k] = alive ? xhat[argmax[k]] : 0.0f;
    }
    CHECK_MSG(codes_ok, "bn_relu_pool %dx%d [%s]: winners differ from the reference argmax", cc, cc, K->name);
    snprintf(what, sizeof what, "bn_relu_pool %dx%d xhat of winner", cc, cc);
    d = CMP(what, K->name, xw, p, xw_ref, p, p, p);
    if (d > *worst) *worst = d;

    /* backward: dropout, pool, ReLU, BN (reference) against the two fused passes */
    float dgamma, dbeta, sums[2], sums2[2];
    ld_dropout_apply(dpool, dout, mask, (long)pp);
    ld_maxpool2_backward(dbig, dpool, argmax, 1, cc, cc);
    ld_relu_backward(dbig, dbig, relu, hw);
    ld_batchnorm_backward(dref, &dgamma, &dbeta, dbig, xhat, &gamma, &invstd, 1, 1, hw);
    K->pool_bwd_sums(gval, sums, dout, p, mask, code, xw, p, 0, p / 2);
    K->pool_bwd_sums(gval, sums2, dout, p, mask, code, xw, p, p / 2, p);
    sums[0] += sums2[0];
    sums[1] += sums2[1];
    CHECK_NEAR(sums[0], dbeta, TOL * fmax(1.0, fabs(dbeta)));
    CHECK_NEAR(sums[1], dgamma, TOL * fmax(1.0, fabs(dgamma)));
    float scale = gamma * invstd, mean_d = sums[0] / hw, mean_dx = sums[1] / hw;
    int half = (cc / 2) & ~1;   /* two calls, the first ending on an even row */
    K->bn_pool_dconv(dconv, dpad, xs, stride, cc, gval, code, p, mean, invstd, scale, mean_d, mean_dx, 0, half);
    K->bn_pool_dconv(dconv, dpad, xs, stride, cc, gval, code, p, mean, invstd, scale, mean_d, mean_dx, half, cc);
    snprintf(what, sizeof what, "bn_pool_dconv %dx%d", cc, cc);
    d = CMP(what, K->name, dconv, stride, dref, cc, cc, cc);
    if (d > *worst) *worst = d;
    snprintf(what, sizeof what, "bn_pool_dconv %dx%d (padded copy)", cc, cc);
    d = CMP(what, K->name, dpad + 2 * (cc + 4) + 2, cc + 4, dref, cc, cc, cc);
    if (d > *worst) *worst = d;
    int garbage_zero = 1;
    for (int i = 0; i < cc; i++) garbage_zero &= dconv[(size_t)i * stride + cc] == 0.0f && dconv[(size_t)i * stride + cc + 1] == 0.0f;
    CHECK_MSG(garbage_zero, "bn_pool_dconv %dx%d [%s]: garbage columns are 0", cc, cc, K->name);
    free(x); free(xs); free(bn); free(xhat); free(relu); free(pool); free(argmax); free(mask);
    free(drop); free(out); free(code); free(xw); free(dout); free(dpool); free(dbig); free(dref);
    free(gval); free(dconv); free(dpad);
}

TEST_SUITE(kernels_bn_pool)
{
    static const int sides[] = {98, 47, 21, 12, 5, 2, 3, 62, 33};
    for (int i = 0; i < N_ISAS; i++) {
        const ld_kernels *K = ld_kernels_get(isas[i]);
        if (!K) continue;
        ld_rng r;
        ld_rng_seed(&r, 21);
        double worst = 0;
        for (size_t s = 0; s < sizeof sides / sizeof *sides; s++) check_bn_pool(K, sides[s], &r, &worst);
        fprintf(stderr, "  bn_relu_pool / pool_bwd_sums / bn_pool_dconv [%s]: worst |diff| / scale %.3g\n",
                K->name, worst);
    }
    /* ties by hand: a window of four equal positive values -> top-left wins; equal
     * maxima at top-right and bottom-left -> top-right; all negative -> dead */
    const ld_kernels *G = ld_kernels_get("generic");
    float x[4 * 6] = {2, 2, 1, 3, -1, -1,  /* row 0: windows (2,2|2,2) (1,3|3,0) (-1,-1|-2,-3) */
                      2, 2, 3, 0, -2, -3,
                      0, 0, 0, 0, 0, 0,
                      0, 0, 0, 0, 0, 0};
    float out[4], code[4], xw[4];
    G->bn_relu_pool(out, code, xw, x, 6, NULL, 2, 0.0f, 1.0f, 1.0f, 0.0f, 0, 1);
    CHECK(out[0] == 2.0f && code[0] == 0.0f && xw[0] == 2.0f);
    CHECK(out[1] == 3.0f && code[1] == 1.0f && xw[1] == 3.0f);
    /* with gamma < 0 the largest y is the smallest x */
    G->bn_relu_pool(out, code, xw, x + 4, 6, NULL, 1, 0.0f, 1.0f, -1.0f, 0.0f, 0, 1);
    CHECK(out[0] == 3.0f && code[0] == 3.0f && xw[0] == -3.0f);
    G->bn_relu_pool(out, code, xw, x + 4, 6, NULL, 1, 0.0f, 1.0f, 1.0f, 0.0f, 0, 1);
    CHECK(out[0] == 0.0f && code[0] == LD_POOL_DEAD && xw[0] == 0.0f);
}

/* ---- dropout, selection, pool ------------------------------------------------------ */

TEST_SUITE(kernels_dropout)
{
    enum { N = 10007 };
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    static const float rates[] = {0.25f, 0.5f, 0.1f, 0.0f, 0.999f};
    for (size_t i = 0; i < sizeof rates / sizeof *rates; i++) {
        ld_rng ra, rb;
        ld_rng_seed(&ra, 77 + i);
        ld_rng_seed(&rb, 77 + i);
        ld_dropout_mask(a, &ra, rates[i], N);
        ld_dropout_mask_fast(b, &rb, rates[i], N);
        CHECK_MSG(memcmp(a, b, N * sizeof *a) == 0, "fast dropout mask, rate %g: same values", (double)rates[i]);
        CHECK_MSG(memcmp(&ra, &rb, sizeof ra) == 0, "fast dropout mask, rate %g: same draws", (double)rates[i]);
    }
    free(a);
    free(b);
}

TEST_SUITE(kernels_select)
{
    const ld_kernels *best = ld_kernels_best(), *g = ld_kernels_get("generic");
    CHECK(best != NULL && g != NULL);
    CHECK_STR(g->name, "generic");
    CHECK(ld_kernels_get("auto") == best && ld_kernels_get(NULL) == best);
    CHECK(ld_kernels_get("sse9") == NULL);
    for (int i = 0; i < N_ISAS; i++) {
        const ld_kernels *k = ld_kernels_get(isas[i]);
        if (k) CHECK_STR(k->name, isas[i]);
    }
    fprintf(stderr, "  kernels on this CPU: best %s (avx2 %s, avx512 %s)\n", best->name,
            ld_kernels_get("avx2") ? "yes" : "no", ld_kernels_get("avx512") ? "yes" : "no");
    ld_arch arch;
    ld_arch_paper(&arch);
    ld_model m;
    ld_error err = {0};
    if (ld_model_init(&m, &arch, 2, &err)) { CHECK_MSG(0, "init: %s", err.msg); return; }
    CHECK_STR(ld_model_kernels(&m), best->name);
    CHECK_INT(ld_model_set_kernels(&m, "reference", &err), LD_OK);
    CHECK_STR(ld_model_kernels(&m), "reference");
    CHECK_INT(ld_model_set_kernels(&m, "mmx", &err), LD_ERR_USAGE);
    CHECK(strstr(err.msg, "mmx") != NULL);
    CHECK_STR(ld_model_kernels(&m), "reference");
    CHECK_INT(ld_model_set_kernels(&m, "generic", &err), LD_OK);
    CHECK_STR(ld_model_kernels(&m), "generic");
    CHECK_INT(ld_model_threads(&m), 1);
    CHECK_INT(ld_model_set_threads(&m, 0, &err), LD_ERR_USAGE);
    CHECK_INT(ld_model_set_threads(&m, 3, &err), LD_OK);
    CHECK_INT(ld_model_threads(&m), 3);
    CHECK_INT(ld_model_set_threads(&m, 1, &err), LD_OK);
    CHECK_INT(ld_model_threads(&m), 1);
    ld_model_free(&m);
}

typedef struct { int hits[1000]; } pool_ctx;
static void count_unit(void *ctx, int u) { ((pool_ctx *)ctx)->hits[u]++; }

TEST_SUITE(kernels_pool)
{
    ld_error err = {0};
    for (int t = 1; t <= 4; t++) {
        ld_pool *pool = NULL;
        CHECK_INT(ld_pool_init(&pool, t, &err), LD_OK);
        CHECK_INT(ld_pool_threads(pool), t);
        static const int sizes[] = {0, 1, 2, 3, 7, 1000};
        int ok = 1;
        for (int rep = 0; rep < 50; rep++)
            for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
                pool_ctx c;
                memset(&c, 0, sizeof c);
                ld_pool_run(pool, count_unit, &c, sizes[s]);
                for (int u = 0; u < 1000; u++) ok &= c.hits[u] == (u < sizes[s]);
            }
        CHECK_MSG(ok, "pool of %d: every unit runs exactly once", t);
        ld_pool_free(pool);
    }
    CHECK_INT(ld_pool_init(&(ld_pool *){NULL}, 0, &err), LD_ERR_USAGE);
    ld_pool_run(NULL, count_unit, &(pool_ctx){{0}}, 3);   /* NULL pool: the caller alone */
    ld_pool_free(NULL);
}

/* ---- whole network: fast against reference ----------------------------------------- */

/* Two models with the same weights and non-trivial moving statistics. */
static int twin_models(ld_model *ref, ld_model *fast, const ld_arch *arch, int batch, const char *isa,
                       uint64_t seed)
{
    ld_error err = {0};
    if (ld_model_init(ref, arch, batch, &err) || ld_model_init(fast, arch, batch, &err)) {
        CHECK_MSG(0, "init: %s", err.msg);
        return -1;
    }
    ld_model_init_weights(ref, seed);
    ld_rng r;
    ld_rng_seed(&r, seed + 1);
    for (int k = 0; k < arch->n_blocks; k++)
        for (int o = 0; o < arch->filters[k]; o++) {
            ref->p[k].bn_mean[o] = 0.2f * ld_rng_float(&r) - 0.1f;
            ref->p[k].bn_var[o] = 0.05f + 0.5f * ld_rng_float(&r);
            ref->p[k].bn_gamma[o] = 0.7f + 0.6f * ld_rng_float(&r);
            ref->p[k].bn_beta[o] = 0.2f * ld_rng_float(&r) - 0.1f;
            ref->p[k].conv_b[o] = 0.1f * ld_rng_float(&r) - 0.05f;
        }
    memcpy(fast->params, ref->params, ref->n_params * sizeof *ref->params);
    CHECK_INT(ld_model_set_kernels(ref, "reference", &err), LD_OK);
    CHECK_INT(ld_model_set_kernels(fast, isa, &err), LD_OK);
    return 0;
}

/* x [n, C, S, S]: grey (equal channels, conv 1 folded) or colour */
static void make_input(float *x, int n, int C, int S, int equal, ld_rng *r)
{
    size_t SS = (size_t)S * S;
    fill(x, (size_t)n * C * SS, r, 0.0f, 1.0f);
    for (int i = 0; equal && i < n; i++)
        for (int ch = 1; ch < C; ch++) memcpy(x + ((size_t)i * C + ch) * SS, x + (size_t)i * C * SS, SS * sizeof *x);
}

static void compare_models(const ld_model *ref, const ld_model *fast, const char *isa, const char *stage,
                           int grads)
{
    for (int i = 0; i < ref->n_tensors; i++) {
        const ld_tensor *t = &ref->tensors[i];
        char what[96];
        snprintf(what, sizeof what, "%s %s%s", stage, grads ? "grad " : "", t->name);
        const float *a = (grads ? fast->grads : fast->params) + t->offset;
        const float *b = (grads ? ref->grads : ref->params) + t->offset;
        CMP(what, isa, a, 0, b, 0, 1, (int)t->numel);
    }
}

static void check_network(const ld_arch *arch, const char *isa, int equal, int n)
{
    ld_model ref, fast;
    if (twin_models(&ref, &fast, arch, n, isa, 3) != 0) return;
    int C = arch->in_channels, S = arch->input_size;
    float *x = malloc((size_t)n * C * S * S * sizeof *x);
    float y[8] = {1, 0, 0, 1, 1, 0, 1, 0}, lr[8], lf[8], dl[8];
    ld_rng r, rr, rf;
    ld_rng_seed(&r, 99);
    make_input(x, n, C, S, equal, &r);
    char what[96];
    const char *kind = equal ? "grey" : "colour";

    ld_model_forward(&ref, x, n, 0, NULL, lr);
    ld_model_forward(&fast, x, n, 0, NULL, lf);
    snprintf(what, sizeof what, "%s %s n%d inference logits", arch->preset, kind, n);
    CMP(what, isa, lf, 0, lr, 0, 1, n);

    ld_rng_seed(&rr, 5);
    ld_rng_seed(&rf, 5);
    ld_model_forward(&ref, x, n, 1, &rr, lr);
    ld_model_forward(&fast, x, n, 1, &rf, lf);
    CHECK_MSG(memcmp(&rr, &rf, sizeof rr) == 0, "%s [%s]: dropout draws the same numbers", arch->preset, isa);
    int same_masks = 1;
    for (int k = 0; k < arch->n_blocks; k++) {
        int s = ld_arch_block_out(arch, k);
        same_masks &= memcmp(ld_model_dropout_mask(&ref, k), ld_model_dropout_mask(&fast, k),
                             (size_t)n * arch->filters[k] * s * s * sizeof(float)) == 0;
    }
    CHECK_MSG(same_masks, "%s [%s]: same dropout masks", arch->preset, isa);
    snprintf(what, sizeof what, "%s %s n%d training logits", arch->preset, kind, n);
    CMP(what, isa, lf, 0, lr, 0, 1, n);
    snprintf(what, sizeof what, "%s %s n%d after forward:", arch->preset, kind, n);
    compare_models(&ref, &fast, isa, what, 0);   /* the moving statistics */

    ld_bce_logits(dl, lr, y, n);
    ld_model_backward(&ref, dl, n);
    ld_model_backward(&fast, dl, n);   /* the same dlogits: compare the backward alone */
    snprintf(what, sizeof what, "%s %s n%d", arch->preset, kind, n);
    compare_models(&ref, &fast, isa, what, 1);
    int zero_bias = 1;
    for (int k = 0; k < arch->n_blocks; k++)
        for (int o = 0; o < arch->filters[k]; o++) zero_bias &= fast.g[k].conv_b[o] == 0.0f;
    CHECK_MSG(zero_bias, "%s [%s]: conv biases get an exactly zero gradient", arch->preset, isa);
    free(x);
    ld_model_free(&ref);
    ld_model_free(&fast);
}

TEST_SUITE(kernels_network)
{
    ld_arch paper, odd, deep;
    ld_arch_paper(&paper);
    ld_arch_paper(&odd);      /* 45 -> 43 -> 21 -> 19 -> 9 -> 7 -> 3, 5 filters: odd everywhere */
    odd.input_size = 45;
    odd.filters[0] = 5;
    odd.filters[1] = 3;
    odd.filters[2] = 7;
    snprintf(odd.preset, sizeof odd.preset, "odd");
    ld_arch_paper(&deep);     /* 4 blocks, 16 channels, as the detection preset */
    deep.input_size = 64;
    deep.n_blocks = 4;
    deep.filters[0] = 4;
    deep.filters[1] = 8;
    deep.filters[2] = 16;
    deep.filters[3] = 16;
    deep.dropout = 0.0f;
    snprintf(deep.preset, sizeof deep.preset, "deep");
    for (int i = 0; i < N_ISAS; i++) {
        if (!ld_kernels_get(isas[i])) continue;
        check_network(&paper, isas[i], 1, 5);
        check_network(&paper, isas[i], 0, 5);
        check_network(&paper, isas[i], 1, 2);
        check_network(&odd, isas[i], 1, 3);
        check_network(&odd, isas[i], 0, 1);
        check_network(&deep, isas[i], 1, 4);
    }
}

/* Training steps: fast and reference stay together (the golden test's tolerance:
 * Adam divides each gradient by its own size, so it magnifies relative differences
 * of the smallest gradients), and the fast path is bit-identical for 1, 2 and 3
 * threads. */
TEST_SUITE(kernels_train_steps)
{
    ld_arch arch;
    ld_arch_paper(&arch);
    enum { N = 5, STEPS = 6 };
    float *x = malloc((size_t)N * 3 * 100 * 100 * sizeof *x);
    float y[N] = {1, 0, 1, 1, 0};
    ld_rng r;
    ld_rng_seed(&r, 4);
    make_input(x, N, 3, 100, 1, &r);
    ld_adam_config cfg;
    ld_adam_default(&cfg);
    cfg.lr = 1e-3f;
    ld_model ref, fast[3];
    ld_error err = {0};
    if (twin_models(&ref, &fast[0], &arch, N, "auto", 8) != 0) { free(x); return; }
    for (int t = 1; t < 3; t++) {
        CHECK_INT(ld_model_init(&fast[t], &arch, N, &err), LD_OK);
        memcpy(fast[t].params, ref.params, ref.n_params * sizeof *ref.params);
        CHECK_INT(ld_model_set_threads(&fast[t], t + 1, &err), LD_OK);
    }
    ld_rng rr, rf[3];
    ld_rng_seed(&rr, 6);
    for (int t = 0; t < 3; t++) ld_rng_seed(&rf[t], 6);
    double worst = 0;
    for (int s = 0; s < STEPS; s++) {
        ld_model_train_step(&ref, x, y, N, &cfg, &rr, NULL);
        for (int t = 0; t < 3; t++) ld_model_train_step(&fast[t], x, y, N, &cfg, &rf[t], NULL);
    }
    for (size_t i = 0; i < ref.n_params; i++) {
        double d = fabs((double)fast[0].params[i] - ref.params[i]);
        double lim = 1e-5 + 1e-4 * fabs(ref.params[i]);
        if (d / lim > worst) worst = d / lim;
    }
    CHECK_MSG(worst <= 1.0, "after %d steps fast and reference weights differ by %.3g of the tolerance",
              STEPS, worst);
    fprintf(stderr, "  %d training steps [%s]: weights within %.3g of the tolerance 1e-5 + 1e-4 |w|\n",
            STEPS, ld_model_kernels(&fast[0]), worst);
    for (int t = 1; t < 3; t++)
        CHECK_MSG(memcmp(fast[t].params, fast[0].params, ref.n_params * sizeof(float)) == 0,
                  "%d threads give the same weights as 1, bit for bit", t + 1);
    free(x);
    ld_model_free(&ref);
    for (int t = 0; t < 3; t++) ld_model_free(&fast[t]);
}
