/* test_cli_detect.c — `lymphdet detect` end to end: every window of a small image
 * with the probability `lymphdet classify` gives its crop, image ids from labels
 * or from the order of the inputs, identical results on several threads,
 * overlays and heat maps, and clean failures.
 *
 * The model and images are made here (ld_model_init + ld_model_save, seeded
 * pixels + ld_image_save_png): nothing to keep in fixtures. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "lymphdet/image.h"
#include "lymphdet/model.h"
#include "lymphdet/rng.h"
#include "test.h"

/* A seeded model whose probabilities spread over (0, 1). */
static int write_model(const char *path)
{
    ld_error err = {0};
    ld_arch arch;
    ld_arch_paper(&arch);
    ld_model m;
    if (ld_model_init(&m, &arch, 1, &err)) return 1;
    ld_model_init_weights(&m, 12);
    for (int f = 0; f < 8; f++) m.p[2].bn_var[f] = 0.2f;
    for (int i = 0; i < 800; i++) m.dense_w[i] *= 20.0f;
    ld_status st = ld_model_save(&m, path, &err);
    ld_model_free(&m);
    return st != LD_OK;
}

/* A grey speckle image with a dark disc, saved as PNG. */
static int write_image(const char *path, int w, int h, uint64_t seed)
{
    ld_error err = {0};
    ld_image img;
    if (ld_image_alloc(&img, w, h, 1, &err)) return 1;
    ld_rng rng;
    ld_rng_seed(&rng, seed);
    double cx = w * ld_rng_double(&rng), cy = h * ld_rng_double(&rng);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            img.px[y * w + x] = (x - cx) * (x - cx) + (y - cy) * (y - cy) < 900
                                    ? (uint8_t)ld_rng_below(&rng, 40)
                                    : (uint8_t)(80 + ld_rng_below(&rng, 150));
    ld_status st = ld_image_save_png(&img, path, &err);
    ld_image_free(&img);
    return st != LD_OK;
}

TEST_SUITE(cli_detect_windows)
{
    const char *dir = test_tmpdir("cli_detect_windows");
    char model[512], img[512], res[512], args[4096], out[8192], errbuf[4096];
    snprintf(model, sizeof model, "%s/model.safetensors", dir);
    snprintf(img, sizeof img, "%s/frame.png", dir);
    snprintf(res, sizeof res, "%s/results.json", dir);
    CHECK(write_model(model) == 0);
    CHECK(write_image(img, 116, 108, 3) == 0);

    /* 116x108 at stride 8: windows at x = 0, 8, 16 and y = 0, 8 */
    snprintf(args, sizeof args, "detect --model %s --out %s --threshold 0 --merge none "
             "--scales 1 --stride 8 %s", model, res, img);
    CHECK_INT(test_run_cli(args, out, sizeof out, errbuf, sizeof errbuf), 0);
    json_error_t jerr;
    json_t *root = json_load_file(res, 0, &jerr);
    CHECK(root && json_is_array(root));
    if (!root) return;
    CHECK_INT(json_array_size(root), 6);
    double score[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    size_t k;
    json_t *e;
    int fields_ok = 1;
    json_array_foreach(root, k, e) {
        json_t *bb = json_object_get(e, "bbox");
        double x = json_number_value(json_array_get(bb, 0)), y = json_number_value(json_array_get(bb, 1));
        fields_ok &= json_integer_value(json_object_get(e, "image_id")) == 1;
        fields_ok &= json_integer_value(json_object_get(e, "category_id")) == 1;
        fields_ok &= strcmp(json_string_value(json_object_get(e, "file_name")), "frame.png") == 0;
        fields_ok &= json_number_value(json_array_get(bb, 2)) == 100 &&
                     json_number_value(json_array_get(bb, 3)) == 100;
        int j = (int)(x / 8), i = (int)(y / 8);
        if (x == j * 8 && y == i * 8 && j < 3 && i < 2) score[j][i] = json_number_value(json_object_get(e, "score"));
    }
    CHECK(fields_ok);
    /* each equals `classify` on the cropped window */
    ld_error err = {0};
    ld_image frame = {0};
    CHECK_INT(ld_image_load(&frame, img, 0, &err), LD_OK);
    char crops[6][512];
    int n = snprintf(args, sizeof args, "classify --model %s", model);
    for (int c = 0; c < 6; c++) {
        ld_image crop = {0};
        snprintf(crops[c], sizeof crops[c], "%s/win_%d_%d.png", dir, c % 3, c / 3);
        CHECK_INT(ld_image_crop(&crop, &frame, (c % 3) * 8, (c / 3) * 8, 100, 100, &err), LD_OK);
        CHECK_INT(ld_image_save_png(&crop, crops[c], &err), LD_OK);
        ld_image_free(&crop);
        n += snprintf(args + n, sizeof args - (size_t)n, " %s", crops[c]);
    }
    ld_image_free(&frame);
    CHECK_INT(test_run_cli(args, out, sizeof out, errbuf, sizeof errbuf), 0);
    double maxdiff = 0, lo = 1, hi = 0;
    int lines = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = '\0';
        for (int c = 0; c < 6; c++)
            if (strcmp(line, crops[c]) == 0) {
                double p = atof(tab + 1), d = fabs(p - score[c % 3][c / 3]);
                if (d > maxdiff) maxdiff = d;
                if (p < lo) lo = p;
                if (p > hi) hi = p;
                lines++;
            }
    }
    fprintf(stderr, "  detect vs classify on 6 windows: max diff %.2g (scores %.3f..%.3f)\n",
            maxdiff, lo, hi);
    CHECK_INT(lines, 6);
    CHECK(maxdiff <= 1e-6);      /* scan and predict agree to ~4e-7, printed to 7 decimals */
    CHECK(hi - lo > 0.01);       /* the windows do differ */
    json_decref(root);

    /* thresholded: only windows with p > 0.5 */
    int above = 0;
    for (int c = 0; c < 6; c++) above += score[c % 3][c / 3] > 0.5;
    snprintf(args, sizeof args, "detect --model %s --out %s --threshold 0.5 --merge none %s",
             model, res, img);
    CHECK_INT(test_run_cli(args, out, sizeof out, errbuf, sizeof errbuf), 0);
    root = json_load_file(res, 0, &jerr);
    CHECK(root != NULL);
    CHECK_INT(root ? (long)json_array_size(root) : -1, above);
    json_decref(root);
}

TEST_SUITE(cli_detect_folders)
{
    const char *dir = test_tmpdir("cli_detect_folders");
    char model[512], imgs[512], path[600], res1[512], res2[512], labels[512], ov[512], hm[512];
    char args[4096], out[4096], errbuf[4096];
    snprintf(model, sizeof model, "%s/model.safetensors", dir);
    snprintf(imgs, sizeof imgs, "%s/images", dir);
    snprintf(res1, sizeof res1, "%s/r1.json", dir);
    snprintf(res2, sizeof res2, "%s/r2.json", dir);
    snprintf(labels, sizeof labels, "%s/labels.json", dir);
    snprintf(ov, sizeof ov, "%s/overlays", dir);
    snprintf(hm, sizeof hm, "%s/heat", dir);
    CHECK(write_model(model) == 0);
    mkdir(imgs, 0777);
    const char *names[5] = {"e.png", "b.png", "d.png", "a.png", "c.png"};
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", imgs, names[i]);
        CHECK(write_image(path, 140 + 10 * i, 120, 10 + i) == 0);
    }
    snprintf(path, sizeof path, "%s/notes.txt", imgs);   /* not an image: ignored */
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("x\n", f);
        fclose(f);
    }

    /* ids 1..5 in name order; two threads give the same bytes as one */
    snprintf(args, sizeof args, "detect --model %s --out %s --threshold 0.2 --merge nms "
             "--scales 1,0.8 --stride 4 --quiet %s", model, res1, imgs);
    CHECK_INT(test_run_cli(args, out, sizeof out, errbuf, sizeof errbuf), 0);
    snprintf(args, sizeof args, "detect --model %s --out %s --threshold 0.2 --merge nms "
             "--scales 1,0.8 --stride 4 --threads 3 %s", model, res2, imgs);
    CHECK_INT(test_run_cli(args, out, sizeof out, errbuf, sizeof errbuf), 0);
    char *t1 = test_read_file(res1), *t2 = test_read_file(res2);
    CHECK(t1 && t2 && strcmp(t1, t2) == 0);
    CHECK(t1 && strlen(t1) > 100);
    free(t2);
    json_error_t jerr;
    json_t *root = json_loads(t1 ? t1 : "", 0, &jerr);
    free(t1);
    int ids_ok = root != NULL, seen[6] = {0};
    size_t k;
    json_t *e;
    json_array_foreach(root, k, e) {
        long id = (long)json_integer_value(json_object_get(e, "image_id"));
        const char *fn = json_string_value(json_object_get(e, "file_name"));
        char expect[8];
        snprintf(expect, sizeof expect, "%c.png", (char)('a' + id - 1));
        ids_ok &= id >= 1 && id <= 5 && fn && strcmp(fn, expect) == 0;
        if (id >= 1 && id <= 5) seen[id] = 1;
    }
    CHECK(ids_ok);
    CHECK(seen[1] + seen[2] + seen[3] + seen[4] + seen[5] >= 3);
    json_decref(root);

    /* ids from labels, matched by file name; overlays and heat maps drawn */
    f = fopen(labels, "w");
    if (f) {
        fputs("{\"images\": [", f);
        for (int i = 0; i < 5; i++)
            fprintf(f, "%s{\"id\": %d, \"file_name\": \"%s\", \"width\": %d, \"height\": 120}",
                    i ? ", " : "", 70 + i, names[i], 140 + 10 * i);
        fputs("], \"annotations\": [{\"id\": 1, \"image_id\": 73, \"category_id\": 1, "
              "\"bbox\": [20, 30, 60, 50]}], \"categories\": [{\"id\": 1, \"name\": \"node\"}]}\n", f);
        fclose(f);
    }
    snprintf(args, sizeof args, "detect --model %s --labels %s --out %s --threshold 0.3 "
             "--merge cluster --overlay %s --heatmap %s %s", model, labels, res1, ov, hm, imgs);
    CHECK_INT(test_run_cli(args, out, sizeof out, errbuf, sizeof errbuf), 0);
    root = json_load_file(res1, 0, &jerr);
    ids_ok = root != NULL;
    json_array_foreach(root, k, e) {
        long id = (long)json_integer_value(json_object_get(e, "image_id"));
        const char *fn = json_string_value(json_object_get(e, "file_name"));
        ids_ok &= id >= 70 && id <= 74 && fn && strcmp(fn, names[id - 70]) == 0;
    }
    CHECK(ids_ok);
    CHECK(root && json_array_size(root) > 0);
    json_decref(root);
    /* a.png has the label: its overlay shows red (the box) and is the frame's size */
    ld_error err = {0};
    ld_image pic = {0};
    snprintf(path, sizeof path, "%s/a.png", ov);
    CHECK_INT(ld_image_load(&pic, path, 0, &err), LD_OK);
    CHECK_INT(pic.w, 170);
    CHECK_INT(pic.c, 3);
    if (pic.px && pic.c == 3) {
        const uint8_t *p = pic.px + ((size_t)55 * pic.w + 20) * 3;   /* left edge, x = 20 */
        CHECK(p[0] > 200 && p[1] < 80 && p[2] < 80);
    }
    ld_image_free(&pic);
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", hm, names[i]);
        CHECK(test_exists(path));
    }
}

TEST_SUITE(cli_detect_errors)
{
    const char *dir = test_tmpdir("cli_detect_errors");
    char model[512], bad[512], img[512], res[512], args[4096], errbuf[4096];
    snprintf(model, sizeof model, "%s/model.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    snprintf(img, sizeof img, "%s/frame.png", dir);
    snprintf(res, sizeof res, "%s/results.json", dir);
    CHECK(write_model(model) == 0);
    CHECK(write_image(img, 120, 120, 1) == 0);
    FILE *f = fopen(bad, "w");
    if (f) {
        fputs("this is not a model\n", f);
        fclose(f);
    }
    snprintf(args, sizeof args, "detect --model %s --out %s %s", bad, res, img);
    CHECK_INT(test_run_cli(args, NULL, 0, errbuf, sizeof errbuf), 1);
    CHECK(strstr(errbuf, "bad.safetensors") != NULL);
    CHECK(!test_exists(res));
    /* a missing image: exit 1 naming it, no results file */
    snprintf(args, sizeof args, "detect --model %s --out %s %s %s/missing.png", model, res, img, dir);
    CHECK_INT(test_run_cli(args, NULL, 0, errbuf, sizeof errbuf), 1);
    CHECK(strstr(errbuf, "missing.png") != NULL);
    CHECK(!test_exists(res));
    /* an image smaller than the window */
    char small[512];
    snprintf(small, sizeof small, "%s/small.png", dir);
    CHECK(write_image(small, 90, 120, 2) == 0);
    snprintf(args, sizeof args, "detect --model %s --out %s %s", model, res, small);
    CHECK_INT(test_run_cli(args, NULL, 0, errbuf, sizeof errbuf), 1);
    CHECK(strstr(errbuf, "small.png") != NULL);
    /* usage errors: exit 2 */
    snprintf(args, sizeof args, "detect --model %s --out %s --merge best %s", model, res, img);
    CHECK_INT(test_run_cli(args, NULL, 0, errbuf, sizeof errbuf), 2);
    snprintf(args, sizeof args, "detect --model %s --out %s --stride 3 %s", model, res, img);
    CHECK_INT(test_run_cli(args, NULL, 0, errbuf, sizeof errbuf), 2);
    CHECK(strstr(errbuf, "stride") != NULL);
    snprintf(args, sizeof args, "detect --model %s --out %s --scales 1,,2 %s", model, res, img);
    CHECK_INT(test_run_cli(args, NULL, 0, errbuf, sizeof errbuf), 2);
    snprintf(args, sizeof args, "detect --model %s --out %s", model, res);
    CHECK_INT(test_run_cli(args, NULL, 0, errbuf, sizeof errbuf), 2);
    snprintf(args, sizeof args, "detect --model %s --out %s --threads 0 %s", model, res, img);
    CHECK_INT(test_run_cli(args, NULL, 0, errbuf, sizeof errbuf), 2);
    CHECK(!test_exists(res));
    /* an image the labels do not know */
    char labels[512];
    snprintf(labels, sizeof labels, "%s/labels.json", dir);
    f = fopen(labels, "w");
    if (f) {
        fputs("{\"images\": [{\"id\": 1, \"file_name\": \"other.png\", \"width\": 120, "
              "\"height\": 120}], \"annotations\": [], \"categories\": []}\n", f);
        fclose(f);
    }
    snprintf(args, sizeof args, "detect --model %s --labels %s --out %s %s", model, labels, res, img);
    CHECK_INT(test_run_cli(args, NULL, 0, errbuf, sizeof errbuf), 1);
    CHECK(strstr(errbuf, "not in the labels") != NULL);
    CHECK(!test_exists(res));
    snprintf(args, sizeof args, "detect --help");
    CHECK_INT(test_run_cli(args, NULL, 0, errbuf, sizeof errbuf), 0);
}
