/* test_scan.c — dense scanning equals classifying every cropped window on its own.
 *
 * A seeded random model with non-trivial BN statistics (gamma of both signs,
 * shifted means, variances far from 1, non-zero biases) scans a seeded 469 x 469
 * speckle-and-blobs image; every stride-8 window, and every stride-1/2/4 window
 * of smaller images (one a sub-rectangle read through a row stride), is compared
 * with ld_model_predict on the cropped window. A second architecture (2 blocks,
 * 40 px input, P = 4) checks that nothing assumes the paper's 8 and 100. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "alloc.h"
#include "lymphdet/detect.h"
#include "lymphdet/model.h"
#include "lymphdet/rng.h"
#include "test.h"

/* Random BN statistics and biases so that folding BN into the conv is exercised,
 * and a dense layer scaled so the probabilities spread over (0, 1). */
static void randomise_model(ld_model *m, uint64_t seed)
{
    ld_rng rng;
    ld_rng_seed(&rng, seed);
    ld_model_init_weights(m, seed);
    for (int k = 0; k < m->arch.n_blocks; k++) {
        ld_block_params *p = &m->p[k];
        for (int f = 0; f < m->arch.filters[k]; f++) {
            float g = 0.5f + ld_rng_float(&rng);
            p->bn_gamma[f] = f == 1 ? -g : g;
            p->bn_beta[f] = 0.4f * (ld_rng_float(&rng) - 0.5f);
            p->bn_mean[f] = 0.3f * (ld_rng_float(&rng) - 0.3f);
            p->bn_var[f] = 0.05f + 2.0f * ld_rng_float(&rng);
            p->conv_b[f] = 0.2f * (ld_rng_float(&rng) - 0.5f);
        }
    }
    int s = ld_arch_block_out(&m->arch, m->arch.n_blocks - 1);
    size_t d = (size_t)m->arch.filters[m->arch.n_blocks - 1] * s * s;
    for (size_t i = 0; i < d; i++) m->dense_w[i] *= 20.0f;
    m->dense_b[0] = -0.5f;
}

/* Speckle (uniform noise) plus dark and bright discs: grey bytes [h, w]. */
static void make_image(uint8_t *px, int w, int h, uint64_t seed)
{
    ld_rng rng;
    ld_rng_seed(&rng, seed);
    for (int i = 0; i < w * h; i++) px[i] = (uint8_t)(60 + ld_rng_below(&rng, 120));
    for (int b = 0; b < 12; b++) {
        double cx = ld_rng_double(&rng) * w, cy = ld_rng_double(&rng) * h;
        double r = 8 + ld_rng_double(&rng) * 50;
        int dark = b % 3 != 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if ((x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r)
                    px[y * w + x] = (uint8_t)(dark ? 10 + ld_rng_below(&rng, 30)
                                                   : 200 + ld_rng_below(&rng, 55));
    }
}

/* Max |scan - predict| over every window of img (a w x h region with rows
 * row_stride floats apart); also the spread of the probabilities. */
static double compare_windows(ld_model *m, ld_scanner *sc, const float *img, int w, int h,
                              size_t row_stride, int stride, int *n_windows, double *spread)
{
    ld_error err = {0};
    int nx, ny, S = m->arch.input_size, C = m->arch.in_channels;
    *n_windows = 0;
    if (ld_scan_grid(&nx, &ny, sc, w, h, stride, &err)) return 1e9;
    float *probs = malloc(sizeof(float) * nx * ny);
    int batch = m->batch_cap;
    float *x = malloc(sizeof(float) * batch * C * S * S), *ref = malloc(sizeof(float) * batch);
    if (ld_scanner_run(sc, probs, img, w, h, row_stride, stride, &err)) {
        fprintf(stderr, "scan failed: %s\n", err.msg);
        free(probs); free(x); free(ref);
        return 1e9;
    }
    double maxdiff = 0, lo = 1, hi = 0;
    for (int start = 0; start < nx * ny; start += batch) {
        int n = nx * ny - start < batch ? nx * ny - start : batch;
        for (int b = 0; b < n; b++) {
            int i = (start + b) / nx, j = (start + b) % nx;
            for (int c = 0; c < C; c++)
                for (int y = 0; y < S; y++)
                    for (int xx = 0; xx < S; xx++)
                        x[(((size_t)b * C + c) * S + y) * S + xx] =
                            img[(size_t)(i * stride + y) * row_stride + j * stride + xx];
        }
        ld_model_predict(m, x, n, ref);
        for (int b = 0; b < n; b++) {
            double d = fabs((double)probs[start + b] - ref[b]);
            if (d > maxdiff) maxdiff = d;
            if (ref[b] < lo) lo = ref[b];
            if (ref[b] > hi) hi = ref[b];
        }
    }
    *n_windows = nx * ny;
    *spread = hi - lo;
    free(probs); free(x); free(ref);
    return maxdiff;
}

static void to_float(float *out, const uint8_t *px, int n)
{
    for (int i = 0; i < n; i++) out[i] = px[i] / 255.0f;
}

TEST_SUITE(scan_exact_paper)
{
    ld_error err = {0};
    ld_arch arch;
    ld_arch_paper(&arch);
    ld_model m;
    CHECK_INT(ld_model_init(&m, &arch, 64, &err), LD_OK);
    randomise_model(&m, 7);
    ld_scanner sc;
    CHECK_INT(ld_scanner_init(&sc, &m, &err), LD_OK);
    CHECK_INT(sc.period, 8);
    CHECK_INT(sc.s_out, 10);

    enum { W = 469, H = 469 };
    uint8_t *px = malloc(W * H);
    float *img = malloc(sizeof(float) * W * H);
    make_image(px, W, H, 11);
    to_float(img, px, W * H);

    int n;
    double spread, d = compare_windows(&m, &sc, img, W, H, W, 8, &n, &spread);
    fprintf(stderr, "  scan 469x469 stride 8: %d windows, max |scan - predict| = %.3g "
                    "(probabilities spread over %.3f)\n", n, d, spread);
    CHECK_INT(n, 47 * 47);
    CHECK(d <= 1e-5);
    CHECK(spread > 0.3);   /* the windows differ: a misplaced window would show */

    /* strides 4, 2, 1 on smaller images; the stride-1 one is a sub-rectangle of the
     * big image read through its row stride, with a right/bottom edge just past a
     * multiple of 8 so the last windows end exactly at the border */
    d = compare_windows(&m, &sc, img + 37 * W + 53, 121, 114, W, 1, &n, &spread);
    fprintf(stderr, "  scan 121x114 stride 1: %d windows, max diff %.3g\n", n, d);
    CHECK_INT(n, 22 * 15);
    CHECK(d <= 1e-5);
    d = compare_windows(&m, &sc, img + 5 * W + 200, 157, 131, W, 2, &n, &spread);
    fprintf(stderr, "  scan 157x131 stride 2: %d windows, max diff %.3g\n", n, d);
    CHECK_INT(n, 29 * 16);
    CHECK(d <= 1e-5);
    d = compare_windows(&m, &sc, img + 100 * W + 100, 203, 100, W, 4, &n, &spread);
    fprintf(stderr, "  scan 203x100 stride 4: %d windows, max diff %.3g\n", n, d);
    CHECK_INT(n, 26 * 1);
    CHECK(d <= 1e-5);

    /* a stride that is a multiple of P reads the same features: bit-identical to
     * every other stride-8 window; stride 4 contains the stride-8 grid too */
    float *p8 = malloc(sizeof(float) * 47 * 47), *p16 = malloc(sizeof(float) * 24 * 24),
          *p4 = malloc(sizeof(float) * 93 * 93);
    CHECK_INT(ld_scanner_run(&sc, p8, img, W, H, W, 8, &err), LD_OK);
    CHECK_INT(ld_scanner_run(&sc, p16, img, W, H, W, 16, &err), LD_OK);
    CHECK_INT(ld_scanner_run(&sc, p4, img, W, H, W, 4, &err), LD_OK);
    int same16 = 1, same4 = 1;
    for (int i = 0; i < 24; i++)
        for (int j = 0; j < 24; j++) same16 &= p16[i * 24 + j] == p8[2 * i * 47 + 2 * j];
    for (int i = 0; i < 47; i++)
        for (int j = 0; j < 47; j++) same4 &= p4[2 * i * 93 + 2 * j] == p8[i * 47 + j];
    CHECK(same16);
    CHECK(same4);

    /* warm: scanning again (and a smaller image) allocates nothing */
    ld_alloc_fail_after(1);
    ld_status s1 = ld_scanner_run(&sc, p8, img, W, H, W, 8, &err);
    ld_status s2 = ld_scanner_run(&sc, p4, img, 300, 250, W, 4, &err);
    long allocs = ld_alloc_fail_after(0);
    CHECK_INT(s1, LD_OK);
    CHECK_INT(s2, LD_OK);
    CHECK_INT(allocs, 0);

    /* a few milliseconds per 469 x 469 frame (printed, not asserted: machines vary) */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < 20; r++) ld_scanner_run(&sc, p8, img, W, H, W, 8, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "  scan 469x469 stride 8: %.2f ms per frame\n",
            ((t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6) / 20);

    free(p8); free(p16); free(p4);
    free(px); free(img);
    ld_scanner_free(&sc);
    ld_model_free(&m);
}

TEST_SUITE(scan_exact_other_arch)
{
    /* 40 -> 38 -> 19 -> 17 -> 8: P = 4, s_out = 8, grey input */
    ld_error err = {0};
    ld_arch arch;
    ld_arch_paper(&arch);
    arch.input_size = 40;
    arch.in_channels = 1;
    arch.n_blocks = 2;
    arch.filters[0] = 3;
    arch.filters[1] = 5;
    ld_model m;
    CHECK_INT(ld_model_init(&m, &arch, 32, &err), LD_OK);
    randomise_model(&m, 3);
    ld_scanner sc;
    CHECK_INT(ld_scanner_init(&sc, &m, &err), LD_OK);
    CHECK_INT(sc.period, 4);
    CHECK_INT(sc.s_out, 8);
    enum { W = 67, H = 58 };
    uint8_t px[W * H];
    float img[W * H];
    make_image(px, W, H, 5);
    to_float(img, px, W * H);
    int n;
    double spread;
    double d1 = compare_windows(&m, &sc, img, W, H, W, 1, &n, &spread);
    fprintf(stderr, "  2-block net, 67x58 stride 1: %d windows, max diff %.3g\n", n, d1);
    CHECK_INT(n, 28 * 19);
    CHECK(d1 <= 1e-5);
    double d4 = compare_windows(&m, &sc, img, W, H, W, 4, &n, &spread);
    CHECK_INT(n, 7 * 5);
    CHECK(d4 <= 1e-5);
    double d8 = compare_windows(&m, &sc, img, W, H, W, 8, &n, &spread);
    CHECK_INT(n, 4 * 3);
    CHECK(d8 <= 1e-5);
    ld_scanner_free(&sc);
    ld_model_free(&m);
}

TEST_SUITE(scan_grid)
{
    ld_error err = {0};
    ld_arch arch;
    ld_arch_paper(&arch);
    ld_model m;
    CHECK_INT(ld_model_init(&m, &arch, 1, &err), LD_OK);
    ld_model_init_weights(&m, 1);
    ld_scanner sc;
    CHECK_INT(ld_scanner_init(&sc, &m, &err), LD_OK);
    int nx, ny;
    CHECK_INT(ld_scan_grid(&nx, &ny, &sc, 116, 108, 8, &err), LD_OK);
    CHECK_INT(nx, 3);
    CHECK_INT(ny, 2);
    CHECK_INT(ld_scan_grid(&nx, &ny, &sc, 469, 469, 1, &err), LD_OK);
    CHECK_INT(nx, 370);
    CHECK_INT(ld_scan_grid(&nx, &ny, &sc, 100, 100, 16, &err), LD_OK);
    CHECK_INT(nx * ny, 1);
    CHECK_INT(ld_scan_grid(&nx, &ny, &sc, 99, 300, 8, &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, "99x300") != NULL);
    CHECK_INT(ld_scan_grid(&nx, &ny, &sc, 200, 200, 3, &err), LD_ERR_USAGE);
    CHECK_INT(ld_scan_grid(&nx, &ny, &sc, 200, 200, 12, &err), LD_ERR_USAGE);
    CHECK_INT(ld_scan_grid(&nx, &ny, &sc, 200, 200, 0, &err), LD_ERR_USAGE);
    /* the scanner owns a copy: the model can go */
    ld_model_free(&m);
    float img[100 * 100], p;
    for (int i = 0; i < 100 * 100; i++) img[i] = (i % 7) / 7.0f;
    CHECK_INT(ld_scanner_run(&sc, &p, img, 100, 100, 100, 8, &err), LD_OK);
    CHECK(p > 0 && p < 1);
    ld_scanner_free(&sc);
}
