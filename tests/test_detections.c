/* test_detections.c — detection lists (push, stable sort) and COCO results JSON:
 * save -> load round trip, the exact text written, and malformed files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "alloc.h"
#include "lymphdet/detections.h"
#include "lymphdet/rng.h"
#include "test.h"

static ld_det det(double x, double y, double w, double h, float score, int cat)
{
    ld_det d = {x, y, w, h, score, cat};
    return d;
}

TEST_SUITE(detections_sort)
{
    ld_error err = {0};
    ld_rng rng;
    ld_rng_seed(&rng, 3);
    int sizes[] = {0, 1, 2, 19, 20, 21, 41, 333, 5000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int n = sizes[s];
        ld_dets d = {0};
        int ok = 1;
        /* scores from 8 levels (many ties); x remembers the original position */
        for (int i = 0; i < n; i++)
            ok &= ld_dets_push(&d, det(i, 0, 1, 1, (float)ld_rng_below(&rng, 8) / 8, 0), &err) == LD_OK;
        CHECK(ok);
        CHECK_INT(d.n, n);
        ld_dets_sort(&d);
        int sorted = 1, stable = 1;
        for (int i = 1; i < n; i++) {
            sorted &= d.d[i - 1].score >= d.d[i].score;
            if (d.d[i - 1].score == d.d[i].score) stable &= d.d[i - 1].x < d.d[i].x;
        }
        CHECK_MSG(sorted && stable, "n = %d: sorted %d stable %d", n, sorted, stable);
        /* a permutation: every original position once */
        char *seen = calloc((size_t)n + 1, 1);
        int perm = 1;
        for (int i = 0; i < n; i++) {
            int x = (int)d.d[i].x;
            perm &= x >= 0 && x < n && !seen[x];
            if (x >= 0 && x < n) seen[x] = 1;
        }
        free(seen);
        CHECK(perm);
        ld_dets_free(&d);
        CHECK(d.d == NULL && d.n == 0);
    }
    /* hand case: 0.5a 0.9 0.5b 0.7 0.5c -> 0.9 0.7 0.5a 0.5b 0.5c */
    ld_dets d = {0};
    float sc[5] = {0.5f, 0.9f, 0.5f, 0.7f, 0.5f};
    for (int i = 0; i < 5; i++) ld_dets_push(&d, det(i, 0, 1, 1, sc[i], 0), &err);
    ld_dets_sort(&d);
    int want[5] = {1, 3, 0, 2, 4};
    for (int i = 0; i < 5; i++) CHECK_INT((int)d.d[i].x, want[i]);
    ld_dets_free(&d);
    /* a failed allocation leaves the list as it was */
    ld_dets e = {0};
    ld_alloc_fail_after(1);
    CHECK_INT(ld_dets_push(&e, det(0, 0, 1, 1, 0.5f, 0), &err), LD_ERR_NOMEM);
    ld_alloc_fail_after(0);
    CHECK_INT(e.n, 0);
}

/* three images with COCO ids 10, 11, 12; two categories */
static ld_label_image g_images[3] = {
    {.id = 10, .file_name = "scan_a.jpg", .width = 469, .height = 469},
    {.id = 11, .file_name = "sub/scan \"b\".jpg", .width = 469, .height = 469},
    {.id = 12, .file_name = "scan_c.jpg", .width = 469, .height = 469}};
static char *g_cats[2] = {"malignant", "benign"};
static const ld_labels g_labels = {.images = g_images, .n_images = 3, .categories = g_cats,
                                   .n_categories = 2};

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void free_loaded(ld_dets *d, int n)
{
    if (!d) return;
    for (int i = 0; i < n; i++) ld_dets_free(&d[i]);
    ld_free(d);
}

TEST_SUITE(detections_results_roundtrip)
{
    const char *dir = test_tmpdir("results");
    char path[512];
    snprintf(path, sizeof path, "%s/results.json", dir);
    ld_error err = {0};
    ld_dets in[3] = {{0}, {0}, {0}};
    ld_dets_push(&in[0], det(12.346, 6.7, 100, 100.004, 0.98765432f, 0), &err);
    ld_dets_push(&in[0], det(0, 0, 0, 0, 0.0f, 1), &err);              /* zero-area box */
    ld_dets_push(&in[2], det(368.999, 400.5, 100, 68.5, 1.0f, 1), &err);
    ld_dets_push(&in[2], det(-0.001, 3, 1e-9, 2, 0.5f, 0), &err);      /* tiny: "0.00" */
    const char *names[3] = {"scan_a.jpg", "sub/scan \"b\".jpg", "scan_c.jpg"};
    int64_t ids[3] = {10, 11, 12};
    CHECK_INT(ld_results_save(path, in, names, ids, 3, &err), LD_OK);

    /* the text: one detection per line, 2 decimals for boxes, 7 for scores */
    char *text = test_read_file(path);
    CHECK(text != NULL);
    if (text) {
        CHECK(strstr(text, "{\"image_id\": 10, \"file_name\": \"scan_a.jpg\", \"category_id\": 1, "
                           "\"bbox\": [12.35, 6.70, 100.00, 100.00], \"score\": 0.9876543}") != NULL);
        CHECK(strstr(text, "\"bbox\": [0.00, 3.00, 0.00, 2.00], \"score\": 0.5000000}") != NULL);
        CHECK(strstr(text, "\"category_id\": 2") != NULL);
        CHECK(strstr(text, "-0.00") == NULL);
        CHECK(strstr(text, "image_id\": 11") == NULL);   /* no detections in image 11 */
    }

    ld_dets *out = NULL;
    CHECK_INT(ld_results_load(&out, path, &g_labels, &err), LD_OK);
    CHECK(out != NULL);
    if (out) {
        double maxbox = 0, maxscore = 0;
        int same_n = 1, same_cat = 1;
        for (int i = 0; i < 3; i++) {
            same_n &= out[i].n == in[i].n;
            for (int k = 0; k < in[i].n && k < out[i].n; k++) {
                const ld_det *a = &in[i].d[k], *b = &out[i].d[k];
                maxbox = fmax(maxbox, fabs(a->x - b->x));
                maxbox = fmax(maxbox, fabs(a->y - b->y));
                maxbox = fmax(maxbox, fabs(a->w - b->w));
                maxbox = fmax(maxbox, fabs(a->h - b->h));
                maxscore = fmax(maxscore, fabs((double)a->score - (double)b->score));
                same_cat &= a->category == b->category;
            }
        }
        CHECK(same_n);
        CHECK(same_cat);
        CHECK_MSG(maxbox <= 0.005 + 1e-9, "max box difference %g", maxbox);
        CHECK_MSG(maxscore <= 5e-8 + 1e-9, "max score difference %g", maxscore);
        CHECK_NEAR(out[0].d[0].x, 12.35, 1e-12);
        CHECK_NEAR(out[2].d[0].x, 369.0, 1e-12);
        /* saved again from what was loaded: the same text (the format is a fixed point) */
        char again[1100];
        snprintf(again, sizeof again, "%s/again.json", dir);
        CHECK_INT(ld_results_save(again, out, names, ids, 3, &err), LD_OK);
        char *text2 = test_read_file(again);
        CHECK(text && text2 && strcmp(text, text2) == 0);
        free(text2);
        free_loaded(out, 3);
    }
    free(text);
    for (int i = 0; i < 3; i++) ld_dets_free(&in[i]);

    /* no detections: "[]", loads as empty lists; names and ids may be NULL */
    CHECK_INT(ld_results_save(path, in, NULL, NULL, 3, &err), LD_OK);
    text = test_read_file(path);
    CHECK(text && strcmp(text, "[]\n") == 0);
    free(text);
    CHECK_INT(ld_results_load(&out, path, &g_labels, &err), LD_OK);
    CHECK(out && out[0].n == 0 && out[1].n == 0 && out[2].n == 0);
    free_loaded(out, 3);
    ld_dets one = {0};
    ld_dets_push(&one, det(1, 2, 3, 4, 0.25f, 0), &err);
    CHECK_INT(ld_results_save(path, &one, NULL, NULL, 1, &err), LD_OK);
    text = test_read_file(path);
    CHECK(text && strstr(text, "{\"image_id\": 1, \"category_id\": 1, \"bbox\": [1.00, 2.00, "
                               "3.00, 4.00], \"score\": 0.2500000}") != NULL);
    free(text);

    /* a non-finite detection is refused and nothing is written */
    snprintf(path, sizeof path, "%s/bad.json", dir);
    one.d[0].w = NAN;
    CHECK_INT(ld_results_save(path, &one, NULL, NULL, 1, &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, "bad.json") != NULL);
    CHECK(access(path, F_OK) != 0);
    ld_dets_free(&one);
    /* a folder that does not exist: an I/O error */
    snprintf(path, sizeof path, "%s/missing/r.json", dir);
    CHECK_INT(ld_results_save(path, in, NULL, NULL, 3, &err), LD_ERR_IO);
}

/* Loads `text` from a file and expects failure `status` with `needle` in the message. */
static void expect_bad(const char *dir, const char *tag, const char *text, ld_status status,
                       const char *needle)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.json", dir, tag);
    write_text(path, text);
    ld_error err = {0};
    ld_dets *out = (ld_dets *)&err;   /* must be reset to NULL on failure */
    ld_status st = ld_results_load(&out, path, &g_labels, &err);
    CHECK_MSG(st == status, "%s: status %d, want %d (%s)", tag, st, status, err.msg);
    CHECK_MSG(out == NULL, "%s: output not NULL after failure", tag);
    CHECK_MSG(strstr(err.msg, path) != NULL, "%s: message names the file: %s", tag, err.msg);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "%s: \"%s\" not in: %s", tag, needle, err.msg);
    if (st == LD_OK) free_loaded(out, 3);
}

TEST_SUITE(detections_results_malformed)
{
    const char *dir = test_tmpdir("badresults");
    const char *ok = "{\"image_id\": 10, \"category_id\": 1, \"bbox\": [1, 2, 3, 4], \"score\": 0.5}";
    char buf[1024];
    /* syntax error on line 3: the message carries line:column */
    snprintf(buf, sizeof buf, "[\n%s,\n{\"image_id\": 10,, }\n]\n", ok);
    expect_bad(dir, "syntax", buf, LD_ERR_INPUT, "syntax.json:3:");
    expect_bad(dir, "nan", "[{\"image_id\": 10, \"category_id\": 1, \"bbox\": [NaN, 2, 3, 4], "
                           "\"score\": 0.5}]", LD_ERR_INPUT, "nan.json:1:");
    expect_bad(dir, "huge", "[{\"image_id\": 10, \"category_id\": 1, \"bbox\": [1e999, 2, 3, 4], "
                            "\"score\": 0.5}]", LD_ERR_INPUT, "huge.json:1:");
    expect_bad(dir, "object", "{\"annotations\": []}", LD_ERR_INPUT, "expected a JSON array");
    expect_bad(dir, "empty", "", LD_ERR_INPUT, "empty.json");
    expect_bad(dir, "unknown_id", "[{\"image_id\": 99, \"category_id\": 1, \"bbox\": [1, 2, 3, 4], "
                                  "\"score\": 0.5}]", LD_ERR_INPUT, "entry 0: image_id 99 is not in the labels");
    snprintf(buf, sizeof buf, "[%s, {\"image_id\": 11, \"category_id\": 1, \"bbox\": [1, 2, -3, 4], "
                              "\"score\": 0.5}]", ok);
    expect_bad(dir, "negative", buf, LD_ERR_INPUT, "entry 1: bbox width -3 is negative");
    expect_bad(dir, "neg_h", "[{\"image_id\": 10, \"category_id\": 1, \"bbox\": [1, 2, 3, -0.5], "
                             "\"score\": 0.5}]", LD_ERR_INPUT, "bbox height -0.5 is negative");
    expect_bad(dir, "three", "[{\"image_id\": 10, \"category_id\": 1, \"bbox\": [1, 2, 3], "
                             "\"score\": 0.5}]", LD_ERR_INPUT, "bbox is not an array [x, y, w, h]");
    expect_bad(dir, "string_box", "[{\"image_id\": 10, \"category_id\": 1, \"bbox\": [1, \"2\", 3, 4], "
                                  "\"score\": 0.5}]", LD_ERR_INPUT, "bbox y is not a number");
    expect_bad(dir, "score", "[{\"image_id\": 10, \"category_id\": 1, \"bbox\": [1, 2, 3, 4], "
                             "\"score\": 1.5}]", LD_ERR_INPUT, "score 1.5 is not in [0, 1]");
    expect_bad(dir, "no_score", "[{\"image_id\": 10, \"category_id\": 1, \"bbox\": [1, 2, 3, 4]}]",
               LD_ERR_INPUT, "entry 0 has no score");
    expect_bad(dir, "category", "[{\"image_id\": 10, \"category_id\": 3, \"bbox\": [1, 2, 3, 4], "
                                "\"score\": 0.5}]", LD_ERR_INPUT, "category_id is not an integer in 1..2");
    expect_bad(dir, "cat0", "[{\"image_id\": 10, \"category_id\": 0, \"bbox\": [1, 2, 3, 4], "
                            "\"score\": 0.5}]", LD_ERR_INPUT, "category_id");
    expect_bad(dir, "id_real", "[{\"image_id\": 10.5, \"category_id\": 1, \"bbox\": [1, 2, 3, 4], "
                               "\"score\": 0.5}]", LD_ERR_INPUT, "image_id is not an integer");
    expect_bad(dir, "not_object", "[[10, 1, [1, 2, 3, 4], 0.5]]", LD_ERR_INPUT,
               "entry 0 is not an object");
    expect_bad(dir, "duplicate", "[{\"image_id\": 10, \"image_id\": 11, \"category_id\": 1, "
                                 "\"bbox\": [1, 2, 3, 4], \"score\": 0.5}]", LD_ERR_INPUT, "duplicate");
    /* results written for other ids: file_name says scan_c.jpg (id 12), image_id says 10 */
    expect_bad(dir, "mismatch", "[{\"image_id\": 10, \"file_name\": \"scan_c.jpg\", \"category_id\": 1, "
                                "\"bbox\": [1, 2, 3, 4], \"score\": 0.5}]", LD_ERR_INPUT,
               "image_id 10 does not match file_name \"scan_c.jpg\" (image id 12 in the labels)");
    /* a missing file is an I/O error */
    char path[512];
    snprintf(path, sizeof path, "%s/absent.json", dir);
    ld_error err = {0};
    ld_dets *out = NULL;
    CHECK_INT(ld_results_load(&out, path, &g_labels, &err), LD_ERR_IO);
    CHECK(strstr(err.msg, "absent.json") != NULL);

    /* accepted: integral real ids, file names by base name or unknown, zero sizes */
    snprintf(path, sizeof path, "%s/good.json", dir);
    write_text(path, "[{\"image_id\": 12.0, \"category_id\": 2, \"bbox\": [1, 2, 0, 0], \"score\": 0},"
                     " {\"image_id\": 11, \"file_name\": \"/data/upload/scan \\\"b\\\".jpg\","
                     " \"category_id\": 1, \"bbox\": [1.5, 2, 3, 4], \"score\": 1},"
                     " {\"image_id\": 10, \"file_name\": \"elsewhere.png\", \"category_id\": 1,"
                     " \"bbox\": [0, 0, 5, 5], \"score\": 0.25, \"extra\": true}]");
    CHECK_INT(ld_results_load(&out, path, &g_labels, &err), LD_OK);
    CHECK(out && out[0].n == 1 && out[1].n == 1 && out[2].n == 1);
    if (out) {
        CHECK_INT(out[2].d[0].category, 1);
        CHECK_NEAR(out[1].d[0].x, 1.5, 0);
        CHECK_NEAR(out[1].d[0].score, 1.0, 0);
        CHECK_NEAR(out[0].d[0].score, 0.25, 0);
    }
    free_loaded(out, 3);

    /* every allocation failing in turn: LD_ERR_NOMEM, nothing leaked, output NULL */
    int k, clean = 1;
    for (k = 1; k < 100; k++) {
        ld_alloc_fail_after(k);
        ld_status st = ld_results_load(&out, path, &g_labels, &err);
        ld_alloc_fail_after(0);
        if (st == LD_OK) break;
        clean &= st == LD_ERR_NOMEM && out == NULL;
    }
    CHECK(k < 100);
    CHECK(clean);
    free_loaded(out, 3);
}
