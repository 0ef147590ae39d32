/* bench.c — lymphdet's benchmark (issue 8; docs/performance.md): the work that matters
 * for a live probe and for training, timed the same way bench/peer_torch.py times it
 * with PyTorch, so that bench/run.sh can print both side by side.
 *
 *   scan469 / scan938 / scan1876   every 100 x 100 window of a frame at stride 8, one
 *                                  scale (ld_scanner_run): frames of 469, 938 and
 *                                  1876 px show how time grows with pixels
 *   pyramid469                     the detector on a 469 px frame over the pyramid
 *                                  2,1.41,1,0.71,0.5,0.35 (ld_detector_run: resizing,
 *                                  scanning, NMS)
 *   detect469                      the detection preset as shipped (--detect-model, a
 *                                  trained model) on a real 469 px frame (--frame) with
 *                                  the settings it was tuned with: its whole pyramid,
 *                                  both heads, box decoding and NMS (ld_detector_run)
 *   windows469                     the paper's way: the 2209 windows cut out one by
 *                                  one and classified in batches of 64 (ld_model_predict)
 *   train_step                     one training step of 5 patches (forward, loss,
 *                                  backward, Keras Adam)
 *   train_epoch_434/868/1736       one epoch over that many patches (training time
 *                                  against patches)
 *   train_paper                    the paper's training: 1736 patches split 1562 / 174,
 *                                  20 epochs with validation after each (ld_train)
 *   detect_folder_t1 / _t2         `lymphdet detect` over a folder of frames with
 *                                  --threads 1 and 2 (decoding included), and its peak
 *                                  memory
 *   train_busi_mem                 `lymphdet train` on all of BUSI (one epoch: memory
 *                                  does not grow with epochs), its peak memory
 *
 * Each timing: warm-up runs, then repeats until about a second has passed (at least
 * 5, at most 200; a run longer than a second is repeated 3 times) and the median.
 * GFLOP/s counts the multiply-adds of the network as PyTorch executes it (conv 1 over
 * 3 channels), so the rates of both programs count the same work; "peak" is the
 * fraction of a measured sgemm rate (--peak, from the peer's torch.mm on 1 thread).
 * Peak memory is the child process's ru_maxrss, measured first (see main).
 *
 * Output: a table, or with --tsv one line per result:
 *   key <TAB> median ms <TAB> work <TAB> work unit <TAB> GFLOP per run (0: not counted)
 * The numbers are figures of this machine at this moment: pass/fail tests never
 * depend on them. */
#define _DEFAULT_SOURCE   /* wait4: the child's own peak memory */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "lymphdet/detect.h"
#include "lymphdet/dettrain.h"
#include "lymphdet/image.h"
#include "lymphdet/model.h"
#include "lymphdet/patches.h"
#include "lymphdet/train.h"

#define PYRAMID "2,1.41,1,0.71,0.5,0.35"

typedef struct {
    int threads;
    const char *kernels;
    double peak;            /* sgemm GFLOP/s, 0: unknown */
    int quick, tsv;
    const char *only;       /* comma list of keys, NULL: all */
    const char *busi;       /* BUSI folder for the folder and memory runs */
    const char *detect_model;   /* a detection-preset model file, for detect469 */
    const char *frame;      /* a 469 x 469 ultrasound frame, for detect469 */
    const char *lymphdet;   /* the CLI binary */
    const char *tmp;        /* scratch folder */
} options;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what, const ld_error *err)
{
    fprintf(stderr, "bench: %s: %s\n", what, err ? err->msg : strerror(errno));
    exit(1);
}

static int wanted(const options *o, const char *key)
{
    if (!o->only) return 1;
    size_t n = strlen(key);
    for (const char *p = o->only; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, key, n) == 0) return 1;
        /* a prefix ending in '*' selects a family: train_epoch_* */
        if (len > 0 && p[len - 1] == '*' && strncmp(p, key, len - 1) == 0) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static void report(const options *o, const char *key, double ms, double work, const char *unit,
                   double gflop, const char *what)
{
    if (o->tsv) {
        printf("%s\t%.4f\t%.0f\t%s\t%.6f\n", key, ms, work, unit, gflop);
    } else {
        char rate[32] = "", gfs[32] = "", pk[32] = "";
        if (work > 0) snprintf(rate, sizeof rate, "%.0f %s/s", work / (ms / 1e3), unit);
        if (gflop > 0) snprintf(gfs, sizeof gfs, "%.1f", gflop / (ms / 1e3));
        if (gflop > 0 && o->peak > 0) snprintf(pk, sizeof pk, "%.0f %%", 100 * gflop / (ms / 1e3) / o->peak);
        printf("%-18s %10.3f ms %18s %8s %6s  %s\n", key, ms, rate, gfs, pk, what);
    }
    fflush(stdout);
}

/* Median wall time of fn(ctx), in ms. */
static double time_median(const options *o, void (*fn)(void *), void *ctx)
{
    double t0 = now();
    fn(ctx);   /* warm-up: first touch of every buffer, caches, thread start */
    double first = now() - t0;
    if (first < 0.2) fn(ctx);
    int reps = first > 1.0 ? 3 : (int)(1.0 / (first > 1e-6 ? first : 1e-6));
    if (o->quick) reps /= 4;
    if (reps < (first > 1.0 ? 1 : 5)) reps = first > 1.0 ? 1 : 5;
    if (reps > 200) reps = 200;
    double *t = malloc((size_t)reps * sizeof *t);
    if (!t) die("memory", NULL);
    for (int i = 0; i < reps; i++) {
        double a = now();
        fn(ctx);
        t[i] = now() - a;
    }
    qsort(t, (size_t)reps, sizeof *t, by_value);
    double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    free(t);
    return med * 1e3;
}

/* ---- the model and synthetic data ------------------------------------------------ */

/* The paper's network with seeded weights and non-trivial moving statistics. */
static void make_model(ld_model *m, int batch_cap, const options *o)
{
    ld_arch arch;
    ld_arch_paper(&arch);
    ld_error err = {0};
    if (ld_model_init(m, &arch, batch_cap, &err)) die("model", &err);
    ld_model_init_weights(m, 1);
    ld_rng r;
    ld_rng_seed(&r, 2);
    for (int k = 0; k < arch.n_blocks; k++)
        for (int c = 0; c < arch.filters[k]; c++) {
            m->p[k].bn_mean[c] = 0.1f * ld_rng_float(&r);
            m->p[k].bn_var[c] = 0.05f + 0.1f * ld_rng_float(&r);
        }
    if (ld_model_set_kernels(m, o->kernels, &err)) die("kernels", &err);
    if (ld_model_set_threads(m, o->threads, &err)) die("threads", &err);
}

/* A grey frame of speckle over smooth structure, like a B-mode image. */
static void make_frame(uint8_t *px, int w, int h, uint64_t seed)
{
    ld_rng r;
    ld_rng_seed(&r, seed);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double base = 90 + 60 * sin(x * 0.021 + 0.7 * sin(y * 0.013)) * cos(y * 0.017);
            double v = base * (0.6 + 0.8 * ld_rng_float(&r));
            px[(size_t)y * w + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
}

/* Network multiply-adds x 2 of one scanner pass over a w x h frame at stride 8:
 * the passes read E = 8 (n - 1) + 100 pixels per axis; conv 1 over 3 channels. */
static double scan_gflop(const ld_arch *a, int w, int h)
{
    int P = 1 << a->n_blocks, nx = (w - a->input_size) / P + 1, ny = (h - a->input_size) / P + 1;
    double ew = P * (nx - 1) + a->input_size, eh = P * (ny - 1) + a->input_size, fl = 0;
    int cin = a->in_channels;
    for (int k = 0; k < a->n_blocks; k++) {
        fl += 2.0 * 9 * cin * a->filters[k] * (ew - 2) * (eh - 2);
        ew = floor((ew - 2) / 2);
        eh = floor((eh - 2) / 2);
        cin = a->filters[k];
    }
    int s = ld_arch_block_out(a, a->n_blocks - 1);
    fl += 2.0 * cin * s * s * nx * ny * (1 + a->box_head);   /* objectness and box heads */
    return fl * 1e-9;
}

/* Forward (f) and training-step (forward + backward, no input gradient for conv 1)
 * GFLOP of n patches. */
static double net_gflop(const ld_arch *a, int n, int train)
{
    double fwd = 0, bwd = 0;
    int cin = a->in_channels, s = a->input_size;
    for (int k = 0; k < a->n_blocks; k++) {
        double c = 2.0 * 9 * cin * a->filters[k] * (s - 2) * (s - 2);
        fwd += c;
        bwd += k > 0 ? 2 * c : c;   /* weight gradient, input gradient */
        s = (s - 2) / 2;
        cin = a->filters[k];
    }
    fwd += 2.0 * cin * s * s;
    bwd += 4.0 * cin * s * s;
    return n * (fwd + (train ? bwd : 0)) * 1e-9;
}

/* ---- scanning -------------------------------------------------------------------- */

typedef struct {
    ld_scanner sc;
    float *img, *probs;
    int w, h;
} scan_ctx;

static void run_scan(void *p)
{
    scan_ctx *c = p;
    ld_error err = {0};
    if (ld_scanner_run(&c->sc, c->probs, c->img, c->w, c->h, (size_t)c->w, 8, &err)) die("scan", &err);
}

static void bench_scan(const options *o, ld_model *m, int side)
{
    char key[32];
    snprintf(key, sizeof key, "scan%d", side);
    if (!wanted(o, key)) return;
    scan_ctx c = {.w = side, .h = side};
    ld_error err = {0};
    if (ld_scanner_init(&c.sc, m, &err)) die("scanner", &err);
    int nx, ny;
    ld_scan_grid(&nx, &ny, &c.sc, side, side, 8, &err);
    uint8_t *px = malloc((size_t)side * side);
    c.img = malloc((size_t)side * side * sizeof *c.img);
    c.probs = malloc((size_t)nx * ny * sizeof *c.probs);
    if (!px || !c.img || !c.probs) die("memory", NULL);
    make_frame(px, side, side, 7);
    for (size_t i = 0; i < (size_t)side * side; i++) c.img[i] = px[i] / 255.0f;
    double ms = time_median(o, run_scan, &c);
    char what[96];
    snprintf(what, sizeof what, "%dx%d frame, stride 8, one scale", side, side);
    report(o, key, ms, (double)nx * ny, "windows", scan_gflop(&m->arch, side, side), what);
    ld_scanner_free(&c.sc);
    free(px);
    free(c.img);
    free(c.probs);
}

typedef struct {
    ld_detector det;
    ld_dets out;
    uint8_t *px;
    int side;
} pyr_ctx;

static void run_pyramid(void *p)
{
    pyr_ctx *c = p;
    ld_error err = {0};
    if (ld_detector_run(&c->det, c->px, c->side, c->side, 1, c->side, &c->out, &err))
        die("detector", &err);
}

static void bench_pyramid(const options *o, ld_model *m)
{
    if (!wanted(o, "pyramid469")) return;
    pyr_ctx c = {.side = 469};
    ld_detect_config cfg;
    ld_detect_config_default(&cfg);
    ld_error err = {0};
    if (ld_detect_parse_scales(&cfg, PYRAMID, &err)) die("scales", &err);
    if (ld_detector_init(&c.det, m, &cfg, &err)) die("detector", &err);
    memset(&c.out, 0, sizeof c.out);
    c.px = malloc(469 * 469);
    if (!c.px) die("memory", NULL);
    make_frame(c.px, 469, 469, 7);
    double ms = time_median(o, run_pyramid, &c);
    double windows = 0, gflop = 0;
    for (int k = 0; k < cfg.n_scales; k++) {
        const ld_score_map *mp = ld_detector_map(&c.det, k);
        windows += (double)mp->nx * mp->ny;
        if (mp->nx > 0) gflop += scan_gflop(&m->arch, mp->w, mp->h);
    }
    report(o, "pyramid469", ms, windows, "windows", gflop,
           "469x469 frame, pyramid " PYRAMID ", stride 8, NMS");
    ld_detector_free(&c.det);
    ld_dets_free(&c.out);
    free(c.px);
}

/* the detection preset: a trained model with its tuned settings, on a real frame */
static void bench_detect_preset(const options *o)
{
    if (!wanted(o, "detect469")) return;
    ld_error err = {0};
    ld_model m;
    ld_image img = {0}, grey = {0};
    if (ld_model_load(&m, o->detect_model, 1, &err)) die("--detect-model", &err);
    if (ld_image_load(&img, o->frame, 0, &err) || ld_image_to_grey(&grey, &img, &err))
        die("--frame", &err);
    pyr_ctx c = {.side = grey.w, .px = grey.px};
    if (grey.w != grey.h) die("--frame is not square", NULL);
    ld_detect_config cfg;
    if (ld_detect_config_from_model(&cfg, &m, &err) || ld_detector_init(&c.det, &m, &cfg, &err))
        die("detector", &err);
    memset(&c.out, 0, sizeof c.out);
    double ms = time_median(o, run_pyramid, &c);
    double windows = 0, gflop = 0;
    for (int k = 0; k < cfg.n_scales; k++) {
        const ld_score_map *mp = ld_detector_map(&c.det, k);
        windows += (double)mp->nx * mp->ny;
        /* a stride below the period P takes (P / stride)^2 shifted passes */
        double passes = (double)(1 << m.arch.n_blocks) / cfg.stride;
        if (mp->nx > 0) gflop += scan_gflop(&m.arch, mp->w, mp->h) * (passes > 1 ? passes * passes : 1);
    }
    char what[200];
    snprintf(what, sizeof what, "detection preset (%s), %d scales, stride %d, %d boxes after NMS",
             o->detect_model, cfg.n_scales, cfg.stride, c.out.n);
    report(o, "detect469", ms, windows, "windows", gflop, what);
    ld_detector_free(&c.det);
    ld_dets_free(&c.out);
    ld_model_free(&m);
    ld_image_free(&img);
    ld_image_free(&grey);
}

typedef struct {
    ld_model *m;
    const float *img;
    float *batch, *probs;
    int side;
} win_ctx;

/* window by window: cut each 100 x 100 window (3 equal channels), classify 64 at once */
static void run_windows(void *p)
{
    win_ctx *c = p;
    int n = (c->side - 100) / 8 + 1, total = n * n, done = 0;
    while (done < total) {
        int b = total - done < 64 ? total - done : 64;
        for (int i = 0; i < b; i++) {
            int wy = (done + i) / n * 8, wx = (done + i) % n * 8;
            float *dst = c->batch + (size_t)i * 30000;
            for (int y = 0; y < 100; y++)
                memcpy(dst + y * 100, c->img + (size_t)(wy + y) * c->side + wx, 100 * sizeof *dst);
            memcpy(dst + 10000, dst, 10000 * sizeof *dst);
            memcpy(dst + 20000, dst, 10000 * sizeof *dst);
        }
        ld_model_predict(c->m, c->batch, b, c->probs + done);
        done += b;
    }
}

static void bench_windows(const options *o)
{
    if (!wanted(o, "windows469")) return;
    ld_model m;
    make_model(&m, 64, o);
    win_ctx c = {&m, NULL, NULL, NULL, 469};
    uint8_t *px = malloc(469 * 469);
    float *img = malloc(469 * 469 * sizeof *img);
    c.batch = malloc((size_t)64 * 30000 * sizeof *c.batch);
    c.probs = malloc(47 * 47 * sizeof *c.probs);
    if (!px || !img || !c.batch || !c.probs) die("memory", NULL);
    make_frame(px, 469, 469, 7);
    for (int i = 0; i < 469 * 469; i++) img[i] = px[i] / 255.0f;
    c.img = img;
    double ms = time_median(o, run_windows, &c);
    report(o, "windows469", ms, 47 * 47, "windows", net_gflop(&m.arch, 47 * 47, 0),
           "469x469 frame, 2209 windows cut out and classified in batches of 64");
    ld_model_free(&m);
    free(px);
    free(img);
    free(c.batch);
    free(c.probs);
}

/* ---- training -------------------------------------------------------------------- */

typedef struct {
    ld_model *m;
    float *x, y[5];
    ld_adam_config cfg;
    ld_rng rng;
} step_ctx;

static void run_step(void *p)
{
    step_ctx *c = p;
    ld_model_train_step(c->m, c->x, c->y, 5, &c->cfg, &c->rng, NULL);
}

/* n synthetic grey patches: noise, half of them with a dark disc (a "node") */
static void make_patches(ld_patchset *ps, int n, uint64_t seed)
{
    memset(ps, 0, sizeof *ps);
    ps->size = 100;
    ps->n = ps->cap = n;
    ps->px = malloc((size_t)n * 10000);
    ps->label = malloc((size_t)n);
    ps->image = calloc((size_t)n, sizeof *ps->image);
    ps->box = calloc((size_t)n, sizeof *ps->box);
    ps->aug = calloc((size_t)n, 1);
    ps->x = calloc((size_t)n, sizeof *ps->x);
    ps->y = calloc((size_t)n, sizeof *ps->y);
    if (!ps->px || !ps->label || !ps->image || !ps->box || !ps->aug || !ps->x || !ps->y)
        die("memory", NULL);
    ld_rng r;
    ld_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        int node = i % 2;
        double cx = 30 + 40 * ld_rng_float(&r), cy = 30 + 40 * ld_rng_float(&r), rad = 12 + 15 * ld_rng_float(&r);
        for (int y = 0; y < 100; y++)
            for (int x = 0; x < 100; x++) {
                double v = 110 + 60 * ld_rng_float(&r);
                if (node && (x - cx) * (x - cx) + (y - cy) * (y - cy) < rad * rad) v *= 0.35;
                ps->px[(size_t)i * 10000 + y * 100 + x] = (uint8_t)v;
            }
        ps->label[i] = (uint8_t)node;
    }
}

static void free_patches(ld_patchset *ps)
{
    free(ps->px); free(ps->label); free(ps->image); free(ps->box); free(ps->aug); free(ps->x); free(ps->y);
}

static void bench_step(const options *o)
{
    if (!wanted(o, "train_step")) return;
    ld_model m;
    make_model(&m, 5, o);
    step_ctx c;
    memset(&c, 0, sizeof c);
    c.m = &m;
    ld_adam_default(&c.cfg);
    ld_rng_seed(&c.rng, 3);
    ld_patchset ps;
    make_patches(&ps, 5, 4);
    c.x = malloc((size_t)5 * 30000 * sizeof *c.x);
    if (!c.x) die("memory", NULL);
    int idx[5] = {0, 1, 2, 3, 4};
    ld_patches_batch(c.x, c.y, &ps, idx, 5);
    double ms = time_median(o, run_step, &c);
    report(o, "train_step", ms, 5, "patches", net_gflop(&m.arch, 5, 1),
           "one training step, batch 5 (forward, BCE, backward, Keras Adam)");
    ld_model_free(&m);
    free_patches(&ps);
    free(c.x);
}

typedef struct {
    const options *o;
    ld_patchset *train, *val;
    int epochs;
} fit_ctx;

static void run_fit(void *p)
{
    fit_ctx *c = p;
    ld_model m;
    make_model(&m, 5, c->o);
    ld_model_init_weights(&m, 1);
    ld_train_config cfg;
    ld_train_config_default(&cfg);
    cfg.epochs = c->epochs;
    ld_epoch_stats hist[20];
    ld_error err = {0};
    if (ld_train(&m, c->train, c->val, &cfg, NULL, hist, &err)) die("train", &err);
    ld_model_free(&m);
}

static double paper_gflop(int n, int train)
{
    ld_arch a;
    ld_arch_paper(&a);
    return net_gflop(&a, n, train);
}

static void bench_training(const options *o)
{
    static const int sizes[3] = {434, 868, 1736};
    for (int i = 0; i < 3; i++) {
        char key[32], what[96];
        snprintf(key, sizeof key, "train_epoch_%d", sizes[i]);
        if (!wanted(o, key)) continue;
        ld_patchset ps;
        make_patches(&ps, sizes[i], 5);
        fit_ctx c = {o, &ps, NULL, 1};
        double ms = time_median(o, run_fit, &c);
        snprintf(what, sizeof what, "one epoch over %d patches, batch 5, no validation", sizes[i]);
        report(o, key, ms, sizes[i], "patches", paper_gflop(sizes[i], 1), what);
        free_patches(&ps);
    }
    if (!wanted(o, "train_paper") || o->quick) return;
    ld_patchset all, train, val;
    make_patches(&all, 1736, 6);
    static int perm[1736];
    int n_train = ld_split_paper(perm, 1736, 0.1, 1);
    ld_error err = {0};
    if (ld_patchset_select(&train, &all, perm, n_train, &err) ||
        ld_patchset_select(&val, &all, perm + n_train, 1736 - n_train, &err))
        die("split", &err);
    fit_ctx c = {o, &train, &val, 20};
    double ms = time_median(o, run_fit, &c);
    report(o, "train_paper", ms, 1736.0 * 20, "patches",
           20 * (paper_gflop(n_train, 1) + paper_gflop(1736 - n_train, 0)),
           "the paper's training: 1562 + 174 patches, 20 epochs, validation each epoch");
    ld_patchset_free(&train);
    ld_patchset_free(&val);
    free_patches(&all);
}

/* ---- the command line tool in a child process: wall time and peak memory ----------- */

/* Runs argv, returns the wall time in ms and the child's peak RSS in MB; exits on failure. */
static double run_child(char *const argv[], double *peak_mb)
{
    double t0 = now();
    pid_t pid = fork();
    if (pid < 0) die("fork", NULL);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);   /* its results are not the benchmark's */
        if (null >= 0) dup2(null, STDOUT_FILENO);
        execv(argv[0], argv);
        fprintf(stderr, "bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid) die("wait", NULL);
    double ms = (now() - t0) * 1e3;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench: %s", argv[0]);
        for (int i = 1; argv[i]; i++) fprintf(stderr, " %s", argv[i]);
        fprintf(stderr, ": failed (status %d)\n", status);
        exit(1);
    }
    *peak_mb = ru.ru_maxrss / 1024.0;   /* Linux: kilobytes */
    return ms;
}

static int count_images(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        const char *dot = strrchr(e->d_name, '.');
        n += dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
                     strcasecmp(dot, ".png") == 0);
    }
    if (d) closedir(d);
    return n;
}

static void bench_cli(const options *o, ld_model *m)
{
    char images[1024], labels[1024], model[1024], out[1024];
    snprintf(images, sizeof images, "%s/images", o->busi);
    snprintf(labels, sizeof labels, "%s/annotations.json", o->busi);
    snprintf(model, sizeof model, "%s/bench_model.safetensors", o->tmp);
    snprintf(out, sizeof out, "%s/bench_out", o->tmp);
    if (access(o->lymphdet, X_OK) != 0 || access(images, R_OK) != 0) {
        fprintf(stderr, "bench: skipping the command-line runs (%s or %s missing)\n", o->lymphdet, images);
        return;
    }
    ld_error err = {0};
    if (ld_model_save(m, model, &err)) die("save", &err);
    int n_img = count_images(images);
    for (int t = 1; t <= 2; t++) {
        char key[32], threads[8], what[160];
        snprintf(key, sizeof key, "detect_folder_t%d", t);
        if (!wanted(o, key)) continue;
        snprintf(threads, sizeof threads, "%d", t);
        char *argv[] = {(char *)o->lymphdet, "detect", "--model", model, "--out", out,
                        "--threads", threads, "--quiet", images, NULL};
        double peak = 0, best_peak = 0, t_ms[3];
        int reps = o->quick ? 1 : 3;
        for (int r = 0; r < reps; r++) {
            t_ms[r] = run_child(argv, &peak);
            if (peak > best_peak) best_peak = peak;
        }
        qsort(t_ms, (size_t)reps, sizeof *t_ms, by_value);
        snprintf(what, sizeof what, "lymphdet detect --threads %d on %d frames (decode + scan + NMS + JSON); peak %.1f MB",
                 t, n_img, best_peak);
        report(o, key, t_ms[reps / 2], n_img, "frames", 0, what);
        if (t == 1) report(o, "detect_folder_mem", best_peak, 0, "MB", 0, "peak memory (MB, in the ms column) of the run above");
    }
    if (!wanted(o, "train_busi_mem")) return;
    char *argv[] = {(char *)o->lymphdet, "train", "--preset", "paper", "--images", images, "--labels", labels,
                    "--out", out, "--epochs", "1", "--quiet", NULL};
    double peak = 0, ms = run_child(argv, &peak);
    char what[160];
    snprintf(what, sizeof what, "lymphdet train on all of %s, 1 epoch (%.1f s): peak memory (MB, in the ms column)",
             o->busi, ms / 1e3);
    report(o, "train_busi_mem", peak, 0, "MB", 0, what);
    unlink(out);
    char hist[1100];
    snprintf(hist, sizeof hist, "%s.history.csv", out);
    unlink(hist);
    unlink(model);
}

/* ---- main -------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench [options]\n"
            "  --threads N     threads of the model and scanner [1]\n"
            "  --kernels K     auto|avx512|avx2|generic|reference [auto]\n"
            "  --peak G        measured sgemm GFLOP/s, for the %% of peak column [none]\n"
            "  --only LIST     comma list of keys (a trailing * matches a prefix) [all]\n"
            "  --quick         fewer repeats, no full training\n"
            "  --tsv           key, ms, work, unit, GFLOP per line\n"
            "  --busi DIR      BUSI folder for the command-line runs [/work/shared/data/busi]\n"
            "  --detect-model M  detection-preset model for detect469 [models/busi-detect.safetensors]\n"
            "  --frame IMAGE   469 x 469 frame for detect469 [data/busi-demo/images/benign_013.jpg]\n"
            "  --lymphdet PATH the command-line tool [build/lymphdet]\n"
            "  --tmp DIR       scratch folder [/tmp]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    options o = {1, "auto", 0, 0, 0, NULL, "/work/shared/data/busi",
                 "models/busi-detect.safetensors", "data/busi-demo/images/benign_013.jpg",
                 "build/lymphdet", "/tmp"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0) o.quick = 1;
        else if (strcmp(a, "--tsv") == 0) o.tsv = 1;
        else if (v && strcmp(a, "--threads") == 0) o.threads = atoi(argv[++i]);
        else if (v && strcmp(a, "--kernels") == 0) o.kernels = argv[++i];
        else if (v && strcmp(a, "--peak") == 0) o.peak = atof(argv[++i]);
        else if (v && strcmp(a, "--only") == 0) o.only = argv[++i];
        else if (v && strcmp(a, "--busi") == 0) o.busi = argv[++i];
        else if (v && strcmp(a, "--detect-model") == 0) o.detect_model = argv[++i];
        else if (v && strcmp(a, "--frame") == 0) o.frame = argv[++i];
        else if (v && strcmp(a, "--lymphdet") == 0) o.lymphdet = argv[++i];
        else if (v && strcmp(a, "--tmp") == 0) o.tmp = argv[++i];
        else usage();
    }
    if (o.threads < 1) usage();
    ld_model m;
    make_model(&m, 5, &o);
    if (!o.tsv)
        printf("lymphdet bench: kernels %s, %d thread%s%s\n%-18s %13s %18s %8s %6s\n",
               ld_model_kernels(&m), o.threads, o.threads > 1 ? "s" : "", o.quick ? ", quick" : "",
               "work", "median", "rate", "GFLOP/s", "peak");
    /* the command-line runs first: a child's peak memory (ru_maxrss) starts from this
     * process's resident size when it forks, which must still be small then */
    bench_cli(&o, &m);
    bench_scan(&o, &m, 469);
    bench_scan(&o, &m, 938);
    bench_scan(&o, &m, 1876);
    bench_pyramid(&o, &m);
    bench_detect_preset(&o);
    bench_windows(&o);
    bench_step(&o);
    bench_training(&o);
    ld_model_free(&m);
    return 0;
}
