/* cmd_train_detect.c — `lymphdet train [--preset detect]`: the detection preset,
 * the default, trained densely on whole frames (include/lymphdet/dettrain.h).
 *
 * Three disjoint sets of images, all split by group (near_dup_group, patient,
 * ddti_case where present) before anything is cut:
 *   held-out  --val-fraction of the images, exactly as `train --preset paper` and
 *             `evaluate` split them (ld_split_images with --group-by and --seed);
 *             never trained or tuned on, only scored once at the end;
 *   tuning    --tune-fraction of the remaining images: picks the best epoch and
 *             the detector settings (pyramid, NMS IoU, threshold), which go into
 *             the model file for `detect` and `evaluate`;
 *   training  the rest.
 * Crash safety as `train --preset paper` has it: --checkpoint FILE is rewritten
 * atomically after every epoch (checkpoint.h: weights, Adam state, random stream,
 * order, best epoch so far, history, the settings and a fingerprint of the frames),
 * and --resume FILE continues it to the same model, byte for byte.
 * stdout: the split, one line per epoch, the tuning result, the held-out metrics
 * with bootstrap intervals beside the trivial baseline. Writes MODEL,
 * MODEL.history.csv (the columns `train` always writes: train_loss is the
 * detection loss; accuracies and validation loss do not apply and are nan) and
 * MODEL.det_history.csv (loss terms, positives per crop, tuning AP per epoch). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "train_detect.h"
#include "lymphdet/checkpoint.h"
#include "lymphdet/dettrain.h"
#include "lymphdet/metrics.h"
#include "lymphdet/model.h"
#include "lymphdet/outfile.h"
#include "lymphdet/patches.h"

static const char *const cmd = "train";

int train_wants_detect(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--preset=paper") == 0) return 0;
        if (strcmp(argv[i], "--preset") == 0 && i + 1 < argc) return strcmp(argv[i + 1], "paper") != 0;
    }
    return 1;   /* the detection preset is the default */
}

typedef struct {
    cli_progress bar;
    int epochs;
    const char *checkpoint;     /* rewritten after every epoch, or NULL */
    const char *settings;       /* what the run was asked to do (settings_string) */
    uint64_t fingerprint;       /* of its training and tuning frames */
    const ld_model *m;
} progress_state;

static void on_step(void *user, int epoch, int step, int n_steps, double loss)
{
    progress_state *p = user;
    if (!p->bar.enabled || (step % 8 && step != n_steps)) return;
    char label[32], suffix[48];
    snprintf(label, sizeof label, "epoch %d/%d", epoch, p->epochs);
    snprintf(suffix, sizeof suffix, "loss %.4f", loss);
    p->bar.label = label;
    p->bar.total = n_steps;
    cli_progress_update(&p->bar, step, suffix);
}

static void on_epoch(void *user, const ld_det_epoch *e)
{
    progress_state *p = user;
    cli_progress_end(&p->bar);
    printf("epoch %3d/%d  loss %.4f (objectness %.4f, box %.4f)  positives/crop %.2f",
           e->epoch, p->epochs, e->loss, e->obj_loss, e->box_loss, e->pos_per_crop);
    if (!isnan(e->val_ap50)) printf("  tuning AP50 %.4f AP %.4f", e->val_ap50, e->val_ap);
    printf("  %.1f s\n", e->seconds);
    fflush(stdout);
}

static ld_status on_state(void *user, const ld_dettrain_state *st, const ld_det_epoch *history,
                          ld_error *err)
{
    progress_state *p = user;
    if (!p->checkpoint) return LD_OK;
    return ld_detcheckpoint_save(p->checkpoint, p->m, p->epochs, p->settings, p->fingerprint, st,
                                 history, err);
}

static void on_candidate(void *user, const ld_detect_config *c, double ap50, double ap,
                         double dpi)
{
    int *verbose = user;
    if (!*verbose) return;
    printf("  tune: scales %d from %.3g (x%.3g)  nms %.2f  threshold %.2f  ->  AP50 %.4f  "
           "AP %.4f  %.2f dets/image\n", c->n_scales, c->scales[0],
           c->n_scales > 1 ? c->scales[1] / c->scales[0] : 1.0, c->nms_iou, c->threshold, ap50,
           ap, dpi);
}

/* Indices i with flag[i] == want into out; returns how many. */
static int pick(int *out, const uint8_t *flag, int n, int want)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (flag[i] == want) out[k++] = i;
    return k;
}

/* A labels object viewing images idx[0..n) of src (shallow: never ld_labels_free it,
 * free only view->images). */
static int labels_view(ld_labels *view, const ld_labels *src, const int *idx, int n)
{
    memset(view, 0, sizeof *view);
    view->images = calloc((size_t)(n ? n : 1), sizeof *view->images);
    if (!view->images) return 1;
    for (int i = 0; i < n; i++) view->images[i] = src->images[idx[i]];
    view->n_images = n;
    view->categories = src->categories;
    view->n_categories = src->n_categories;
    view->format = src->format;
    return 0;
}

/* The view used for scoring frames fs: its boxes, all of category 0. */
static int frames_view(ld_labels *view, const ld_labels *src, const ld_frameset *fs)
{
    if (labels_view(view, src, fs->label_index, fs->n)) return 1;
    for (int i = 0; i < fs->n; i++) {
        view->images[i].boxes = fs->boxes[i];
        view->images[i].n_boxes = fs->n_boxes[i];
    }
    view->n_categories = 1;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The trivial baseline: one box of the median training size at the median training
 * centre in every image, score 1. dets[n] receive it (one each). */
static int baseline(ld_dets *dets, int n, const ld_frameset *train)
{
    int nb = 0;
    for (int i = 0; i < train->n; i++) nb += train->n_boxes[i];
    if (nb == 0) return 0;
    double *v = malloc((size_t)nb * 4 * sizeof *v);
    if (!v) return 1;
    int k = 0;
    for (int i = 0; i < train->n; i++)
        for (int j = 0; j < train->n_boxes[i]; j++, k++) {
            const ld_box *b = &train->boxes[i][j];
            v[k] = b->x + b->w / 2;
            v[nb + k] = b->y + b->h / 2;
            v[2 * nb + k] = b->w;
            v[3 * nb + k] = b->h;
        }
    double med[4];
    for (int q = 0; q < 4; q++) {
        qsort(v + (size_t)q * nb, (size_t)nb, sizeof *v, cmp_double);
        med[q] = ld_quantile_sorted(v + (size_t)q * nb, nb, 0.5);
    }
    free(v);
    ld_error err;
    for (int i = 0; i < n; i++) {
        ld_det d = {med[0] - med[2] / 2, med[1] - med[3] / 2, med[2], med[3], 1.0f, 0};
        if (ld_dets_push(&dets[i], d, &err)) return 1;
    }
    return 0;
}

static void print_metrics(const char *title, const ld_detection_metrics *dm)
{
    printf("%s\n  AP@0.5 %.4f [%.4f, %.4f]  AP@[.5:.95] %.4f [%.4f, %.4f]  AR100 %.4f\n"
           "  detections/image %.2f  top-1 IoU %.4f  per-label IoU mean %.4f (median %.4f, "
           "found %.3f)\n",
           title, dm->coco.ap50, dm->boot.ap50.lo, dm->boot.ap50.hi, dm->coco.ap, dm->boot.ap.lo,
           dm->boot.ap.hi, dm->coco.ar100, dm->iou.dets_per_image, dm->iou.top1_iou, dm->iou.mean,
           dm->iou.median, dm->iou.found_fraction);
}

/* MODEL, MODEL.history.csv (the columns `train` always writes: the loss is the
 * detection loss, accuracies do not apply) and MODEL.det_history.csv are one result:
 * the model goes to a side file, the histories are finished under their temporary
 * names, and only when all three are complete are they renamed into place, so a
 * failure (a full disk) leaves the old three as they were. Returns an exit code. */
static int save_results(ld_model *m, const char *model_path, const ld_det_epoch *h, int n)
{
    char hist[4200], det_hist[4200], side[4200];
    ld_outfile a = {0}, b = {0};
    ld_error err = {0};
    snprintf(hist, sizeof hist, "%s.history.csv", model_path);
    snprintf(det_hist, sizeof det_hist, "%s.det_history.csv", model_path);
    snprintf(side, sizeof side, "%s.tmp.model-%ld", model_path, (long)getpid());
    ld_status st = ld_model_save(m, side, &err);
    if (!st) st = ld_out_open(&a, hist, &err);
    if (!st) {
        fprintf(a.fp, "epoch,train_loss,train_acc,val_loss,val_acc,seconds\n");
        for (int i = 0; i < n; i++)
            fprintf(a.fp, "%d,%.6f,nan,nan,nan,%.3f\n", h[i].epoch, h[i].loss, h[i].seconds);
        st = ld_out_finish(&a, &err);
    }
    if (!st) st = ld_out_open(&b, det_hist, &err);
    if (!st) {
        fprintf(b.fp, "epoch,loss,objectness_loss,box_loss,positives_per_crop,tune_ap50,tune_ap,"
                      "seconds\n");
        for (int i = 0; i < n; i++)
            fprintf(b.fp, "%d,%.6f,%.6f,%.6f,%.4f,%.6f,%.6f,%.3f\n", h[i].epoch, h[i].loss,
                    h[i].obj_loss, h[i].box_loss, h[i].pos_per_crop, h[i].val_ap50, h[i].val_ap,
                    h[i].seconds);
        st = ld_out_finish(&b, &err);
    }
    if (!st) st = ld_out_publish(&a, &err);
    if (!st) st = ld_out_publish(&b, &err);
    if (!st && rename(side, model_path) != 0)
        st = ld_fail(&err, LD_ERR_IO, "%s: cannot rename the new model into place: %s",
                     model_path, strerror(errno));
    if (st) {
        ld_out_abort(&a);
        ld_out_abort(&b);
        unlink(side);
        return cli_fail(cmd, &err);
    }
    return 0;
}

/* "4,8,16,16" -> arch filters */
static int parse_filters(ld_arch *a, const char *s)
{
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1024 || n == LD_MAX_BLOCKS || (*end && *end != ',')) return 1;
        a->filters[n++] = (int)v;
        s = *end ? end + 1 : end;
    }
    a->n_blocks = n;
    return n == 0;
}

typedef struct {
    const char *images, *labels, *out, *label_format, *group_by, *loss, *filters;
    const char *checkpoint, *resume;
    int voc_one_based, seed, max_pixels, quiet, window, anchor, eval_every, bootstrap, no_aug,
        flip_v;
    double val_fraction, tune_fraction, dropout;
} options;

/* Everything a checkpoint must agree with to be continued: every option that changes
 * what training does (the frames themselves are checked by their fingerprint). */
static void settings_string(char *buf, size_t size, const options *o, const ld_arch *a,
                            const ld_dettrain_config *c)
{
    const ld_augment_config *g = &c->aug;
    snprintf(buf, size, "window %d; anchor %d; filters %s; dropout %g; epochs %d; batch %d; "
             "crop %d; lr %g; lr-final %g; loss %s; focal-alpha %g; focal-gamma %g; "
             "ohem-ratio %d; box-weight %g; beta %g; pos-iou %g; neg-iou %g; size-range %g; "
             "p-center %g; flip-h %d; flip-v %d; aug-gamma %g; aug-contrast %g; "
             "aug-brightness %g; aug-blur %g; aug-speckle %g; aug-scale-jitter %g; "
             "eval-every %d; seed %d; val-fraction %g; tune-fraction %g; group-by %s",
             a->input_size, a->anchor, o->filters, (double)a->dropout, c->epochs, c->batch,
             c->crop, (double)c->adam.lr, (double)c->lr_final, o->loss, (double)c->focal_alpha,
             (double)c->focal_gamma, c->ohem_ratio, (double)c->box_weight,
             (double)c->smooth_l1_beta, c->assign.pos_iou, c->assign.neg_iou,
             (double)c->size_range, (double)c->p_center, g->flip_h, g->flip_v, (double)g->gamma,
             (double)g->contrast, (double)g->brightness, (double)g->blur, (double)g->speckle,
             (double)g->scale_jitter, o->eval_every, o->seed, o->val_fraction, o->tune_fraction,
             o->group_by);
}

int cmd_train_detect(int argc, char **argv)
{
    options o = {0};
    o.label_format = "auto";
    o.group_by = "auto";
    o.loss = "focal";
    o.filters = "4,8,16,16";
    o.seed = 1;
    ld_arch defaults;
    ld_arch_detect(&defaults);
    o.window = defaults.input_size;
    o.anchor = defaults.anchor;
    o.eval_every = 5;
    o.bootstrap = 1000;
    o.val_fraction = 0.1;
    o.tune_fraction = 0.15;
    const char *preset = "detect";
    ld_dettrain_config tc;
    ld_dettrain_config_default(&tc);
    double lr = tc.adam.lr, lr_final = tc.lr_final, alpha = tc.focal_alpha, gamma = tc.focal_gamma,
           box_weight = tc.box_weight, beta = tc.smooth_l1_beta, size_range = tc.size_range,
           p_center = tc.p_center, aug_gamma = tc.aug.gamma, aug_contrast = tc.aug.contrast,
           aug_brightness = tc.aug.brightness, aug_blur = tc.aug.blur,
           aug_speckle = tc.aug.speckle, aug_jitter = tc.aug.scale_jitter;
    cli_opt opts[] = {
        {"images", OPT_STRING, &o.images, "DIR", "folder of the images", 1},
        {"labels", OPT_STRING, &o.labels, "FILE", "COCO JSON file, VOC or YOLO folder", 1},
        {"out", OPT_STRING, &o.out, "MODEL", "model file to write (safetensors)", 1},
        {"preset", OPT_STRING, &preset, "P", "detect (this page) or paper (see train --preset paper --help)", 0},
        {"label-format", OPT_STRING, &o.label_format, "F", "auto|coco|voc|yolo", 0},
        {"voc-one-based", OPT_FLAG, &o.voc_one_based, NULL, "VOC boxes are 1-based inclusive", 0},
        {"group-by", OPT_STRING, &o.group_by, "FIELDS",
         "per-image fields whose shared values keep images together; auto: "
         "near_dup_group,patient,ddti_case where present", 0},
        {"val-fraction", OPT_DOUBLE, &o.val_fraction, "F",
         "images held out (never trained or tuned on), scored at the end", 0},
        {"tune-fraction", OPT_DOUBLE, &o.tune_fraction, "F",
         "of the other images: for choosing the epoch and the detector settings", 0},
        {"seed", OPT_INT, &o.seed, "N", "seed of every random choice", 0},
        {"max-pixels", OPT_INT, &o.max_pixels, "N", "refuse images with more pixels; 0: 64 Mi", 0},
        {"window", OPT_INT, &o.window, "PX", "window side (the network's input size)", 0},
        {"anchor", OPT_INT, &o.anchor, "PX", "side of the box a window judges, centred in it "
         "(0: the window)", 0},
        {"filters", OPT_STRING, &o.filters, "LIST", "filters of each conv block", 0},
        {"dropout", OPT_DOUBLE, &o.dropout, "X", "dropout rate after each block", 0},
        {"epochs", OPT_INT, &tc.epochs, "N", "passes over the training images", 0},
        {"batch", OPT_INT, &tc.batch, "N", "crops per step", 0},
        {"crop", OPT_INT, &tc.crop, "PX", "crop side: window + a multiple of the stride", 0},
        {"lr", OPT_DOUBLE, &lr, "X", "Adam learning rate", 0},
        {"lr-final", OPT_DOUBLE, &lr_final, "X", "cosine decay to X times the rate (1: constant)", 0},
        {"loss", OPT_STRING, &o.loss, "L", "objectness loss: focal | ohem (3:1 mined BCE)", 0},
        {"focal-alpha", OPT_DOUBLE, &alpha, "X", "focal weight of positives (< 0: none)", 0},
        {"focal-gamma", OPT_DOUBLE, &gamma, "X", "focal exponent (0: cross-entropy)", 0},
        {"ohem-ratio", OPT_INT, &tc.ohem_ratio, "N", "mined negatives per positive", 0},
        {"box-weight", OPT_DOUBLE, &box_weight, "X", "weight of the box loss", 0},
        {"beta", OPT_DOUBLE, &beta, "X", "smooth-L1 beta of the box loss", 0},
        {"pos-iou", OPT_DOUBLE, &tc.assign.pos_iou, "X", "positive window: IoU >= X", 0},
        {"neg-iou", OPT_DOUBLE, &tc.assign.neg_iou, "X", "negative window: max IoU < X", 0},
        {"size-range", OPT_DOUBLE, &size_range, "X", "lesion/window ratio 2^U(-X, X)", 0},
        {"p-center", OPT_DOUBLE, &p_center, "X", "probability that a crop holds its lesion", 0},
        {"no-augment", OPT_FLAG, &o.no_aug, NULL, "no photometric augmentation, no flips", 0},
        {"flip-v", OPT_FLAG, &o.flip_v, NULL, "also mirror top-bottom", 0},
        {"aug-gamma", OPT_DOUBLE, &aug_gamma, "X", "max |log gamma|", 0},
        {"aug-contrast", OPT_DOUBLE, &aug_contrast, "X", "max relative contrast change", 0},
        {"aug-brightness", OPT_DOUBLE, &aug_brightness, "X", "max brightness shift", 0},
        {"aug-blur", OPT_DOUBLE, &aug_blur, "PX", "max Gaussian blur sigma", 0},
        {"aug-speckle", OPT_DOUBLE, &aug_speckle, "X", "max speckle noise std", 0},
        {"aug-scale-jitter", OPT_DOUBLE, &aug_jitter, "X", "max |log2| per-axis scale jitter", 0},
        {"eval-every", OPT_INT, &o.eval_every, "N", "score the tuning images every N epochs", 0},
        {"bootstrap", OPT_INT, &o.bootstrap, "N", "bootstrap resamples for the held-out CIs", 0},
        {"quiet", OPT_FLAG, &o.quiet, NULL, "no progress bar, no tuning table", 0},
        {"checkpoint", OPT_STRING, &o.checkpoint, "FILE",
         "after every epoch, save what --resume needs to FILE (atomically)", 0},
        {"resume", OPT_STRING, &o.resume, "FILE",
         "continue the run checkpointed in FILE (same data and options; checkpoints then go "
         "on to FILE unless --checkpoint says otherwise)", 0},
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int rc = cli_parse(cmd, "--images DIR --labels FILE --out MODEL [--preset detect] [options]",
                       "Trains the detection preset: the network runs fully-convolutionally over\n"
                       "multi-scale crops of whole frames; every window is a sample, positive\n"
                       "when it matches a labelled box (IoU), negative when it matches none, and\n"
                       "a second head regresses the box. Held-out images are scored at the end.",
                       opts, n_opts, argc, argv, NULL, 0, NULL);
    if (rc >= 0) return rc;
    if (strcmp(preset, "detect") != 0)
        return cli_usage_error(cmd, "--preset must be detect or paper, not '%s'", preset);
    if (!(o.val_fraction >= 0 && o.val_fraction < 1) ||
        !(o.tune_fraction > 0 && o.tune_fraction < 1))
        return cli_usage_error(cmd, "--val-fraction must be in [0, 1) and --tune-fraction in (0, 1)");
    if (strcmp(o.loss, "focal") == 0) tc.obj_loss = LD_OBJ_FOCAL;
    else if (strcmp(o.loss, "ohem") == 0) tc.obj_loss = LD_OBJ_OHEM;
    else return cli_usage_error(cmd, "--loss must be focal or ohem, not '%s'", o.loss);
    if (o.bootstrap < 0 || o.bootstrap > 100000 || o.eval_every < 1)
        return cli_usage_error(cmd, "--bootstrap must be in 0..100000 and --eval-every >= 1");
    ld_arch arch;
    ld_arch_detect(&arch);
    arch.input_size = o.window;
    arch.anchor = o.anchor;
    arch.dropout = (float)o.dropout;
    if (parse_filters(&arch, o.filters))
        return cli_usage_error(cmd, "--filters must be 1 to %d counts like 4,8,16,16", LD_MAX_BLOCKS);
    ld_error err = {0};
    if (ld_arch_validate(&arch, &err)) return cli_usage_error(cmd, "%s", err.msg);
    tc.adam.lr = (float)lr;
    tc.lr_final = (float)lr_final;
    tc.focal_alpha = (float)alpha;
    tc.focal_gamma = (float)gamma;
    tc.box_weight = (float)box_weight;
    tc.smooth_l1_beta = (float)beta;
    tc.size_range = (float)size_range;
    tc.p_center = (float)p_center;
    tc.aug.gamma = (float)aug_gamma;
    tc.aug.contrast = (float)aug_contrast;
    tc.aug.brightness = (float)aug_brightness;
    tc.aug.blur = (float)aug_blur;
    tc.aug.speckle = (float)aug_speckle;
    tc.aug.scale_jitter = (float)aug_jitter;
    tc.aug.flip_v = o.flip_v;
    if (o.no_aug) {
        float jitter = tc.aug.scale_jitter;
        ld_augment_config_none(&tc.aug);
        tc.aug.scale_jitter = jitter;
    }
    if (ld_dettrain_config_check(&tc, &arch, &err)) return cli_usage_error(cmd, "%s", err.msg);

    ld_label_options lo;
    ld_label_options_default(&lo);
    static const char *const formats[] = {"auto", "coco", "voc", "yolo"};
    int fi = 0;
    while (fi < 4 && strcmp(o.label_format, formats[fi]) != 0) fi++;
    if (fi == 4) return cli_usage_error(cmd, "--label-format must be auto, coco, voc or yolo");
    lo.format = (ld_label_format)fi;
    lo.voc_one_based = o.voc_one_based;
    lo.images_dir = o.images;

    /* one stream per purpose, all from --seed; the held-out split uses --seed itself,
     * as `train --preset paper` and `evaluate` do */
    ld_rng seeds;
    ld_rng_seed(&seeds, (uint64_t)o.seed);
    uint64_t init_seed = ld_rng_u64(&seeds);
    tc.seed = ld_rng_u64(&seeds);
    uint64_t tune_split_seed = ld_rng_u64(&seeds);

    ld_labels labels = {0}, tr_view = {0}, test_view = {0};
    ld_frameset train_fs = {0}, tune_fs = {0}, test_fs = {0};
    uint8_t *is_val = NULL, *is_tune = NULL;
    int *idx = NULL, *tr_idx = NULL, *sub = NULL;
    ld_det_epoch *hist = NULL;
    ld_dets *dets = NULL, *base = NULL;
    ld_model m = {0};
    ld_detcheckpoint ck = {0};
    ld_detection_metrics dm = {0}, bm = {0};
    int have_model = 0, n_test = 0, n_tr = 0;
    char fields[256] = "";
    rc = 0;
    if (ld_labels_load(&labels, o.labels, &lo, &err)) return cli_fail(cmd, &err);
    for (int i = 0; i < labels.n_warnings; i++)
        fprintf(stderr, "lymphdet %s: warning: %s\n", cmd, labels.warnings[i]);
    int n = labels.n_images, n_groups = 0;
    is_val = calloc((size_t)n + 1, 1);
    is_tune = calloc((size_t)n + 1, 1);
    idx = calloc((size_t)n + 1, sizeof *idx);
    tr_idx = calloc((size_t)n + 1, sizeof *tr_idx);
    sub = calloc((size_t)n + 1, sizeof *sub);
    hist = calloc((size_t)tc.epochs, sizeof *hist);
    if (!is_val || !is_tune || !idx || !tr_idx || !sub || !hist) {
        fprintf(stderr, "lymphdet %s: out of memory\n", cmd);
        rc = 1;
        goto done;
    }
    if (ld_split_images(is_val, NULL, &labels, o.group_by, o.val_fraction, (uint64_t)o.seed,
                        &n_groups, fields, sizeof fields, &err)) {
        rc = cli_fail(cmd, &err);
        goto done;
    }
    n_tr = pick(tr_idx, is_val, n, 0);
    n_test = pick(idx, is_val, n, 1);
    if (labels_view(&tr_view, &labels, tr_idx, n_tr) ||
        ld_split_images(is_tune, NULL, &tr_view, o.group_by, o.tune_fraction, tune_split_seed,
                        NULL, NULL, 0, &err)) {
        rc = err.msg[0] ? cli_fail(cmd, &err) : 1;
        goto done;
    }
    int n_tune = pick(sub, is_tune, n_tr, 1);
    printf("images: %d (%d groups by %s): %d held out, %d for tuning, %d for training\n", n,
           n_groups, fields[0] ? fields : "image", n_test, n_tune, n_tr - n_tune);
    fflush(stdout);
    {
        /* frames: training and tuning are subsets of tr_idx, held-out of idx */
        int k = pick(sub, is_tune, n_tr, 0);
        for (int i = 0; i < k; i++) sub[i] = tr_idx[sub[i]];
        if (ld_frameset_load(&train_fs, &labels, o.images, sub, k, o.max_pixels, &err)) {
            rc = cli_fail(cmd, &err);
            goto done;
        }
        k = pick(sub, is_tune, n_tr, 1);
        for (int i = 0; i < k; i++) sub[i] = tr_idx[sub[i]];
        if (ld_frameset_load(&tune_fs, &labels, o.images, sub, k, o.max_pixels, &err) ||
            ld_frameset_load(&test_fs, &labels, o.images, idx, n_test, o.max_pixels, &err)) {
            rc = cli_fail(cmd, &err);
            goto done;
        }
    }
    if (ld_model_init(&m, &arch, 1, &err)) {
        rc = cli_fail(cmd, &err);
        goto done;
    }
    have_model = 1;
    ld_model_init_weights(&m, init_seed);
    char settings[2048];
    settings_string(settings, sizeof settings, &o, &arch, &tc);
    uint64_t fingerprint = o.checkpoint || o.resume ? ld_frames_fingerprint(&train_fs, &tune_fs) : 0;
    if (o.resume) {
        if (ld_detcheckpoint_load(&ck, &m, o.resume, &err) ||
            ld_detcheckpoint_check(&ck, tc.epochs, settings, fingerprint, o.resume, &err)) {
            rc = cli_fail(cmd, &err);
            goto done;
        }
        memcpy(hist, ck.history, (size_t)ck.state.epochs_done * sizeof *hist);
        printf("resuming from %s: %d of %d epochs done\n", o.resume, ck.state.epochs_done,
               tc.epochs);
        fflush(stdout);
    }

    /* epochs are compared on a plain pyramid (factor 1 down by sqrt 2, NMS 0.5, every
     * window above 0.05); the settings themselves are tuned afterwards */
    ld_detect_config sel;
    ld_detect_config_default(&sel);
    sel.merge = LD_MERGE_NMS;
    sel.stride = 1 << arch.n_blocks;
    sel.threshold = 0.05;
    sel.nms_iou = 0.5;
    sel.n_scales = 0;
    for (double s = 1.0; sel.n_scales < 8 && s * 469 >= arch.input_size; s /= sqrt(2.0))
        sel.scales[sel.n_scales++] = s;
    ld_dettrain_eval ev = {&tune_fs, &sel, o.eval_every};
    progress_state ps = {{0}, tc.epochs, o.checkpoint ? o.checkpoint : o.resume, settings,
                         fingerprint, &m};
    cli_progress_start(&ps.bar, "", 0, o.quiet);
    ld_dettrain_hooks hooks = {on_step, on_epoch, on_state, &ps};
    int best_epoch = tc.epochs;
    if (ld_dettrain_resume(&m, &train_fs, &tc, tune_fs.n ? &ev : NULL, &hooks, hist,
                           o.resume ? &ck.state : NULL, &best_epoch, &err)) {
        rc = cli_fail(cmd, &err);
        goto done;
    }
    printf("kept the weights of epoch %d\n", best_epoch);

    ld_detect_config dc = sel;
    double tune_ap50 = NAN, tune_ap = NAN;
    if (tune_fs.n > 0) {
        static const double max_scales[] = {1.0, 1.41421356, 2.0};
        int verbose = !o.quiet;
        if (ld_det_tune(&dc, &tune_ap50, &tune_ap, &m, &tune_fs, max_scales, 3, on_candidate,
                        &verbose, &err)) {
            rc = cli_fail(cmd, &err);
            goto done;
        }
    }
    printf("detector settings (tuned): %d scales", dc.n_scales);
    for (int k = 0; k < dc.n_scales; k++) printf("%s%.4g", k ? "," : " ", dc.scales[k]);
    printf("  stride %d  threshold %.2f  nms %.2f  (tuning AP50 %.4f AP %.4f)\n", dc.stride,
           dc.threshold, dc.nms_iou, tune_ap50, tune_ap);
    if (ld_detect_config_to_model(&m, &dc, &err)) {
        rc = cli_fail(cmd, &err);
        goto done;
    }

    ld_status st = cli_meta_set(&m, "protocol", &err, "image");
    if (!st) st = cli_meta_set(&m, "group_by", &err, "%s", fields[0] ? fields : "(each image)");
    if (!st) st = cli_meta_set(&m, "val_fraction", &err, "%g", o.val_fraction);
    if (!st) st = cli_meta_set(&m, "tune_fraction", &err, "%g", o.tune_fraction);
    if (!st) st = cli_meta_set(&m, "seed", &err, "%d", o.seed);
    if (!st) st = cli_meta_set(&m, "images_train", &err, "%d", train_fs.n);
    if (!st) st = cli_meta_set(&m, "images_tune", &err, "%d", tune_fs.n);
    if (!st) st = cli_meta_set(&m, "images_val", &err, "%d", test_fs.n);
    if (!st) st = cli_meta_set(&m, "epochs", &err, "%d (weights of epoch %d kept)", tc.epochs, best_epoch);
    if (!st) st = cli_meta_set(&m, "batch", &err, "%d crops of %d px", tc.batch, tc.crop);
    if (!st) st = cli_meta_set(&m, "optimizer", &err, "adam (keras) lr %g cosine to %g x, beta1 %g "
                               "beta2 %g eps %g", tc.adam.lr, tc.lr_final, tc.adam.beta1, tc.adam.beta2,
                               tc.adam.eps);
    if (!st && tc.obj_loss == LD_OBJ_FOCAL)
        st = cli_meta_set(&m, "loss", &err, "focal alpha %g gamma %g + %g x smooth-L1 beta %g",
                          tc.focal_alpha, tc.focal_gamma, tc.box_weight, tc.smooth_l1_beta);
    else if (!st)
        st = cli_meta_set(&m, "loss", &err, "cross-entropy, hard negatives %d:1 + %g x smooth-L1 beta %g",
                          tc.ohem_ratio, tc.box_weight, tc.smooth_l1_beta);
    if (!st) st = cli_meta_set(&m, "assign", &err, "pos IoU >= %g, neg max IoU < %g, best window >= %g",
                               tc.assign.pos_iou, tc.assign.neg_iou, tc.assign.min_best_iou);
    if (!st) st = cli_meta_set(&m, "sampling", &err, "lesion/window 2^U(-%g,%g), p_center %g, max scale %g",
                               tc.size_range, tc.size_range, tc.p_center, tc.max_scale);
    if (!st) st = cli_meta_set(&m, "augment", &err, "flip_h %d flip_v %d gamma %g contrast %g brightness "
                               "%g blur %g speckle %g scale_jitter %g", tc.aug.flip_h, tc.aug.flip_v,
                               tc.aug.gamma, tc.aug.contrast, tc.aug.brightness, tc.aug.blur,
                               tc.aug.speckle, tc.aug.scale_jitter);
    if (!st && !isnan(tune_ap50)) st = cli_meta_set(&m, "tune_ap50", &err, "%.6f", tune_ap50);
    if (st) {
        rc = cli_fail(cmd, &err);
        goto done;
    }

    if (test_fs.n > 0) {
        dets = calloc((size_t)test_fs.n, sizeof *dets);
        base = calloc((size_t)test_fs.n, sizeof *base);
        if (!dets || !base || frames_view(&test_view, &labels, &test_fs) ||
            baseline(base, test_fs.n, &train_fs)) {
            fprintf(stderr, "lymphdet %s: out of memory\n", cmd);
            rc = 1;
            goto done;
        }
        ld_eval_config ec;
        ld_eval_config_default(&ec);
        ec.n_resamples = o.bootstrap;
        ec.seed = (uint64_t)o.seed;
        if (ld_det_evaluate(NULL, NULL, dets, &m, &dc, &test_fs, &err) ||
            ld_detection_metrics_compute(&dm, &test_view, dets, &ec, &err) ||
            ld_detection_metrics_compute(&bm, &test_view, base, &ec, &err)) {
            rc = err.msg[0] ? cli_fail(cmd, &err) : 1;
            goto done;
        }
        printf("held-out images: %d (%ld labelled boxes), never trained or tuned on; 95%% CIs "
               "from %d bootstrap resamples of images\n", test_fs.n, dm.coco.n_gt, o.bootstrap);
        print_metrics("detection preset:", &dm);
        print_metrics("trivial baseline (median training box at the median centre):", &bm);
        st = cli_meta_set(&m, "val_ap50", &err, "%.6f", dm.coco.ap50);
        if (!st) st = cli_meta_set(&m, "val_ap", &err, "%.6f", dm.coco.ap);
        if (!st) st = cli_meta_set(&m, "val_top1_iou", &err, "%.6f", dm.iou.top1_iou);
        if (!st) st = cli_meta_set(&m, "val_dets_per_image", &err, "%.4f", dm.iou.dets_per_image);
        if (!st) st = cli_meta_set(&m, "val_baseline_ap50", &err, "%.6f", bm.coco.ap50);
        if (st) {
            rc = cli_fail(cmd, &err);
            goto done;
        }
    }
    rc = save_results(&m, o.out, hist, tc.epochs);
    if (!rc) printf("wrote %s, %s.history.csv and %s.det_history.csv\n", o.out, o.out, o.out);
done:
    for (int i = 0; dets && i < test_fs.n; i++) ld_dets_free(&dets[i]);
    for (int i = 0; base && i < test_fs.n; i++) ld_dets_free(&base[i]);
    free(dets);
    free(base);
    ld_detection_metrics_free(&dm);
    ld_detection_metrics_free(&bm);
    if (have_model) ld_model_free(&m);
    ld_detcheckpoint_free(&ck);
    ld_frameset_free(&train_fs);
    ld_frameset_free(&tune_fs);
    ld_frameset_free(&test_fs);
    free(tr_view.images);
    free(test_view.images);
    free(is_val);
    free(is_tune);
    free(idx);
    free(tr_idx);
    free(sub);
    free(hist);
    ld_labels_free(&labels);
    return rc;
}
