/* test_cli_evaluate.c — `lymphdet evaluate` and `lymphdet crossval` end to end.
 *
 *  - --results on the hand-made fixtures (tests/fixtures/evaluate): exit 0, every
 *    file, the hand-worked numbers in metrics.json (see test_report.c for the
 *    working), the baseline's median box, overlays of the best and worst image;
 *  - bad results: exit 1 naming the file, no metrics.json, an earlier one intact;
 *  - --model on seeded synthetic data (tests/synth.h) trained for 1 epoch by
 *    `lymphdet train`: the validation split re-created from the model file gives
 *    exactly the confusion matrix `train` recorded;
 *  - crossval with 2 folds of 1 epoch: per-fold files, crossval.json's mean and
 *    standard deviation against the fold files, and `evaluate` re-creating a fold;
 *  - the default preset (detect) trained for 2 epochs: the same seed gives the same
 *    model file byte for byte, and `evaluate` and `detect` run it with the detector
 *    settings its training tuned, without patch classification. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lymphdet/detect.h"
#include "lymphdet/dettrain.h"
#include "lymphdet/image.h"
#include "lymphdet/model.h"
#include "synth.h"
#include "test.h"

#define FIX "tests/fixtures/evaluate/"

static int exists_in(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return test_exists(path);
}

static json_t *load_json(const char *dir, const char *name)
{
    char path[1024];
    json_error_t jerr;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return json_load_file(path, 0, &jerr);
}

static json_t *jget(json_t *root, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = root;
    for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, ".")) v = json_object_get(v, tok);
    return v;
}

static double jnum(json_t *root, const char *path)
{
    json_t *v = jget(root, path);
    return v && json_is_number(v) ? json_number_value(v) : NAN;
}

static int png_size(const char *dir, const char *name, int w, int h)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ld_image img = {0};
    ld_error err = {0};
    if (ld_image_load(&img, path, 0, &err)) return 0;
    int ok = img.w == w && img.h == h;
    ld_image_free(&img);
    return ok;
}

/* the 100 x 100 frames the fixture labels name */
static int write_frames(const char *dir)
{
    static const char *const names[2] = {"a.png", "b.png"};
    ld_error err = {0};
    for (int k = 0; k < 2; k++) {
        ld_image img;
        char path[1024];
        if (ld_image_alloc(&img, 100, 100, 1, &err)) return 1;
        for (int i = 0; i < 100 * 100; i++) img.px[i] = (uint8_t)(60 + (i * 13 + k * 50) % 120);
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        ld_status st = ld_image_save_png(&img, path, &err);
        ld_image_free(&img);
        if (st) return 1;
    }
    return 0;
}

TEST_SUITE(cli_evaluate_results)
{
    const char *dir = test_tmpdir("cli_eval_results");
    char out[512], args[2048], so[16384], se[4096];
    snprintf(out, sizeof out, "%s/out", dir);
    CHECK(write_frames(dir) == 0);
    snprintf(args, sizeof args, "evaluate --results " FIX "results.json --labels " FIX
             "labels.json --images %s --out %s --bootstrap 100", dir, out);
    int rc = test_run_cli(args, so, sizeof so, se, sizeof se);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, se);
    static const char *const files[] = {"metrics.json", "report.html", "iou_boxplot.png",
                                        "pr_curve.png", "overlay_best.png", "overlay_worst.png"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        CHECK_MSG(exists_in(out, files[i]), "%s written", files[i]);
    /* two ranked images: best = median = a.png, drawn once; no model, no patches */
    CHECK(!exists_in(out, "overlay_median.png"));
    CHECK(!exists_in(out, "confusion_matrix.png"));
    CHECK(!exists_in(out, "training_curves.png"));
    CHECK(!exists_in(out, "detections.json"));
    CHECK(png_size(out, "iou_boxplot.png", 560, 420));
    CHECK(png_size(out, "pr_curve.png", 560, 420));
    CHECK(png_size(out, "overlay_best.png", 100, 100));

    json_t *m = load_json(out, "metrics.json");
    CHECK(m != NULL);
    if (m) {
        CHECK_NEAR(jnum(m, "detection.AP50"), 56.0 / 101, 1e-12);
        CHECK_NEAR(jnum(m, "detection.AP"), 362.0 / 1010, 1e-12);
        CHECK_NEAR(jnum(m, "detection.iou_per_label.mean"), 0.5, 1e-12);
        CHECK_NEAR(jnum(m, "detection.top1_iou"), 0.75, 1e-12);
        CHECK_NEAR(jnum(m, "detection.detections_per_image"), 1.5, 1e-12);
        /* baseline from all labels: median relative centre (0.2, 0.2) and size
         * (0.2, 0.2) -> [10, 10, 20, 20] on each image (worked in test_report.c) */
        CHECK_NEAR(jnum(m, "baseline.AP50"), 34.0 / 101, 1e-12);
        CHECK_NEAR(jnum(m, "baseline.iou_per_label.mean"), 1.0 / 3, 1e-12);
        const char *b = json_string_value(jget(m, "evaluation.baseline"));
        CHECK(b && strstr(b, "median centre (0.200, 0.200) and median size 0.200 x 0.200"));
        CHECK(b && strstr(b, "all the given labels"));
        CHECK(jget(m, "classification") == NULL);
        CHECK_NEAR(jnum(m, "evaluation.n_images"), 2, 0);
        CHECK(json_is_array(jget(m, "detection.ci95.AP50")));
        json_decref(m);
    }
    /* the summary table: AP50 56/101 = 0.554 beside the baseline's 34/101 = 0.337 */
    CHECK(strstr(so, "AP@0.5") && strstr(so, "0.554") && strstr(so, "0.337"));
    CHECK(strstr(so, "per-label IoU: mean") != NULL);
    char html[1024];
    snprintf(html, sizeof html, "%s/report.html", out);
    char *s = test_read_file(html);
    CHECK(s && strstr(s, "<h3>best: a.png</h3>") && strstr(s, "<h3>worst: b.png</h3>"));
    CHECK(s && strstr(s, "Mean per-label IoU 0.250 over 2 labelled boxes; 1 detection."));
    free(s);

    /* without --images: no overlays, still a report */
    char out2[512];
    snprintf(out2, sizeof out2, "%s/out2", dir);
    snprintf(args, sizeof args, "evaluate --results " FIX "results.json --labels " FIX
             "labels.json --out %s --bootstrap 0", out2);
    CHECK_INT(test_run_cli(args, so, sizeof so, se, sizeof se), 0);
    CHECK(exists_in(out2, "report.html") && !exists_in(out2, "overlay_best.png"));
    m = load_json(out2, "metrics.json");
    CHECK(m && json_is_null(jget(m, "detection.ci95.AP50")));
    json_decref(m);
}

TEST_SUITE(cli_evaluate_errors)
{
    const char *dir = test_tmpdir("cli_eval_errors");
    char out[512], args[2048], so[8192], se[4096];
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(args, sizeof args, "evaluate --results " FIX "bad_syntax.json --labels " FIX
             "labels.json --out %s", out);
    CHECK_INT(test_run_cli(args, so, sizeof so, se, sizeof se), 1);
    CHECK(strstr(se, "bad_syntax.json") != NULL);
    CHECK(!exists_in(out, "metrics.json"));
    snprintf(args, sizeof args, "evaluate --results " FIX "bad_image.json --labels " FIX
             "labels.json --out %s", out);
    CHECK_INT(test_run_cli(args, so, sizeof so, se, sizeof se), 1);
    CHECK(strstr(se, "bad_image.json") != NULL);
    CHECK(!exists_in(out, "metrics.json"));

    /* a good run, then a bad one into the same folder: the good metrics.json stays */
    snprintf(args, sizeof args, "evaluate --results " FIX "results.json --labels " FIX
             "labels.json --out %s --bootstrap 0", out);
    CHECK_INT(test_run_cli(args, so, sizeof so, se, sizeof se), 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/metrics.json", out);
    char *before = test_read_file(path);
    snprintf(args, sizeof args, "evaluate --results " FIX "bad_syntax.json --labels " FIX
             "labels.json --out %s", out);
    CHECK_INT(test_run_cli(args, so, sizeof so, se, sizeof se), 1);
    char *after = test_read_file(path);
    CHECK(before && after && strcmp(before, after) == 0);
    free(before);
    free(after);

    /* usage */
    CHECK_INT(test_run_cli("evaluate --labels " FIX "labels.json --out /tmp/x", so, sizeof so, se,
                           sizeof se), 2);
    CHECK(strstr(se, "exactly one of --model and --results") != NULL);
    CHECK_INT(test_run_cli("evaluate --model m --results r --labels l --out o", so, sizeof so, se,
                           sizeof se), 2);
    CHECK_INT(test_run_cli("evaluate --model m --labels l --out o", so, sizeof so, se, sizeof se), 2);
    CHECK(strstr(se, "--model needs --images") != NULL);
    CHECK_INT(test_run_cli("evaluate --results r --labels l --out o --split some", so, sizeof so,
                           se, sizeof se), 2);
    CHECK_INT(test_run_cli("evaluate --results r --labels l --out o --merge max", so, sizeof so,
                           se, sizeof se), 2);
    CHECK_INT(test_run_cli("evaluate --help", so, sizeof so, se, sizeof se), 0);
    CHECK(strstr(so, "--bootstrap N") && strstr(so, "[1000]"));
    CHECK_INT(test_run_cli("evaluate --results /nonexistent.json --labels " FIX "labels.json "
                           "--out /tmp/x", so, sizeof so, se, sizeof se), 1);
    CHECK(strstr(se, "/nonexistent.json") != NULL);
}

/* synthetic data (16 images of 160 px, patients of 2 images) and a 1-epoch model */
static int synth_and_train(const char *dir, char *model, size_t size)
{
    synth_config sc = {16, 160, 2, 14, 26, 5};
    if (synth_write(dir, &sc) < 8) return 1;
    snprintf(model, size, "%s/m.safetensors", dir);
    char args[2048], so[8192], se[4096];
    snprintf(args, sizeof args, "train --preset paper --images %s --labels %s/labels.json --out %s --epochs 1 "
             "--quiet", dir, dir, model);
    return test_run_cli(args, so, sizeof so, se, sizeof se);
}

TEST_SUITE(cli_evaluate_model)
{
    const char *dir = test_tmpdir("cli_eval_model");
    char model[512], out[512], args[4096], so[16384], se[4096];
    CHECK_INT(synth_and_train(dir, model, sizeof model), 0);
    snprintf(out, sizeof out, "%s/ev", dir);
    snprintf(args, sizeof args, "evaluate --model %s --images %s --labels %s/labels.json --out %s "
             "--threshold 0.5 --bootstrap 50 --threads 2", model, dir, dir, out);
    int rc = test_run_cli(args, so, sizeof so, se, sizeof se);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, se);
    static const char *const files[] = {"metrics.json", "report.html", "detections.json",
                                        "training_curves.png", "confusion_matrix.png",
                                        "iou_boxplot.png", "pr_curve.png"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        CHECK_MSG(exists_in(out, files[i]), "%s written", files[i]);
    CHECK(png_size(out, "training_curves.png", 960, 400));
    CHECK(png_size(out, "confusion_matrix.png", 520, 420));

    /* the validation split re-created: 16 images in 8 patient pairs, 10 % -> round(1.6)
     * = 2 images (one pair); its patches classified exactly as `train` recorded */
    ld_model m;
    ld_error err = {0};
    CHECK(ld_model_load(&m, model, 1, &err) == LD_OK);
    const char *recorded = ld_model_meta_get(&m, "val_confusion");
    json_t *j = load_json(out, "metrics.json");
    CHECK(j != NULL && recorded != NULL);
    if (j && recorded) {
        CHECK_NEAR(jnum(j, "evaluation.n_images"), 2, 0);
        char mine[128];
        snprintf(mine, sizeof mine, "tp %.0f fp %.0f fn %.0f tn %.0f", jnum(j, "classification.tp"),
                 jnum(j, "classification.fp"), jnum(j, "classification.fn"),
                 jnum(j, "classification.tn"));
        CHECK_STR(mine, recorded);
        const char *split = json_string_value(jget(j, "evaluation.split"));
        CHECK(split && strstr(split, "the 2 validation images of 16"));
        CHECK(split && strstr(split, "by patient"));
        /* the baseline comes from the other 14 images */
        const char *b = json_string_value(jget(j, "evaluation.baseline"));
        CHECK(b && strstr(b, "training-side images (14 images)"));
        /* detections.json holds the detections that were evaluated */
        json_t *d = load_json(out, "detections.json");
        CHECK(d && json_is_array(d));
        if (d) CHECK_NEAR((double)json_array_size(d), jnum(j, "detection.n_det"), 0);
        json_decref(d);
    }
    json_decref(j);
    ld_model_free(&m);
    CHECK(strstr(so, "patch classification") && strstr(so, "paper \"DSC\""));

    /* --split all: every image, and all patches */
    snprintf(args, sizeof args, "evaluate --model %s --images %s --labels %s/labels.json --out %s "
             "--threshold 0.5 --bootstrap 0 --split all", model, dir, dir, out);
    CHECK_INT(test_run_cli(args, so, sizeof so, se, sizeof se), 0);
    j = load_json(out, "metrics.json");
    CHECK(j && jnum(j, "evaluation.n_images") == 16);
    json_decref(j);
    /* another protocol than the model's: allowed, with a warning */
    snprintf(args, sizeof args, "evaluate --model %s --images %s --labels %s/labels.json --out %s "
             "--threshold 0.5 --bootstrap 0 --protocol paper", model, dir, dir, out);
    CHECK_INT(test_run_cli(args, so, sizeof so, se, sizeof se), 0);
    CHECK(strstr(se, "trained with protocol image") != NULL);
    j = load_json(out, "metrics.json");
    CHECK(j && jnum(j, "evaluation.n_images") == 16);
    json_decref(j);

    /* a model trained without validation images: --split val has nothing to evaluate */
    char whole[512];
    snprintf(whole, sizeof whole, "%s/whole.safetensors", dir);
    snprintf(args, sizeof args, "train --preset paper --images %s --labels %s/labels.json --out %s --epochs 1 "
             "--val-fraction 0 --quiet", dir, dir, whole);
    CHECK_INT(test_run_cli(args, so, sizeof so, se, sizeof se), 0);
    snprintf(args, sizeof args, "evaluate --model %s --images %s --labels %s/labels.json --out "
             "%s/none --bootstrap 0", whole, dir, dir, dir);
    CHECK_INT(test_run_cli(args, so, sizeof so, se, sizeof se), 1);
    CHECK(strstr(se, "no validation image") && strstr(se, "--split all"));
}

TEST_SUITE(cli_crossval)
{
    const char *dir = test_tmpdir("cli_crossval");
    synth_config sc = {16, 160, 2, 14, 26, 9};
    CHECK(synth_write(dir, &sc) >= 8);
    char out[512], args[4096], so[16384], se[4096];
    snprintf(out, sizeof out, "%s/cv", dir);
    snprintf(args, sizeof args, "crossval --images %s --labels %s/labels.json --folds 2 "
             "--epochs 1 --out %s --threshold 0.5 --bootstrap 20 --quiet", dir, dir, out);
    int rc = test_run_cli(args, so, sizeof so, se, sizeof se);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, se);
    static const char *const files[] = {"crossval.json", "fold_1/metrics.json",
                                        "fold_2/metrics.json", "fold_1/report.html",
                                        "fold_2/model.safetensors",
                                        "fold_2/model.safetensors.history.csv"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        CHECK_MSG(exists_in(out, files[i]), "%s written", files[i]);
    json_t *cv = load_json(out, "crossval.json"), *f1 = load_json(out, "fold_1/metrics.json"),
           *f2 = load_json(out, "fold_2/metrics.json");
    CHECK(cv && f1 && f2);
    if (cv && f1 && f2) {
        CHECK_NEAR(jnum(cv, "folds"), 2, 0);
        CHECK_NEAR(jnum(cv, "n_groups"), 8, 0);
        json_t *pf = jget(cv, "per_fold");
        CHECK(json_is_array(pf) && json_array_size(pf) == 2);
        double n1 = jnum(f1, "evaluation.n_images"), n2 = jnum(f2, "evaluation.n_images");
        CHECK_NEAR(n1 + n2, 16, 0);       /* every image in exactly one fold */
        CHECK_NEAR(n1, 8, 0);             /* 8 pairs dealt to the emptier fold: 4 + 4 */
        CHECK_NEAR(jnum(json_array_get(pf, 0), "n_images"), n1, 0);
        /* per-fold values are the fold files' values; mean and sample std of two
         * numbers a, b: (a + b) / 2 and |a - b| / sqrt(2) */
        double a = jnum(f1, "classification.accuracy"), b = jnum(f2, "classification.accuracy");
        CHECK_NEAR(jnum(json_array_get(pf, 1), "accuracy"), b, 1e-12);
        CHECK_NEAR(jnum(cv, "mean.accuracy"), (a + b) / 2, 1e-12);
        CHECK_NEAR(jnum(cv, "std.accuracy"), fabs(a - b) / sqrt(2), 1e-12);
        a = jnum(f1, "detection.iou_per_label.mean");
        b = jnum(f2, "detection.iou_per_label.mean");
        CHECK_NEAR(jnum(cv, "mean.iou_per_label_mean"), (a + b) / 2, 1e-12);
        a = jnum(f1, "baseline.AP50");
        b = jnum(f2, "baseline.AP50");
        CHECK_NEAR(jnum(cv, "mean.baseline_AP50"), (a + b) / 2, 1e-12);
        CHECK_NEAR(jnum(cv, "n_valid.AP50"), 2, 0);
    }
    CHECK(strstr(so, "mean +- std") && strstr(so, "AP@0.5"));

    /* evaluate re-creates fold 2 from its model file: same images, patches, numbers */
    char ev[512];
    snprintf(ev, sizeof ev, "%s/re2", dir);
    snprintf(args, sizeof args, "evaluate --model %s/fold_2/model.safetensors --images %s "
             "--labels %s/labels.json --out %s --threshold 0.5 --bootstrap 20", out, dir, dir, ev);
    CHECK_INT(test_run_cli(args, so, sizeof so, se, sizeof se), 0);
    json_t *re = load_json(ev, "metrics.json");
    CHECK(re && f2);
    if (re && f2) {
        CHECK(json_equal(jget(re, "classification"), jget(f2, "classification")));
        CHECK(json_equal(jget(re, "detection"), jget(f2, "detection")));
        CHECK(json_equal(jget(re, "baseline"), jget(f2, "baseline")));
    }
    json_decref(re);
    json_decref(cv);
    json_decref(f1);
    json_decref(f2);

    /* more folds than groups, and too few folds */
    snprintf(args, sizeof args, "crossval --images %s --labels %s/labels.json --folds 9 "
             "--epochs 1 --out %s/cv9 --quiet", dir, dir, dir);
    CHECK_INT(test_run_cli(args, so, sizeof so, se, sizeof se), 1);
    CHECK(strstr(se, "9 folds need at least 9 groups of images; the labels have 8") != NULL);
    snprintf(args, sizeof args, "crossval --images %s --labels %s/labels.json --folds 1 "
             "--out %s/cv1", dir, dir, dir);
    CHECK_INT(test_run_cli(args, so, sizeof so, se, sizeof se), 2);
}

/* 1 when the two files hold the same bytes */
static int same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = 0;
        if (ca == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

TEST_SUITE(cli_train_detect)
{
    const char *dir = test_tmpdir("cli_train_detect");
    synth_config sc = {24, 192, 2, 24, 40, 5};
    CHECK(synth_write(dir, &sc) >= 12);
    char m1[512], m2[512], out[512], args[4096], so[16384], se[4096];
    snprintf(m1, sizeof m1, "%s/a.safetensors", dir);
    snprintf(m2, sizeof m2, "%s/b.safetensors", dir);
    for (int k = 0; k < 2; k++) {   /* no --preset: the detection preset is the default */
        snprintf(args, sizeof args, "train --images %s --labels %s/labels.json --out %s --epochs 2 "
                 "--eval-every 2 --bootstrap 20 --val-fraction 0.2 --quiet", dir, dir, k ? m2 : m1);
        int rc = test_run_cli(args, so, sizeof so, se, sizeof se);
        CHECK_MSG(rc == 0, "exit %d: %s", rc, se);
    }
    CHECK(strstr(so, "detector settings (tuned)") && strstr(so, "held-out images"));
    CHECK_MSG(same_file(m1, m2), "two runs with seed 1 give the same model file");

    ld_model m;
    ld_error err = {0};
    ld_detect_config tuned;
    CHECK(ld_model_load(&m, m1, 1, &err) == LD_OK);
    CHECK_STR(m.arch.preset, "detect");
    CHECK(m.arch.box_head == 4);
    CHECK(ld_detect_config_from_model(&tuned, &m, &err) == LD_OK);
    ld_model_free(&m);

    /* evaluate: the tuned settings unless told otherwise, and no patch classification */
    snprintf(out, sizeof out, "%s/ev", dir);
    snprintf(args, sizeof args, "evaluate --model %s --images %s --labels %s/labels.json --out %s "
             "--bootstrap 0", m1, dir, dir, out);
    int rc = test_run_cli(args, so, sizeof so, se, sizeof se);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, se);
    CHECK(strstr(so, "patch classification") == NULL);
    json_t *j = load_json(out, "metrics.json");
    CHECK(j != NULL);
    if (j) {
        const char *det = json_string_value(jget(j, "evaluation.detector"));
        char want[128];
        snprintf(want, sizeof want, "window p > %g, merge nms (NMS IoU %g", tuned.threshold,
                 tuned.nms_iou);
        CHECK_MSG(det && strstr(det, want), "detector '%s' has '%s'", det ? det : "", want);
        snprintf(want, sizeof want, "stride %d, scales %.4g,", tuned.stride, tuned.scales[0]);
        CHECK_MSG(det && strstr(det, want), "detector '%s' has '%s'", det ? det : "", want);
        CHECK(jget(j, "classification") == NULL);
        /* round(0.2 * 24) = 5 images wanted, taken in whole patient pairs: 6 */
        CHECK_NEAR(jnum(j, "evaluation.n_images"), 6, 0);
    }
    json_decref(j);
    snprintf(args, sizeof args, "evaluate --model %s --images %s --labels %s/labels.json --out %s "
             "--bootstrap 0 --threshold 0.5 --scales 1", m1, dir, dir, out);
    CHECK_INT(test_run_cli(args, so, sizeof so, se, sizeof se), 0);
    j = load_json(out, "metrics.json");
    const char *det = j ? json_string_value(jget(j, "evaluation.detector")) : NULL;
    CHECK(det && strstr(det, "window p > 0.5,") && strstr(det, ", scales 1") &&
          !strstr(det, ", scales 1,"));
    json_decref(j);

    /* detect reads the same settings: with --threshold 0 every refined window of
     * every tuned scale is listed, so the count is the windows of the pyramid */
    snprintf(args, sizeof args, "detect --model %s --out %s/r.json --threshold 0 --merge none "
             "--quiet %s/img_000.png", m1, dir, dir);
    CHECK_INT(test_run_cli(args, so, sizeof so, se, sizeof se), 0);
    snprintf(args, sizeof args, "%s/r.json", dir);
    json_error_t jerr;
    json_t *r = json_load_file(args, 0, &jerr);
    long want = 0;
    for (int k = 0; k < tuned.n_scales; k++) {
        int s = (int)lround(tuned.scales[k] * 192), nx = 0, ny = 0;
        if (s >= 64) nx = ny = (s - 64) / tuned.stride + 1;
        want += (long)nx * ny;
    }
    CHECK_MSG(r && (long)json_array_size(r) == want, "%ld results, %ld windows in the pyramid",
              r ? (long)json_array_size(r) : -1L, want);
    json_decref(r);
}
