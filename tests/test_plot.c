/* test_plot.c — the report's charts (src/plot.c) and the history reader.
 *
 * Charts are checked as files a browser will show (saved as PNG and decoded back
 * with ld_image_load: right size, RGB) and by pixels whose colour follows from
 * the layout in plot.c by hand: a confusion-matrix cell's shade, the box plot's
 * median line, the absence of any validation colour when validation is NaN. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lymphdet/image.h"
#include "lymphdet/metrics.h"
#include "lymphdet/plot.h"
#include "test.h"

#define FIX "tests/fixtures/evaluate/"

/* the chart's colours (tab10 blue and orange, as 8-bit values) */
static const int BLUE8[3] = {31, 119, 180};
static const int ORANGE8[3] = {255, 127, 14};

static int near_colour(const ld_image *img, int x, int y, const int c[3], int tol)
{
    const uint8_t *p = img->px + ((size_t)y * img->w + x) * 3;
    return abs(p[0] - c[0]) <= tol && abs(p[1] - c[1]) <= tol && abs(p[2] - c[2]) <= tol;
}

static int count_colour(const ld_image *img, int x0, int x1, const int c[3], int tol)
{
    int n = 0;
    for (int y = 0; y < img->h; y++)
        for (int x = x0; x < x1; x++) n += near_colour(img, x, y, c, tol);
    return n;
}

/* saves, decodes and checks the size; returns 0 when the PNG reads back as w x h RGB */
static int roundtrip(const ld_image *img, const char *name, int w, int h)
{
    const char *dir = test_tmpdir("plot");
    char path[512];
    snprintf(path, sizeof path, "%s/%s.png", dir, name);
    ld_error err = {0};
    ld_image back = {0};
    if (ld_image_save_png(img, path, &err) || ld_image_load(&back, path, 0, &err)) return 1;
    int ok = back.w == w && back.h == h && back.c == 3 &&
             memcmp(back.px, img->px, (size_t)w * h * 3) == 0;
    ld_image_free(&back);
    return !ok;
}

TEST_SUITE(plot_history_load)
{
    ld_epoch_stats *h = NULL;
    int n = 0;
    ld_error err = {0};
    CHECK(ld_history_load(&h, &n, FIX "history.csv", &err) == LD_OK);
    CHECK_INT(n, 3);
    if (h && n == 3) {
        CHECK_INT(h[0].epoch, 1);
        CHECK_INT(h[2].epoch, 3);
        CHECK_NEAR(h[0].train_loss, 0.693147, 0);
        CHECK_NEAR(h[1].train_acc, 0.8, 0);
        CHECK_NEAR(h[1].val_loss, 0.45, 0);
        CHECK_NEAR(h[2].val_acc, 0.7, 0);
        CHECK_NEAR(h[2].seconds, 0.875, 0);
    }
    ld_history_free(h);
    CHECK(ld_history_load(&h, &n, FIX "history_noval.csv", &err) == LD_OK);
    CHECK_INT(n, 2);
    if (h && n == 2) CHECK(isnan(h[1].val_loss) && isnan(h[0].val_acc));
    ld_history_free(h);

    static const struct { const char *file, *msg; ld_status st; } bad[] = {
        {"history_bad_header.csv", "history_bad_header.csv:1: not a training history", LD_ERR_INPUT},
        {"history_bad_number.csv", "history_bad_number.csv:3: field 3 is not a number", LD_ERR_INPUT},
        {"history_bad_epoch.csv", "history_bad_epoch.csv:3: epoch 3 where 2 was expected", LD_ERR_INPUT},
        {"history_short.csv", "history_short.csv:2: fewer than 6 comma-separated numbers", LD_ERR_INPUT},
        {"no_such_history.csv", "no_such_history.csv: cannot open", LD_ERR_IO},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, FIX "%s", bad[i].file);
        h = (ld_epoch_stats *)&n;   /* must be reset to NULL on failure */
        CHECK_INT(ld_history_load(&h, &n, path, &err), bad[i].st);
        CHECK_MSG(strstr(err.msg, bad[i].msg) != NULL, "%s: got \"%s\"", bad[i].file, err.msg);
        CHECK(h == NULL && n == 0);
    }
}

TEST_SUITE(plot_history)
{
    ld_epoch_stats *h = NULL;
    int n = 0;
    ld_error err = {0};
    ld_image img = {0};
    CHECK(ld_history_load(&h, &n, FIX "history.csv", &err) == LD_OK);
    CHECK(ld_plot_history(&img, h, n, NULL, 960, 400, &err) == LD_OK);
    CHECK(roundtrip(&img, "history", 960, 400) == 0);
    /* both panels hold training (blue) and validation (orange) lines */
    CHECK(count_colour(&img, 0, 480, BLUE8, 10) > 100);
    CHECK(count_colour(&img, 0, 480, ORANGE8, 10) > 100);
    CHECK(count_colour(&img, 480, 960, ORANGE8, 10) > 100);
    ld_image_free(&img);
    ld_history_free(h);

    /* no validation set: NaN is not drawn, and there is no validation legend either */
    CHECK(ld_history_load(&h, &n, FIX "history_noval.csv", &err) == LD_OK);
    CHECK(ld_plot_history(&img, h, n, NULL, 640, 300, &err) == LD_OK);
    CHECK(img.w == 640 && img.h == 300);
    CHECK(count_colour(&img, 0, 640, BLUE8, 10) > 50);
    CHECK_INT(count_colour(&img, 0, 640, ORANGE8, 40), 0);
    ld_image_free(&img);
    /* one epoch is drawn too */
    CHECK(ld_plot_history(&img, h, 1, NULL, 640, 300, &err) == LD_OK);
    ld_image_free(&img);
    ld_history_free(h);

    /* the detection preset's history (a loss, no accuracy): one panel, the whole width */
    ld_epoch_stats det[4];
    for (int e = 0; e < 4; e++)
        det[e] = (ld_epoch_stats){e + 1, 2.0 / (e + 1), NAN, NAN, NAN, 1};
    CHECK(ld_plot_history(&img, det, 4, "Detection loss", 960, 400, &err) == LD_OK);
    CHECK(count_colour(&img, 0, 480, BLUE8, 10) > 50);
    CHECK(count_colour(&img, 600, 960, BLUE8, 10) > 50);   /* the line reaches the right half */
    CHECK_INT(count_colour(&img, 0, 960, ORANGE8, 40), 0);
    ld_image_free(&img);

    CHECK(ld_plot_history(&img, NULL, 0, NULL, 640, 300, &err) == LD_ERR_USAGE);
    ld_epoch_stats one = {1, 0.5, 0.5, 0.5, 0.5, 1};
    CHECK(ld_plot_history(&img, &one, 1, NULL, 32, 300, &err) == LD_ERR_USAGE);   /* too small */
    CHECK(strstr(err.msg, "32x300") != NULL);
    CHECK(ld_plot_history(&img, &one, 1, NULL, 640, 5000, &err) == LD_ERR_USAGE);
    CHECK(img.px == NULL);
}

TEST_SUITE(plot_boxplot)
{
    /* values 0, 0.1, 0.5, 0.6, 1: median 0.5 (q1 0.1, q3 0.6, mean 0.44).
     * Layout at 560 x 420 (u = 1.05): plot area y from 34u = 35.7 to
     * 420 - 52u - 14u = 350.7 for values -0.04 .. 1, so 0.5 sits at
     * y = 350.7 - 0.54 / 1.04 * 315 = 187.1 and the median line (3u = 3.15 px
     * thick) covers row 187 fully; x from 62u = 65.1 to 560 - 16u = 543.2, one
     * series: centre 304.15, half width min(0.22 * 478.1, 60u) = 63. Row 187 at
     * x = 304 +- 55 is on the line, off the mean's diamond. */
    double v[5] = {0, 0.1, 0.5, 0.6, 1};
    ld_plot_series s = {"detector", v, 5};
    ld_image img = {0};
    ld_error err = {0};
    CHECK(ld_plot_boxplot(&img, &s, 1, "Per-label IoU", "IoU", 560, 420, &err) == LD_OK);
    CHECK(roundtrip(&img, "boxplot", 560, 420) == 0);
    CHECK(near_colour(&img, 359, 187, BLUE8, 2));
    CHECK(near_colour(&img, 249, 187, BLUE8, 2));
    /* 20 px higher (value 0.565, inside the box 0.1..0.6, whose top is at
     * y = 156.9) is the box's light fill, not the line */
    CHECK(!near_colour(&img, 359, 167, BLUE8, 30));
    ld_image_free(&img);

    /* two series, one empty, NaN skipped: still drawn */
    double w[3] = {NAN, 0.2, 0.3};
    ld_plot_series two[2] = {{"a", w, 3}, {"b", NULL, 0}};
    CHECK(ld_plot_boxplot(&img, two, 2, NULL, NULL, 400, 300, &err) == LD_OK);
    CHECK(img.w == 400 && img.h == 300);
    ld_image_free(&img);
    CHECK(ld_plot_boxplot(&img, two, 0, NULL, NULL, 400, 300, &err) == LD_ERR_USAGE);
    CHECK(ld_plot_boxplot(&img, two, 9, NULL, NULL, 400, 300, &err) == LD_ERR_USAGE);
    ld_plot_series bad = {"x", NULL, 2};
    CHECK(ld_plot_boxplot(&img, &bad, 1, NULL, NULL, 400, 300, &err) == LD_ERR_USAGE);
}

TEST_SUITE(plot_confusion)
{
    /* the paper's Table 2 at 520 x 420 (u = 1.05): cells start at x = 150u = 157.5,
     * y = 86u = 90.3. The TP cell's share is 63/76, so its shade is
     * a = 0.12 + 0.78 * 63/76 = 0.76658 of tab10 blue (0.122, 0.467, 0.706):
     * 1 - a (1 - c) = (0.3269, 0.5914, 0.7746) -> (83, 151, 198) at (165, 98), inside
     * the cell, clear of its text and of the 3u white border. The FP cell (1/98)
     * is a = 0.12796 of red (0.839, 0.153, 0.157): (250, 227, 227) at (335, 98). */
    ld_image img = {0};
    ld_error err = {0};
    CHECK(ld_plot_confusion(&img, 63, 1, 13, 97, "Table 2", 520, 420, &err) == LD_OK);
    CHECK(roundtrip(&img, "confusion", 520, 420) == 0);
    const int tp[3] = {83, 151, 198}, fp[3] = {250, 227, 227};
    CHECK(near_colour(&img, 165, 98, tp, 2));
    CHECK(near_colour(&img, 335, 98, fp, 2));
    ld_image_free(&img);
    /* an empty column has no share: drawn white-ish, not as 0 % or 100 % */
    CHECK(ld_plot_confusion(&img, 0, 0, 0, 5, NULL, 400, 300, &err) == LD_OK);
    ld_image_free(&img);
    CHECK(ld_plot_confusion(&img, -1, 0, 0, 5, NULL, 400, 300, &err) == LD_ERR_USAGE);
}

TEST_SUITE(plot_pr)
{
    double score[3] = {0.9, 0.8, 0.7}, prec[3] = {1, 0.5, 2.0 / 3}, rec[3] = {1.0 / 3, 1.0 / 3, 2.0 / 3};
    ld_pr_curve c = {3, score, prec, rec, {0}, 56.0 / 101, 0.5, 3};
    for (int r = 0; r < LD_COCO_N_REC; r++) c.interp[r] = r <= 33 ? 1 : r <= 66 ? 2.0 / 3 : 0;
    ld_pr_curve empty = {0};
    empty.ap = NAN;
    empty.iou_threshold = 0.5;
    empty.n_gt = 3;
    const ld_pr_curve *curves[2] = {&c, &empty};
    const char *names[2] = {"detector", "baseline"};
    ld_image img = {0};
    ld_error err = {0};
    CHECK(ld_plot_pr(&img, curves, names, 2, 560, 420, &err) == LD_OK);
    CHECK(roundtrip(&img, "pr", 560, 420) == 0);
    /* the interpolated precision at recall 0.1 is 1: on the top line of the plot.
     * x = 65.1 + 0.1 * 478.1 = 112.9; y of 1 on a 0..1.02 axis from 35.7 down to
     * 420 - 52u - 14u - (2 legend rows of 18u + 10u) = 302.4 (u = 1.05):
     * 302.4 - 266.7 / 1.02 = 40.9; the 2.6u line covers rows 39.6..42.3, so row 41
     * is the curve's blue */
    CHECK(near_colour(&img, 113, 41, BLUE8, 3));
    ld_image_free(&img);
    CHECK(ld_plot_pr(&img, curves, names, 0, 560, 420, &err) == LD_ERR_USAGE);
    const ld_pr_curve *nullc[1] = {NULL};
    CHECK(ld_plot_pr(&img, nullc, names, 1, 560, 420, &err) == LD_ERR_USAGE);
}
