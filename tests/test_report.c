/* test_report.c — metrics.json and report.html (src/report.c).
 *
 * The metrics come from the metrics module on the hand-made fixtures in
 * tests/fixtures/evaluate (see their README); the expected numbers below are
 * worked out by hand from those boxes, so this checks the whole path from boxes
 * to the written JSON: every key the issue lists, its value, null for undefined
 * values. The HTML is checked for every section, self-containment (no external
 * reference of any kind), escaping, a failing figure leaving no file, and the
 * allocation-failure loop. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "lymphdet/detections.h"
#include "lymphdet/image.h"
#include "lymphdet/labels.h"
#include "lymphdet/metrics.h"
#include "lymphdet/report.h"
#include "test.h"

#define FIX "tests/fixtures/evaluate/"

/* number at a dotted path ("detection.iou_per_label.mean"); NAN if absent or null */
static double jnum(json_t *root, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = root;
    for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, ".")) v = json_object_get(v, tok);
    return v && json_is_number(v) ? json_number_value(v) : NAN;
}

static json_t *jget(json_t *root, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = root;
    for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, ".")) v = json_object_get(v, tok);
    return v;
}

/* The detector's metrics on the fixtures: labels.json + results.json. */
static int fixture_metrics(ld_labels *labels, ld_detection_metrics *m, ld_eval_config *cfg,
                           int n_resamples)
{
    ld_error err = {0};
    ld_label_options lo;
    ld_label_options_default(&lo);
    if (ld_labels_load(labels, FIX "labels.json", &lo, &err)) return 1;
    ld_dets *dets = NULL;
    if (ld_results_load(&dets, FIX "results.json", labels, &err)) return 1;
    ld_eval_config_default(cfg);
    cfg->n_resamples = n_resamples;
    cfg->seed = 7;
    ld_status st = ld_detection_metrics_compute(m, labels, dets, cfg, &err);
    for (int i = 0; i < labels->n_images; i++) ld_dets_free(&dets[i]);
    free(dets);
    return st != LD_OK;
}

/* a tiny PNG for the figures */
static int write_png(const char *path, int w, int h)
{
    ld_image img;
    ld_error err = {0};
    if (ld_image_alloc(&img, w, h, 1, &err)) return 1;
    for (int i = 0; i < w * h; i++) img.px[i] = (uint8_t)(i * 7);
    ld_status st = ld_image_save_png(&img, path, &err);
    ld_image_free(&img);
    return st != LD_OK;
}

TEST_SUITE(report_base64)
{
    /* RFC 4648 section 10 test vectors */
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                      "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char buf[16];
        size_t n = strlen(in[i]);
        CHECK_INT(ld_base64_size(n), strlen(out[i]) + 1);
        ld_base64_encode(buf, (const unsigned char *)in[i], n);
        CHECK_STR(buf, out[i]);
    }
    unsigned char bytes[3] = {0xff, 0xfe, 0x00};
    char buf[8];
    ld_base64_encode(buf, bytes, 3);
    CHECK_STR(buf, "//4A");
}

TEST_SUITE(report_metrics_json)
{
    ld_labels labels;
    ld_detection_metrics m;
    ld_eval_config cfg;
    CHECK(fixture_metrics(&labels, &m, &cfg, 200) == 0);
    /* the fixed box of the baseline: median of the three boxes' relative centres
     * (0.2, 0.6, 0.05) and sizes (0.2, 0.2, 0.1) = the box [10, 10, 20, 20] */
    ld_det bd[2] = {{10, 10, 20, 20, 1.0f, 0}, {10, 10, 20, 20, 1.0f, 0}};
    ld_dets base_dets[2] = {{&bd[0], 1, 1}, {&bd[1], 1, 1}};
    ld_detection_metrics base;
    ld_error err = {0};
    CHECK(ld_detection_metrics_compute(&base, &labels, base_dets, &cfg, &err) == LD_OK);
    ld_patch_metrics pm;
    ld_patch_metrics_from_counts(&pm, 63, 1, 13, 97);   /* the paper's Table 2 */

    const char *dir = test_tmpdir("report_json");
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.json", dir);
    const char *keys[] = {"results", "split"};
    const char *values[] = {"results.json", "all 2 images"};
    ld_report r = {0};
    r.n_images = 2;
    r.cfg = &cfg;
    r.info_keys = keys;
    r.info_values = values;
    r.n_info = 2;
    r.detection = &m;
    r.baseline = &base;
    r.baseline_desc = "median box";
    r.classification = &pm;
    r.classification_desc = "174 patches";
    CHECK(ld_metrics_json_write(path, &r, &err) == LD_OK);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    CHECK(root != NULL);
    if (root) {
        /* top level: exactly these blocks, in this order */
        const char *top[] = {"evaluation", "detection", "classification", "baseline"};
        const char *key;
        json_t *val;
        int k = 0;
        json_object_foreach(root, key, val) { CHECK_STR(key, top[k < 4 ? k : 3]); k++; }
        CHECK_INT(k, 4);
        /* the detection block carries exactly the keys */
        const char *dkeys[] = {"AP", "AP50", "AP75", "AR100", "n_gt", "n_det", "precision",
                               "recall", "f1", "detections_per_image", "iou_per_label",
                               "top1_iou", "ci95"};
        k = 0;
        json_object_foreach(jget(root, "detection"), key, val) {
            CHECK_STR(key, dkeys[k < 13 ? k : 12]);
            k++;
        }
        CHECK_INT(k, 13);
        const char *ikeys[] = {"mean", "median", "q1", "q3", "min", "max", "found_fraction",
                               "mean_found"};
        k = 0;
        json_object_foreach(jget(root, "detection.iou_per_label"), key, val) {
            CHECK_STR(key, ikeys[k < 8 ? k : 7]);
            k++;
        }
        CHECK_INT(k, 8);

        /* By hand. Ranked detections 0.9 (a.png, IoU 1: TP), 0.8 (a.png stray: FP),
         * 0.7 (b.png, IoU exactly 0.5 with [50,50,20,20]: TP at t = 0.5 only); 3 gt.
         * t = 0.5: recall 1/3, 1/3, 2/3; precision 1, 1/2, 2/3 -> envelope 1, 2/3, 2/3;
         *   recall points 0..0.33 take 1 (34 points), 0.34..0.66 take 2/3 (33 points):
         *   AP50 = (34 + 22) / 101 = 56/101.
         * t >= 0.55 (9 thresholds): only the first is a TP: 34 points of 1 -> 34/101.
         * AP = (56 + 9 * 34) / 1010 = 362/1010; AP75 = 34/101.
         * AR100 = (2/3 + 9 * 1/3) / 10 = 11/30. */
        CHECK_NEAR(jnum(root, "detection.AP50"), 56.0 / 101, 1e-12);
        CHECK_NEAR(jnum(root, "detection.AP"), 362.0 / 1010, 1e-12);
        CHECK_NEAR(jnum(root, "detection.AP75"), 34.0 / 101, 1e-12);
        CHECK_NEAR(jnum(root, "detection.AR100"), 11.0 / 30, 1e-12);
        CHECK_NEAR(jnum(root, "detection.n_gt"), 3, 0);
        CHECK_NEAR(jnum(root, "detection.n_det"), 3, 0);
        CHECK(json_is_integer(jget(root, "detection.n_gt")));
        /* operating point (every detection): TP 2, FP 1, FN 1 */
        CHECK_NEAR(jnum(root, "detection.precision"), 2.0 / 3, 1e-12);
        CHECK_NEAR(jnum(root, "detection.recall"), 2.0 / 3, 1e-12);
        CHECK_NEAR(jnum(root, "detection.f1"), 4.0 / 6, 1e-12);
        CHECK_NEAR(jnum(root, "detection.detections_per_image"), 1.5, 1e-12);
        /* per-label IoU: [1, 0.5, 0] ([0,0,10,10] meets no detection of b.png) */
        CHECK_NEAR(jnum(root, "detection.iou_per_label.mean"), 0.5, 1e-12);
        CHECK_NEAR(jnum(root, "detection.iou_per_label.median"), 0.5, 1e-12);
        CHECK_NEAR(jnum(root, "detection.iou_per_label.q1"), 0.25, 1e-12);
        CHECK_NEAR(jnum(root, "detection.iou_per_label.q3"), 0.75, 1e-12);
        CHECK_NEAR(jnum(root, "detection.iou_per_label.min"), 0, 1e-12);
        CHECK_NEAR(jnum(root, "detection.iou_per_label.max"), 1, 1e-12);
        CHECK_NEAR(jnum(root, "detection.iou_per_label.found_fraction"), 2.0 / 3, 1e-12);
        CHECK_NEAR(jnum(root, "detection.iou_per_label.mean_found"), 0.75, 1e-12);
        /* top-1: a.png's 0.9 box IoU 1, b.png's only box IoU 0.5 -> 0.75 */
        CHECK_NEAR(jnum(root, "detection.top1_iou"), 0.75, 1e-12);
        /* intervals: two numbers around the point value, inside [0, 1]; they are
         * what the metrics module computed (its own tests check the resampling) */
        json_t *ci = jget(root, "detection.ci95.AP50");
        CHECK(json_is_array(ci) && json_array_size(ci) == 2);
        double lo = json_number_value(json_array_get(ci, 0)), hi = json_number_value(json_array_get(ci, 1));
        CHECK(lo >= 0 && lo <= 56.0 / 101 + 1e-12 && hi >= 56.0 / 101 - 1e-12 && hi <= 1);
        CHECK_NEAR(lo, m.boot.ap50.lo, 1e-12);
        CHECK_NEAR(hi, m.boot.ap50.hi, 1e-12);
        ci = jget(root, "detection.ci95.iou_per_label_mean");
        CHECK(json_is_array(ci) && json_array_size(ci) == 2);
        CHECK_NEAR(json_number_value(json_array_get(ci, 0)), m.boot.mean_iou.lo, 1e-12);
        CHECK(json_is_array(jget(root, "detection.ci95.AP")));

        /* classification: Table 2's counts and their ratios (metrics.h) */
        CHECK_NEAR(jnum(root, "classification.accuracy"), 160.0 / 174, 1e-12);
        CHECK_NEAR(jnum(root, "classification.tp"), 63, 0);
        CHECK_NEAR(jnum(root, "classification.fp"), 1, 0);
        CHECK_NEAR(jnum(root, "classification.fn"), 13, 0);
        CHECK_NEAR(jnum(root, "classification.tn"), 97, 0);
        CHECK_NEAR(jnum(root, "classification.precision"), 63.0 / 64, 1e-12);
        CHECK_NEAR(jnum(root, "classification.recall"), 63.0 / 76, 1e-12);
        CHECK_NEAR(jnum(root, "classification.specificity"), 97.0 / 98, 1e-12);
        CHECK_NEAR(jnum(root, "classification.f1"), 0.9, 1e-12);
        CHECK_NEAR(jnum(root, "classification.paper_dsc"), 128.0 / 140, 1e-12);

        /* baseline: [10,10,20,20] on both images, score 1. a.png: TP (IoU 1); b.png:
         * FP (IoU 0 with both boxes; [0,0,10,10] only touches its corner). Ranked
         * a then b: recall 1/3, 1/3, precision 1, 1/2 -> AP 34/101 at every t. */
        CHECK_NEAR(jnum(root, "baseline.AP50"), 34.0 / 101, 1e-12);
        CHECK_NEAR(jnum(root, "baseline.AP"), 34.0 / 101, 1e-12);
        CHECK_NEAR(jnum(root, "baseline.AR100"), 1.0 / 3, 1e-12);
        CHECK_NEAR(jnum(root, "baseline.precision"), 0.5, 1e-12);
        CHECK_NEAR(jnum(root, "baseline.f1"), 0.4, 1e-12);   /* 2 / (2 + 1 + 2) */
        CHECK_NEAR(jnum(root, "baseline.detections_per_image"), 1, 1e-12);
        CHECK_NEAR(jnum(root, "baseline.iou_per_label.mean"), 1.0 / 3, 1e-12);
        CHECK_NEAR(jnum(root, "baseline.iou_per_label.q3"), 0.5, 1e-12);
        CHECK_NEAR(jnum(root, "baseline.iou_per_label.mean_found"), 1, 1e-12);
        CHECK_NEAR(jnum(root, "baseline.top1_iou"), 0.5, 1e-12);

        /* the evaluation block: settings, then the info pairs */
        CHECK_NEAR(jnum(root, "evaluation.n_images"), 2, 0);
        CHECK_NEAR(jnum(root, "evaluation.iou_threshold"), 0.5, 0);
        CHECK_NEAR(jnum(root, "evaluation.bootstrap_resamples"), 200, 0);
        CHECK_NEAR(jnum(root, "evaluation.bootstrap_seed"), 7, 0);
        CHECK_STR(json_string_value(jget(root, "evaluation.baseline")), "median box");
        CHECK_STR(json_string_value(jget(root, "evaluation.split")), "all 2 images");
        json_decref(root);
    }
    /* numbers as people write them: 15 significant digits, 0.5 stays 0.5 */
    char *text = test_read_file(path);
    CHECK(text && strstr(text, "\"median\": 0.5,") && strstr(text, "\"AP50\": 0.554455445544554"));
    free(text);

    /* undefined values are null, never 0: no detections, no bootstrap */
    ld_detection_metrics none;
    ld_eval_config c0 = cfg;
    c0.n_resamples = 0;
    CHECK(ld_detection_metrics_compute(&none, &labels, NULL, &c0, &err) == LD_OK);
    ld_report r2 = {0};
    r2.cfg = &c0;
    r2.detection = &none;
    r2.n_images = 2;
    CHECK(ld_metrics_json_write(path, &r2, &err) == LD_OK);
    root = json_load_file(path, 0, &jerr);
    CHECK(root != NULL);
    if (root) {
        CHECK(json_is_null(jget(root, "detection.precision")));   /* 0 / 0 */
        CHECK(json_is_null(jget(root, "detection.iou_per_label.mean_found")));
        CHECK_NEAR(jnum(root, "detection.recall"), 0, 0);          /* 0 / 3: defined */
        CHECK_NEAR(jnum(root, "detection.AP50"), 0, 0);
        CHECK(json_is_null(jget(root, "detection.ci95.AP50")));
        CHECK(jget(root, "classification") == NULL);
        CHECK(jget(root, "baseline") == NULL);
        json_decref(root);
    }
    /* a report without detection metrics is a usage error, and writes nothing */
    ld_report r3 = {0};
    r3.cfg = &c0;
    char p3[512];
    snprintf(p3, sizeof p3, "%s/none.json", dir);
    CHECK(ld_metrics_json_write(p3, &r3, &err) == LD_ERR_USAGE);
    CHECK(!test_exists(p3));
    ld_detection_metrics_free(&none);
    ld_detection_metrics_free(&base);
    ld_detection_metrics_free(&m);
    ld_labels_free(&labels);
}

TEST_SUITE(report_html)
{
    ld_labels labels;
    ld_detection_metrics m;
    ld_eval_config cfg;
    CHECK(fixture_metrics(&labels, &m, &cfg, 100) == 0);
    ld_patch_metrics pm;
    ld_patch_metrics_from_counts(&pm, 63, 1, 13, 97);
    const char *dir = test_tmpdir("report_html");
    char chart[512], example[512], html[512], missing[512], notpng[512];
    snprintf(chart, sizeof chart, "%s/chart.png", dir);
    snprintf(example, sizeof example, "%s/example.png", dir);
    snprintf(html, sizeof html, "%s/report.html", dir);
    snprintf(missing, sizeof missing, "%s/missing.png", dir);
    snprintf(notpng, sizeof notpng, "%s/labels.png", dir);
    CHECK(write_png(chart, 9, 7) == 0);
    CHECK(write_png(example, 5, 5) == 0);
    FILE *f = fopen(notpng, "w");
    if (f) { fputs("not a png", f); fclose(f); }
    ld_report_figure figs[2] = {
        {chart, "IoU chart", "A caption with <markup> & \"quotes\".", LD_FIGURE_CHART},
        {example, "best: a<b>.png", NULL, LD_FIGURE_EXAMPLE},
    };
    const char *keys[] = {"model", "evaluated_images"};
    const char *values[] = {"m<1>.safetensors", "all"};
    ld_report r = {0};
    r.title = "Evaluation & report";
    r.n_images = 2;
    r.cfg = &cfg;
    r.info_keys = keys;
    r.info_values = values;
    r.n_info = 2;
    r.detection = &m;
    r.baseline = &m;
    r.baseline_desc = "one fixed box";
    r.classification = &pm;
    r.classification_desc = "174 validation patches";
    r.figures = figs;
    r.n_figures = 2;
    ld_error err = {0};
    CHECK(ld_report_html_write(html, &r, &err) == LD_OK);
    char *s = test_read_file(html);
    CHECK(s != NULL);
    if (s) {
        /* every section */
        const char *sections[] = {"<h2>At a glance</h2>", "<h2>All metrics</h2>",
                                  "<h2>Charts</h2>", "<h2>Examples</h2>", "How to read these numbers"};
        for (int i = 0; i < 5; i++) CHECK_MSG(strstr(s, sections[i]) != NULL, "section %s", sections[i]);
        /* every metric row, with a definition */
        const char *rows[] = {"AP@0.5", "AP@[.5:.95]", "AP@0.75", "AR@100", "detections per image",
                              "top-1 IoU", "per-label IoU: mean", "per-label IoU: median",
                              "per-label IoU: first quartile", "per-label IoU: third quartile",
                              "per-label IoU: minimum", "per-label IoU: maximum", "labels found",
                              "per-label IoU of found labels", "accuracy", "paper &ldquo;DSC&rdquo;",
                              "Dice = F1", "specificity", "recall (sensitivity)"};
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
            char needle[128];
            snprintf(needle, sizeof needle, "<td class=\"name\">%s</td>", rows[i]);
            CHECK_MSG(strstr(s, needle) != NULL, "row %s", rows[i]);
        }
        /* values and intervals as computed: AP50 = 56/101 = 0.554, its interval */
        char ci[96];
        snprintf(ci, sizeof ci, "%.3f &ndash; %.3f", m.boot.ap50.lo, m.boot.ap50.hi);
        CHECK(strstr(s, "<td class=\"v\">0.554</td>") != NULL);
        CHECK(strstr(s, ci) != NULL);
        CHECK(strstr(s, "<td class=\"v\">0.920</td>") != NULL);   /* accuracy 160/174 */
        /* both PNGs embedded; nothing fetched from anywhere */
        const char *p = s;
        int n_img = 0;
        while ((p = strstr(p, "src=\"data:image/png;base64,iVBORw0KGgo"))) { n_img++; p++; }
        CHECK_INT(n_img, 2);
        CHECK(strstr(s, "http://") == NULL && strstr(s, "https://") == NULL);
        CHECK(strstr(s, "<link") == NULL && strstr(s, "<script") == NULL);
        CHECK(strstr(s, "src=\"/") == NULL && strstr(s, "url(") == NULL);
        /* text from outside is escaped */
        CHECK(strstr(s, "<title>Evaluation &amp; report</title>") != NULL);
        CHECK(strstr(s, "m&lt;1&gt;.safetensors") != NULL);
        CHECK(strstr(s, "A caption with &lt;markup&gt; &amp; &quot;quotes&quot;.") != NULL);
        CHECK(strstr(s, "<h3>best: a&lt;b&gt;.png</h3>") != NULL);
        CHECK(strstr(s, "<td>evaluated images</td>") != NULL);   /* key shown as words */
        CHECK(strstr(s, "<markup>") == NULL);
        CHECK(strstr(s, "</html>\n") != NULL);
        free(s);
    }

    /* a missing figure: an error naming it, and the previous report left as it was */
    char *before = test_read_file(html);
    figs[1].path = missing;
    CHECK(ld_report_html_write(html, &r, &err) == LD_ERR_IO);
    CHECK(strstr(err.msg, "missing.png") != NULL);
    figs[1].path = notpng;
    CHECK(ld_report_html_write(html, &r, &err) == LD_ERR_INPUT);
    CHECK(strstr(err.msg, "labels.png: not a PNG file") != NULL);
    char *after = test_read_file(html);
    CHECK(before && after && strcmp(before, after) == 0);
    free(before);
    free(after);
    figs[1].path = example;

    /* every allocation failing in turn: a clean error, or success; never a partial file */
    char fresh[512];
    snprintf(fresh, sizeof fresh, "%s/fresh.html", dir);
    int failures = 0, ok = 0;
    for (long k = 1; k < 64 && !ok; k++) {
        remove(fresh);
        ld_alloc_fail_after(k);
        ld_status st = ld_report_html_write(fresh, &r, &err);
        ld_alloc_fail_after(0);
        if (st == LD_OK) ok = 1;
        else {
            failures++;
            CHECK_INT(st, LD_ERR_NOMEM);
            CHECK(!test_exists(fresh));
        }
    }
    CHECK(ok && failures >= 2);   /* the PNG bytes and the base64 text of the first figure */
    ld_detection_metrics_free(&m);
    ld_labels_free(&labels);
}
