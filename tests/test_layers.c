/* test_layers.c — the reference kernels of layers.c: small forward cases worked out by
 * hand, then finite-difference gradient checks of every backward on tiny shapes.
 *
 * The finite differences perturb one float input at a time by h and evaluate the
 * scalar L = sum(out * r) (r random, fixed) in double, using the actual float step
 * (float(x + h) - float(x - h)) as the denominator. Layers linear in the perturbed
 * value (conv, dense, dropout) use a large h = 0.5, which is exact for them and keeps
 * float rounding of the forward out of the quotient; the others use small h and
 * inputs away from the kinks: ReLU inputs at least 0.1 from 0, max-pool windows with
 * gaps of 0.1 >> h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lymphdet/layers.h"
#include "lymphdet/model.h"
#include "test.h"

/* ---- forward cases by hand ---- */

TEST_SUITE(layers_conv_hand)
{
    /* in(i,j) = 4i + j + 1 on a 4x4 plane, kernel [[1,2,0],[0,0,0],[0,0,-1]], bias 0.5:
     * out(i,j) = in(i,j) + 2 in(i,j+1) - in(i+2,j+2) + 0.5 = 8i + 2j - 5.5.
     * (A flipped kernel, i.e. true convolution, would give other numbers.) */
    float in[16], w[9] = {1, 2, 0, 0, 0, 0, 0, 0, -1}, b[1] = {0.5f}, out[4];
    for (int i = 0; i < 16; i++) in[i] = (float)(i + 1);
    ld_conv3x3_forward(out, in, w, b, 1, 1, 1, 4, 4);
    CHECK(out[0] == -5.5f && out[1] == -3.5f && out[2] == 2.5f && out[3] == 4.5f);
    /* backward with dout = 1: dbias = 4; dweight(a,b) = sum of the 2x2 block at (a,b)
     * = 16a + 4b + 14; dinp(p,q) = sum of the kernel taps that touch (p,q) */
    float dout[4] = {1, 1, 1, 1}, dw[9], db[1], din[16];
    ld_conv3x3_backward(din, dw, db, dout, in, w, 1, 1, 1, 4, 4);
    CHECK(db[0] == 4.0f);
    int dw_ok = 1;
    for (int a = 0; a < 3; a++)
        for (int e = 0; e < 3; e++) dw_ok &= dw[a * 3 + e] == (float)(16 * a + 4 * e + 14);
    CHECK(dw_ok);
    CHECK(din[0] == 1.0f);     /* w[0][0] only */
    CHECK(din[1] == 3.0f);     /* w[0][1] + w[0][0] */
    CHECK(din[2] == 2.0f);     /* w[0][2] + w[0][1] */
    CHECK(din[15] == -1.0f);   /* w[2][2] only */
    CHECK(din[5] == 3.0f);     /* w[0][0]+w[0][1]+w[1][0]+w[1][1] */
    /* a second input channel of ones with all taps 0.1 adds 0.9; two filters stay apart */
    float in2[32], w2[2 * 2 * 9], b2[2] = {0.5f, -1.0f}, out2[8];
    for (int i = 0; i < 16; i++) { in2[i] = in[i]; in2[16 + i] = 1.0f; }
    memset(w2, 0, sizeof w2);
    memcpy(w2, w, sizeof w);                                    /* filter 0, channel 0 */
    for (int k = 0; k < 9; k++) w2[9 + k] = 0.1f;               /* filter 0, channel 1 */
    w2[18 + 4] = 1.0f;                                          /* filter 1, channel 0: centre tap */
    ld_conv3x3_forward(out2, in2, w2, b2, 1, 2, 2, 4, 4);
    CHECK_NEAR(out2[0], -5.5 + 0.9, 1e-6);
    CHECK_NEAR(out2[3], 4.5 + 0.9, 1e-6);
    CHECK(out2[4] == 6.0f - 1.0f && out2[5] == 7.0f - 1.0f && out2[6] == 10.0f - 1.0f && out2[7] == 11.0f - 1.0f);
    /* non-square: a 3x5 plane gives 1x3 */
    float in3[15], out3[3], w3[9] = {0, 0, 0, 0, 0, 0, 0, 0, 1}, b3[1] = {0};
    for (int i = 0; i < 15; i++) in3[i] = (float)i;
    ld_conv3x3_forward(out3, in3, w3, b3, 1, 1, 1, 3, 5);
    CHECK(out3[0] == 12.0f && out3[1] == 13.0f && out3[2] == 14.0f);
}

TEST_SUITE(layers_batchnorm_hand)
{
    /* one channel, batch of 2 with 2 pixels each: {1, 2, 3, 4}: mean 2.5, biased
     * variance 1.25, invstd = 1/sqrt(1.251) = 0.894069634643; gamma 2, beta 1 */
    float x[4] = {1, 2, 3, 4}, out[4], xhat[4], mean, invstd;
    float gamma = 2.0f, beta = 1.0f, rm = 0.0f, rv = 1.0f;
    ld_batchnorm_train_forward(out, xhat, &mean, &invstd, &rm, &rv, x, &gamma, &beta, 1e-3f, 0.99f, 2, 1, 2);
    CHECK_NEAR(mean, 2.5, 1e-7);
    CHECK_NEAR(invstd, 0.894069634643, 1e-7);
    CHECK_NEAR(out[0], -1.682208903929, 1e-6);
    CHECK_NEAR(out[1], 0.105930365357, 1e-6);
    CHECK_NEAR(out[2], 1.894069634643, 1e-6);
    CHECK_NEAR(out[3], 3.682208903929, 1e-6);
    CHECK_NEAR(xhat[3], 1.341104451965, 1e-6);
    /* Keras moving statistics: 0.99 * 0 + 0.01 * 2.5; 0.99 * 1 + 0.01 * 1.25 * 4/3 */
    CHECK_NEAR(rm, 0.025, 1e-7);
    CHECK_NEAR(rv, 1.006666667, 1e-7);
    /* inference: 2 * (3 - 1) / sqrt(3 + 0.001) + 1 */
    float xi = 3.0f, yi, m1 = 1.0f, v3 = 3.0f;
    ld_batchnorm_infer_forward(&yi, &xi, &gamma, &beta, &m1, &v3, 1e-3f, 1, 1, 1);
    CHECK_NEAR(yi, 3.309016272777, 1e-6);
    /* per-channel: two channels with n = 1, hw = 3 are normalised separately */
    float x2[6] = {0, 1, 2, 10, 10, 16}, o2[6], xh2[6], mu2[2], is2[2];
    float g2[2] = {1, 1}, b2[2] = {0, 0}, rm2[2] = {0, 0}, rv2[2] = {1, 1};
    ld_batchnorm_train_forward(o2, xh2, mu2, is2, rm2, rv2, x2, g2, b2, 1e-3f, 0.99f, 1, 2, 3);
    CHECK_NEAR(mu2[0], 1.0, 1e-7);
    CHECK_NEAR(mu2[1], 12.0, 1e-6);
    CHECK_NEAR(rv2[1], 0.99 + 0.01 * 12.0, 1e-6);   /* biased var 8, unbiased 12 */
}

TEST_SUITE(layers_pool_relu_hand)
{
    /* windows: {1,3,3,2} tie at 3 -> the first (top-right, index 1); {0,0,0,-1} -> index 2;
     * all 5 -> the top-left, index 8; {7,1,1,8} -> index 15 */
    float in[16] = {1, 3, 0, 0,
                    3, 2, 0, -1,
                    5, 5, 7, 1,
                    5, 5, 1, 8};
    float out[4];
    int arg[4];
    ld_maxpool2_forward(out, arg, in, 1, 4, 4);
    CHECK(out[0] == 3 && out[1] == 0 && out[2] == 5 && out[3] == 8);
    CHECK(arg[0] == 1 && arg[1] == 2 && arg[2] == 8 && arg[3] == 15);
    float dout[4] = {1, 2, 3, 4}, din[16];
    ld_maxpool2_backward(din, dout, arg, 1, 4, 4);
    float sum = 0;
    for (int i = 0; i < 16; i++) sum += din[i];
    CHECK(din[1] == 1 && din[2] == 2 && din[8] == 3 && din[15] == 4 && sum == 10);
    /* floor: the last row and column of a 5x5 plane never reach the output */
    float in5[25], out5[4];
    int arg5[4];
    for (int i = 0; i < 25; i++) in5[i] = (i % 5 == 4 || i >= 20) ? 100.0f : (float)i;
    ld_maxpool2_forward(out5, arg5, in5, 1, 5, 5);
    CHECK(out5[0] == 6 && out5[1] == 8 && out5[2] == 16 && out5[3] == 18);
    /* planes are independent */
    float two[8] = {1, 2, 3, 4, 8, 7, 6, 5}, o2[2];
    int a2[2];
    ld_maxpool2_forward(o2, a2, two, 2, 2, 2);
    CHECK(o2[0] == 4 && a2[0] == 3 && o2[1] == 8 && a2[1] == 0);

    float r[4] = {-1.0f, 0.0f, 2.0f, -0.0f}, ro[4], rd[4], rg[4] = {5, 5, 5, 5};
    ld_relu_forward(ro, r, 4);
    CHECK(ro[0] == 0 && ro[1] == 0 && ro[2] == 2 && ro[3] == 0);
    ld_relu_backward(rd, rg, ro, 4);
    CHECK(rd[0] == 0 && rd[1] == 0 && rd[2] == 5 && rd[3] == 0);   /* derivative 0 at 0 */
}

TEST_SUITE(layers_dense_sigmoid_bce_hand)
{
    float w[6] = {1, 2, 3, -1, 0, 1}, b[2] = {0.5f, -0.5f}, x[6] = {1, 1, 1, 2, 0, -1}, out[4];
    ld_dense_forward(out, x, w, b, 2, 3, 2);
    CHECK(out[0] == 6.5f && out[1] == -0.5f && out[2] == -0.5f && out[3] == -3.5f);

    CHECK(ld_sigmoid(0.0f) == 0.5f);
    CHECK_NEAR(ld_sigmoid(2.0f), 0.880797077978, 1e-7);
    CHECK_NEAR(ld_sigmoid(-2.0f), 0.119202922022, 1e-7);
    CHECK(ld_sigmoid(100.0f) == 1.0f);
    float tiny = ld_sigmoid(-100.0f);
    CHECK(tiny >= 0.0f && tiny < 1e-40f);
    CHECK(ld_sigmoid(-1000.0f) == 0.0f && ld_sigmoid(1000.0f) == 1.0f);

    /* logits {0, 2, -3}, labels {1, 0, 0}: log 2, 2 + log1p(e^-2), log1p(e^-3) */
    float z[3] = {0, 2, -3}, y[3] = {1, 0, 0}, dz[3];
    float loss = ld_bce_logits(dz, z, y, 3);
    CHECK_NEAR(loss, 0.956220847726, 1e-6);
    CHECK_NEAR(dz[0], -0.166666666667, 1e-7);
    CHECK_NEAR(dz[1], 0.293599025993, 1e-7);
    CHECK_NEAR(dz[2], 0.015808624393, 1e-7);
    /* extreme logits stay finite: no log(0), no exp overflow */
    float ze[2] = {80, -80}, ye[2] = {1, 1};
    loss = ld_bce_logits(dz, ze, ye, 2);
    CHECK_NEAR(loss, 40.0, 1e-4);
    CHECK_NEAR(dz[0], 0.0, 1e-30);
    CHECK_NEAR(dz[1], -0.5, 1e-7);
    CHECK(ld_bce_logits(NULL, ze, ye, 0) == 0.0f);
}

TEST_SUITE(layers_dropout)
{
    ld_rng rng, copy;
    float mask[10000];
    ld_rng_seed(&rng, 5);
    copy = rng;
    ld_dropout_mask(mask, &rng, 0.0f, 10000);
    int ones = 1;
    for (int i = 0; i < 10000; i++) ones &= mask[i] == 1.0f;
    CHECK(ones);
    CHECK(memcmp(&rng, &copy, sizeof rng) == 0);   /* rate 0 draws nothing */
    /* rate 0.25: keep exactly when the next ld_rng_float is >= 0.25, value 4/3 */
    ld_dropout_mask(mask, &rng, 0.25f, 10000);
    int rule = 1, kept = 0;
    for (int i = 0; i < 10000; i++) {
        float u = ld_rng_float(&copy);
        rule &= mask[i] == (u >= 0.25f ? 1.0f / 0.75f : 0.0f);
        kept += mask[i] != 0.0f;
    }
    CHECK(rule);
    CHECK_NEAR(kept / 10000.0, 0.75, 0.015);
    float x[4] = {1, 2, 3, 4}, m4[4] = {0, 2, 2, 0}, o[4];
    ld_dropout_apply(o, x, m4, 4);
    CHECK(o[0] == 0 && o[1] == 4 && o[2] == 6 && o[3] == 0);
}

/* ---- finite-difference gradient checks ---- */

typedef struct {
    int kind;                 /* which layer */
    int n, c, f, h, w, d, o;  /* sizes */
    float *in, *weight, *bias, *gamma, *beta, *mask, *out, *r;
    float *scratch1, *scratch2, *scratch3, *scratch4;
    int *argmax;
    long out_count;
} fd_case;

enum { K_CONV, K_BN, K_RELU, K_POOL, K_DROPOUT, K_DENSE };

/* Runs the forward of the case and returns sum(out * r) in double. */
static double fd_loss(fd_case *k)
{
    switch (k->kind) {
    case K_CONV:
        ld_conv3x3_forward(k->out, k->in, k->weight, k->bias, k->n, k->c, k->f, k->h, k->w);
        break;
    case K_BN: {
        float rm[8] = {0}, rv[8] = {1, 1, 1, 1, 1, 1, 1, 1};   /* moving stats do not feed back */
        ld_batchnorm_train_forward(k->out, k->scratch1, k->scratch2, k->scratch3, rm, rv, k->in,
                                   k->gamma, k->beta, 1e-3f, 0.99f, k->n, k->c, k->h * k->w);
        break;
    }
    case K_RELU:
        ld_relu_forward(k->out, k->in, k->out_count);
        break;
    case K_POOL:
        ld_maxpool2_forward(k->out, k->argmax, k->in, k->n * k->c, k->h, k->w);
        break;
    case K_DROPOUT:
        ld_dropout_apply(k->out, k->in, k->mask, k->out_count);
        break;
    case K_DENSE:
        ld_dense_forward(k->out, k->in, k->weight, k->bias, k->n, k->d, k->o);
        break;
    }
    double s = 0;
    for (long i = 0; i < k->out_count; i++) s += (double)k->out[i] * k->r[i];
    return s;
}

/* Central differences of fd_loss w.r.t. each of x[count] against analytic[count]. */
static void fd_check(const char *name, fd_case *k, float *x, const float *analytic, int count,
                     float h, double abs_tol, double rel_tol)
{
    double worst = 0;
    int bad = 0;
    for (int i = 0; i < count; i++) {
        float x0 = x[i];
        x[i] = x0 + h;
        float xp = x[i];
        double lp = fd_loss(k);
        x[i] = x0 - h;
        float xm = x[i];
        double lm = fd_loss(k);
        x[i] = x0;
        double num = (lp - lm) / ((double)xp - xm);
        double d = fabs(num - analytic[i]);
        if (d > worst) worst = d;
        if (d > abs_tol + rel_tol * fabs(num)) {
            if (bad++ < 3) fprintf(stderr, "  %s[%d]: analytic %.7g numeric %.7g\n", name, i, analytic[i], num);
        }
    }
    fprintf(stderr, "  gradcheck %-16s %3d values, max |analytic - numeric| %.3g\n", name, count, worst);
    CHECK_MSG(bad == 0, "%s: %d of %d gradients disagree with finite differences", name, bad, count);
}

static void fill(float *a, int count, ld_rng *rng, float lo, float hi)
{
    for (int i = 0; i < count; i++) a[i] = lo + (hi - lo) * ld_rng_float(rng);
}

TEST_SUITE(layers_gradcheck)
{
    ld_rng rng;
    ld_rng_seed(&rng, 2024);
    fprintf(stderr, "layers_gradcheck:\n");

    /* conv: n 2, c 2, f 3, a non-square 5x4 plane */
    {
        enum { N = 2, C = 2, F = 3, H = 5, W = 4, OUT = N * F * (H - 2) * (W - 2) };
        float in[N * C * H * W], wt[F * C * 9], b[F], out[OUT], r[OUT], dout[OUT];
        float din[N * C * H * W], dw[F * C * 9], db[F];
        fill(in, N * C * H * W, &rng, -1, 1);
        fill(wt, F * C * 9, &rng, -1, 1);
        fill(b, F, &rng, -1, 1);
        fill(r, OUT, &rng, -1, 1);
        fd_case k = {.kind = K_CONV, .n = N, .c = C, .f = F, .h = H, .w = W, .in = in, .weight = wt,
                     .bias = b, .out = out, .r = r, .out_count = OUT};
        memcpy(dout, r, sizeof dout);   /* dL/dout = r */
        ld_conv3x3_backward(din, dw, db, dout, in, wt, N, C, F, H, W);
        fd_check("conv dinp", &k, in, din, N * C * H * W, 0.5f, 1e-5, 1e-4);
        fd_check("conv dweight", &k, wt, dw, F * C * 9, 0.5f, 1e-5, 1e-4);
        fd_check("conv dbias", &k, b, db, F, 0.5f, 1e-5, 1e-4);
    }
    /* batch norm (training): n 2, c 3, 2x3 planes; gamma and beta away from 1 and 0 */
    {
        enum { N = 2, C = 3, HW = 6, CNT = N * C * HW };
        float in[CNT], g[C], bt[C], out[CNT], r[CNT], xhat[CNT], mean[C], istd[C];
        float din[CNT], dg[C], dbt[C], rm[C] = {0}, rv[C] = {1, 1, 1};
        fill(in, CNT, &rng, -2, 2);
        fill(g, C, &rng, 0.5f, 1.5f);
        fill(bt, C, &rng, -0.5f, 0.5f);
        fill(r, CNT, &rng, -1, 1);
        fd_case k = {.kind = K_BN, .n = N, .c = C, .h = 2, .w = 3, .in = in, .gamma = g, .beta = bt,
                     .out = out, .r = r, .scratch1 = xhat, .scratch2 = mean, .scratch3 = istd,
                     .out_count = CNT};
        ld_batchnorm_train_forward(out, xhat, mean, istd, rm, rv, in, g, bt, 1e-3f, 0.99f, N, C, HW);
        ld_batchnorm_backward(din, dg, dbt, r, xhat, g, istd, N, C, HW);
        fd_check("bn dinp", &k, in, din, CNT, 1e-2f, 1e-4, 1e-3);
        fd_check("bn dgamma", &k, g, dg, C, 1e-2f, 1e-5, 1e-4);
        fd_check("bn dbeta", &k, bt, dbt, C, 1e-2f, 1e-5, 1e-4);
        /* the gradient w.r.t. a per-channel constant shift is 0 (why conv biases get none) */
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int b = 0; b < N; b++)
                for (int i = 0; i < HW; i++) s += din[(b * C + c) * HW + i];
            CHECK_NEAR(s, 0.0, 1e-5);
        }
        /* in-place backward (dinp aliasing dout) gives the same numbers */
        float alias[CNT], dg2[C], dbt2[C];
        memcpy(alias, r, sizeof alias);
        ld_batchnorm_backward(alias, dg2, dbt2, alias, xhat, g, istd, N, C, HW);
        CHECK(memcmp(alias, din, sizeof din) == 0 && memcmp(dg2, dg, sizeof dg) == 0);
    }
    /* relu: inputs at least 0.1 away from the kink, h = 1e-2 */
    {
        enum { CNT = 24 };
        float in[CNT], out[CNT], r[CNT], din[CNT];
        for (int i = 0; i < CNT; i++) {
            float u = ld_rng_float(&rng);
            in[i] = (i % 2 ? 1.0f : -1.0f) * (0.1f + u);
        }
        fill(r, CNT, &rng, -1, 1);
        fd_case k = {.kind = K_RELU, .in = in, .out = out, .r = r, .out_count = CNT};
        ld_relu_forward(out, in, CNT);
        ld_relu_backward(din, r, out, CNT);
        fd_check("relu", &k, in, din, CNT, 1e-2f, 1e-5, 1e-4);
    }
    /* max-pool: 2 planes of 5x6 (odd height: floor), a shuffled ramp with steps of 0.1,
     * so every window's maximum leads by >= 0.1 >> h */
    {
        enum { P = 2, H = 5, W = 6, CNT = P * H * W, OUT = P * 2 * 3 };
        float in[CNT], out[OUT], r[OUT], din[CNT];
        int perm[CNT], arg[OUT];
        for (int i = 0; i < CNT; i++) perm[i] = i;
        ld_rng_shuffle(&rng, perm, CNT);
        for (int i = 0; i < CNT; i++) in[i] = 0.1f * (float)perm[i] - 2.0f;
        fill(r, OUT, &rng, -1, 1);
        fd_case k = {.kind = K_POOL, .n = P, .c = 1, .h = H, .w = W, .in = in, .out = out, .r = r,
                     .argmax = arg, .out_count = OUT};
        ld_maxpool2_forward(out, arg, in, P, H, W);
        ld_maxpool2_backward(din, r, arg, P, H, W);
        fd_check("maxpool", &k, in, din, CNT, 1e-3f, 1e-5, 1e-4);
    }
    /* dropout: linear in its input, the mask is a constant */
    {
        enum { CNT = 40 };
        float in[CNT], mask[CNT], out[CNT], r[CNT], din[CNT];
        fill(in, CNT, &rng, -1, 1);
        fill(r, CNT, &rng, -1, 1);
        ld_dropout_mask(mask, &rng, 0.4f, CNT);
        fd_case k = {.kind = K_DROPOUT, .in = in, .mask = mask, .out = out, .r = r, .out_count = CNT};
        ld_dropout_apply(din, r, mask, CNT);
        fd_check("dropout", &k, in, din, CNT, 0.5f, 1e-5, 1e-4);
    }
    /* dense: n 3, d 7, o 2 */
    {
        enum { N = 3, D = 7, O = 2 };
        float in[N * D], wt[O * D], b[O], out[N * O], r[N * O], din[N * D], dw[O * D], db[O];
        fill(in, N * D, &rng, -1, 1);
        fill(wt, O * D, &rng, -1, 1);
        fill(b, O, &rng, -1, 1);
        fill(r, N * O, &rng, -1, 1);
        fd_case k = {.kind = K_DENSE, .n = N, .d = D, .o = O, .in = in, .weight = wt, .bias = b,
                     .out = out, .r = r, .out_count = N * O};
        ld_dense_backward(din, dw, db, r, in, wt, N, D, O);
        fd_check("dense dinp", &k, in, din, N * D, 0.5f, 1e-5, 1e-4);
        fd_check("dense dweight", &k, wt, dw, O * D, 0.5f, 1e-5, 1e-4);
        fd_check("dense dbias", &k, b, db, O, 0.5f, 1e-5, 1e-4);
    }
    /* binary cross-entropy from logits: the loss itself is the scalar */
    {
        enum { N = 6 };
        float z[N] = {-4.0f, -0.7f, 0.0f, 0.3f, 2.5f, 9.0f}, y[N] = {1, 0, 1, 1, 0, 1}, dz[N];
        ld_bce_logits(dz, z, y, N);
        double worst = 0;
        int bad = 0;
        for (int i = 0; i < N; i++) {
            float z0 = z[i];
            z[i] = z0 + 1e-2f;
            float zp = z[i];
            double lp = ld_bce_logits(NULL, z, y, N);
            z[i] = z0 - 1e-2f;
            float zm = z[i];
            double lm = ld_bce_logits(NULL, z, y, N);
            z[i] = z0;
            double num = (lp - lm) / ((double)zp - zm), d = fabs(num - dz[i]);
            if (d > worst) worst = d;
            bad += d > 2e-5 + 1e-3 * fabs(num);
        }
        fprintf(stderr, "  gradcheck %-16s %3d values, max |analytic - numeric| %.3g\n", "bce", N, worst);
        CHECK_INT(bad, 0);
    }
}
