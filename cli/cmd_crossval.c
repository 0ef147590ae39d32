/* cmd_crossval.c — `lymphdet crossval`: grouped k-fold cross-validation.
 *
 * The images are dealt into k folds by group (ld_split_kfold: images sharing a
 * value of a group field — near_dup_group, patient, ddti_case, or --group-by —
 * stay in one fold, exactly the groups `train --protocol image` keeps together).
 * For each fold K the other folds are the training side: patches are cut from
 * each side on its own (training side seeded with --seed, validation side with
 * --seed + 1, as `train` does), a fresh network is trained, and the fold is
 * evaluated as `evaluate` does (detection on the fold's images, patch
 * classification on its patches, the baseline from the training side's labels).
 *
 * Writes DIR/fold_K/{model.safetensors, model.safetensors.history.csv,
 * detections.json, metrics.json, report.html, charts} — the model records its
 * fold, so `evaluate --model DIR/fold_K/model.safetensors` re-creates the same
 * fold — and DIR/crossval.json with every fold's headline numbers, their mean
 * and their sample standard deviation (n - 1 in the denominator), printed as a
 * table on stdout. A metric undefined in a fold (NaN) is left out of its mean
 * and counted in n_valid. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include "cli.h"
#include "dataset_opts.h"
#include "detect_opts.h"
#include "evaluate_run.h"
#include "lymphdet/detect.h"
#include "lymphdet/metrics.h"
#include "lymphdet/model.h"
#include "lymphdet/outfile.h"
#include "lymphdet/patches.h"
#include "lymphdet/rng.h"
#include "lymphdet/train.h"

static const char *const cmd = "crossval";

/* the headline numbers gathered per fold */
enum {
    H_ACCURACY, H_PAPER_DSC, H_DICE, H_AP50, H_AP, H_AP75, H_AR100, H_DET_PRECISION,
    H_DET_RECALL, H_DET_F1, H_IOU_MEAN, H_TOP1, H_DPI, H_BASE_AP50, H_BASE_IOU_MEAN, H_COUNT
};

static const struct {
    const char *key, *label;
} headline[H_COUNT] = {
    {"accuracy", "patch accuracy"},
    {"paper_dsc", "paper \"DSC\""},
    {"dice", "patch Dice (F1)"},
    {"AP50", "AP@0.5"},
    {"AP", "AP@[.5:.95]"},
    {"AP75", "AP@0.75"},
    {"AR100", "AR@100"},
    {"det_precision", "precision (IoU 0.5)"},
    {"det_recall", "recall (IoU 0.5)"},
    {"det_f1", "F1 (IoU 0.5)"},
    {"iou_per_label_mean", "per-label IoU: mean"},
    {"top1_iou", "top-1 IoU"},
    {"detections_per_image", "detections per image"},
    {"baseline_AP50", "baseline AP@0.5"},
    {"baseline_iou_per_label_mean", "baseline per-label IoU"},
};

static void gather(double *v, const ld_patch_metrics *pm, const eval_outcome *o)
{
    const ld_detection_metrics *d = &o->det;
    v[H_ACCURACY] = pm->accuracy;
    v[H_PAPER_DSC] = pm->paper_dsc;
    v[H_DICE] = pm->f1;
    v[H_AP50] = d->coco.ap50;
    v[H_AP] = d->coco.ap;
    v[H_AP75] = d->coco.ap75;
    v[H_AR100] = d->coco.ar100;
    v[H_DET_PRECISION] = d->point.precision;
    v[H_DET_RECALL] = d->point.recall;
    v[H_DET_F1] = d->point.f1;
    v[H_IOU_MEAN] = d->iou.mean;
    v[H_TOP1] = d->iou.top1_iou;
    v[H_DPI] = d->iou.dets_per_image;
    v[H_BASE_AP50] = o->has_base ? o->base.coco.ap50 : NAN;
    v[H_BASE_IOU_MEAN] = o->has_base ? o->base.iou.mean : NAN;
}

/* mean and sample standard deviation of the defined values of v[0..k) (stride
 * H_COUNT); NaN when there are none (std: fewer than 2) */
static void mean_std(double *mean, double *sd, int *n_valid, const double *v, int k)
{
    double s = 0, ss = 0;
    int n = 0;
    for (int f = 0; f < k; f++)
        if (!isnan(v[f * H_COUNT])) {
            s += v[f * H_COUNT];
            n++;
        }
    *mean = n ? s / n : NAN;
    for (int f = 0; f < k; f++)
        if (!isnan(v[f * H_COUNT])) ss += (v[f * H_COUNT] - *mean) * (v[f * H_COUNT] - *mean);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : NAN;
    *n_valid = n;
}

typedef struct {
    dataset_opts d;
    const char *out;
    int folds, epochs, batch, quiet, threads, bootstrap;
    double lr, dropout;
    detect_opts det;
} options;

typedef struct {
    int k, n_img, n_groups;
    char group_fields[256];
    int *fold;                  /* [n_img] */
    double *v;                  /* [k, H_COUNT] */
    int *n_val_images;          /* [k] */
} crossval_state;

/* what `evaluate` needs to re-create this fold, and how the model was trained */
static ld_status record(ld_model *m, const options *o, const crossval_state *cv, int f,
                        const ld_patchset *tr, const ld_patchset *va, const ld_train_config *tc,
                        ld_error *err)
{
    ld_status st = cli_meta_set(m, "protocol", err, "kfold");
    if (!st) st = cli_meta_set(m, "folds", err, "%d", cv->k);
    if (!st) st = cli_meta_set(m, "fold", err, "%d", f + 1);
    if (!st) st = cli_meta_set(m, "group_by", err, "%s", cv->group_fields[0] ? cv->group_fields : "(each image)");
    if (!st) st = cli_meta_set(m, "seed", err, "%d", o->d.seed);
    if (!st) st = cli_meta_set(m, "margin", err, "%d", o->d.margin);
    if (!st) st = cli_meta_set(m, "negatives", err, "%d", o->d.negatives);
    if (!st) st = cli_meta_set(m, "patches_train", err, "%d", tr->n);
    if (!st) st = cli_meta_set(m, "patches_val", err, "%d", va->n);
    if (!st) st = cli_meta_set(m, "epochs", err, "%d", tc->epochs);
    if (!st) st = cli_meta_set(m, "batch", err, "%d", tc->batch);
    if (!st) st = cli_meta_set(m, "optimizer", err, "adam (keras) lr %g beta1 %g beta2 %g eps %g",
                               tc->adam.lr, tc->adam.beta1, tc->adam.beta2, tc->adam.eps);
    return st;
}

static ld_status write_history(const char *path, const ld_epoch_stats *h, int n, ld_error *err)
{
    ld_outfile out;
    if (ld_out_open(&out, path, err)) return err->status;
    fprintf(out.fp, "epoch,train_loss,train_acc,val_loss,val_acc,seconds\n");
    for (int i = 0; i < n; i++)
        fprintf(out.fp, "%d,%.6f,%.6f,%.6f,%.6f,%.3f\n", h[i].epoch, h[i].train_loss,
                h[i].train_acc, h[i].val_loss, h[i].val_acc, h[i].seconds);
    return ld_out_commit(&out, err);
}

typedef struct {
    cli_progress bar;
    int fold, folds, epochs;
} progress_state;

static void on_step(void *user, int epoch, int step, int n_steps, double loss, double acc)
{
    progress_state *p = user;
    if (!p->bar.enabled || (step % 16 && step != n_steps)) return;
    char label[48], suffix[64];
    snprintf(label, sizeof label, "fold %d/%d epoch %d/%d", p->fold, p->folds, epoch, p->epochs);
    snprintf(suffix, sizeof suffix, "loss %.4f acc %.4f", loss, acc);
    p->bar.label = label;
    p->bar.total = n_steps;
    cli_progress_update(&p->bar, step, suffix);
}

/* Trains and evaluates fold f; fills cv->v[f]. Returns an exit code. */
static int run_fold(const options *o, const ld_labels *labels, crossval_state *cv, int f,
                    uint64_t init_seed, uint64_t train_seed)
{
    ld_error err = {0};
    int n = labels->n_images, rc = 0;
    char dir[4200], model_path[4300], hist_path[4400], results[4300];
    snprintf(dir, sizeof dir, "%s/fold_%d", o->out, f + 1);
    snprintf(model_path, sizeof model_path, "%s/model.safetensors", dir);
    snprintf(hist_path, sizeof hist_path, "%s.history.csv", model_path);
    snprintf(results, sizeof results, "%s/detections.json", dir);
    if (cli_make_dir(cmd, dir)) return 1;

    uint8_t *eval_mask = malloc((size_t)n + 1), *train_mask = malloc((size_t)n + 1);
    int *idx = malloc(((size_t)n + 1) * sizeof *idx);
    ld_epoch_stats *hist = calloc((size_t)o->epochs, sizeof *hist);
    ld_dets *dets = calloc((size_t)n + 1, sizeof *dets);
    ld_patchset tr = {0}, va = {0};
    ld_model m;
    int have_model = 0;
    if (!eval_mask || !train_mask || !idx || !hist || !dets) {
        fprintf(stderr, "lymphdet %s: out of memory\n", cmd);
        rc = 1;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        eval_mask[i] = cv->fold[i] == f;
        train_mask[i] = !eval_mask[i];
    }
    ld_patch_config pc;
    ld_patch_config_default(&pc);
    pc.size = o->d.patch;
    pc.margin = o->d.margin;
    pc.n_negatives = o->d.negatives;
    pc.max_pixels = o->d.max_pixels;
    int nt = eval_select(idx, eval_mask, n, 0);
    pc.seed = (uint64_t)o->d.seed;
    if (ld_patches_build(&tr, labels, o->d.images, idx, nt, &pc, &err)) {
        rc = cli_fail(cmd, &err);
        goto done;
    }
    int nv = eval_select(idx, eval_mask, n, 1);
    pc.seed = (uint64_t)o->d.seed + 1;   /* the validation side's own stream, as in train */
    if (ld_patches_build(&va, labels, o->d.images, idx, nv, &pc, &err)) {
        rc = cli_fail(cmd, &err);
        goto done;
    }
    cv->n_val_images[f] = nv;

    ld_arch arch;
    ld_arch_paper(&arch);
    arch.input_size = o->d.patch;
    arch.dropout = (float)o->dropout;
    ld_train_config tc;
    ld_train_config_default(&tc);
    tc.epochs = o->epochs;
    tc.batch = o->batch;
    tc.adam.lr = (float)o->lr;
    tc.seed = train_seed;
    if (ld_model_init(&m, &arch, o->batch, &err)) {
        rc = cli_fail(cmd, &err);
        goto done;
    }
    have_model = 1;
    ld_model_init_weights(&m, init_seed);
    progress_state ps = {{0}, f + 1, cv->k, o->epochs};
    cli_progress_start(&ps.bar, "", 0, o->quiet);
    ld_train_hooks hooks = {on_step, NULL, &ps};
    if (ld_train(&m, &tr, &va, &tc, &hooks, hist, &err)) {
        cli_progress_end(&ps.bar);
        rc = cli_fail(cmd, &err);
        goto done;
    }
    cli_progress_end(&ps.bar);
    const ld_epoch_stats *last = &hist[o->epochs - 1];
    printf("fold %d/%d: trained on %d images (%d patches), validating on %d images (%d "
           "patches): val_loss %.4f val_acc %.4f, %.1f s per epoch\n", f + 1, cv->k, nt, tr.n,
           nv, va.n, last->val_loss, last->val_acc, last->seconds);
    fflush(stdout);
    if (record(&m, o, cv, f, &tr, &va, &tc, &err) || ld_model_save(&m, model_path, &err) ||
        write_history(hist_path, hist, o->epochs, &err)) {
        rc = cli_fail(cmd, &err);
        goto done;
    }

    ld_patch_metrics pm;
    if ((rc = eval_classify(cmd, &pm, &m, &va))) goto done;
    if ((rc = eval_detect(cmd, dets, &m, &o->det.cfg, labels, o->d.images, eval_mask, o->threads,
                          o->quiet)))
        goto done;

    char split[400], cls_desc[300], base_src[200], detector[400], fold_s[64];
    snprintf(split, sizeof split, "fold %d of %d: %d images (groups by %s, seed %d)", f + 1,
             cv->k, nv, cv->group_fields[0] ? cv->group_fields : "image", o->d.seed);
    snprintf(cls_desc, sizeof cls_desc, "the %d patches cut from the fold's images", va.n);
    snprintf(base_src, sizeof base_src, "the other folds");
    detect_opts_describe(detector, sizeof detector, &o->det.cfg);
    snprintf(fold_s, sizeof fold_s, "%d of %d", f + 1, cv->k);
    const char *keys[] = {"model", "labels", "images", "split", "detector"};
    const char *values[] = {model_path, o->d.labels, o->d.images, split, detector};
    eval_job job = {0};
    job.cmd = cmd;
    job.out_dir = dir;
    job.labels = labels;
    job.dets = dets;
    job.eval_mask = eval_mask;
    job.train_mask = train_mask;
    job.baseline_source = base_src;
    job.images_dir = o->d.images;
    job.cls = &pm;
    job.cls_desc = cls_desc;
    job.history_path = hist_path;
    job.results_path = results;
    ld_eval_config_default(&job.cfg);
    job.cfg.n_resamples = o->bootstrap;
    job.cfg.seed = (uint64_t)o->d.seed;
    job.info_keys = keys;
    job.info_values = values;
    job.n_info = 5;
    job.no_summary = 1;
    eval_outcome res;
    if ((rc = eval_run(&job, &res))) goto done;
    gather(cv->v + (size_t)f * H_COUNT, &pm, &res);
    eval_outcome_free(&res);
done:
    for (int i = 0; dets && i < n; i++) ld_dets_free(&dets[i]);
    free(dets);
    free(eval_mask);
    free(train_mask);
    free(idx);
    free(hist);
    ld_patchset_free(&tr);
    ld_patchset_free(&va);
    if (have_model) ld_model_free(&m);
    return rc;
}

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static void put(json_t *o, const char *key, json_t *v, int *bad)
{
    if (!o || !v || json_object_set_new(o, key, v)) *bad = 1;
}

static int write_summary(const options *o, const crossval_state *cv, const ld_labels *labels)
{
    int bad = 0;
    json_t *root = json_object(), *folds = json_array(), *mean = json_object(),
           *sd = json_object(), *valid = json_object();
    put(root, "folds", json_integer(cv->k), &bad);
    put(root, "n_images", json_integer(labels->n_images), &bad);
    put(root, "n_groups", json_integer(cv->n_groups), &bad);
    put(root, "group_by", json_string(cv->group_fields[0] ? cv->group_fields : "(each image)"), &bad);
    put(root, "seed", json_integer(o->d.seed), &bad);
    put(root, "epochs", json_integer(o->epochs), &bad);
    for (int f = 0; f < cv->k; f++) {
        json_t *e = json_object();
        char rel[64];
        snprintf(rel, sizeof rel, "fold_%d/metrics.json", f + 1);
        put(e, "fold", json_integer(f + 1), &bad);
        put(e, "n_images", json_integer(cv->n_val_images[f]), &bad);
        put(e, "metrics", json_string(rel), &bad);
        for (int h = 0; h < H_COUNT; h++)
            put(e, headline[h].key, num(cv->v[f * H_COUNT + h]), &bad);
        if (!folds || !e || json_array_append_new(folds, e)) bad = 1;
    }
    put(root, "per_fold", folds, &bad);
    printf("\n%d-fold cross-validation by %s (%d images, %d groups)\n", cv->k,
           cv->group_fields[0] ? cv->group_fields : "image", labels->n_images, cv->n_groups);
    printf("  %-26s", "metric");
    for (int f = 0; f < cv->k; f++) printf("  fold %-3d", f + 1);
    printf("  %s\n", "mean +- std (n-1)");
    for (int h = 0; h < H_COUNT; h++) {
        double mu, s;
        int nv;
        mean_std(&mu, &s, &nv, cv->v + h, cv->k);
        put(mean, headline[h].key, num(mu), &bad);
        put(sd, headline[h].key, num(s), &bad);
        put(valid, headline[h].key, json_integer(nv), &bad);
        printf("  %-26s", headline[h].label);
        for (int f = 0; f < cv->k; f++) {
            double x = cv->v[f * H_COUNT + h];
            if (isnan(x)) printf("  %8s", "n/a");
            else printf("  %8.3f", x);
        }
        if (isnan(mu)) printf("  n/a\n");
        else if (isnan(s)) printf("  %.3f\n", mu);
        else printf("  %.3f +- %.3f\n", mu, s);
    }
    put(root, "mean", mean, &bad);
    put(root, "std", sd, &bad);
    put(root, "n_valid", valid, &bad);
    char path[4200];
    snprintf(path, sizeof path, "%s/crossval.json", o->out);
    ld_error err = {0};
    int rc = 0;
    if (bad) {
        fprintf(stderr, "lymphdet %s: out of memory\n", cmd);
        rc = 1;
    } else {
        ld_outfile out;
        if (ld_out_open(&out, path, &err)) rc = cli_fail(cmd, &err);
        else if (json_dumpf(root, out.fp, JSON_INDENT(2) | JSON_REAL_PRECISION(15)) != 0 ||
                 fputc('\n', out.fp) == EOF) {
            ld_out_abort(&out);
            fprintf(stderr, "lymphdet %s: %s: write failed\n", cmd, path);
            rc = 1;
        } else if (ld_out_commit(&out, &err)) {
            rc = cli_fail(cmd, &err);
        }
    }
    json_decref(root);
    if (!rc) printf("wrote %s and fold_1 .. fold_%d\n", path, cv->k);
    return rc;
}

int cmd_crossval(int argc, char **argv)
{
    options o;
    memset(&o, 0, sizeof o);
    dataset_opts_default(&o.d);
    detect_opts_default(&o.det);
    o.folds = 5;
    o.epochs = 20;
    o.batch = 5;
    o.lr = 1e-4;
    o.dropout = 0.25;
    o.threads = 1;
    o.bootstrap = 1000;
    /* the dataset options of `train`, less those of a single split */
    cli_opt shared[DATASET_OPT_COUNT], opts[DATASET_OPT_COUNT + DETECT_OPT_COUNT + 10];
    dataset_opts_table(shared, &o.d);
    int n_opts = 0;
    for (int i = 0; i < DATASET_OPT_COUNT; i++)
        if (strcmp(shared[i].name, "protocol") && strcmp(shared[i].name, "val-fraction") &&
            strcmp(shared[i].name, "val-labels"))
            opts[n_opts++] = shared[i];
    cli_opt own[] = {
        {"out", OPT_STRING, &o.out, "DIR", "folder for fold_K/ and crossval.json", 1},
        {"folds", OPT_INT, &o.folds, "K", "number of folds (groups of images kept whole)", 0},
        {"epochs", OPT_INT, &o.epochs, "N", "training epochs per fold", 0},
        {"batch", OPT_INT, &o.batch, "N", "mini-batch size", 0},
        {"lr", OPT_DOUBLE, &o.lr, "X", "Adam learning rate", 0},
        {"dropout", OPT_DOUBLE, &o.dropout, "X", "dropout rate after each block", 0},
    };
    cli_opt tail[] = {
        {"bootstrap", OPT_INT, &o.bootstrap, "N", "bootstrap resamples per fold (0: none)", 0},
        {"threads", OPT_INT, &o.threads, "N", "images detected in parallel", 0},
        {"quiet", OPT_FLAG, &o.quiet, NULL, "no progress bar", 0},
    };
    memcpy(opts + n_opts, own, sizeof own);
    n_opts += (int)(sizeof own / sizeof own[0]);
    detect_opts_table(opts + n_opts, &o.det);
    n_opts += DETECT_OPT_COUNT;
    memcpy(opts + n_opts, tail, sizeof tail);
    n_opts += (int)(sizeof tail / sizeof tail[0]);
    int rc = cli_parse(cmd, "--images DIR --labels FILE --folds K --out DIR [options]",
                       "Grouped k-fold cross-validation: deals the images into K folds keeping\n"
                       "groups whole, then for each fold trains the paper's network on the\n"
                       "other folds and evaluates it on this one (as `evaluate` does). Writes\n"
                       "DIR/fold_K/ (model, metrics.json, report.html) and DIR/crossval.json\n"
                       "with the mean and standard deviation over the folds.",
                       opts, n_opts, argc, argv, NULL, 0, NULL);
    if (rc >= 0) return rc;
    if (o.folds < 2 || o.folds > 1000) return cli_usage_error(cmd, "--folds must be in 2..1000");
    if (o.epochs < 1 || o.epochs > 100000 || o.batch < 1 || o.batch > 4096)
        return cli_usage_error(cmd, "--epochs must be in 1..100000 and --batch in 1..4096");
    if (!(o.lr > 0) || !(o.dropout >= 0 && o.dropout < 1))
        return cli_usage_error(cmd, "--lr must be positive and --dropout in [0, 1)");
    if (o.d.patch < 8 || o.d.patch > 4096 || o.d.margin < 0 || o.d.margin > 4096)
        return cli_usage_error(cmd, "--patch must be in 8..4096 and --margin in 0..4096");
    if (o.bootstrap < 0 || o.bootstrap > 1000000)
        return cli_usage_error(cmd, "--bootstrap must be in 0..1000000");
    if (o.threads < 1 || o.threads > 256) return cli_usage_error(cmd, "--threads must be 1..256");
    if ((rc = detect_opts_finish(cmd, &o.det)) >= 0) return rc;
    ld_error err = {0};
    ld_arch arch;
    ld_arch_paper(&arch);
    arch.input_size = o.d.patch;
    if (ld_arch_validate(&arch, &err) || ld_detect_config_check(&o.det.cfg, &arch, &err))
        return cli_usage_error(cmd, "%s", err.msg);

    ld_label_options lo;
    ld_label_options_default(&lo);
    if (cli_label_format(cmd, o.d.label_format, &lo.format)) return 2;
    lo.voc_one_based = o.d.voc_one_based;
    lo.images_dir = o.d.images;
    ld_labels labels;
    if (ld_labels_load(&labels, o.d.labels, &lo, &err)) return cli_fail(cmd, &err);
    for (int i = 0; i < labels.n_warnings; i++)
        fprintf(stderr, "lymphdet %s: warning: %s\n", cmd, labels.warnings[i]);

    crossval_state cv = {0};
    cv.k = o.folds;
    cv.n_img = labels.n_images;
    cv.fold = malloc(((size_t)labels.n_images + 1) * sizeof *cv.fold);
    cv.v = malloc((size_t)o.folds * H_COUNT * sizeof *cv.v);
    cv.n_val_images = calloc((size_t)o.folds, sizeof *cv.n_val_images);
    if (!cv.fold || !cv.v || !cv.n_val_images) {
        fprintf(stderr, "lymphdet %s: out of memory\n", cmd);
        rc = 1;
    } else if (ld_split_kfold(cv.fold, &labels, o.d.group_by, o.folds, (uint64_t)o.d.seed,
                              &cv.n_groups, cv.group_fields, (int)sizeof cv.group_fields, &err)) {
        rc = cli_fail(cmd, &err);
    } else {
        rc = cli_make_dir(cmd, o.out);
        printf("%d folds of %d images in %d groups (by %s)\n", o.folds, labels.n_images,
               cv.n_groups, cv.group_fields[0] ? cv.group_fields : "image");
        ld_rng seeds;   /* every fold's initial weights and training stream from --seed */
        ld_rng_seed(&seeds, (uint64_t)o.d.seed);
        for (int f = 0; f < o.folds && !rc; f++) {
            uint64_t init_seed = ld_rng_u64(&seeds), train_seed = ld_rng_u64(&seeds);
            rc = run_fold(&o, &labels, &cv, f, init_seed, train_seed);
        }
        if (!rc) rc = write_summary(&o, &cv, &labels);
    }
    free(cv.fold);
    free(cv.v);
    free(cv.n_val_images);
    ld_labels_free(&labels);
    return rc;
}
