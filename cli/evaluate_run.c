/* evaluate_run.c — the evaluation both `evaluate` and `crossval` run (see
 * evaluate_run.h).
 *
 * The baseline is the trivial detector every IoU must be read against: one box
 * per image, score 1, at the median centre and of the median size of the
 * baseline labels (the training side when it is known). Centre and size are
 * taken relative to each image's width and height, so images of other sizes
 * get the box at the same relative place; on frames of one size (BUSI: all
 * 469 x 469) that is exactly the median box in pixels. Its category is the most
 * frequent one among those labels.
 *
 * Overlays show the best, median and worst evaluated image by the mean
 * per-label IoU of its labelled boxes (images without labels are not ranked). */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "evaluate_run.h"
#include "lymphdet/draw.h"
#include "lymphdet/image.h"
#include "lymphdet/plot.h"
#include "lymphdet/report.h"
#include "lymphdet/train.h"

#define MAX_THREADS 256

/* ---- detection over many images ----------------------------------------------- */

typedef struct {
    const ld_model *model;
    const ld_detect_config *cfg;
    const ld_labels *labels;
    const char *images_dir;
    const int *idx;             /* [n] images to detect on */
    int n;
    ld_dets *dets;              /* [n_images] */
    ld_error *errs;             /* [n], one per job entry */
    atomic_int next, stop;
    pthread_mutex_t lock;
    int done;
    cli_progress *bar;
} detect_job;

static ld_status detect_one(detect_job *jb, ld_detector *det, int j, ld_error *err)
{
    int i = jb->idx[j];
    char path[8192];
    ld_image img = {0};
    ld_status st = ld_label_image_path(path, sizeof path, jb->images_dir,
                                       jb->labels->images[i].file_name, err);
    if (!st) st = ld_image_load(&img, path, 0, err);
    if (!st) {
        st = ld_detector_run(det, img.px, img.w, img.h, img.c, img.w * img.c, &jb->dets[i], err);
        if (st) ld_error_prefix(err, "%s", path);
    }
    ld_image_free(&img);
    return st;
}

static void *detect_worker(void *arg)
{
    detect_job *jb = arg;
    ld_detector det;
    ld_error err = {0};
    if (ld_detector_init(&det, jb->model, jb->cfg, &err)) {
        int j = atomic_fetch_add(&jb->next, 1);
        if (j < jb->n) jb->errs[j] = err;
        atomic_store(&jb->stop, 1);
        return NULL;
    }
    for (;;) {
        if (atomic_load(&jb->stop)) break;
        int j = atomic_fetch_add(&jb->next, 1);
        if (j >= jb->n) break;
        if (detect_one(jb, &det, j, &jb->errs[j])) {
            atomic_store(&jb->stop, 1);
            break;
        }
        pthread_mutex_lock(&jb->lock);
        jb->done++;
        cli_progress_update(jb->bar, jb->done, jb->labels->images[jb->idx[j]].file_name);
        pthread_mutex_unlock(&jb->lock);
    }
    ld_detector_free(&det);
    return NULL;
}

int eval_select(int *idx, const uint8_t *mask, int n_images, int want)
{
    int k = 0;
    for (int i = 0; i < n_images; i++)
        if ((mask ? mask[i] != 0 : 1) == (want != 0)) idx[k++] = i;
    return k;
}

int eval_detect(const char *cmd, ld_dets *dets, const ld_model *m, const ld_detect_config *cfg,
                const ld_labels *labels, const char *images_dir, const uint8_t *mask,
                int threads, int quiet)
{
    int n_img = labels->n_images;
    int *idx = malloc(((size_t)n_img + 1) * sizeof *idx);
    ld_error *errs = calloc((size_t)n_img + 1, sizeof *errs);
    if (!idx || !errs) {
        free(idx);
        free(errs);
        fprintf(stderr, "lymphdet %s: out of memory\n", cmd);
        return 1;
    }
    int n = eval_select(idx, mask, n_img, 1), rc = 0;
    if (threads > n) threads = n;
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    cli_progress bar;
    cli_progress_start(&bar, "detect", n, quiet || n < 2);
    detect_job jb = {.model = m, .cfg = cfg, .labels = labels, .images_dir = images_dir,
                     .idx = idx, .n = n, .dets = dets, .errs = errs, .bar = &bar};
    atomic_init(&jb.next, 0);
    atomic_init(&jb.stop, 0);
    pthread_mutex_init(&jb.lock, NULL);
    pthread_t tid[MAX_THREADS];
    int started = 0;
    for (; started < threads - 1; started++)
        if (pthread_create(&tid[started], NULL, detect_worker, &jb) != 0) break;
    detect_worker(&jb);   /* the main thread works too */
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&jb.lock);
    cli_progress_end(&bar);
    for (int j = 0; j < n && !rc; j++)   /* the first failure in image order */
        if (errs[j].status != LD_OK) rc = cli_fail(cmd, &errs[j]);
    free(idx);
    free(errs);
    return rc;
}

int eval_classify(const char *cmd, ld_patch_metrics *pm, ld_model *m, const ld_patchset *ps)
{
    ld_error err = {0};
    float *p = malloc(((size_t)ps->n + 1) * sizeof *p), *y = malloc(((size_t)ps->n + 1) * sizeof *y);
    int rc = 0;
    if (!p || !y) {
        fprintf(stderr, "lymphdet %s: out of memory\n", cmd);
        rc = 1;
    } else if (ld_patches_predict(m, ps, p, NULL, &err)) {
        rc = cli_fail(cmd, &err);
    } else {
        for (int i = 0; i < ps->n; i++) y[i] = ps->label[i];
        ld_patch_metrics_compute(pm, p, y, ps->n, 0.5f);
    }
    free(p);
    free(y);
    return rc;
}

/* ---- the baseline ---------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return ld_quantile_sorted(v, n, 0.5);
}

typedef struct {
    double cx, cy, w, h;    /* relative to the image: centre and size */
    int category;
    int n_boxes, n_images;  /* what the medians were taken over */
} fixed_box;

/* The median box of the labels of the images with mask[i] (NULL: all); returns
 * 0 when there is no box, -1 when out of memory. */
static int median_box(fixed_box *fb, const ld_labels *labels, const uint8_t *mask)
{
    int n = 0, n_img = 0;
    for (int i = 0; i < labels->n_images; i++)
        if (!mask || mask[i]) {
            n += labels->images[i].n_boxes;
            n_img++;
        }
    memset(fb, 0, sizeof *fb);
    fb->n_images = n_img;
    if (n == 0) return 0;
    double *v = malloc(4 * (size_t)n * sizeof *v);
    int *count = calloc((size_t)labels->n_categories + 1, sizeof *count);
    if (!v || !count) {
        free(v);
        free(count);
        return -1;
    }
    int k = 0;
    for (int i = 0; i < labels->n_images; i++) {
        const ld_label_image *li = &labels->images[i];
        if (mask && !mask[i]) continue;
        for (int b = 0; b < li->n_boxes; b++, k++) {
            const ld_box *x = &li->boxes[b];
            v[k] = (x->x + x->w / 2) / li->width;
            v[n + k] = (x->y + x->h / 2) / li->height;
            v[2 * n + k] = x->w / li->width;
            v[3 * n + k] = x->h / li->height;
            if (x->category >= 0 && x->category < labels->n_categories) count[x->category]++;
        }
    }
    fb->cx = median_of(v, n);
    fb->cy = median_of(v + n, n);
    fb->w = median_of(v + 2 * n, n);
    fb->h = median_of(v + 3 * n, n);
    for (int c = 1; c < labels->n_categories; c++)
        if (count[c] > count[fb->category]) fb->category = c;
    fb->n_boxes = n;
    free(v);
    free(count);
    return 1;
}

/* the fixed box on a w x h image, clipped to it */
static ld_det place_box(const fixed_box *fb, int w, int h)
{
    double x0 = (fb->cx - fb->w / 2) * w, y0 = (fb->cy - fb->h / 2) * h;
    double x1 = (fb->cx + fb->w / 2) * w, y1 = (fb->cy + fb->h / 2) * h;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > w) x1 = w;
    if (y1 > h) y1 = h;
    ld_det d = {x0, y0, x1 > x0 ? x1 - x0 : 0, y1 > y0 ? y1 - y0 : 0, 1.0f, fb->category};
    return d;
}

/* ---- pictures ------------------------------------------------------------------- */

typedef struct {
    ld_report_figure fig[16];
    char path[16][4200];
    char caption[16][600];
    char title[16][160];
    int n;
} figure_list;

/* Saves img as DIR/name and adds it to the report (takes img). */
static ld_status add_figure(figure_list *fl, const char *dir, const char *name, ld_image *img,
                            ld_figure_kind kind, const char *title, const char *caption,
                            ld_error *err)
{
    int k = fl->n;
    snprintf(fl->path[k], sizeof fl->path[k], "%s/%s", dir, name);
    snprintf(fl->title[k], sizeof fl->title[k], "%s", title);
    snprintf(fl->caption[k], sizeof fl->caption[k], "%s", caption);
    ld_status st = ld_image_save_png(img, fl->path[k], err);
    ld_image_free(img);
    if (st) return st;
    fl->fig[k] = (ld_report_figure){fl->path[k], fl->title[k], fl->caption[k], kind};
    fl->n++;
    return LD_OK;
}

typedef struct {
    int image;      /* index into the evaluated subset */
    double iou;     /* mean per-label IoU of its boxes */
} ranked;

static int by_iou(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->iou != y->iou) return x->iou < y->iou ? 1 : -1;   /* best first */
    return x->image - y->image;
}

/* at most this many boxes are drawn on an overlay of the report: the highest-scoring
 * ones (a detector tuned for AP may keep hundreds of low-scoring boxes per frame,
 * which would hide the frame) */
#define OVERLAY_MAX_BOXES 10

/* The best, median and worst images' overlays (distinct images only). */
static ld_status draw_examples(figure_list *fl, const eval_job *job, const ld_labels *sub,
                               const ld_dets *sub_dets, const ld_detection_metrics *det,
                               ld_error *err)
{
    ranked *r = malloc(((size_t)sub->n_images + 1) * sizeof *r);
    if (!r) return ld_fail(err, LD_ERR_NOMEM, "out of memory ranking images");
    int k = 0, off = 0;
    for (int j = 0; j < sub->n_images; j++) {
        int nb = sub->images[j].n_boxes;
        if (nb > 0) {
            double s = 0;
            for (int b = 0; b < nb; b++) s += det->label_iou[off + b];
            r[k++] = (ranked){j, s / nb};
        }
        off += nb;
    }
    qsort(r, (size_t)k, sizeof *r, by_iou);
    static const char *const names[3] = {"best", "median", "worst"};
    int pick[3] = {0, (k - 1) / 2, k - 1}, last = -1;
    ld_status st = LD_OK;
    for (int e = 0; e < 3 && k > 0 && !st; e++) {
        if (pick[e] == last) continue;
        last = pick[e];
        const ranked *x = &r[pick[e]];
        const ld_label_image *li = &sub->images[x->image];
        const ld_dets *d = &sub_dets[x->image];
        char path[8192], file[64], title[160], caption[700], drawn[120] = "";
        ld_image img = {0}, pic = {0};
        ld_dets top = {0};   /* the highest-scoring boxes, by descending score */
        for (int i = 0; !st && i < d->n; i++) st = ld_dets_push(&top, d->d[i], err);
        ld_dets_sort(&top);
        int n_draw = top.n < OVERLAY_MAX_BOXES ? top.n : OVERLAY_MAX_BOXES;
        if (n_draw < d->n)
            snprintf(drawn, sizeof drawn, " (the %d highest-scoring are drawn)", n_draw);
        if (!st) st = ld_label_image_path(path, sizeof path, job->images_dir, li->file_name, err);
        if (!st) st = ld_image_load(&img, path, 0, err);
        if (!st) st = ld_draw_overlay(&pic, &img, li->boxes, li->n_boxes, top.d, n_draw, err);
        ld_image_free(&img);
        ld_dets_free(&top);
        if (st) break;
        snprintf(file, sizeof file, "overlay_%s.png", names[e]);
        snprintf(title, sizeof title, "%s: %s", names[e], li->file_name);
        snprintf(caption, sizeof caption, "Mean per-label IoU %.3f over %d labelled box%s; "
                 "%d detection%s%s. Ranked %d of %d images with labels.", x->iou, li->n_boxes,
                 li->n_boxes == 1 ? "" : "es", d->n, d->n == 1 ? "" : "s", drawn, pick[e] + 1, k);
        st = add_figure(fl, job->out_dir, file, &pic, LD_FIGURE_EXAMPLE, title, caption, err);
    }
    free(r);
    return st;
}

/* Training curves, IoU box plot, confusion matrix and PR curve. */
static ld_status draw_charts(figure_list *fl, const eval_job *job, const ld_detection_metrics *det,
                             const ld_detection_metrics *base, ld_error *err)
{
    ld_image img = {0};
    ld_status st = LD_OK;
    if (job->history_path) {
        ld_epoch_stats *h = NULL;
        int n = 0;
        ld_error herr = {0};
        if (ld_history_load(&h, &n, job->history_path, &herr)) {
            /* the model is still worth evaluating without its curves */
            fprintf(stderr, "lymphdet %s: warning: no training curves: %s\n", job->cmd, herr.msg);
        } else {
            int det_hist = job->detection_history;
            st = ld_plot_history(&img, h, n, det_hist ? "Detection loss (objectness + box)" : NULL,
                                 960, 400, err);
            if (!st)
                st = add_figure(fl, job->out_dir, "training_curves.png", &img, LD_FIGURE_CHART,
                                det_hist ? "Training curve" : "Training curves (the paper's Fig. 8)",
                                det_hist ? "The detection loss per epoch on the training crops: "
                                      "objectness (focal) plus box regression (smooth L1). The "
                                      "epoch kept is the one whose tuning images scored the best "
                                      "AP@0.5 (MODEL.det_history.csv has the terms and the "
                                      "tuning AP)."
                                    : "Loss and accuracy per epoch on the training patches (as "
                                      "the weights changed, dropout on) and the validation "
                                      "patches (at the end of each epoch).", err);
            ld_history_free(h);
        }
    }
    if (!st) {
        ld_plot_series s[2] = {{"detector", det->label_iou, det->iou.n_labels},
                               {"baseline", base ? base->label_iou : NULL,
                                base ? base->iou.n_labels : 0}};
        st = ld_plot_boxplot(&img, s, base ? 2 : 1, "Per-label IoU (the paper's Fig. 9)", "IoU",
                             560, 420, err);
        if (!st)
            st = add_figure(fl, job->out_dir, "iou_boxplot.png", &img, LD_FIGURE_CHART,
                            "Per-label IoU",
                            "Each labelled box's best IoU with any detection of its image (0 "
                            "when none), for the detector and the fixed-box baseline.", err);
    }
    if (!st && job->cls) {
        char caption[600];
        snprintf(caption, sizeof caption, "Patch classification at p > 0.5 of %s.",
                 job->cls_desc ? job->cls_desc : "the patches");
        st = ld_plot_confusion(&img, job->cls->tp, job->cls->fp, job->cls->fn, job->cls->tn,
                               "Patches, p > 0.5 (the paper's Table 2)", 520, 420, err);
        if (!st)
            st = add_figure(fl, job->out_dir, "confusion_matrix.png", &img, LD_FIGURE_CHART,
                            "Confusion matrix", caption, err);
    }
    if (!st) {
        const ld_pr_curve *c[2] = {&det->pr, base ? &base->pr : NULL};
        const char *names[2] = {"detector", "baseline"};
        st = ld_plot_pr(&img, c, names, base ? 2 : 1, 560, 420, err);
        if (!st)
            st = add_figure(fl, job->out_dir, "pr_curve.png", &img, LD_FIGURE_CHART,
                            "Precision-recall at IoU 0.5",
                            "All categories pooled; the detections COCO counts (100 per "
                            "image). AP@0.5 is the mean of the thick line at recall 0, 0.01, "
                            "..., 1.", err);
    }
    return st;
}

/* ---- the summary on stdout ------------------------------------------------------ */

static void print_value(double v, int count)
{
    if (isnan(v)) printf("  %9s", "n/a");
    else if (count) printf("  %9.0f", v);
    else printf("  %9.3f", v);
}

static void print_row(const char *name, double v, const ld_ci *ci, double base, int has_base,
                      int count)
{
    printf("  %-28s", name);
    print_value(v, count);
    if (ci && isfinite(ci->lo)) printf("  [%.3f, %.3f]", ci->lo, ci->hi);
    else printf("  %16s", "");
    if (has_base) print_value(base, count);
    putchar('\n');
}

static void print_summary(const eval_job *job, int n_images, const ld_detection_metrics *d,
                          const ld_detection_metrics *b)
{
    int hb = b != NULL;
    printf("evaluated %d images (%ld labelled boxes, %ld detections)\n", n_images, d->coco.n_gt,
           d->coco.n_det);
    printf("  %-28s  %9s  %-16s%s\n", "metric", "value", "95 % interval", hb ? "   baseline" : "");
#define B(field) (hb ? b->field : NAN)
    print_row("AP@0.5", d->coco.ap50, &d->boot.ap50, B(coco.ap50), hb, 0);
    print_row("AP@[.5:.95]", d->coco.ap, &d->boot.ap, B(coco.ap), hb, 0);
    print_row("AP@0.75", d->coco.ap75, NULL, B(coco.ap75), hb, 0);
    print_row("AR@100", d->coco.ar100, NULL, B(coco.ar100), hb, 0);
    print_row("precision (IoU 0.5)", d->point.precision, NULL, B(point.precision), hb, 0);
    print_row("recall (IoU 0.5)", d->point.recall, NULL, B(point.recall), hb, 0);
    print_row("F1 (IoU 0.5)", d->point.f1, NULL, B(point.f1), hb, 0);
    print_row("per-label IoU: mean", d->iou.mean, &d->boot.mean_iou, B(iou.mean), hb, 0);
    print_row("per-label IoU: median", d->iou.median, NULL, B(iou.median), hb, 0);
    print_row("labels found (IoU > 0)", d->iou.found_fraction, NULL, B(iou.found_fraction), hb, 0);
    print_row("top-1 IoU", d->iou.top1_iou, NULL, B(iou.top1_iou), hb, 0);
    printf("  %-28s  %9.2f  %16s", "detections per image", d->iou.dets_per_image, "");
    if (hb) printf("  %9.2f", b->iou.dets_per_image);
    putchar('\n');
#undef B
    if (job->cls) {
        const ld_patch_metrics *c = job->cls;
        printf("patch classification (%s):\n", job->cls_desc ? job->cls_desc : "patches");
        printf("  accuracy %.4f  paper \"DSC\" %.4f  Dice (F1) %.4f  precision %.4f  recall "
               "%.4f  specificity %.4f\n  TP %ld  FP %ld  FN %ld  TN %ld\n", c->accuracy,
               c->paper_dsc, c->f1, c->precision, c->recall, c->specificity, c->tp, c->fp,
               c->fn, c->tn);
    }
}

/* ---- the run -------------------------------------------------------------------- */

void eval_outcome_free(eval_outcome *res)
{
    ld_detection_metrics_free(&res->det);
    if (res->has_base) ld_detection_metrics_free(&res->base);
    memset(res, 0, sizeof *res);
}

int eval_run(const eval_job *job, eval_outcome *res)
{
    const ld_labels *L = job->labels;
    const char *cmd = job->cmd;
    ld_error err = {0};
    int n_all = L->n_images;
    int *idx = malloc(((size_t)n_all + 1) * sizeof *idx);
    ld_label_image *imgs = malloc(((size_t)n_all + 1) * sizeof *imgs);
    ld_dets *sd = calloc((size_t)n_all + 1, sizeof *sd), *bd = calloc((size_t)n_all + 1, sizeof *bd);
    ld_det *boxes = malloc(((size_t)n_all + 1) * sizeof *boxes);
    figure_list *fl = calloc(1, sizeof *fl);
    if (res) memset(res, 0, sizeof *res);
    int rc = 0, have_det = 0, have_base = 0;
    ld_detection_metrics det, base;
    if (!idx || !imgs || !sd || !bd || !boxes || !fl) {
        fprintf(stderr, "lymphdet %s: out of memory\n", cmd);
        rc = 1;
        goto done;
    }
    /* a view of the evaluated images: shallow copies, freed as arrays only */
    int n = eval_select(idx, job->eval_mask, n_all, 1);
    for (int j = 0; j < n; j++) {
        imgs[j] = L->images[idx[j]];
        sd[j] = job->dets[idx[j]];
    }
    ld_labels sub = {0};
    sub.images = imgs;
    sub.n_images = n;
    sub.categories = L->categories;
    sub.n_categories = L->n_categories;
    sub.format = L->format;

    if (ld_detection_metrics_compute(&det, &sub, sd, &job->cfg, &err)) {
        rc = cli_fail(cmd, &err);
        goto done;
    }
    have_det = 1;

    fixed_box fb;
    int got = median_box(&fb, L, job->train_mask);
    char base_desc[600] = "";
    if (got < 0) {
        fprintf(stderr, "lymphdet %s: out of memory\n", cmd);
        rc = 1;
        goto done;
    }
    if (got > 0) {
        for (int j = 0; j < n; j++) {
            boxes[j] = place_box(&fb, imgs[j].width, imgs[j].height);
            bd[j] = (ld_dets){&boxes[j], 1, 1};
        }
        if (ld_detection_metrics_compute(&base, &sub, bd, &job->cfg, &err)) {
            rc = cli_fail(cmd, &err);
            goto done;
        }
        have_base = 1;
        snprintf(base_desc, sizeof base_desc,
                 "one box per image, score 1: the median centre (%.3f, %.3f) and median size "
                 "%.3f x %.3f, as fractions of the image's width and height, of the %d "
                 "labelled boxes of %s (%d images)", fb.cx, fb.cy, fb.w, fb.h, fb.n_boxes,
                 job->baseline_source ? job->baseline_source : "the labels", fb.n_images);
    } else {
        fprintf(stderr, "lymphdet %s: warning: no baseline: %s hold no labelled box\n", cmd,
                job->baseline_source ? job->baseline_source : "the labels");
    }

    if ((rc = cli_make_dir(cmd, job->out_dir))) goto done;
    if (job->results_path) {
        const char **names = malloc(((size_t)n + 1) * sizeof *names);
        int64_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
        ld_status st = LD_ERR_NOMEM;
        if (names && ids) {
            for (int j = 0; j < n; j++) {
                names[j] = imgs[j].file_name;
                ids[j] = imgs[j].id;
            }
            st = ld_results_save(job->results_path, sd, names, ids, n, &err);
        } else {
            ld_fail(&err, LD_ERR_NOMEM, "out of memory");
        }
        free(names);
        free(ids);
        if (st) {
            rc = cli_fail(cmd, &err);
            goto done;
        }
    }
    if (draw_charts(fl, job, &det, have_base ? &base : NULL, &err) ||
        (job->images_dir && draw_examples(fl, job, &sub, sd, &det, &err))) {
        rc = cli_fail(cmd, &err);
        goto done;
    }

    ld_report r = {0};
    r.n_images = n;
    r.cfg = &job->cfg;
    r.info_keys = job->info_keys;
    r.info_values = job->info_values;
    r.n_info = job->n_info;
    r.detection = &det;
    r.baseline = have_base ? &base : NULL;
    r.baseline_desc = base_desc;
    r.classification = job->cls;
    r.classification_desc = job->cls_desc;
    r.figures = fl->fig;
    r.n_figures = fl->n;
    char mpath[4200], hpath[4200];
    snprintf(mpath, sizeof mpath, "%s/metrics.json", job->out_dir);
    snprintf(hpath, sizeof hpath, "%s/report.html", job->out_dir);
    if (ld_metrics_json_write(mpath, &r, &err) || ld_report_html_write(hpath, &r, &err)) {
        rc = cli_fail(cmd, &err);
        goto done;
    }
    if (!job->no_summary) {
        print_summary(job, n, &det, have_base ? &base : NULL);
        if (have_base) printf("baseline: %s\n", base_desc);
        printf("wrote %s and %s\n", mpath, hpath);
        fflush(stdout);
    }
    if (res) {
        res->det = det;
        res->has_base = have_base;
        if (have_base) res->base = base;
        res->n_images = n;
        have_det = have_base = 0;   /* now owned by res */
    }
done:
    if (have_det) ld_detection_metrics_free(&det);
    if (have_base) ld_detection_metrics_free(&base);
    free(idx);
    free(imgs);
    free(sd);
    free(bd);
    free(boxes);
    free(fl);
    return rc;
}
