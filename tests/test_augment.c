/* test_augment.c — augmentation: flips of frames and boxes, the Gaussian blur's
 * weights, each photometric operation against its formula with the same draws,
 * switches that really switch off (no draw, no change), determinism, and the
 * statistics of the normal draws and of speckle. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "test.h"
#include "lymphdet/augment.h"

TEST_SUITE(augment_flips)
{
    /* 3 x 2 plane:  1 2 3      left-right: 3 2 1      top-bottom: 4 5 6
     *               4 5 6                  6 5 4                  1 2 3 */
    float p[6] = {1, 2, 3, 4, 5, 6};
    ld_augment_flip_plane(p, 3, 2, 1, 0);
    float h[6] = {3, 2, 1, 6, 5, 4};
    CHECK(memcmp(p, h, sizeof p) == 0);
    ld_augment_flip_plane(p, 3, 2, 1, 1);
    float hv[6] = {4, 5, 6, 1, 2, 3};
    CHECK(memcmp(p, hv, sizeof p) == 0);
    /* a box (10, 20, 30, 5) in a 100 x 50 frame: x -> 100 - 40 = 60, y -> 50 - 25 = 25 */
    ld_box b = {10, 20, 30, 5, 0};
    ld_augment_flip_boxes(&b, 1, 100, 50, 1, 0);
    CHECK_NEAR(b.x, 60, 0);
    CHECK_NEAR(b.y, 20, 0);
    ld_augment_flip_boxes(&b, 1, 100, 50, 0, 1);
    CHECK_NEAR(b.y, 25, 0);
    CHECK_NEAR(b.w, 30, 0);
    CHECK_NEAR(b.h, 5, 0);
    /* flips are drawn only when switched on */
    ld_augment_config cfg;
    ld_augment_config_none(&cfg);
    ld_rng r1, r2;
    ld_rng_seed(&r1, 1);
    ld_rng_seed(&r2, 1);
    int fh = 7, fv = 7;
    ld_augment_draw_flips(&fh, &fv, &cfg, &r1);
    CHECK(fh == 0 && fv == 0);
    CHECK(memcmp(&r1, &r2, sizeof r1) == 0);
    /* on: about half of the frames are flipped */
    cfg.flip_h = cfg.flip_v = 1;
    int nh = 0, nv = 0;
    for (int i = 0; i < 10000; i++) {
        ld_augment_draw_flips(&fh, &fv, &cfg, &r1);
        nh += fh;
        nv += fv;
    }
    CHECK_MSG(nh > 4800 && nh < 5200 && nv > 4800 && nv < 5200, "flips %d, %d of 10000", nh, nv);
}

TEST_SUITE(augment_blur)
{
    /* an impulse in a 21 x 21 plane spreads into the separable Gaussian kernel:
     * sigma 1, r 3, weights exp(-d^2/2) / (1 + 2 e^-1/2 + 2 e^-2 + 2 e^-9/2) */
    enum { N = 21 };
    float img[N * N] = {0}, scratch[N + 2 * 64];
    img[10 * N + 10] = 1;
    ld_gaussian_blur(img, N, N, 1.0f, scratch);
    double z = 1 + 2 * exp(-0.5) + 2 * exp(-2.0) + 2 * exp(-4.5), sum = 0, worst = 0;
    for (int y = 0; y < N; y++)
        for (int x = 0; x < N; x++) {
            int dy = abs(y - 10), dx = abs(x - 10);
            double want = dx <= 3 && dy <= 3 ? exp(-0.5 * dx * dx) * exp(-0.5 * dy * dy) / (z * z) : 0;
            worst = fmax(worst, fabs(img[y * N + x] - want));
            sum += img[y * N + x];
        }
    CHECK_MSG(worst < 1e-7, "blurred impulse vs the Gaussian: %g", worst);
    CHECK_NEAR(sum, 1, 1e-6);
    /* a constant plane stays constant (mirrored borders keep the mean), also when the
     * radius (ceil(3 * 2.5) = 8) exceeds the plane (5 x 4) */
    float c[20];
    for (int i = 0; i < 20; i++) c[i] = 0.4f;
    ld_gaussian_blur(c, 5, 4, 2.5f, scratch);
    double cw = 0;
    for (int i = 0; i < 20; i++) cw = fmax(cw, fabs(c[i] - 0.4));
    CHECK_MSG(cw < 1e-6, "constant plane changed by %g", cw);
    /* sigma 0 is the identity */
    float k[4] = {0.1f, 0.2f, 0.3f, 0.4f}, k0[4];
    memcpy(k0, k, sizeof k);
    ld_gaussian_blur(k, 2, 2, 0.0f, scratch);
    CHECK(memcmp(k, k0, sizeof k) == 0);
}

/* a small test frame: a ramp 0.05 .. 0.95 */
static void ramp(float *img, int n)
{
    for (int i = 0; i < n; i++) img[i] = 0.05f + 0.9f * (float)i / (float)(n - 1);
}

TEST_SUITE(augment_photometric)
{
    enum { W = 16, H = 8, N = W * H };
    float img[N], ref[N], scratch[W + 2 * 64];
    ld_augment_config cfg;
    ld_rng rng, twin;

    /* everything off: no change and no draw */
    ld_augment_config_none(&cfg);
    ramp(img, N);
    memcpy(ref, img, sizeof img);
    ld_rng_seed(&rng, 5);
    twin = rng;
    ld_augment_photometric(img, W, H, scratch, &cfg, &rng);
    CHECK(memcmp(img, ref, sizeof img) == 0);
    CHECK(memcmp(&rng, &twin, sizeof rng) == 0);

    /* gamma alone: x^g with g = exp(gamma (2u - 1)), u the first draw */
    cfg.gamma = 0.3f;
    ramp(img, N);
    ld_rng_seed(&rng, 5);
    twin = rng;
    double g = exp(0.3f * (2 * ld_rng_double(&twin) - 1));
    ld_augment_photometric(img, W, H, scratch, &cfg, &rng);
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(img[i] - pow(0.05 + 0.9 * i / (N - 1.0), g)));
    CHECK_MSG(worst < 1e-6, "gamma %g: %g", g, worst);
    CHECK_MSG(fabs(g - 1) > 1e-3, "the draw moved gamma");

    /* contrast alone: mu + c (x - mu) around the frame mean (0.5 for the ramp) */
    ld_augment_config_none(&cfg);
    cfg.contrast = 0.2f;
    ramp(img, N);
    ld_rng_seed(&rng, 6);
    twin = rng;
    double c = 1 + 0.2f * (2 * ld_rng_double(&twin) - 1);
    ld_augment_photometric(img, W, H, scratch, &cfg, &rng);
    worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(img[i] - (0.5 + c * (0.05 + 0.9 * i / (N - 1.0) - 0.5))));
    CHECK_MSG(worst < 1e-6, "contrast %g: %g", c, worst);

    /* brightness alone, clamped to [0, 1] */
    ld_augment_config_none(&cfg);
    cfg.brightness = 0.1f;
    ramp(img, N);
    ld_rng_seed(&rng, 7);
    twin = rng;
    double b = 0.1f * (2 * ld_rng_double(&twin) - 1);
    ld_augment_photometric(img, W, H, scratch, &cfg, &rng);
    worst = 0;
    for (int i = 0; i < N; i++) {
        double want = fmin(1, fmax(0, (float)(0.05f + 0.9f * (float)i / (float)(N - 1)) + (float)b));
        worst = fmax(worst, fabs(img[i] - want));
    }
    CHECK_MSG(worst < 1e-6, "brightness %g: %g", b, worst);

    /* the whole chain: same seed, same frame, bit for bit; another seed differs */
    ld_augment_config_default(&cfg);
    float a1[N], a2[N], a3[N];
    ramp(a1, N);
    ramp(a2, N);
    ramp(a3, N);
    ld_rng_seed(&rng, 9);
    ld_augment_photometric(a1, W, H, scratch, &cfg, &rng);
    ld_rng_seed(&rng, 9);
    ld_augment_photometric(a2, W, H, scratch, &cfg, &rng);
    ld_rng_seed(&rng, 10);
    ld_augment_photometric(a3, W, H, scratch, &cfg, &rng);
    CHECK(memcmp(a1, a2, sizeof a1) == 0);
    CHECK(memcmp(a1, a3, sizeof a1) != 0);
    int in_range = 1;
    for (int i = 0; i < N; i++) in_range &= a1[i] >= 0 && a1[i] <= 1;
    CHECK(in_range);
    CHECK_INT((long)ld_augment_scratch_size(W, H, &cfg), W + 2 * 3);
}

TEST_SUITE(augment_noise)
{
    /* Box-Muller draws: mean 0, variance 1, symmetric (100 000 draws: standard errors
     * 0.003 and 0.0045) */
    ld_rng rng;
    ld_rng_seed(&rng, 12);
    double s = 0, s2 = 0, s3 = 0;
    enum { N = 100000 };
    for (int i = 0; i < N; i++) {
        double v = ld_augment_normal(&rng);
        s += v;
        s2 += v * v;
        s3 += v * v * v;
    }
    CHECK_NEAR(s / N, 0, 0.015);
    CHECK_NEAR(s2 / N, 1, 0.03);
    CHECK_NEAR(s3 / N, 0, 0.05);
    /* speckle is multiplicative: on a flat 0.5 frame the mean stays 0.5 and the
     * spread is 0.5 x the drawn std (<= 0.15): the std of the frame is in (0, 0.075] */
    ld_augment_config cfg;
    ld_augment_config_none(&cfg);
    cfg.speckle = 0.15f;
    enum { W = 200, H = 200 };
    float *img = malloc(sizeof(float) * W * H), scratch[W];
    for (int i = 0; i < W * H; i++) img[i] = 0.5f;
    ld_augment_photometric(img, W, H, scratch, &cfg, &rng);
    double m = 0, v = 0;
    for (int i = 0; i < W * H; i++) m += img[i];
    m /= W * H;
    for (int i = 0; i < W * H; i++) v += (img[i] - m) * (img[i] - m);
    double sd = sqrt(v / (W * H));
    CHECK_NEAR(m, 0.5, 0.002);
    CHECK_MSG(sd > 0 && sd <= 0.0755, "speckle std %g", sd);
    /* pixels at 0 stay 0 (no noise out of black) */
    for (int i = 0; i < W * H; i++) img[i] = 0;
    ld_augment_photometric(img, W, H, scratch, &cfg, &rng);
    double mx = 0;
    for (int i = 0; i < W * H; i++) mx = fmax(mx, img[i]);
    CHECK_NEAR(mx, 0, 0);
    free(img);
}
