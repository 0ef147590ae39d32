/* test_detect.c — merging rules, the pyramid's mapping back to the frame, blobs of
 * known sizes found at the scale that fits them, the heat map, and the embedding
 * API's promise of no allocation once warm.
 *
 * The blob test uses a hand-set "blob detector" in the paper's architecture (see
 * blob_model): its probability peaks when a dark square of 75 px lies at offset
 * 8..11 inside the window with lighter background around it, so a square of
 * 75 / s frame pixels is found at scale s and nowhere else. The drawing module
 * is checked pixel by pixel at the end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "lymphdet/detect.h"
#include "lymphdet/draw.h"
#include "lymphdet/image.h"
#include "lymphdet/model.h"
#include "lymphdet/rng.h"
#include "test.h"

static ld_det box(double x, double y, double w, double h, float score)
{
    ld_det d = {x, y, w, h, score, 0};
    return d;
}

TEST_SUITE(detect_iou)
{
    ld_det a = box(0, 0, 10, 10, 1), b = box(5, 0, 10, 10, 1), c = box(10, 0, 10, 10, 1);
    CHECK_NEAR(ld_det_iou(&a, &b), 50.0 / 150.0, 1e-15);
    CHECK_NEAR(ld_det_iou(&a, &a), 1.0, 0);
    CHECK_NEAR(ld_det_iou(&a, &c), 0.0, 0);          /* touching edges share no area */
    ld_det d = box(2.5, 2.5, 5, 5, 1), z = box(3, 3, 0, 0, 1);
    CHECK_NEAR(ld_det_iou(&a, &d), 25.0 / 100.0, 1e-15);   /* continuous, no +1 */
    CHECK_NEAR(ld_det_iou(&z, &z), 0.0, 0);
    CHECK_INT(ld_merge_parse("nms"), LD_MERGE_NMS);
    CHECK_INT(ld_merge_parse("cluster"), LD_MERGE_CLUSTER);
    CHECK_INT(ld_merge_parse("none"), LD_MERGE_NONE);
    CHECK_INT(ld_merge_parse("NMS"), -1);
    CHECK_STR(ld_merge_name(LD_MERGE_CLUSTER), "cluster");
}

TEST_SUITE(detect_merge_none_nms)
{
    ld_error err = {0};
    ld_merger mg = {0};
    ld_dets out = {0};
    /* D (0.97) overlaps B (0.95) with IoU 50*100/(20000-5000) = 1/3 and A (0.90)
     * with IoU 40*100/16000 = 0.25; A and B overlap at 0.818, but B is suppressed
     * before A is visited, so A survives (greedy over KEPT boxes only); C is apart.
     * E ties with A and comes later: ties keep input order. */
    ld_det in[5] = {box(0, 0, 100, 100, 0.90f), box(10, 0, 100, 100, 0.95f),
                    box(200, 0, 100, 100, 0.80f), box(60, 0, 100, 100, 0.97f),
                    box(400, 0, 50, 50, 0.90f)};
    CHECK_INT(ld_merge(&mg, &out, in, 5, LD_MERGE_NMS, 0.3, &err), LD_OK);
    CHECK_INT(out.n, 4);
    if (out.n == 4) {
        CHECK_NEAR(out.d[0].x, 60, 0);
        CHECK_NEAR(out.d[1].x, 0, 0);
        CHECK_NEAR(out.d[2].x, 400, 0);
        CHECK_NEAR(out.d[3].x, 200, 0);
    }
    /* suppression is strict: IoU exactly 1/3 at nms_iou 1/3 keeps B, which then
     * suppresses A (0.818) */
    CHECK_INT(ld_merge(&mg, &out, in, 5, LD_MERGE_NMS, 1.0 / 3.0, &err), LD_OK);
    CHECK_INT(out.n, 4);
    if (out.n == 4) {
        CHECK_NEAR(out.d[1].x, 10, 0);
        CHECK_NEAR(out.d[2].x, 400, 0);
    }
    /* a lower IoU suppresses A through D as well */
    CHECK_INT(ld_merge(&mg, &out, in, 5, LD_MERGE_NMS, 0.2, &err), LD_OK);
    CHECK_INT(out.n, 3);
    /* none: every box by descending score, ties in input order */
    CHECK_INT(ld_merge(&mg, &out, in, 5, LD_MERGE_NONE, 0.3, &err), LD_OK);
    CHECK_INT(out.n, 5);
    if (out.n == 5) {
        const double xs[5] = {60, 10, 0, 400, 200};
        for (int i = 0; i < 5; i++) CHECK_NEAR(out.d[i].x, xs[i], 0);
    }
    CHECK_INT(ld_merge(&mg, &out, in, 0, LD_MERGE_NMS, 0.3, &err), LD_OK);
    CHECK_INT(out.n, 0);
    /* warm: no allocation */
    ld_alloc_fail_after(1);
    ld_status st = ld_merge(&mg, &out, in, 5, LD_MERGE_NMS, 0.3, &err);
    long allocs = ld_alloc_fail_after(0);
    CHECK_INT(st, LD_OK);
    CHECK_INT(allocs, 0);
    ld_merger_free(&mg);
    ld_dets_free(&out);
}

TEST_SUITE(detect_merge_cluster)
{
    ld_error err = {0};
    ld_merger mg = {0};
    ld_dets out = {0};
    /* W1-W2-W3 overlap heavily; W5 touches W1 (shares only an edge) but overlaps
     * W2 by 8 px, so it joins through W2; W4 is alone. */
    ld_det in[5] = {box(0, 0, 100, 100, 0.96f), box(8, 0, 100, 100, 0.98f),
                    box(16, 8, 100, 100, 0.97f), box(300, 300, 100, 100, 0.99f),
                    box(100, 0, 100, 100, 0.97f)};
    in[1].category = 2;
    CHECK_INT(ld_merge(&mg, &out, in, 5, LD_MERGE_CLUSTER, 0.0, &err), LD_OK);
    CHECK_INT(out.n, 2);
    if (out.n == 2) {
        /* the lone box first (0.99), unchanged */
        CHECK_NEAR(out.d[0].x, 300, 1e-12);
        CHECK_NEAR(out.d[0].w, 100, 1e-12);
        CHECK_NEAR(out.d[0].score, 0.99f, 0);
        /* the group: score-weighted mean corners, by hand with weights .96 .98 .97 .97 */
        double ws = 0.96 + 0.98 + 0.97 + 0.97;
        double x1 = (0.98 * 8 + 0.97 * 16 + 0.97 * 100) / ws;
        double y1 = (0.97 * 8) / ws;
        double x2 = (0.96 * 100 + 0.98 * 108 + 0.97 * 116 + 0.97 * 200) / ws;
        double y2 = (0.96 * 100 + 0.98 * 100 + 0.97 * 108 + 0.97 * 100) / ws;
        CHECK_NEAR(out.d[1].x, x1, 1e-5);
        CHECK_NEAR(out.d[1].y, y1, 1e-5);
        CHECK_NEAR(out.d[1].x + out.d[1].w, x2, 1e-5);
        CHECK_NEAR(out.d[1].y + out.d[1].h, y2, 1e-5);
        CHECK_NEAR(out.d[1].score, 0.98f, 0);       /* the maximum */
        CHECK_INT(out.d[1].category, 2);            /* of the best member */
    }
    /* linking at IoU > 0.5: W1-W2 0.85, W2-W3 0.73, W1-W3 0.63 join; W5 is alone */
    CHECK_INT(ld_merge(&mg, &out, in, 5, LD_MERGE_CLUSTER, 0.5, &err), LD_OK);
    CHECK_INT(out.n, 3);
    if (out.n == 3) {
        CHECK_NEAR(out.d[0].x, 300, 0);
        CHECK_NEAR(out.d[1].score, 0.98f, 0);
        double ws = 0.96 + 0.98 + 0.97;
        CHECK_NEAR(out.d[1].x, (0.98 * 8 + 0.97 * 16) / ws, 1e-5);
        CHECK_NEAR(out.d[2].x, 100, 1e-12);         /* W5: 0.97, alone */
    }
    /* scores all 0: the plain mean */
    ld_det zero[2] = {box(0, 0, 10, 10, 0), box(4, 2, 10, 10, 0)};
    CHECK_INT(ld_merge(&mg, &out, zero, 2, LD_MERGE_CLUSTER, 0.0, &err), LD_OK);
    CHECK_INT(out.n, 1);
    if (out.n == 1) {
        CHECK_NEAR(out.d[0].x, 2, 1e-12);
        CHECK_NEAR(out.d[0].y, 1, 1e-12);
        CHECK_NEAR(out.d[0].w, 10, 1e-12);
    }

    /* the sweep's pruning against brute force: random boxes of mixed widths */
    enum { N = 400 };
    ld_det *r = malloc(sizeof *r * N);
    ld_rng rng;
    ld_rng_seed(&rng, 99);
    for (int i = 0; i < N; i++)
        r[i] = box(ld_rng_double(&rng) * 2000, ld_rng_double(&rng) * 2000,
                   5 + ld_rng_double(&rng) * (i % 10 == 0 ? 150 : 40), 5 + ld_rng_double(&rng) * 40,
                   0.5f + 0.5f * ld_rng_float(&rng));
    int parent[N];
    for (int i = 0; i < N; i++) parent[i] = i;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < i; j++)
            if (ld_det_iou(&r[i], &r[j]) > 0) {
                int a = i, b = j;
                while (parent[a] != a) a = parent[a];
                while (parent[b] != b) b = parent[b];
                if (a != b) parent[a > b ? a : b] = a < b ? a : b;
            }
    int groups = 0, biggest = 0;
    for (int i = 0; i < N; i++) {
        int n = 0;
        for (int j = 0; j < N; j++) {
            int a = j;
            while (parent[a] != a) a = parent[a];
            n += a == i;
        }
        groups += parent[i] == i;
        if (n > biggest) biggest = n;
    }
    CHECK_INT(ld_merge(&mg, &out, r, N, LD_MERGE_CLUSTER, 0.0, &err), LD_OK);
    CHECK_INT(out.n, groups);
    CHECK(biggest >= 3);      /* the set does contain real groups */
    CHECK(groups < N - 20);
    /* every group's box, recomputed from the brute-force groups, is in the output */
    int matched = 0;
    for (int g = 0; g < N; g++) {
        if (parent[g] != g) continue;
        double c[4] = {0}, ws = 0;
        float best = 0;
        for (int j = 0; j < N; j++) {
            int a = j;
            while (parent[a] != a) a = parent[a];
            if (a != g) continue;
            double s = r[j].score;
            c[0] += s * r[j].x;
            c[1] += s * r[j].y;
            c[2] += s * (r[j].x + r[j].w);
            c[3] += s * (r[j].y + r[j].h);
            ws += s;
            if (r[j].score > best) best = r[j].score;
        }
        for (int k = 0; k < out.n; k++)
            if (fabs(out.d[k].x - c[0] / ws) < 1e-9 && fabs(out.d[k].y - c[1] / ws) < 1e-9 &&
                fabs(out.d[k].x + out.d[k].w - c[2] / ws) < 1e-9 &&
                fabs(out.d[k].y + out.d[k].h - c[3] / ws) < 1e-9 && out.d[k].score == best) {
                matched++;
                break;
            }
    }
    CHECK_INT(matched, groups);
    int sorted = 1;
    for (int i = 1; i < out.n; i++) sorted &= out.d[i - 1].score >= out.d[i].score;
    CHECK(sorted);
    free(r);
    ld_merger_free(&mg);
    ld_dets_free(&out);
}

/* Random weights with non-trivial BN statistics (as in test_scan.c). */
static void random_model(ld_model *m, uint64_t seed)
{
    ld_rng rng;
    ld_rng_seed(&rng, seed);
    ld_model_init_weights(m, seed);
    for (int k = 0; k < m->arch.n_blocks; k++)
        for (int f = 0; f < m->arch.filters[k]; f++) {
            m->p[k].bn_mean[f] = 0.2f * (ld_rng_float(&rng) - 0.3f);
            m->p[k].bn_var[f] = 0.1f + ld_rng_float(&rng);
            m->p[k].conv_b[f] = 0.1f * (ld_rng_float(&rng) - 0.5f);
        }
    for (int i = 0; i < 800; i++) m->dense_w[i] *= 20.0f;
}

/* The blob detector. conv1: channel 0 = relu(0.4 - x) (darkness), channel 1 =
 * relu(x - 0.4) (brightness), centre taps only; conv2, conv3 pass both channels
 * on by their centre taps; BN is the identity. Last-map cell (u, v) then holds the
 * maxima over input rows 8u+7..8u+14 (columns likewise). The dense layer adds
 * darkness minus brightness over the 8x8 interior cells and brightness over the
 * ring: a dark square covering rows 15..78 (interior) whose ring cells still see
 * background (it starts at 8..15 and ends before 86) scores 64 * 0.302 +
 * 36 * 0.298 = 30 at best; bias -27 and gain 2 give p = 0.9975 there and ~0.01 a
 * step off it. */
static void blob_model(ld_model *m)
{
    memset(m->params, 0, m->n_params * sizeof(float));
    for (int k = 0; k < 3; k++)
        for (int f = 0; f < m->arch.filters[k]; f++) {
            m->p[k].bn_gamma[f] = sqrtf(1.0f + m->arch.bn_eps);
            m->p[k].bn_var[f] = 1.0f;
        }
    for (int c = 0; c < 3; c++) {
        m->p[0].conv_w[(0 * 3 + c) * 9 + 4] = -1.0f / 3;
        m->p[0].conv_w[(1 * 3 + c) * 9 + 4] = 1.0f / 3;
    }
    m->p[0].conv_b[0] = 0.4f;
    m->p[0].conv_b[1] = -0.4f;
    for (int k = 1; k < 3; k++) {
        int cin = m->arch.filters[k - 1];
        m->p[k].conv_w[(0 * cin + 0) * 9 + 4] = 1.0f;
        m->p[k].conv_w[(1 * cin + 1) * 9 + 4] = 1.0f;
    }
    const float g = 2.0f;
    for (int u = 0; u < 10; u++)
        for (int v = 0; v < 10; v++) {
            int interior = u >= 1 && u <= 8 && v >= 1 && v <= 8;
            m->dense_w[0 * 100 + u * 10 + v] = interior ? g : 0.0f;
            m->dense_w[1 * 100 + u * 10 + v] = interior ? -g : g;
        }
    m->dense_b[0] = -27.0f * g;
}

static void fill_square(uint8_t *px, int w, int x0, int y0, int side, uint8_t v)
{
    for (int y = y0; y < y0 + side; y++)
        for (int x = x0; x < x0 + side; x++) px[y * w + x] = v;
}

TEST_SUITE(detect_pyramid_mapping)
{
    /* A non-square frame at scales 1 and 0.71: 469x300 -> 333x213 (round(332.99),
     * round(213)); the per-axis ratios 469/333 and 300/213 differ. Every window
     * comes out (threshold 0, merge none, stride 8). */
    ld_error err = {0};
    ld_arch arch;
    ld_arch_paper(&arch);
    ld_model m;
    CHECK_INT(ld_model_init(&m, &arch, 8, &err), LD_OK);
    random_model(&m, 21);
    enum { W = 469, H = 300 };
    ld_image frame;
    CHECK_INT(ld_image_alloc(&frame, W, H, 1, &err), LD_OK);
    ld_rng rng;
    ld_rng_seed(&rng, 4);
    for (int i = 0; i < W * H; i++) frame.px[i] = (uint8_t)ld_rng_below(&rng, 256);
    ld_detect_config cfg;
    ld_detect_config_default(&cfg);
    cfg.threshold = 0;
    cfg.merge = LD_MERGE_NONE;
    CHECK_INT(ld_detect_parse_scales(&cfg, "1,0.71", &err), LD_OK);
    CHECK_INT(cfg.n_scales, 2);
    ld_detector det;
    CHECK_INT(ld_detector_init(&det, &m, &cfg, &err), LD_OK);
    ld_dets out = {0};
    CHECK_INT(ld_detector_run(&det, frame.px, W, H, 1, W, &out, &err), LD_OK);
    const ld_score_map *m0 = ld_detector_map(&det, 0), *m1 = ld_detector_map(&det, 1);
    CHECK(m0 && m1);
    if (!m0 || !m1) return;
    CHECK_INT(m1->w, 333);
    CHECK_INT(m1->h, 213);
    CHECK_INT(m0->nx * m0->ny, 47 * 26);
    CHECK_INT(m1->nx * m1->ny, 30 * 15);
    CHECK_INT(out.n, 47 * 26 + 30 * 15);

    /* window (i=1, j=2) of level 0.71, by hand: x = 16 * 469/333, y = 8 * 300/213,
     * w = 100 * 469/333, h = 100 * 300/213 */
    float p12 = m1->probs[1 * m1->nx + 2];
    int found = 0;
    for (int k = 0; k < out.n; k++) {
        const ld_det *d = &out.d[k];
        if (fabs(d->x - 22.534535) < 1e-5 && fabs(d->y - 11.267606) < 1e-5) {
            found++;
            CHECK_NEAR(d->w, 140.840841, 1e-5);
            CHECK_NEAR(d->h, 140.845070, 1e-5);
            CHECK_NEAR(d->score, p12, 0);
        }
    }
    CHECK_INT(found, 1);
    /* level 0.71's scores are the scan of the frame resized by ld_image_resize */
    ld_image small = {0};
    CHECK_INT(ld_image_resize(&small, &frame, 333, 213, &err), LD_OK);
    float *img = malloc(sizeof(float) * 333 * 213), *probs = malloc(sizeof(float) * 30 * 15);
    for (int i = 0; i < 333 * 213; i++) img[i] = small.px[i] / 255.0f;
    ld_scanner sc;
    CHECK_INT(ld_scanner_init(&sc, &m, &err), LD_OK);
    CHECK_INT(ld_scanner_run(&sc, probs, img, 333, 213, 333, 8, &err), LD_OK);
    CHECK(memcmp(probs, m1->probs, sizeof(float) * 30 * 15) == 0);
    /* and scale 1 is the frame itself: window (3, 5) equals predict on its crop */
    float x[3 * 100 * 100], ref;
    ld_image crop = {0};
    CHECK_INT(ld_image_crop(&crop, &frame, 40, 24, 100, 100, &err), LD_OK);
    ld_image_to_input(x, &crop);
    ld_model_predict(&m, x, 1, &ref);
    CHECK_NEAR(m0->probs[3 * m0->nx + 5], ref, 1e-6);

    /* heat at pixel (x=60, y=70) from level 1 alone: window-centre units
     * ((60.5 - 50) / 8, (70.5 - 50) / 8) = (1.3125, 2.5625) */
    float *heat = malloc(sizeof(float) * W * H);
    ld_detect_config one = cfg;
    one.n_scales = 1;
    ld_detector det1;
    CHECK_INT(ld_detector_init(&det1, &m, &one, &err), LD_OK);
    CHECK_INT(ld_detector_run(&det1, frame.px, W, H, 1, W, &out, &err), LD_OK);
    ld_detector_heat(&det1, heat);
    const float *p = ld_detector_map(&det1, 0)->probs;
    int nx = 47;
    double top = p[2 * nx + 1] * 0.6875 + p[2 * nx + 2] * 0.3125;
    double bot = p[3 * nx + 1] * 0.6875 + p[3 * nx + 2] * 0.3125;
    CHECK_NEAR(heat[70 * W + 60], top * 0.4375 + bot * 0.5625, 1e-6);
    /* corners clamp to the first window */
    CHECK_NEAR(heat[0], p[0], 1e-7);
    ld_detector_free(&det1);

    free(heat);
    free(img);
    free(probs);
    ld_image_free(&crop);
    ld_image_free(&small);
    ld_scanner_free(&sc);
    ld_detector_free(&det);
    ld_dets_free(&out);
    ld_image_free(&frame);
    ld_model_free(&m);
}

TEST_SUITE(detect_pyramid_blobs)
{
    /* Three dark squares on a lighter 469x469 frame, of 75 / s px for s = 2, 1, 0.5,
     * so each meets the blob detector at exactly one level. */
    ld_error err = {0};
    ld_arch arch;
    ld_arch_paper(&arch);
    ld_model m;
    CHECK_INT(ld_model_init(&m, &arch, 1, &err), LD_OK);
    blob_model(&m);
    enum { W = 469 };
    uint8_t *px = malloc(W * W);
    memset(px, 178, W * W);
    struct { int x, y, side; double scale; } blobs[3] = {
        {40, 40, 38, 2.0}, {60, 300, 75, 1.0}, {250, 250, 150, 0.5}};
    for (int b = 0; b < 3; b++) fill_square(px, W, blobs[b].x, blobs[b].y, blobs[b].side, 25);

    ld_detect_config cfg;
    ld_detect_config_default(&cfg);
    cfg.threshold = 0.5;
    cfg.stride = 4;
    CHECK_INT(ld_detect_parse_scales(&cfg, "2,1,0.5", &err), LD_OK);
    ld_detector det;
    CHECK_INT(ld_detector_init(&det, &m, &cfg, &err), LD_OK);
    ld_dets out = {0};
    CHECK_INT(ld_detector_run(&det, px, W, W, 1, W, &out, &err), LD_OK);
    fprintf(stderr, "  blobs, nms: %d boxes\n", out.n);
    CHECK_INT(out.n, 3);    /* one per blob: no level fires on a blob of the wrong size */
    for (int b = 0; b < 3; b++) {
        ld_det truth = box(blobs[b].x, blobs[b].y, blobs[b].side, blobs[b].side, 1);
        double best = 0, size = 0;
        for (int k = 0; k < out.n; k++) {
            double iou = ld_det_iou(&truth, &out.d[k]);
            if (iou > best) {
                best = iou;
                size = out.d[k].w;
            }
        }
        fprintf(stderr, "  blob %d px: best IoU %.3f, box %.1f px\n", blobs[b].side, best, size);
        CHECK(best > 0.5);
        /* found by the level that fits: a window of 100 / s frame pixels, with
         * the level's actual ratio (469 -> 938, 469, 235) */
        double expect = blobs[b].scale == 0.5 ? 100.0 * 469 / 235 : 100.0 / blobs[b].scale;
        CHECK_NEAR(size, expect, 1e-9);
    }
    /* the same with clustering: one box per blob still */
    ld_detector_free(&det);
    cfg.merge = LD_MERGE_CLUSTER;
    CHECK_INT(ld_detector_init(&det, &m, &cfg, &err), LD_OK);
    CHECK_INT(ld_detector_run(&det, px, W, W, 1, W, &out, &err), LD_OK);
    CHECK_INT(out.n, 3);
    for (int b = 0; b < 3; b++) {
        ld_det truth = box(blobs[b].x, blobs[b].y, blobs[b].side, blobs[b].side, 1);
        double best = 0;
        for (int k = 0; k < out.n; k++)
            if (ld_det_iou(&truth, &out.d[k]) > best) best = ld_det_iou(&truth, &out.d[k]);
        CHECK(best > 0.5);
    }
    /* the heat map is high over the blobs' windows and low over plain background */
    float *heat = malloc(sizeof(float) * W * W);
    ld_detector_heat(&det, heat);
    CHECK(heat[340 * W + 100] > 0.5);   /* centre of the window around the 75 px blob */
    CHECK(heat[200 * W + 440] < 0.05);
    free(heat);
    /* a single level sees only its own blob */
    ld_detector_free(&det);
    cfg.n_scales = 1;
    cfg.scales[0] = 1.0;
    CHECK_INT(ld_detector_init(&det, &m, &cfg, &err), LD_OK);
    CHECK_INT(ld_detector_run(&det, px, W, W, 1, W, &out, &err), LD_OK);
    CHECK_INT(out.n, 1);
    if (out.n == 1) CHECK(out.d[0].x > 40 && out.d[0].x < 60 && out.d[0].y > 280 && out.d[0].y < 300);
    ld_detector_free(&det);
    ld_dets_free(&out);
    free(px);
    ld_model_free(&m);
}

TEST_SUITE(detect_api)
{
    ld_error err = {0};
    ld_arch arch;
    ld_arch_paper(&arch);
    ld_model m;
    CHECK_INT(ld_model_init(&m, &arch, 1, &err), LD_OK);
    random_model(&m, 5);
    /* an RGB frame with padded rows */
    enum { W = 237, H = 181, STRIDE = W * 3 + 5 };
    uint8_t *rgb = malloc(STRIDE * H);
    ld_rng rng;
    ld_rng_seed(&rng, 8);
    for (int i = 0; i < STRIDE * H; i++) rgb[i] = (uint8_t)ld_rng_below(&rng, 256);
    ld_image packed, grey = {0};
    CHECK_INT(ld_image_alloc(&packed, W, H, 3, &err), LD_OK);
    for (int y = 0; y < H; y++) memcpy(packed.px + y * W * 3, rgb + y * STRIDE, W * 3);
    CHECK_INT(ld_image_to_grey(&grey, &packed, &err), LD_OK);

    ld_detect_config cfg;
    ld_detect_config_default(&cfg);
    cfg.threshold = 0.3;
    cfg.merge = LD_MERGE_CLUSTER;
    ld_detector det;
    CHECK_INT(ld_detector_init(&det, &m, &cfg, &err), LD_OK);
    ld_dets a = {0}, b = {0};
    CHECK_INT(ld_detector_run(&det, rgb, W, H, 3, STRIDE, &a, &err), LD_OK);
    /* RGB converts to grey exactly as ld_image_to_grey: same scores, same boxes */
    float map_rgb[18 * 11];
    const ld_score_map *sm = ld_detector_map(&det, 0);
    CHECK_INT(sm->nx * sm->ny, 18 * 11);
    memcpy(map_rgb, sm->probs, sizeof map_rgb);
    CHECK_INT(ld_detector_run(&det, grey.px, W, H, 1, W, &b, &err), LD_OK);
    CHECK(memcmp(map_rgb, ld_detector_map(&det, 0)->probs, sizeof map_rgb) == 0);
    CHECK_INT(a.n, b.n);
    CHECK(a.n > 0);
    int same = a.n == b.n;
    for (int i = 0; same && i < a.n; i++) same = memcmp(&a.d[i], &b.d[i], sizeof a.d[i]) == 0;
    CHECK(same);

    /* warm for this size: the next runs allocate nothing (the first allocation
     * from now on would fail), with any merge mode and threshold */
    ld_detector_run(&det, rgb, W, H, 3, STRIDE, &a, &err);
    ld_alloc_fail_after(1);
    ld_status s1 = ld_detector_run(&det, rgb, W, H, 3, STRIDE, &a, &err);
    det.cfg.threshold = 0;            /* every window positive: the most boxes */
    det.cfg.merge = LD_MERGE_NONE;
    ld_status s2 = ld_detector_run(&det, rgb, W, H, 3, STRIDE, &a, &err);
    int n_all = a.n;
    det.cfg.merge = LD_MERGE_NMS;
    ld_status s3 = ld_detector_run(&det, rgb, W, H, 3, STRIDE, &a, &err);
    long allocs = ld_alloc_fail_after(0);
    CHECK_INT(s1, LD_OK);
    CHECK_INT(s2, LD_OK);
    CHECK_INT(s3, LD_OK);
    CHECK_INT(n_all, 18 * 11);
    CHECK_INT(allocs, 0);
    /* a larger frame needs more: the failure is reported, not a crash */
    uint8_t *big = calloc(400 * 300, 1);
    ld_alloc_fail_after(1);
    ld_status s4 = ld_detector_run(&det, big, 400, 300, 1, 400, &a, &err);
    ld_alloc_fail_after(0);
    CHECK_INT(s4, LD_ERR_NOMEM);
    CHECK_INT(ld_detector_run(&det, big, 400, 300, 1, 400, &a, &err), LD_OK);
    free(big);

    /* a pyramid is warm after one frame too: every level keeps its resizer */
    ld_detector pyr;
    ld_detect_config pc = cfg;
    CHECK_INT(ld_detect_parse_scales(&pc, "1.5,1,0.71,0.5", &err), LD_OK);
    CHECK_INT(ld_detector_init(&pyr, &m, &pc, &err), LD_OK);
    ld_model_free(&m);      /* the detectors keep their own copy of the weights */
    CHECK_INT(ld_detector_run(&pyr, rgb, W, H, 3, STRIDE, &a, &err), LD_OK);
    int n_pyr = a.n;
    CHECK_INT(ld_detector_run(&pyr, rgb, W, H, 3, STRIDE, &b, &err), LD_OK);   /* b warm too */
    ld_alloc_fail_after(1);
    ld_status s5 = ld_detector_run(&pyr, rgb, W, H, 3, STRIDE, &b, &err);
    allocs = ld_alloc_fail_after(0);
    CHECK_INT(s5, LD_OK);
    CHECK_INT(allocs, 0);
    CHECK_INT(b.n, n_pyr);                   /* and the same boxes as the cold run */
    same = a.n == b.n;
    for (int i = 0; same && i < a.n; i++) same = memcmp(&a.d[i], &b.d[i], sizeof a.d[i]) == 0;
    CHECK(same);
    ld_detector_free(&pyr);

    /* bad frames and configurations */
    CHECK_INT(ld_detector_run(&det, rgb, 60, 80, 3, STRIDE, &a, &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, "60x80") != NULL);
    CHECK_INT(ld_detector_run(&det, rgb, W, H, 2, STRIDE, &a, &err), LD_ERR_USAGE);
    CHECK_INT(ld_detector_run(&det, rgb, W, H, 3, W, &a, &err), LD_ERR_USAGE);
    CHECK_INT(ld_detector_map(&det, 0) == NULL, 1);   /* no valid last run */
    ld_detect_config bad;
    ld_detect_config_default(&bad);
    CHECK_INT(ld_detect_config_check(&bad, &arch, &err), LD_OK);
    bad.stride = 3;
    CHECK_INT(ld_detect_config_check(&bad, &arch, &err), LD_ERR_USAGE);
    bad.stride = 24;
    CHECK_INT(ld_detect_config_check(&bad, &arch, &err), LD_OK);
    bad.threshold = 1.5;
    CHECK_INT(ld_detect_config_check(&bad, &arch, &err), LD_ERR_USAGE);
    CHECK_INT(ld_detect_parse_scales(&bad, "2,,1", &err), LD_ERR_USAGE);
    CHECK_INT(ld_detect_parse_scales(&bad, "0", &err), LD_ERR_USAGE);
    CHECK_INT(ld_detect_parse_scales(&bad, "1,x", &err), LD_ERR_USAGE);
    CHECK_INT(ld_detect_parse_scales(&bad, "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1", &err), LD_ERR_USAGE);
    CHECK_INT(ld_detect_parse_scales(&bad, "2, 1.41,1", &err), LD_OK);   /* strtod skips spaces */
    CHECK_INT(bad.n_scales, 3);
    CHECK_NEAR(bad.scales[1], 1.41, 0);

    ld_detector_free(&det);
    ld_dets_free(&a);
    ld_dets_free(&b);
    ld_image_free(&packed);
    ld_image_free(&grey);
    free(rgb);
}

TEST_SUITE(detect_draw)
{
    unsigned char c[3];
    ld_colormap(c, 0);
    CHECK(c[0] == 68 && c[1] == 1 && c[2] == 84);
    ld_colormap(c, 1);
    CHECK(c[0] == 253 && c[1] == 231 && c[2] == 37);
    ld_colormap(c, 0.5f);
    CHECK(c[0] == 33 && c[1] == 145 && c[2] == 140);
    ld_colormap(c, 1.0f / 16);        /* halfway between the first two stops */
    CHECK(c[0] == 70 && c[1] == 23 && c[2] == 104);
    ld_colormap(c, 7);
    CHECK(c[0] == 253);
    ld_colormap(c, NAN);
    CHECK(c[0] == 68);

    /* 200x150 grey frame of 100: lines are 1 px (150 / 235 < 1), font dots 1 px */
    ld_error err = {0};
    ld_image frame, pic = {0};
    CHECK_INT(ld_image_alloc(&frame, 200, 150, 1, &err), LD_OK);
    memset(frame.px, 100, 200 * 150);
    ld_box label = {10, 20, 50, 40, 0};
    ld_det det = box(100, 60, 80, 50, 0.87f);
    CHECK_INT(ld_draw_overlay(&pic, &frame, &label, 1, &det, 1, &err), LD_OK);
    CHECK_INT(pic.w, 200);
    CHECK_INT(pic.c, 3);
#define PX(x, y) (pic.px + ((size_t)(y) * pic.w + (x)) * 3)
    /* red is (0.95, 0.1, 0.1): cairo rounds through 16 bits to (243, 25, 25) */
    const uint8_t *p = PX(10, 40);              /* the label's left edge: red */
    CHECK_MSG(p[0] == 243 && p[1] == 25 && p[2] == 25, "red %d %d %d", p[0], p[1], p[2]);
    p = PX(59, 40);                              /* its right edge, the last pixel inside */
    CHECK(p[0] == 243 && p[1] == 25);
    p = PX(60, 40);                              /* just outside: the frame */
    CHECK(p[0] == 100 && p[1] == 100 && p[2] == 100);
    p = PX(140, 109);                            /* the prediction's bottom edge: blue */
    CHECK(p[0] == 38 && p[1] == 115 && p[2] == 255);
    p = PX(140, 85);                             /* inside: untouched */
    CHECK(p[0] == 100 && p[1] == 100 && p[2] == 100);
    /* the score tag sits above the box (rows 51..59): blue, with "0.87" in white;
     * the "0" glyph's top row is .###. at x 102..104 of row 52 */
    p = PX(101, 52);
    CHECK(p[0] == 38 && p[2] == 255);
    p = PX(102, 52);
    CHECK(p[0] == 255 && p[1] == 255 && p[2] == 255);
    ld_image_free(&pic);

    /* heat map: score 0 everywhere blends the grey 100 with viridis(0) = (68, 1, 84)
     * half and half, rounded: (84, 51, 92); the colour bar's right end is yellow */
    float *heat = calloc(200 * 150, sizeof *heat);
    CHECK_INT(ld_draw_heatmap(&pic, &frame, heat, &err), LD_OK);
    p = PX(50, 50);
    CHECK(p[0] == 84 && p[1] == 51 && p[2] == 92);
    p = PX(194, 144);
    CHECK(p[0] > 200 && p[1] > 200 && p[2] < 100);
    ld_image_free(&pic);
    for (int i = 0; i < 200 * 150; i++) heat[i] = 1;
    CHECK_INT(ld_draw_heatmap(&pic, &frame, heat, &err), LD_OK);
    p = PX(50, 50);
    CHECK(p[0] == 177 && p[1] == 166 && p[2] == 69);
#undef PX
    ld_image_free(&pic);
    CHECK_INT(ld_draw_overlay(&pic, &frame, NULL, 1, NULL, 0, &err), LD_ERR_USAGE);
    free(heat);
    ld_image_free(&frame);
}
