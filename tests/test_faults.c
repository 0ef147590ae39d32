/* test_faults.c — allocation-failure injection (SQLite's habit), through src/alloc.h.
 *
 * For each loader and for training setup: make the 1st allocation fail (and every one
 * after it), then the 2nd, ... until the call succeeds. Every failure must come back
 * as LD_ERR_NOMEM with an "out of memory" message, with the outputs left empty, and
 * nothing may leak: under the sanitizer build (`make sanitize`) each suite ends with
 * LeakSanitizer's check, which reports any block the error paths forgot.
 *
 * Only the library's own allocations go through ld_alloc; libpng, libjpeg-turbo,
 * jansson and libxml2 allocate for themselves and are not failed here (the fuzzers
 * and the malformed fixtures cover their error paths). Each suite prints how many
 * allocations the call makes, i.e. how many distinct failure points were exercised. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "lymphdet/checkpoint.h"
#include "lymphdet/detect.h"
#include "lymphdet/detections.h"
#include "lymphdet/dettrain.h"
#include "lymphdet/image.h"
#include "lymphdet/labels.h"
#include "lymphdet/model.h"
#include "lymphdet/patches.h"
#include "lymphdet/train.h"
#include "synth.h"
#include "test.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* LeakSanitizer over everything allocated so far in this process (sanitizer build) */
static void leak_check(const char *what)
{
#ifdef HAVE_LSAN
    CHECK_MSG(__lsan_do_recoverable_leak_check() == 0, "%s: LeakSanitizer found leaks", what);
#else
    (void)what;
#endif
}

typedef ld_status (*fault_fn)(void *ctx, ld_error *err);

/* Runs fn with the k-th allocation failing, k = 1, 2, ..., until it succeeds; checks
 * every failure; returns the number of allocations of a successful call (-1 if it
 * never succeeded). fn frees what it made when it succeeds. */
static long fault_loop(const char *what, fault_fn fn, void *ctx)
{
    int clean = 1;
    for (long k = 1; k <= 100000; k++) {
        ld_error err = {0};
        ld_alloc_fail_after(k);
        ld_status st = fn(ctx, &err);
        ld_alloc_fail_after(0);
        if (st == LD_OK) {
            CHECK_MSG(clean, "%s: some failures were not clean (above)", what);
            fprintf(stderr, "  faults %-34s %4ld allocations, each failed in turn: %s\n", what,
                    k - 1, clean ? "clean" : "NOT CLEAN");
            return k - 1;
        }
        if (st != LD_ERR_NOMEM || !strstr(err.msg, "out of memory")) {
            clean = 0;
            CHECK_MSG(0, "%s: allocation %ld failed -> status %d \"%s\"", what, k, (int)st, err.msg);
        }
    }
    CHECK_MSG(0, "%s: still failing after 100000 allocations", what);
    return -1;
}

/* ---- images --------------------------------------------------------------------------- */

static ld_status load_image(void *ctx, ld_error *err)
{
    ld_image img, grey, small;
    ld_status st = ld_image_load(&img, ctx, 0, err);
    if (st) {
        CHECK_MSG(img.px == NULL, "%s: a failed load left pixels", (const char *)ctx);
        return st;
    }
    /* what the pipeline does next: grey, resize, crop, rotate */
    if (!(st = ld_image_to_grey(&grey, &img, err))) {
        if (!(st = ld_image_resize(&small, &grey, 20, 17, err))) {
            if (!(st = ld_image_crop(&small, &small, 2, 3, 10, 9, err)))
                st = ld_image_rot90(&small, &small, 1, err);
            ld_image_free(&small);
        }
        ld_image_free(&grey);
    }
    ld_image_free(&img);
    return st;
}

TEST_SUITE(faults_image)
{
    static const char *const files[] = {
        "tests/fixtures/images/frame_64x48.jpg", "tests/fixtures/images/rgb_progressive.jpg",
        "tests/fixtures/images/grey_q100.jpg", "tests/fixtures/images/frame_64x48.png",
        "tests/fixtures/images/palette_trns_8x6.png", "tests/fixtures/images/interlaced_rgb_8x6.png",
        "tests/fixtures/images/grey16_8x6.png",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        long n = fault_loop(files[i] + 22, load_image, (void *)files[i]);
        CHECK_MSG(n >= 2, "%s: %ld allocations", files[i], n);
    }
    leak_check("faults_image");
}

/* ---- labels ----------------------------------------------------------------------------- */

typedef struct {
    const char *path, *images;
    ld_label_format format;
    int n_images;           /* expected on success */
} labels_case;

static ld_status load_labels(void *ctx, ld_error *err)
{
    const labels_case *c = ctx;
    ld_label_options opt;
    ld_labels l;
    ld_label_options_default(&opt);
    opt.format = c->format;
    opt.images_dir = c->images;
    ld_status st = ld_labels_load(&l, c->path, &opt, err);
    if (st) {
        CHECK_MSG(l.images == NULL && l.n_images == 0 && l.categories == NULL,
                  "%s: a failed load left labels", c->path);
        return st;
    }
    CHECK_MSG(l.n_images == c->n_images, "%s: %d images, expected %d", c->path, l.n_images,
              c->n_images);
    ld_labels_free(&l);
    return LD_OK;
}

TEST_SUITE(faults_labels)
{
    static const labels_case cases[] = {
        {"tests/fixtures/labels/coco/imglab.json", "tests/fixtures/labels/images", LD_LABELS_AUTO, 2},
        {"tests/fixtures/labels/coco/cvat.json", "tests/fixtures/labels/images", LD_LABELS_COCO, 2},
        {"tests/fixtures/labels/coco/labelstudio.json", "tests/fixtures/labels/images", LD_LABELS_COCO, 2},
        {"tests/fixtures/labels/voc", "tests/fixtures/labels/images", LD_LABELS_AUTO, 2},
        {"tests/fixtures/labels/voc_nosize", "tests/fixtures/labels/images", LD_LABELS_VOC, 1},
        {"tests/fixtures/labels/yolo_classes", "tests/fixtures/labels/images", LD_LABELS_AUTO, 3},
        {"tests/fixtures/labels/yolo_yaml", "tests/fixtures/labels/images", LD_LABELS_YOLO, 3},
        {"tests/fixtures/labels/yolo_yaml_block", "tests/fixtures/labels/images", LD_LABELS_YOLO, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long n = fault_loop(cases[i].path + 22, load_labels, (void *)&cases[i]);
        CHECK_MSG(n >= 3, "%s: %ld allocations", cases[i].path, n);
    }
    leak_check("faults_labels");
}

/* ---- model and results files ------------------------------------------------------------ */

typedef struct {
    const char *model, *out;
} model_case;

static int dir_has_temp(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (d && (e = readdir(d))) found |= strstr(e->d_name, ".tmp") != NULL;
    if (d) closedir(d);
    return found;
}

static ld_status model_roundtrip(void *ctx, ld_error *err)
{
    const model_case *c = ctx;
    ld_model m;
    ld_status st = ld_model_load(&m, c->model, 8, err);
    if (st) {
        CHECK_MSG(m.params == NULL && m.acts == NULL, "a failed model load left buffers");
        return st;
    }
    float x[3 * 100 * 100], p[1];   /* [1, 3, 100, 100] */
    for (int i = 0; i < 3 * 100 * 100; i++) x[i] = (float)(i % 251) / 250.0f;
    ld_model_predict(&m, x, 1, p);
    remove(c->out);
    st = ld_model_save(&m, c->out, err);
    ld_model_free(&m);
    if (st) CHECK_MSG(!test_exists(c->out), "a failed save left %s", c->out);
    return st;
}

static ld_status detect_and_save(void *ctx, ld_error *err)
{
    const model_case *c = ctx;
    ld_model m;
    ld_detector det;
    ld_detect_config cfg;
    ld_image frame;
    ld_dets dets = {0};
    ld_status st = ld_model_load(&m, c->model, 8, err);
    if (st) return st;
    ld_detect_config_default(&cfg);
    cfg.threshold = 0.0;   /* every window positive: the merger and results see work */
    cfg.n_scales = 2;
    cfg.scales[0] = 1.0;
    cfg.scales[1] = 0.75;
    if (!(st = ld_image_load(&frame, "tests/fixtures/images/frame_64x48.png", 0, err))) {
        ld_image big;
        if (!(st = ld_image_resize(&big, &frame, 180, 150, err))) {
            if (!(st = ld_detector_init(&det, &m, &cfg, err))) {
                st = ld_detector_run(&det, big.px, big.w, big.h, big.c, big.w * big.c, &dets, err);
                ld_detector_free(&det);
            }
            ld_image_free(&big);
        }
        ld_image_free(&frame);
    }
    if (!st) {
        const char *name = "frame.png";
        int64_t id = 3;
        remove(c->out);
        st = ld_results_save(c->out, &dets, &name, &id, 1, err);
    }
    ld_dets_free(&dets);
    ld_model_free(&m);
    return st;
}

TEST_SUITE(faults_model)
{
    const char *dir = test_tmpdir("faults-model");
    char out[512];
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    model_case c = {"tests/fixtures/models/paper_torch.safetensors", out};
    long n = fault_loop("model load + predict + save", model_roundtrip, &c);
    CHECK(n >= 3);
    CHECK_MSG(!dir_has_temp(dir), "temporary files left in %s", dir);
    snprintf(out, sizeof out, "%s/results.json", dir);
    n = fault_loop("detect (2 scales) + results save", detect_and_save, &c);
    CHECK(n >= 5);
    CHECK_MSG(!dir_has_temp(dir), "temporary files left in %s", dir);
    leak_check("faults_model");
}

static ld_status load_results(void *ctx, ld_error *err)
{
    const char *const *paths = ctx;   /* labels, results */
    ld_labels l;
    ld_dets *dets = NULL;
    ld_status st = ld_labels_load(&l, paths[0], NULL, err);
    if (st) return st;
    st = ld_results_load(&dets, paths[1], &l, err);
    if (!st) {
        CHECK_INT(dets[0].n + dets[1].n, 3);
        for (int i = 0; i < l.n_images; i++) ld_dets_free(&dets[i]);
        ld_free(dets);
    } else {
        CHECK_MSG(dets == NULL, "a failed results load left detections");
    }
    ld_labels_free(&l);
    return st;
}

TEST_SUITE(faults_results)
{
    const char *dir = test_tmpdir("faults-results");
    char labels[512], results[512];
    snprintf(labels, sizeof labels, "%s/labels.json", dir);
    snprintf(results, sizeof results, "%s/results.json", dir);
    FILE *f = fopen(labels, "w");
    fputs("{\"images\": [{\"id\": 4, \"file_name\": \"a.png\", \"width\": 40, \"height\": 30},"
          " {\"id\": 9, \"file_name\": \"b.png\", \"width\": 40, \"height\": 30}],"
          " \"categories\": [{\"id\": 1, \"name\": \"node\"}], \"annotations\": []}", f);
    fclose(f);
    f = fopen(results, "w");
    fputs("[{\"image_id\": 4, \"category_id\": 1, \"bbox\": [1, 2, 3, 4], \"score\": 0.9},"
          " {\"image_id\": 9, \"category_id\": 1, \"bbox\": [1, 2, 3, 4], \"score\": 0.8},"
          " {\"image_id\": 4, \"category_id\": 1, \"bbox\": [5, 2, 3, 4], \"score\": 0.7}]", f);
    fclose(f);
    const char *paths[2] = {labels, results};
    CHECK(fault_loop("labels + results load", load_results, (void *)paths) >= 3);
    leak_check("faults_results");
}

/* ---- training setup --------------------------------------------------------------------- */

typedef struct {
    const char *dir;
    char ckpt[512];
} train_case;

/* labels -> patches -> model -> one epoch with a checkpoint -> checkpoint read back */
static ld_status train_setup(void *ctx, ld_error *err)
{
    const train_case *c = ctx;
    char path[512];
    snprintf(path, sizeof path, "%s/labels.json", c->dir);
    ld_labels l;
    ld_dataset ds;
    ld_model m;
    ld_split_config sc;
    ld_patch_config pc;
    ld_status st = ld_labels_load(&l, path, NULL, err);
    if (st) return st;
    ld_split_config_default(&sc);
    ld_patch_config_default(&pc);
    sc.val_fraction = 0.34;
    pc.size = 24;
    pc.margin = 2;
    if ((st = ld_dataset_build(&ds, &l, c->dir, &sc, &pc, err))) {
        ld_labels_free(&l);
        return st;
    }
    ld_arch arch;
    ld_arch_paper(&arch);
    arch.input_size = 24;   /* 24 -> 22 -> 11 -> 9 -> 4 -> 2 -> 1 */
    ld_train_config tc;
    ld_train_config_default(&tc);
    tc.epochs = 1;
    tc.checkpoint = c->ckpt;
    ld_epoch_stats hist[1];
    remove(c->ckpt);
    if (!(st = ld_model_init(&m, &arch, tc.batch, err))) {
        ld_model_init_weights(&m, 3);
        st = ld_train(&m, &ds.train, &ds.val, &tc, NULL, hist, err);
        if (st) {
            CHECK_MSG(!test_exists(c->ckpt), "a failed run left a checkpoint");
        } else {
            ld_checkpoint ck;
            if (!(st = ld_checkpoint_load(&ck, &m, c->ckpt, err))) {
                st = ld_checkpoint_check(&ck, &tc, &ds.train, &ds.val, c->ckpt, err);
                CHECK_INT(ck.state.epochs_done, 1);
                ld_checkpoint_free(&ck);
            }
        }
        ld_model_free(&m);
    }
    ld_dataset_free(&ds);
    ld_labels_free(&l);
    return st;
}

/* A training setup run with each allocation failed in turn, on synthetic frames in a
 * fresh folder: it must get far (20+ allocations) and leave no temporary file. */
static void train_faults(const char *suite, const char *ckpt_name, synth_config sc,
                         const char *what, fault_fn setup)
{
    train_case c;
    c.dir = test_tmpdir(suite);
    snprintf(c.ckpt, sizeof c.ckpt, "%s/%s", c.dir, ckpt_name);
    CHECK(synth_write(c.dir, &sc) > 0);
    long n = fault_loop(what, setup, &c);
    CHECK(n >= 20);
    CHECK_MSG(!dir_has_temp(c.dir), "temporary files left in %s", c.dir);
    leak_check(suite);
}

TEST_SUITE(faults_train)
{
    synth_config sc = {6, 64, 2, 4, 8, 21};
    train_faults("faults_train", "run.ckpt", sc, "train setup + epoch + checkpoint", train_setup);
}

/* the checkpoint hook of detect_train_setup: where to save, and the model */
typedef struct {
    const char *path;
    const ld_model *m;
} det_save;

static ld_status save_det_checkpoint(void *user, const ld_dettrain_state *st,
                                     const ld_det_epoch *history, ld_error *err)
{
    const det_save *s = user;
    return ld_detcheckpoint_save(s->path, s->m, 2, "faults", 1, st, history, err);
}

/* labels -> frames -> the detection preset's model -> two epochs (a tuning evaluation,
 * a checkpoint after each) -> the checkpoint read back */
static ld_status detect_train_setup(void *ctx, ld_error *err)
{
    const train_case *c = ctx;
    char path[512];
    snprintf(path, sizeof path, "%s/labels.json", c->dir);
    ld_labels l;
    ld_frameset fs = {0};
    ld_model m;
    ld_status st = ld_labels_load(&l, path, NULL, err);
    if (st) return st;
    if ((st = ld_frameset_load(&fs, &l, c->dir, NULL, 0, 0, err))) {
        ld_labels_free(&l);
        return st;
    }
    ld_arch arch;
    ld_arch_detect(&arch);
    arch.input_size = 32;
    arch.n_blocks = 2;      /* 32 -> 30 -> 15 -> 13 -> 6: windows every 4 px */
    ld_dettrain_config tc;
    ld_dettrain_config_default(&tc);
    tc.epochs = 2;
    tc.batch = 2;
    tc.crop = 48;
    ld_detect_config dc;
    ld_detect_config_default(&dc);
    dc.stride = 4;
    dc.threshold = 0.05;
    ld_dettrain_eval ev = {&fs, &dc, 1};
    ld_det_epoch hist[2];
    remove(c->ckpt);
    if (!(st = ld_model_init(&m, &arch, 1, err))) {
        ld_model_init_weights(&m, 3);
        det_save save = {c->ckpt, &m};
        ld_dettrain_hooks hooks = {NULL, NULL, save_det_checkpoint, &save};
        st = ld_dettrain(&m, &fs, &tc, &ev, &hooks, hist, NULL, err);
        if (!st) {
            ld_detcheckpoint ck;
            if (!(st = ld_detcheckpoint_load(&ck, &m, c->ckpt, err))) {
                CHECK_INT(ck.state.epochs_done, 2);
                ld_detcheckpoint_free(&ck);
            }
        }
        ld_model_free(&m);
    }
    ld_frameset_free(&fs);
    ld_labels_free(&l);
    return st;
}

TEST_SUITE(faults_train_detect)
{
    synth_config sc = {4, 64, 2, 6, 12, 23};
    train_faults("faults_train_detect", "det.ckpt", sc, "detection training + checkpoint",
                 detect_train_setup);
}
