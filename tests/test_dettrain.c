/* test_dettrain.c — the detection preset's new layers, losses, box coding, window
 * labelling, crop sampling, the fully-convolutional training pass (finite
 * differences and the PyTorch golden file tests/golden/det_net.bin from
 * tools/gen_golden_det.py), the box head in the scanner and detector, and the
 * detector settings kept in the model file. Expected values are worked out by hand
 * in the comments. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test.h"
#include "alloc.h"
#include "lymphdet/dettrain.h"
#include "lymphdet/layers.h"

/* ---- head convolution -------------------------------------------------------- */

TEST_SUITE(dettrain_headconv)
{
    /* 1 channel 3x3 input 1..9, kernel [[1,2],[3,4]], bias 0.5:
     * out(0,0) = .5 + 1*1 + 2*2 + 3*4 + 4*5 = 37.5, out(0,1) = .5 + 2 + 6 + 15 + 24 = 47.5,
     * out(1,0) = .5 + 4 + 10 + 21 + 32 = 67.5,     out(1,1) = .5 + 5 + 12 + 24 + 36 = 77.5 */
    float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 2, 3, 4}, b = 0.5f, out[4];
    ld_headconv_forward(out, in, w, &b, 1, 1, 1, 3, 3, 2);
    CHECK_NEAR(out[0], 37.5, 0);
    CHECK_NEAR(out[1], 47.5, 0);
    CHECK_NEAR(out[2], 67.5, 0);
    CHECK_NEAR(out[3], 77.5, 0);

    /* with k = h = w it is the dense layer on the flattened [c, k, k] input */
    enum { N = 2, C = 3, O = 4, K = 3 };
    ld_rng rng;
    ld_rng_seed(&rng, 3);
    float x[N * C * K * K], wt[O * C * K * K], bias[O], a[N * O], d[N * O];
    for (int i = 0; i < N * C * K * K; i++) x[i] = ld_rng_float(&rng) - 0.5f;
    for (int i = 0; i < O * C * K * K; i++) wt[i] = ld_rng_float(&rng) - 0.5f;
    for (int i = 0; i < O; i++) bias[i] = ld_rng_float(&rng);
    ld_headconv_forward(a, x, wt, bias, N, C, O, K, K, K);
    ld_dense_forward(d, x, wt, bias, N, C * K * K, O);
    double worst = 0;
    for (int i = 0; i < N * O; i++) worst = fmax(worst, fabs(a[i] - d[i]));
    CHECK_MSG(worst <= 1e-6, "head conv with k = h = w vs dense: max diff %g", worst);
}

/* sum(out * r) of the head conv, for finite differences */
static double head_obj(const float *x, const float *w, const float *b, const float *r,
                       int n, int c, int o, int h, int ww, int k, float *out)
{
    ld_headconv_forward(out, x, w, b, n, c, o, h, ww, k);
    int oh = h - k + 1, ow = ww - k + 1;
    double s = 0;
    for (int i = 0; i < n * o * oh * ow; i++) s += (double)out[i] * r[i];
    return s;
}

TEST_SUITE(dettrain_headconv_gradcheck)
{
    enum { N = 2, C = 3, O = 4, H = 5, W = 6, K = 3, OH = H - K + 1, OW = W - K + 1 };
    ld_rng rng;
    ld_rng_seed(&rng, 7);
    static float x[N * C * H * W], w[O * C * K * K], b[O], r[N * O * OH * OW], out[N * O * OH * OW];
    static float dx[N * C * H * W], dw[O * C * K * K], db[O];
    for (int i = 0; i < N * C * H * W; i++) x[i] = ld_rng_float(&rng) - 0.5f;
    for (int i = 0; i < O * C * K * K; i++) w[i] = ld_rng_float(&rng) - 0.5f;
    for (int i = 0; i < O; i++) b[i] = ld_rng_float(&rng) - 0.5f;
    for (int i = 0; i < N * O * OH * OW; i++) r[i] = ld_rng_float(&rng) - 0.5f;
    ld_headconv_backward(dx, dw, db, r, x, w, N, C, O, H, W, K);
    struct { const char *name; float *p, *g; int count; } sets[3] = {
        {"input", x, dx, N * C * H * W}, {"weight", w, dw, O * C * K * K}, {"bias", b, db, O}};
    for (int s = 0; s < 3; s++) {
        double worst = 0;
        for (int i = 0; i < sets[s].count; i++) {
            float v = sets[s].p[i], h = 1e-2f;
            sets[s].p[i] = v + h;
            double lp = head_obj(x, w, b, r, N, C, O, H, W, K, out);
            sets[s].p[i] = v - h;
            double lm = head_obj(x, w, b, r, N, C, O, H, W, K, out);
            sets[s].p[i] = v;
            worst = fmax(worst, fabs((lp - lm) / (2 * h) - sets[s].g[i]));
        }
        fprintf(stderr, "  gradcheck head conv %-7s max |analytic - numeric| %.3g\n", sets[s].name, worst);
        CHECK_MSG(worst < 1e-4, "head conv %s gradient: max diff %g", sets[s].name, worst);
    }
}

/* ---- losses ------------------------------------------------------------------ */

TEST_SUITE(dettrain_losses)
{
    /* focal, alpha 0.25, gamma 2, z = 0 (p = 0.5), norm 1:
     *   positive: -0.25 * 0.5^2 * ln 0.5 = 0.0433217; d/dz = 0.25 * 0.25 * (2 * 0.5 ln 0.5 - 0.5)
     *             = 0.0625 * (-1.1931472) = -0.0745717
     *   negative: a_t 0.75: 0.75 * 0.25 * ln 2 = 0.1299651; d/dz = -1 * 0.75 * 0.25 * (-1.1931472)
     *             = +0.2237151;  ignored: 0 */
    float z[3] = {0, 0, 0}, dz[3];
    int8_t lab[3] = {1, 0, -1};
    float loss = ld_objectness_loss(dz, z, lab, 3, 0.25f, 2.0f, 1.0f);
    CHECK_NEAR(loss, 0.0433217 + 0.1299651, 1e-6);
    CHECK_NEAR(dz[0], -0.0745717, 1e-6);
    CHECK_NEAR(dz[1], 0.2237151, 1e-6);
    CHECK_NEAR(dz[2], 0, 0);
    /* gamma 0 and no alpha: binary cross-entropy, equal to the model's BCE */
    float zz[4] = {2.0f, -1.5f, 0.3f, -4.0f}, y[4] = {1, 0, 0, 1}, d1[4], d2[4];
    int8_t l4[4] = {1, 0, 0, 1};
    float bce = ld_objectness_loss(d1, zz, l4, 4, -1.0f, 0.0f, 4.0f);
    float ref = ld_bce_logits(d2, zz, y, 4);
    CHECK_NEAR(bce, ref, 1e-6);
    for (int i = 0; i < 4; i++) CHECK_NEAR(d1[i], d2[i], 1e-7);
    /* extreme logits stay finite */
    float big[2] = {200.0f, -200.0f}, db[2];
    int8_t lb[2] = {0, 1};
    float lbig = ld_objectness_loss(db, big, lb, 2, 0.25f, 2.0f, 1.0f);
    CHECK(isfinite(lbig) && isfinite(db[0]) && isfinite(db[1]));
    CHECK_NEAR(lbig, 0.75 * 200 + 0.25 * 200, 1e-3);   /* (1 - p_t)^2 = 1, -log p_t = 200 */

    /* finite differences of the focal loss (gamma 2 and a non-integer 1.5) */
    float zs[6] = {-2.5f, -0.7f, 0.1f, 0.9f, 2.2f, -1.1f}, g[6];
    int8_t ls[6] = {1, 0, 1, 0, -1, 1};
    for (int gi = 0; gi < 2; gi++) {
        float gamma = gi ? 1.5f : 2.0f;
        ld_objectness_loss(g, zs, ls, 6, 0.25f, gamma, 3.0f);
        double worst = 0;
        for (int i = 0; i < 6; i++) {
            float v = zs[i], h = 1e-3f, tmp[6];
            zs[i] = v + h;
            double lp = ld_objectness_loss(tmp, zs, ls, 6, 0.25f, gamma, 3.0f);
            zs[i] = v - h;
            double lm = ld_objectness_loss(tmp, zs, ls, 6, 0.25f, gamma, 3.0f);
            zs[i] = v;
            worst = fmax(worst, fabs((lp - lm) / (2 * h) - g[i]));
        }
        CHECK_MSG(worst < 2e-4, "focal gamma %g gradient: max diff %g", gamma, worst);
    }

    /* smooth L1, beta 1/9 (0.1111), norm 2, one positive and one ignored position:
     * d = 0.05: 0.5 * 0.0025 / (1/9) = 0.01125, grad 0.05 * 9 = 0.45;  d = -0.5: 0.5 - 1/18 =
     * 0.4444444, grad -1; d = 1: 1 - 1/18 = 0.9444444, grad 1; d = 0: 0, grad 0.
     * Sum 1.4001389 / 2 = 0.7000694; gradients / 2. */
    float pred[8] = {0.05f, 0, -0.5f, 0, 1, 0, 0, 0}, tgt[8] = {0}, dp[8];
    int8_t pl[2] = {1, -1};
    float sl = ld_smooth_l1_loss(dp, pred, tgt, pl, 1, 2, 1.0f / 9.0f, 2.0f);
    CHECK_NEAR(sl, 0.7000694, 1e-6);
    CHECK_NEAR(dp[0], 0.225, 1e-6);
    CHECK_NEAR(dp[2], -0.5, 0);
    CHECK_NEAR(dp[4], 0.5, 0);
    CHECK_NEAR(dp[6], 0, 0);
    CHECK_NEAR(dp[1] + dp[3] + dp[5] + dp[7], 0, 0);   /* the ignored position */

    /* hard-negative mining: negatives by logit (= by loss), ties to the lower index */
    int8_t ol[6] = {1, 0, 0, -1, 0, 0};
    float oz[6] = {0, 3, -1, 5, 3, 2};
    int idx[6];
    CHECK_INT(ld_ohem_select(ol, oz, 6, 2, idx), 2);
    int8_t want[6] = {1, 0, -1, -1, 0, -1};
    CHECK(memcmp(ol, want, 6) == 0);
    int8_t ol2[6] = {1, 0, 0, -1, 0, 0};
    CHECK_INT(ld_ohem_select(ol2, oz, 6, 1, idx), 1);
    int8_t want2[6] = {1, 0, -1, -1, -1, -1};
    CHECK(memcmp(ol2, want2, 6) == 0);
    int8_t ol3[6] = {1, 0, 0, -1, 0, 0};
    CHECK_INT(ld_ohem_select(ol3, oz, 6, 10, idx), 4);   /* fewer negatives than asked */
    int8_t want3[6] = {1, 0, 0, -1, 0, 0};
    CHECK(memcmp(ol3, want3, 6) == 0);
}

/* ---- box coding and labelling ----------------------------------------------- */

TEST_SUITE(dettrain_box_coding)
{
    /* window (10, 20), S 64: centre (42, 52); box (30, 40, 64, 32): centre (62, 56)
     * tx = 20/64 = 0.3125, ty = 4/64 = 0.0625, tw = 0, th = ln 0.5 */
    float t[4];
    ld_box_encode(t, 30, 40, 64, 32, 10, 20, 64, 64);
    CHECK_NEAR(t[0], 0.3125, 1e-7);
    CHECK_NEAR(t[1], 0.0625, 1e-7);
    CHECK_NEAR(t[2], 0, 1e-7);
    CHECK_NEAR(t[3], log(0.5), 1e-7);
    double b[4];
    ld_box_decode(b, t, 10, 20, 64, 64);
    CHECK_NEAR(b[0], 30, 1e-5);
    CHECK_NEAR(b[1], 40, 1e-5);
    CHECK_NEAR(b[2], 64, 1e-5);
    CHECK_NEAR(b[3], 32, 1e-5);
    /* an anchor smaller than the window: window (0, 0) of side 96, anchor 48 centred
     * at (48, 48); box (40, 30, 24, 48), centre (52, 54): tx = 4/48, ty = 6/48,
     * tw = ln(24/48), th = 0 */
    ld_box_encode(t, 40, 30, 24, 48, 0, 0, 96, 48);
    CHECK_NEAR(t[0], 4.0 / 48, 1e-7);
    CHECK_NEAR(t[1], 6.0 / 48, 1e-7);
    CHECK_NEAR(t[2], log(0.5), 1e-7);
    CHECK_NEAR(t[3], 0, 1e-7);
    ld_box_decode(b, t, 0, 0, 96, 48);
    CHECK_NEAR(b[0], 40, 1e-5);
    CHECK_NEAR(b[1], 30, 1e-5);
    CHECK_NEAR(b[2], 24, 1e-5);
    CHECK_NEAR(b[3], 48, 1e-5);
    /* log-sizes are clamped at +-4: a runaway output cannot make an infinite box */
    float huge[4] = {0, 0, 50, -50};
    ld_box_decode(b, huge, 0, 0, 10, 10);
    CHECK_NEAR(b[2], 10 * exp(4.0), 1e-9);
    CHECK_NEAR(b[3], 10 * exp(-4.0), 1e-9);
    CHECK_NEAR(b[0], 5 - b[2] / 2, 1e-9);
}

TEST_SUITE(dettrain_assign)
{
    /* windows of side 10 every 5 px from (0, 0), 3 x 3, in an 18 x 18 frame: the third
     * column and row (x or y = 10, reaching 20) leave the frame and are ignored.
     * Box (5, 5, 10, 10) is window (1, 1) exactly: IoU 1, positive.
     * Window (0, 1) = (5, 0): overlap 10 x 5 = 50, union 150: IoU 1/3 < 0.4: negative.
     * Window (0, 0): overlap 25, union 175: 0.143, negative. */
    ld_assign_config cfg = {0.5, 0.4, 0.3};
    ld_box box = {5, 5, 10, 10, 0};
    int8_t lab[9];
    float tgt[36];
    CHECK_INT(ld_det_assign(lab, tgt, 3, 3, 0, 0, 5, 10, 10, 18, 18, &box, 1, &cfg), 1);
    int8_t want[9] = {0, 0, -1, 0, 1, -1, -1, -1, -1};
    CHECK(memcmp(lab, want, 9) == 0);
    CHECK_NEAR(tgt[4], 0, 0);
    CHECK_NEAR(tgt[9 + 4], 0, 0);
    CHECK_NEAR(tgt[18 + 4], 0, 1e-7);   /* log(10 / 10) */
    /* between the thresholds: neg 0.3 makes window (0, 1) (IoU 1/3) ignored */
    ld_assign_config mid = {0.5, 0.3, 0.3};
    ld_det_assign(lab, tgt, 3, 3, 0, 0, 5, 10, 10, 18, 18, &box, 1, &mid);
    CHECK_INT(lab[1], -1);
    CHECK_INT(lab[3], -1);
    CHECK_INT(lab[0], 0);
    /* a small box: best window (0, 0) has IoU 16/100 = 0.16: forced positive only
     * when min_best_iou <= 0.16; its target is the box's offsets */
    ld_box small = {0, 0, 4, 4, 0};
    CHECK_INT(ld_det_assign(lab, tgt, 3, 3, 0, 0, 5, 10, 10, 18, 18, &small, 1, &cfg), 0);
    CHECK_INT(lab[0], 0);
    ld_assign_config low = {0.5, 0.4, 0.1};
    CHECK_INT(ld_det_assign(lab, tgt, 3, 3, 0, 0, 5, 10, 10, 18, 18, &small, 1, &low), 1);
    CHECK_INT(lab[0], 1);
    CHECK_NEAR(tgt[0], (2.0 - 5.0) / 10, 1e-7);    /* centre 2 vs 5 */
    CHECK_NEAR(tgt[18], log(0.4), 1e-6);
    /* two boxes: a window regresses to the one it overlaps most */
    ld_box two[2] = {{5, 5, 10, 10, 0}, {6, 5, 10, 10, 0}};
    ld_det_assign(lab, tgt, 3, 3, 0, 0, 5, 10, 10, 18, 18, two, 2, &cfg);
    CHECK_INT(lab[4], 1);
    CHECK_NEAR(tgt[4], 0, 0);                       /* box 0 (IoU 1), not box 1 (0.82) */
    /* anchors of side 10 centred in windows of side 20 (every 5 px, 40 x 40 frame):
     * window (1, 1) at (5, 5) has anchor (10, 10, 10, 10) = the box: positive; window
     * (0, 0)'s anchor (5, 5, 10, 10) overlaps it 25 / 175: negative; the IoU is the
     * anchor's, not the window's (window (1, 1) vs the box would be 100 / 400 only) */
    ld_box in_anchor = {10, 10, 10, 10, 0};
    CHECK_INT(ld_det_assign(lab, tgt, 3, 3, 0, 0, 5, 20, 10, 40, 40, &in_anchor, 1, &cfg), 1);
    CHECK_INT(lab[4], 1);
    CHECK_INT(lab[0], 0);
    CHECK_NEAR(tgt[4], 0, 0);
    CHECK_NEAR(tgt[18 + 4], 0, 1e-7);
    /* an origin offset: windows at (3 + 5 j, 3 + 5 i) in the frame */
    ld_box off = {8, 8, 10, 10, 0};
    ld_det_assign(lab, tgt, 3, 3, 3, 3, 5, 10, 10, 18, 18, &off, 1, &cfg);
    CHECK_INT(lab[4], 1);
    CHECK_INT(lab[2], -1);                          /* x 13..23 leaves the frame */
}

/* ---- the training pass: finite differences ----------------------------------- */

/* A tiny detection network: 3 equal input channels, blocks of 2 and 3 filters,
 * window 14 (14 -> 12 -> 6 -> 4 -> 2: head kernel 2, stride 4), crops of 22 px
 * (3 x 3 windows), batch 2. */
static ld_status tiny_detect(ld_model *m, ld_dettrainer *t, uint64_t seed)
{
    ld_arch a;
    ld_arch_detect(&a);
    a.input_size = 14;
    a.n_blocks = 2;
    a.filters[0] = 2;
    a.filters[1] = 3;
    ld_error err = {0};
    if (ld_model_init(m, &a, 1, &err)) return err.status;
    ld_model_init_weights(m, seed);
    ld_rng rng;
    ld_rng_seed(&rng, seed + 1);
    for (int i = 0; i < m->n_tensors; i++) {   /* gamma, beta, biases away from 1 and 0 */
        const ld_tensor *tt = &m->tensors[i];
        if (tt->trainable && tt->ndim == 1)
            for (size_t j = 0; j < tt->numel; j++)
                m->params[tt->offset + j] += 0.4f * (ld_rng_float(&rng) - 0.5f);
    }
    if (ld_dettrainer_init(t, m, 2, 22, NULL, &err)) {
        ld_model_free(m);
        return err.status;
    }
    for (int i = 0; i < 2 * 22 * 22; i++) t->x[i] = ld_rng_float(&rng);
    for (int i = 0; i < 2 * 9; i++) t->label[i] = (int8_t)(i % 3 == 0 ? 1 : i % 3 == 1 ? 0 : -1);
    for (int i = 0; i < 2 * 4 * 9; i++) t->target[i] = ld_rng_float(&rng) - 0.5f;
    return LD_OK;
}

static double tiny_loss_of(ld_dettrainer *t, const ld_dettrain_config *cfg)
{
    ld_dettrainer_forward(t, 2, NULL);
    return ld_dettrainer_loss(t, 2, cfg, NULL);
}

TEST_SUITE(dettrain_gradcheck)
{
    ld_model m;
    ld_dettrainer t;
    if (tiny_detect(&m, &t, 21) != LD_OK) { CHECK_MSG(0, "tiny network"); return; }
    ld_dettrain_config cfg;
    ld_dettrain_config_default(&cfg);
    cfg.smooth_l1_beta = 0.5f;   /* the quadratic zone: smoother for differences */
    /* steps of 5e-4: larger ones (2e-3) cross a max-pool kink of conv 1 in this case */
    ld_dettrainer_forward(&t, 2, NULL);
    ld_dettrainer_loss(&t, 2, &cfg, NULL);
    ld_dettrainer_backward(&t, 2);
    float *analytic = malloc(m.n_params * sizeof *analytic);
    memcpy(analytic, m.grads, m.n_params * sizeof *analytic);
    /* conv 1 runs on one plane: every input channel's kernel has the same gradient */
    const float *g1 = analytic + m.tensors[0].offset;
    int same = 1;
    for (int o = 0; o < 2; o++)
        for (int c = 1; c < 3; c++)
            for (int q = 0; q < 9; q++) same &= g1[(o * 3 + c) * 9 + q] == g1[o * 27 + q];
    CHECK(same);
    double worst = 0;
    int checked = 0, bad = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        const ld_tensor *tt = &m.tensors[i];
        if (!tt->trainable) continue;
        for (size_t j = 0; j < tt->numel; j++) {
            float *w = &m.params[tt->offset + j], w0 = *w, h = 5e-4f;
            *w = w0 + h;
            float wp = *w;
            double lp = tiny_loss_of(&t, &cfg);
            *w = w0 - h;
            float wm = *w;
            double lm = tiny_loss_of(&t, &cfg);
            *w = w0;
            double num = (lp - lm) / ((double)wp - wm), a = analytic[tt->offset + j];
            double d = fabs(num - a);
            if (d > worst) worst = d;
            if (d > 1e-3 + 1e-2 * fabs(num) && bad++ < 5)
                fprintf(stderr, "  %s[%zu]: analytic %.6g numeric %.6g\n", tt->name, j, a, num);
            checked++;
        }
    }
    fprintf(stderr, "  gradcheck detection net: %d parameters, max |analytic - numeric| %.3g\n",
            checked, worst);
    CHECK_MSG(bad == 0, "%d of %d gradients disagree with finite differences", bad, checked);
    /* the conv biases are removed by batch norm: exactly zero gradient */
    CHECK(analytic[m.tensors[1].offset] == 0.0f && analytic[m.tensors[7].offset] == 0.0f);
    free(analytic);
    ld_dettrainer_free(&t);
    ld_model_free(&m);
}

/* ---- the training pass against PyTorch (tests/golden/det_net.bin) ------------ */

#define DET_GOLDEN "tests/golden/det_net.bin"

/* The golden file: "LDGOLD01", uint32 count, then records (tests/golden/README.md).
 * Only float32 and uint8 records are read here; every length is checked. */
typedef struct {
    unsigned char *buf;
    size_t size;
} gfile;

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The record `name`: its data, element count and dtype, or NULL. */
static const unsigned char *gfind(const gfile *g, const char *name, size_t *numel, int *dtype)
{
    if (g->size < 12 || memcmp(g->buf, "LDGOLD01", 8) != 0) return NULL;
    uint32_t count = le32(g->buf + 8);
    size_t off = 12;
    for (uint32_t i = 0; i < count; i++) {
        if (g->size - off < 4) return NULL;
        uint32_t nl = le32(g->buf + off);
        off += 4;
        if (nl > 200 || g->size - off < (size_t)nl + 2) return NULL;
        const char *nm = (const char *)g->buf + off;
        off += nl;
        int dt = g->buf[off], nd = g->buf[off + 1];
        off += 2;
        if (nd > 4 || g->size - off < 4u * (size_t)nd) return NULL;
        size_t n = 1;
        for (int d = 0; d < nd; d++, off += 4) n *= le32(g->buf + off);
        size_t bytes = dt == 0 ? 4 * n : dt == 1 ? n : (n + 7) / 8;
        if (n > (1u << 24) || g->size - off < bytes) return NULL;
        if (strlen(name) == nl && memcmp(nm, name, nl) == 0) {
            *numel = n;
            *dtype = dt;
            return g->buf + off;
        }
        off += bytes;
    }
    return NULL;
}

/* count float32 values of record name into out; 0 when absent or mis-sized */
static int gf32(const gfile *g, const char *name, float *out, size_t count)
{
    size_t n;
    int dt;
    const unsigned char *p = gfind(g, name, &n, &dt);
    if (!p || dt != 0 || n != count) {
        CHECK_MSG(0, "golden record %s missing or not %zu floats", name, count);
        return 0;
    }
    memcpy(out, p, count * sizeof *out);   /* little-endian host */
    return 1;
}

static float gscalar(const gfile *g, const char *name)
{
    float v = NAN;
    gf32(g, name, &v, 1);
    return v;
}

/* max |got - golden| / (1 + |golden|) over count values */
static double gdiff(const gfile *g, const char *name, const float *got, size_t count)
{
    float *ref = malloc(count * sizeof *ref);
    double worst = INFINITY;
    if (ref && gf32(g, name, ref, count)) {
        worst = 0;
        for (size_t i = 0; i < count; i++)
            worst = fmax(worst, fabs((double)got[i] - ref[i]) / (1 + fabs((double)ref[i])));
    }
    free(ref);
    return worst;
}

TEST_SUITE(dettrain_golden)
{
    gfile g = {0};
    FILE *f = fopen(DET_GOLDEN, "rb");
    if (f) {
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        g.buf = len > 0 && len < (16L << 20) ? malloc((size_t)len) : NULL;
        g.size = g.buf && fread(g.buf, 1, (size_t)len, f) == (size_t)len ? (size_t)len : 0;
        fclose(f);
    }
    if (g.size == 0) {
        CHECK_MSG(0, "%s: cannot read (regenerate with `make golden`)", DET_GOLDEN);
        free(g.buf);
        return;
    }
    int S = (int)gscalar(&g, "arch.input_size"), C = (int)gscalar(&g, "arch.crop");
    int B = (int)gscalar(&g, "arch.batch");
    ld_arch a;
    ld_arch_detect(&a);
    a.input_size = S;
    a.n_blocks = 3;
    a.filters[0] = 2;
    a.filters[1] = 3;
    a.filters[2] = 4;
    a.bn_eps = gscalar(&g, "arch.bn_eps");
    a.bn_momentum = gscalar(&g, "arch.bn_momentum");
    ld_dettrain_config cfg;
    ld_dettrain_config_default(&cfg);
    cfg.focal_alpha = gscalar(&g, "loss.alpha");
    cfg.focal_gamma = gscalar(&g, "loss.gamma");
    cfg.smooth_l1_beta = gscalar(&g, "loss.beta");
    cfg.box_weight = gscalar(&g, "loss.box_weight");
    cfg.ohem_ratio = (int)gscalar(&g, "loss.ohem_ratio");
    cfg.adam.lr = gscalar(&g, "adam.lr");
    cfg.adam.beta1 = gscalar(&g, "adam.beta1");
    cfg.adam.beta2 = gscalar(&g, "adam.beta2");
    cfg.adam.eps = gscalar(&g, "adam.eps");
    ld_error err = {0};
    ld_model m;
    ld_dettrainer t;
    if (ld_model_init(&m, &a, 1, &err) || ld_dettrainer_init(&t, &m, B, C, NULL, &err)) {
        CHECK_MSG(0, "init: %s", err.msg);
        free(g.buf);
        return;
    }
    char name[64];
    for (int i = 0; i < m.n_tensors; i++) {
        snprintf(name, sizeof name, "init.%s", m.tensors[i].name);
        gf32(&g, name, m.params + m.tensors[i].offset, m.tensors[i].numel);
    }
    float *init = malloc(m.n_params * sizeof *init);
    memcpy(init, m.params, m.n_params * sizeof *init);
    size_t np;
    int dt;
    const unsigned char *px = gfind(&g, "x.pixels", &np, &dt);
    int nwin = t.nx * t.ny;
    float *lab = malloc((size_t)B * nwin * sizeof *lab);
    if (!px || dt != 1 || np != (size_t)B * C * C || !lab ||
        !gf32(&g, "label", lab, (size_t)B * nwin) ||
        !gf32(&g, "target", t.target, (size_t)B * 4 * nwin)) {
        CHECK_MSG(0, "golden inputs missing");
    } else {
        for (size_t i = 0; i < np; i++) t.x[i] = (float)px[i] / 255.0f;
        int8_t *labels = malloc((size_t)B * nwin);
        for (int i = 0; i < B * nwin; i++) labels[i] = (int8_t)lab[i];

        /* hard-negative mining, forward and gradients at the initial weights */
        cfg.obj_loss = LD_OBJ_OHEM;
        memcpy(t.label, labels, (size_t)B * nwin);
        ld_dettrainer_forward(&t, B, NULL);
        float lo = ld_dettrainer_loss(&t, B, &cfg, NULL);
        ld_dettrainer_backward(&t, B);
        double worst_g = 0;
        for (int i = 0; i < m.n_tensors; i++) {
            if (!m.tensors[i].trainable) continue;
            snprintf(name, sizeof name, "ohem.grad.%s", m.tensors[i].name);
            worst_g = fmax(worst_g, gdiff(&g, name, m.grads + m.tensors[i].offset, m.tensors[i].numel));
        }
        double dl = fabs(lo - gscalar(&g, "ohem.loss"));
        fprintf(stderr, "  golden (hard-negative mining): loss diff %.3g, gradients %.3g\n", dl, worst_g);
        CHECK_MSG(dl <= 1e-5 && worst_g <= 1e-5, "ohem: loss diff %g, gradient diff %g", dl, worst_g);

        /* focal: outputs, loss, gradients, moving statistics, then five Adam steps */
        memcpy(m.params, init, m.n_params * sizeof *init);
        cfg.obj_loss = LD_OBJ_FOCAL;
        double worst_step = 0, worst_loss = 0;
        for (int step = 1; step <= 5; step++) {
            memcpy(t.label, labels, (size_t)B * nwin);
            ld_dettrainer_forward(&t, B, NULL);
            ld_det_loss_parts parts;
            float loss = ld_dettrainer_loss(&t, B, &cfg, &parts);
            ld_dettrainer_backward(&t, B);
            if (step == 1) {
                double d_obj = gdiff(&g, "train.obj", t.obj, (size_t)B * nwin);
                double d_box = gdiff(&g, "train.box", t.box, (size_t)B * 4 * nwin);
                double d_l = fabs(loss - gscalar(&g, "train.loss"));
                double d_lo = fabs(parts.obj - gscalar(&g, "train.obj_loss"));
                double d_lb = fabs(parts.box - gscalar(&g, "train.box_loss"));
                worst_g = 0;
                for (int i = 0; i < m.n_tensors; i++) {
                    const ld_tensor *tt = &m.tensors[i];
                    if (tt->trainable) {
                        snprintf(name, sizeof name, "grad.%s", tt->name);
                        worst_g = fmax(worst_g, gdiff(&g, name, m.grads + tt->offset, tt->numel));
                    }
                }
                double d_run = 0;
                for (int k = 0; k < 3; k++) {
                    snprintf(name, sizeof name, "train.bn%d.running_mean", k + 1);
                    d_run = fmax(d_run, gdiff(&g, name, m.p[k].bn_mean, (size_t)a.filters[k]));
                    snprintf(name, sizeof name, "train.bn%d.running_var", k + 1);
                    d_run = fmax(d_run, gdiff(&g, name, m.p[k].bn_var, (size_t)a.filters[k]));
                }
                fprintf(stderr, "  golden (focal): objectness %.3g, offsets %.3g, loss %.3g "
                        "(terms %.3g, %.3g), gradients %.3g, moving statistics %.3g\n",
                        d_obj, d_box, d_l, d_lo, d_lb, worst_g, d_run);
                CHECK_MSG(d_obj <= 1e-5 && d_box <= 1e-5, "outputs differ: %g %g", d_obj, d_box);
                CHECK_MSG(d_l <= 1e-5 && d_lo <= 1e-5 && d_lb <= 1e-5, "loss differs: %g", d_l);
                CHECK_MSG(worst_g <= 1e-5, "gradients differ: %g", worst_g);
                CHECK_MSG(d_run <= 1e-6, "moving statistics differ: %g", d_run);
            }
            snprintf(name, sizeof name, "step%d.loss", step);
            worst_loss = fmax(worst_loss, fabs(loss - gscalar(&g, name)));
            ld_model_adam(&m, &cfg.adam);
            for (int i = 0; i < m.n_tensors; i++) {
                snprintf(name, sizeof name, "step%d.%s", step, m.tensors[i].name);
                worst_step = fmax(worst_step, gdiff(&g, name, m.params + m.tensors[i].offset,
                                                    m.tensors[i].numel));
            }
        }
        fprintf(stderr, "  golden: 5 Adam steps, every tensor within %.3g, losses within %.3g\n",
                worst_step, worst_loss);
        CHECK_MSG(worst_step <= 1e-5, "Adam steps: max diff %g", worst_step);
        CHECK_MSG(worst_loss <= 1e-5, "step losses: max diff %g", worst_loss);
        free(labels);
    }
    free(lab);
    free(init);
    ld_dettrainer_free(&t);
    ld_model_free(&m);
    free(g.buf);
}

/* ---- the box head in the scanner and the detector ----------------------------- */

/* A seeded detection-preset model with BN statistics away from 0 / 1. */
static int seeded_detect_model(ld_model *m, int batch_cap, uint64_t seed)
{
    ld_arch a;
    ld_arch_detect(&a);
    ld_error err = {0};
    if (ld_model_init(m, &a, batch_cap, &err)) return -1;
    ld_model_init_weights(m, seed);
    ld_rng rng;
    ld_rng_seed(&rng, seed);
    for (int k = 0; k < a.n_blocks; k++)
        for (int f = 0; f < a.filters[k]; f++) {
            m->p[k].bn_gamma[f] = 0.5f + ld_rng_float(&rng);
            m->p[k].bn_beta[f] = 0.3f * (ld_rng_float(&rng) - 0.5f);
            m->p[k].bn_mean[f] = 0.2f * (ld_rng_float(&rng) - 0.3f);
            m->p[k].bn_var[f] = 0.1f + ld_rng_float(&rng);
        }
    return 0;
}

TEST_SUITE(dettrain_scan_box_head)
{
    /* With box row q = (q + 1) x the dense row and box bias (q + 1) x the dense bias,
     * every window's offsets are (q + 1) x its objectness logit, which ld_model_forward
     * computes on the cropped window: the scanner's box head is checked against the
     * model's own dense layer. */
    enum { W = 200, H = 150, N = 64 };
    ld_model m;
    if (seeded_detect_model(&m, N, 5)) { CHECK_MSG(0, "model"); return; }
    int S = m.arch.input_size, sd = ld_arch_block_out(&m.arch, m.arch.n_blocks - 1);
    size_t D = (size_t)m.arch.filters[m.arch.n_blocks - 1] * sd * sd;
    for (int q = 0; q < 4; q++) {
        for (size_t i = 0; i < D; i++) m.box_w[q * D + i] = (float)(q + 1) * m.dense_w[i];
        m.box_b[q] = (float)(q + 1) * m.dense_b[0];
    }
    ld_rng rng;
    ld_rng_seed(&rng, 9);
    float *img = malloc(sizeof(float) * W * H);
    for (int i = 0; i < W * H; i++) img[i] = (float)ld_rng_below(&rng, 256) / 255.0f;
    ld_scanner sc;
    ld_error err = {0};
    int nx, ny;
    CHECK_INT(ld_scanner_init(&sc, &m, &err), LD_OK);
    CHECK_INT(sc.box_head, 4);
    CHECK_INT(ld_scan_grid(&nx, &ny, &sc, W, H, 16, &err), LD_OK);
    float *probs = malloc(sizeof(float) * nx * ny), *deltas = malloc(sizeof(float) * nx * ny * 4);
    float *probs2 = malloc(sizeof(float) * nx * ny);
    CHECK_INT(ld_scanner_run_boxes(&sc, probs, deltas, img, W, H, W, 16, &err), LD_OK);
    CHECK_INT(ld_scanner_run(&sc, probs2, img, W, H, W, 16, &err), LD_OK);
    CHECK(memcmp(probs, probs2, sizeof(float) * nx * ny) == 0);
    float *x = malloc(sizeof(float) * N * 3 * S * S), logits[N];
    double worst = 0, worst_p = 0;
    int nwin = nx * ny;
    CHECK(nwin <= N);
    for (int wi = 0; wi < nwin; wi++) {
        int i = wi / nx, j = wi % nx;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < S; y++)
                for (int xx = 0; xx < S; xx++)
                    x[(((size_t)wi * 3 + c) * S + y) * S + xx] = img[(size_t)(i * 16 + y) * W + j * 16 + xx];
    }
    ld_model_forward(&m, x, nwin, 0, NULL, logits);
    for (int wi = 0; wi < nwin; wi++) {
        worst_p = fmax(worst_p, fabs(probs[wi] - ld_sigmoid(logits[wi])));
        for (int q = 0; q < 4; q++)
            worst = fmax(worst, fabs(deltas[wi * 4 + q] - (q + 1) * logits[wi]) /
                                    (1 + fabs((q + 1) * logits[wi])));
    }
    fprintf(stderr, "  box head over %d windows: offsets vs model %.3g, probabilities %.3g\n",
            nwin, worst, worst_p);
    CHECK_MSG(worst <= 1e-5 && worst_p <= 1e-5, "scanner box head: %g, %g", worst, worst_p);
    free(img);
    free(probs);
    free(probs2);
    free(deltas);
    free(x);
    ld_scanner_free(&sc);
    ld_model_free(&m);
}

TEST_SUITE(dettrain_detector_decodes)
{
    /* Box weights 0 and box biases (0.25, -0.125, ln 2, ln 0.5): every window's box is
     * its own shifted by (S/4, -S/8) in the centre, twice as wide, half as high. At scale
     * 1, stride 16, no merging, threshold 0 that is (16 j + 16 - 32 + ...) — worked out
     * per window below — clipped to the frame. */
    ld_model m;
    if (seeded_detect_model(&m, 1, 3)) { CHECK_MSG(0, "model"); return; }
    int S = m.arch.input_size;
    size_t D = (size_t)m.arch.filters[m.arch.n_blocks - 1] * 4;
    memset(m.box_w, 0, 4 * D * sizeof(float));
    m.box_b[0] = 0.25f;
    m.box_b[1] = -0.125f;
    m.box_b[2] = (float)log(2.0);
    m.box_b[3] = (float)log(0.5);
    ld_detect_config cfg;
    ld_detect_config_default(&cfg);
    cfg.threshold = 0;
    cfg.merge = LD_MERGE_NONE;
    cfg.stride = 16;
    enum { W = 128, H = 96 };
    uint8_t px[W * H];
    for (int i = 0; i < W * H; i++) px[i] = (uint8_t)(i * 37 % 251);
    ld_detector det;
    ld_dets out = {0};
    ld_error err = {0};
    CHECK_INT(ld_detector_init(&det, &m, &cfg, &err), LD_OK);
    CHECK_INT(ld_detector_run(&det, px, W, H, 1, W, &out, &err), LD_OK);
    /* windows: x = 0, 16, 32, 48, 64 (5), y = 0, 16, 32 (3): 15 boxes */
    CHECK_INT(out.n, 15);
    int matched = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++) {
            /* centre (16 j + 32 + 16, 16 i + 32 - 8), size 128 x 32, clipped */
            double cx = 16 * j + S / 2 + 0.25 * S, cy = 16 * i + S / 2 - 0.125 * S;
            double x1 = fmax(0, cx - 64), x2 = fmin(W, cx + 64), y1 = fmax(0, cy - 16),
                   y2 = fmin(H, cy + 16);
            for (int k = 0; k < out.n; k++) {
                const ld_det *d = &out.d[k];
                if (fabs(d->x - x1) < 1e-4 && fabs(d->y - y1) < 1e-4 &&
                    fabs(d->w - (x2 - x1)) < 1e-4 && fabs(d->h - (y2 - y1)) < 1e-4) {
                    matched++;
                    break;
                }
            }
        }
    CHECK_INT(matched, 15);
    /* a second run on a frame of the same size allocates nothing */
    ld_alloc_fail_after(1);
    ld_status st = ld_detector_run(&det, px, W, H, 1, W, &out, &err);
    ld_alloc_fail_after(0);
    CHECK_INT(st, LD_OK);
    ld_dets_free(&out);
    ld_detector_free(&det);
    ld_model_free(&m);
}

/* ---- settings and architecture in the model file --------------------------- */

TEST_SUITE(dettrain_model_file)
{
    ld_model m, m2;
    if (seeded_detect_model(&m, 1, 8)) { CHECK_MSG(0, "model"); return; }
    /* 4,8,16,16 with a 64 px window: 2 x 2 last map, D = 64; 16 + 4 box-head tensors */
    CHECK_INT(m.n_tensors, 4 * 6 + 4);
    CHECK_STR(m.tensors[24].name, "dense.weight");
    CHECK_STR(m.tensors[26].name, "box.weight");
    CHECK_INT(m.tensors[26].shape[0], 4);
    CHECK_INT(m.tensors[26].shape[1], 64);
    CHECK_INT((long)m.n_params, 112 + 16 + 296 + 32 + 1168 + 64 + 2320 + 64 + 65 + 260);
    ld_detect_config cfg, back;
    ld_detect_config_default(&cfg);
    cfg.threshold = 0.3;
    cfg.nms_iou = 0.45;
    cfg.stride = 16;
    cfg.merge = LD_MERGE_NMS;   /* not the default, so the round trip shows */
    cfg.n_scales = 3;
    cfg.scales[0] = 1.41421;
    cfg.scales[1] = 1;
    cfg.scales[2] = 0.707107;
    ld_error err = {0};
    CHECK_INT(ld_detect_config_to_model(&m, &cfg, &err), LD_OK);
    const char *path = "/tmp/lymphdet_test_detect_model.safetensors";
    CHECK_INT(ld_model_save(&m, path, &err), LD_OK);
    CHECK_INT(ld_model_load(&m2, path, 1, &err), LD_OK);
    CHECK_STR(m2.arch.preset, "detect");
    CHECK_INT(m2.arch.box_head, 4);
    CHECK_INT(m2.arch.n_blocks, 4);
    CHECK(memcmp(m.params, m2.params, m.n_params * sizeof(float)) == 0);
    CHECK_INT(ld_detect_config_from_model(&back, &m2, &err), LD_OK);
    CHECK_NEAR(back.threshold, 0.3, 0);
    CHECK_NEAR(back.nms_iou, 0.45, 0);
    CHECK_INT(back.stride, 16);
    CHECK_INT(back.n_scales, 3);
    CHECK_NEAR(back.scales[0], 1.41421, 0);
    CHECK_NEAR(back.scales[2], 0.707107, 0);
    CHECK_INT(back.merge, LD_MERGE_NMS);
    /* a bad value is an input error naming the key */
    ld_model_meta_set(&m2, "detect_nms_iou", "lots", &err);
    CHECK_INT(ld_detect_config_from_model(&back, &m2, &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, "detect_nms_iou") != NULL);
    ld_model_meta_set(&m2, "detect_nms_iou", "0.5", &err);
    ld_model_meta_set(&m2, "detect_stride", "7", &err);   /* neither divides 16 nor a multiple */
    CHECK_INT(ld_detect_config_from_model(&back, &m2, &err), LD_ERR_INPUT);
    /* without any detect_* key: the detector's defaults */
    ld_model paper;
    ld_arch pa;
    ld_arch_paper(&pa);
    CHECK_INT(ld_model_init(&paper, &pa, 1, &err), LD_OK);
    CHECK_INT(ld_detect_config_from_model(&back, &paper, &err), LD_OK);
    CHECK_NEAR(back.threshold, 0.95, 0);
    CHECK(paper.box_w == NULL);
    CHECK_INT(paper.n_tensors, 20);
    /* the paper's file does not mention a box head (its bytes are unchanged) */
    CHECK_INT(ld_model_save(&paper, path, &err), LD_OK);
    FILE *f = fopen(path, "rb");
    char head[2048] = {0};
    if (f) {
        size_t got = fread(head, 1, sizeof head - 1, f);
        head[got] = '\0';
        fclose(f);
    }
    CHECK(strstr(head + 8, "box_head") == NULL && strstr(head + 8, "\"preset\":\"paper\"") != NULL);
    remove(path);
    ld_model_free(&paper);
    ld_model_free(&m2);
    ld_model_free(&m);
}

/* ---- the crop sampler -------------------------------------------------------- */

TEST_SUITE(dettrain_sample)
{
    /* One 300 x 240 frame with a 96 x 96 box at (150, 60). Size range 0, no jitter, no
     * augmentation, crops always around the lesion: the frame is shown at s = 64 / 96,
     * so the box becomes 64 x 64 and some window must match it with IoU >= 0.5;
     * every positive's target decodes to a 64 x 64 box. */
    ld_model m;
    if (seeded_detect_model(&m, 1, 2)) { CHECK_MSG(0, "model"); return; }
    ld_frameset fs = {0};
    ld_image frame = {300, 240, 1, calloc(300 * 240, 1)};
    ld_box box = {150, 60, 96, 96, 0}, *boxes = &box;
    int n_boxes = 1, index = 0;
    fs.n = 1;
    fs.frames = &frame;
    fs.boxes = &boxes;
    fs.n_boxes = &n_boxes;
    fs.label_index = &index;
    for (int i = 0; i < 300 * 240; i++) frame.px[i] = (uint8_t)(i % 7 * 30);
    ld_dettrain_config cfg;
    ld_dettrain_config_default(&cfg);
    cfg.size_range = 0;
    cfg.p_center = 1;
    ld_augment_config_none(&cfg.aug);
    ld_dettrainer t;
    ld_error err = {0};
    if (ld_dettrainer_init(&t, &m, 2, 128, &cfg.aug, &err)) {
        CHECK_MSG(0, "trainer: %s", err.msg);
        free(frame.px);
        ld_model_free(&m);
        return;
    }
    ld_rng rng;
    ld_rng_seed(&rng, 4);
    CHECK_INT(ld_dettrainer_sample(&t, 1, &fs, 0, &cfg, &rng, &err), LD_OK);
    int nw = t.nx * t.ny, pos = 0, sized = 0;
    const int8_t *lab = t.label + nw;
    const float *tg = t.target + 4 * nw;
    for (int p = 0; p < nw; p++) {
        if (lab[p] != 1) continue;
        pos++;
        sized += fabs(exp(tg[2 * nw + p]) * 64 - 64) < 0.5 && fabs(exp(tg[3 * nw + p]) * 64 - 64) < 0.5;
    }
    CHECK_MSG(pos >= 1, "%d positive windows", pos);
    CHECK_INT(sized, pos);
    /* the crop holds the resized frame: values are the frame's grey levels / 255 */
    int in_range = 1;
    for (int i = 0; i < 128 * 128; i++) in_range &= t.x[128 * 128 + i] >= 0 && t.x[128 * 128 + i] <= 1;
    CHECK(in_range);
    /* same seed, same crop and labels, bit for bit */
    float *copy = malloc(sizeof(float) * 128 * 128);
    memcpy(copy, t.x + 128 * 128, sizeof(float) * 128 * 128);
    ld_rng_seed(&rng, 4);
    CHECK_INT(ld_dettrainer_sample(&t, 0, &fs, 0, &cfg, &rng, &err), LD_OK);
    CHECK(memcmp(copy, t.x, sizeof(float) * 128 * 128) == 0);
    CHECK(memcmp(t.label, t.label + nw, (size_t)nw) == 0);
    free(copy);
    free(frame.px);
    ld_dettrainer_free(&t);
    ld_model_free(&m);
}

/* ---- evaluation and tuning ----------------------------------------------------- */

typedef struct {
    int calls;
    double best_ap50;
    double ap50[512], dpi[512];
    double thr[512];
} tune_log;

static void log_candidate(void *user, const ld_detect_config *c, double ap50, double ap,
                          double dpi)
{
    tune_log *l = user;
    (void)ap;
    if (l->calls < 512) {
        l->ap50[l->calls] = ap50;
        l->dpi[l->calls] = dpi;
        l->thr[l->calls] = c->threshold;
    }
    l->calls++;
    if (ap50 > l->best_ap50) l->best_ap50 = ap50;
}

/* Two 160 x 128 frames with dark discs (one box each, one frame with two). */
static void synthetic_frames(ld_frameset *fs, ld_image *frames, ld_box **boxes, int *nb,
                             int *index, ld_box *store)
{
    static const double disc[3][3] = {{60, 50, 24}, {110, 80, 18}, {40, 90, 30}};
    for (int f = 0; f < 2; f++) {
        frames[f] = (ld_image){160, 128, 1, malloc(160 * 128)};
        for (int y = 0; y < 128; y++)
            for (int x = 0; x < 160; x++) frames[f].px[y * 160 + x] = (uint8_t)(150 + (x * 7 + y * 3) % 40);
    }
    int k = 0;
    for (int d = 0; d < 3; d++) {
        int f = d == 2;
        double cx = disc[d][0], cy = disc[d][1], r = disc[d][2];
        for (int y = 0; y < 128; y++)
            for (int x = 0; x < 160; x++)
                if ((x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r) frames[f].px[y * 160 + x] = 30;
        store[k++] = (ld_box){cx - r, cy - r, 2 * r, 2 * r, 0};
    }
    boxes[0] = store;
    nb[0] = 2;
    boxes[1] = store + 2;
    nb[1] = 1;
    index[0] = 0;
    index[1] = 1;
    fs->n = 2;
    fs->frames = frames;
    fs->boxes = boxes;
    fs->n_boxes = nb;
    fs->label_index = index;
}

TEST_SUITE(dettrain_evaluate_tune)
{
    ld_model m;
    if (seeded_detect_model(&m, 1, 13)) { CHECK_MSG(0, "model"); return; }
    ld_frameset fs;
    ld_image frames[2];
    ld_box *boxes[2], store[3];
    int nb[2], index[2];
    synthetic_frames(&fs, frames, boxes, nb, index, store);
    ld_detect_config cfg;
    ld_detect_config_default(&cfg);
    cfg.threshold = 0.05;
    cfg.stride = 16;
    cfg.n_scales = 2;
    cfg.scales[0] = 1;
    cfg.scales[1] = 0.75;
    ld_error err = {0};
    /* ld_det_evaluate = the detector on each frame + ld_coco_eval with ids 1, 2 */
    ld_coco_metrics cm, ref;
    ld_dets dets[2] = {{0}}, own[2] = {{0}};
    CHECK_INT(ld_det_evaluate(&cm, NULL, dets, &m, &cfg, &fs, &err), LD_OK);
    ld_detector det;
    CHECK_INT(ld_detector_init(&det, &m, &cfg, &err), LD_OK);
    ld_eval_image views[2];
    for (int f = 0; f < 2; f++) {
        CHECK_INT(ld_detector_run(&det, frames[f].px, 160, 128, 1, 160, &own[f], &err), LD_OK);
        CHECK_INT(own[f].n, dets[f].n);
        CHECK(own[f].n == dets[f].n && memcmp(own[f].d, dets[f].d, sizeof(ld_det) * own[f].n) == 0);
        views[f] = (ld_eval_image){f + 1, boxes[f], nb[f], own[f].d, own[f].n};
    }
    CHECK_INT(ld_coco_eval(&ref, NULL, views, 2, 1, &err), LD_OK);
    CHECK(cm.ap50 == ref.ap50 && cm.ap == ref.ap && cm.n_gt == 3);
    /* tuning: 2 ratios x 4 NMS IoUs x 6 thresholds for each largest factor; the winner
     * is within 0.01 AP@0.5 of the best candidate and has the fewest detections per
     * image among those */
    tune_log log = {0, -1, {0}, {0}, {0}};
    double max_scales[1] = {1.0}, ap50 = -1, ap = -1;
    ld_detect_config tuned = cfg;
    CHECK_INT(ld_det_tune(&tuned, &ap50, &ap, &m, &fs, max_scales, 1, log_candidate, &log, &err),
              LD_OK);
    CHECK_INT(log.calls, 2 * 4 * 6);
    CHECK(ap50 >= log.best_ap50 - 0.01);
    double fewest = 1e9;
    for (int i = 0; i < log.calls && i < 512; i++)
        if (log.ap50[i] >= log.best_ap50 - 0.01 && log.dpi[i] < fewest) fewest = log.dpi[i];
    int found = 0;
    for (int i = 0; i < log.calls && i < 512; i++)
        found |= log.ap50[i] == ap50 && log.dpi[i] == fewest && log.thr[i] == tuned.threshold;
    CHECK(found);
    CHECK_INT(tuned.merge, LD_MERGE_NMS);
    CHECK(tuned.scales[0] == 1.0 && tuned.n_scales >= 2);
    /* a pyramid never goes below one window: 128 px frames and a 64 px window stop at
     * 0.5 (sqrt 2 steps: 1, 0.71, 0.5) */
    CHECK(tuned.scales[tuned.n_scales - 1] * 128 >= 63.5);
    for (int f = 0; f < 2; f++) {
        ld_dets_free(&dets[f]);
        ld_dets_free(&own[f]);
        free(frames[f].px);
    }
    ld_detector_free(&det);
    ld_model_free(&m);
}

TEST_SUITE(dettrain_conv_backward_rows)
{
    /* against the reference kernel, on shapes whose rows are and are not multiples of
     * the 8 lanes (27 and 38 outputs per row) */
    static const int shapes[2][5] = {{2, 3, 5, 23, 29}, {1, 4, 2, 40, 40}};
    for (int s = 0; s < 2; s++) {
        int n = shapes[s][0], c = shapes[s][1], f = shapes[s][2], h = shapes[s][3], w = shapes[s][4];
        size_t ni = (size_t)n * c * h * w, no = (size_t)n * f * (h - 2) * (w - 2), nw = (size_t)f * c * 9;
        float *in = malloc(ni * sizeof(float)), *dout = malloc(no * sizeof(float));
        float *wt = malloc(nw * sizeof(float)), *dw1 = malloc(nw * sizeof(float));
        float *dw2 = malloc(nw * sizeof(float)), *di1 = malloc(ni * sizeof(float));
        float *di2 = malloc(ni * sizeof(float)), db[8];
        ld_rng rng;
        ld_rng_seed(&rng, 40 + s);
        for (size_t i = 0; i < ni; i++) in[i] = ld_rng_float(&rng);
        for (size_t i = 0; i < no; i++) dout[i] = ld_rng_float(&rng) - 0.5f;
        for (size_t i = 0; i < nw; i++) wt[i] = ld_rng_float(&rng) - 0.5f;
        ld_conv3x3_backward(di1, dw1, db, dout, in, wt, n, c, f, h, w);
        ld_conv3x3_backward_rows(di2, dw2, dout, in, wt, n, c, f, h, w);
        double ew = 0, ei = 0, scale = 0;
        for (size_t i = 0; i < nw; i++) {
            ew = fmax(ew, fabs(dw1[i] - dw2[i]));
            scale = fmax(scale, fabs(dw1[i]));
        }
        for (size_t i = 0; i < ni; i++) ei = fmax(ei, fabs(di1[i] - di2[i]));
        fprintf(stderr, "  conv backward rows %dx%dx%dx%d -> %d: weight %.3g (of %.3g), input %.3g\n",
                n, c, h, w, f, ew, scale, ei);
        CHECK_MSG(ew <= 1e-5 * scale && ei <= 1e-6, "shape %d: %g %g", s, ew, ei);
        free(in); free(dout); free(wt); free(dw1); free(dw2); free(di1); free(di2);
    }
}
