/* cmd_evaluate.c — `lymphdet evaluate`: how good a detector really is.
 *
 *   evaluate --model MODEL --images DIR --labels FILE --out DIR
 *     runs the detector on the evaluated images and the network on the
 *     evaluated patches. Which images and patches: by default (--split val) the
 *     validation side of the split the model was trained with, re-created from
 *     the model's metadata exactly as `train` (or `crossval`) made it — same
 *     protocol, group fields, fraction and seed, so the same images and the same
 *     patches; --split all evaluates every image and every patch.
 *       image      validation images; validation patches (cut from them);
 *       kfold      the model's fold (models written by `crossval`);
 *       paper      patches were split, not images, so every image gave training
 *                  patches: detection runs on all images (said so in the report)
 *                  and classification on the paper's leaky validation patches;
 *       val-labels the model was validated on another labels file: pass that
 *                  file as --labels; everything in it is evaluated.
 *     When the re-created validation set's size differs from the one recorded at
 *     training, a warning says the data differ from what the model was trained on.
 *     A detection-preset model runs with the detector settings its training tuned
 *     (unless options say otherwise) and gets no patch classification: it judges
 *     boxes in whole frames, not the paper's patches.
 *   evaluate --results RESULTS.json --labels FILE --out DIR [--images DIR]
 *     evaluates any detector's COCO results; no patches, and the baseline box
 *     comes from all the given labels (no training split is known).
 *
 * Both write DIR/metrics.json, the charts (PNG), DIR/report.html and, with a
 * model, DIR/detections.json (the COCO results that were evaluated); stdout gets
 * the headline table. Seeds: the split and patches use the model's recorded
 * seed; --seed seeds only the bootstrap. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"
#include "detect_opts.h"
#include "evaluate_run.h"
#include "lymphdet/detect.h"
#include "lymphdet/detections.h"
#include "lymphdet/labels.h"
#include "lymphdet/metrics.h"
#include "lymphdet/model.h"
#include "lymphdet/patches.h"

static const char *const cmd = "evaluate";

/* How the model was trained, from its metadata (cmd_train.c, cmd_crossval.c). */
typedef struct {
    char protocol[32];      /* image, paper, val-labels, kfold; "" when not recorded */
    char group_by[256];
    double val_fraction;
    uint64_t seed;
    int margin, negatives;
    int folds, fold;        /* kfold: fold is 1-based */
    long patches_val;       /* recorded validation patches, -1 when unknown */
} train_record;

/* a metadata number, checked: *ok is cleared when present but malformed or out of range */
static double meta_number(const ld_model *m, const char *key, double dflt, double lo, double hi,
                          int *ok)
{
    const char *v = ld_model_meta_get(m, key);
    if (!v) return dflt;
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end != '\0' || !(x >= lo && x <= hi)) {
        fprintf(stderr, "lymphdet %s: the model's metadata %s = \"%s\" is not a number in "
                "[%g, %g]\n", cmd, key, v, lo, hi);
        *ok = 0;
    }
    return x;
}

/* Reads the training record; returns an exit code (1: a malformed value). */
static int read_record(train_record *r, const ld_model *m)
{
    const char *v;
    int ok = 1;
    memset(r, 0, sizeof *r);
    if ((v = ld_model_meta_get(m, "protocol"))) snprintf(r->protocol, sizeof r->protocol, "%s", v);
    if ((v = ld_model_meta_get(m, "group_by"))) snprintf(r->group_by, sizeof r->group_by, "%s", v);
    r->val_fraction = meta_number(m, "val_fraction", 0.1, 0, 0.999999, &ok);
    /* train's --seed is an int, given to the split as (uint64_t)seed: negative too */
    r->seed = (uint64_t)(int64_t)meta_number(m, "seed", 1, -2147483648.0, 2147483647.0, &ok);
    r->margin = (int)meta_number(m, "margin", 20, 0, 4096, &ok);
    r->negatives = (int)meta_number(m, "negatives", -1, -1, 1e9, &ok);
    r->folds = (int)meta_number(m, "folds", 0, 0, 1000, &ok);
    r->fold = (int)meta_number(m, "fold", 0, 0, 1000, &ok);
    /* recorded as "N (P positive, M negative)": the leading count */
    r->patches_val = (v = ld_model_meta_get(m, "patches_val")) ? strtol(v, NULL, 10) : -1;
    /* train records "(each image)" when no group field was found: auto finds none again */
    if (!r->group_by[0] || strcmp(r->group_by, "(each image)") == 0)
        snprintf(r->group_by, sizeof r->group_by, "auto");
    return ok ? 0 : 1;
}

/* Everything the model path decides before running: which images, which patches. */
typedef struct {
    uint8_t *eval_mask;     /* [n_images] or NULL: all */
    uint8_t *train_mask;    /* [n_images] or NULL: baseline from all labels */
    ld_patchset patches;    /* the evaluated patches */
    ld_dataset ds;          /* when the patches come from ld_dataset_build */
    int use_ds;             /* patches live in ds.val */
    char split_desc[600], cls_desc[600], base_src[300];
} plan;

static void plan_free(plan *p)
{
    free(p->eval_mask);
    free(p->train_mask);
    ld_patchset_free(&p->patches);
    if (p->use_ds) ld_dataset_free(&p->ds);
}

static const ld_patchset *plan_patches(const plan *p) { return p->use_ds ? &p->ds.val : &p->patches; }

static int count_mask(const uint8_t *mask, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++) k += mask ? mask[i] != 0 : 1;
    return k;
}

/* Patches of the images with mask[i] == want (mask NULL: all) with the given seed. */
static ld_status side_patches(ld_patchset *ps, const ld_labels *labels, const char *images,
                              const uint8_t *mask, int want, const ld_patch_config *pc,
                              ld_error *err)
{
    int *idx = malloc(((size_t)labels->n_images + 1) * sizeof *idx);
    if (!idx) return ld_fail(err, LD_ERR_NOMEM, "out of memory");
    int k = eval_select(idx, mask, labels->n_images, want);
    ld_status st = ld_patches_build(ps, labels, images, idx, k, pc, err);
    free(idx);
    return st;
}

static int make_plan(plan *p, const ld_labels *labels, const char *images, const ld_model *m,
                     const train_record *rec, const char *protocol, int split_all)
{
    /* the detection preset judges anchor boxes in whole frames, not the paper's
     * squeezed patches: it gets no patch classification */
    int want_patches = !m->arch.box_head;
    ld_error err = {0};
    int n = labels->n_images;
    memset(p, 0, sizeof *p);
    ld_patch_config pc;
    ld_patch_config_default(&pc);
    pc.size = m->arch.input_size;
    pc.margin = rec->margin;
    pc.n_negatives = rec->negatives;
    pc.seed = rec->seed;
    ld_status st = LD_OK;
    int is_image = strcmp(protocol, "image") == 0, is_kfold = strcmp(protocol, "kfold") == 0;

    if (is_image || is_kfold) {
        /* the image split (or the folds), re-created: eval = validation side */
        p->eval_mask = malloc((size_t)n + 1);
        p->train_mask = malloc((size_t)n + 1);
        int *fold = malloc(((size_t)n + 1) * sizeof *fold);
        char used[256] = "";
        int n_groups = 0;
        if (!p->eval_mask || !p->train_mask || !fold) {
            free(fold);
            fprintf(stderr, "lymphdet %s: out of memory\n", cmd);
            return 1;
        }
        if (is_image)
            st = ld_split_images(p->eval_mask, NULL, labels, rec->group_by, rec->val_fraction,
                                 rec->seed, &n_groups, used, (int)sizeof used, &err);
        else if (rec->folds < 2 || rec->fold < 1 || rec->fold > rec->folds)
            st = ld_fail(&err, LD_ERR_INPUT, "the model records fold %d of %d: not a valid fold",
                         rec->fold, rec->folds);
        else
            st = ld_split_kfold(fold, labels, rec->group_by, rec->folds, rec->seed, &n_groups,
                                used, (int)sizeof used, &err);
        for (int i = 0; !st && is_kfold && i < n; i++) p->eval_mask[i] = fold[i] == rec->fold - 1;
        free(fold);
        if (st) return cli_fail(cmd, &err);
        for (int i = 0; i < n; i++) p->train_mask[i] = !p->eval_mask[i];
        int n_val = count_mask(p->eval_mask, n);
        if (n_val == 0 && !split_all) {
            fprintf(stderr, "lymphdet %s: the model's split holds no validation image of these "
                    "labels (validation fraction %g): nothing to evaluate; --split all "
                    "evaluates every image\n", cmd, rec->val_fraction);
            return 1;
        }
        char how[300];
        if (is_image)
            snprintf(how, sizeof how, "protocol image: %d groups of images by %s, validation "
                     "fraction %g, seed %llu", n_groups, used[0] ? used : "image",
                     rec->val_fraction, (unsigned long long)rec->seed);
        else
            snprintf(how, sizeof how, "cross-validation fold %d of %d: %d groups of images by "
                     "%s, seed %llu", rec->fold, rec->folds, n_groups, used[0] ? used : "image",
                     (unsigned long long)rec->seed);
        snprintf(p->base_src, sizeof p->base_src, "the training-side images");
        if (split_all) {
            snprintf(p->split_desc, sizeof p->split_desc, "all %d images, training and "
                     "validation (%s; %d of them were held out)", n, how, n_val);
            free(p->eval_mask);
            p->eval_mask = NULL;
        } else {
            snprintf(p->split_desc, sizeof p->split_desc, "the %d validation images of %d, "
                     "re-created from the model's metadata (%s)", n_val, n, how);
        }
        if (split_all) {
            if (want_patches) st = side_patches(&p->patches, labels, images, NULL, 1, &pc, &err);
            snprintf(p->cls_desc, sizeof p->cls_desc, "every patch of the %d images (margin "
                     "%d, negatives seeded with %llu)", n, pc.margin,
                     (unsigned long long)pc.seed);
        } else {
            pc.seed = rec->seed + 1;   /* the validation side's stream, as in training */
            if (want_patches) st = side_patches(&p->patches, labels, images, p->eval_mask, 1, &pc, &err);
            snprintf(p->cls_desc, sizeof p->cls_desc, "the validation patches, cut from the "
                     "validation images as in training");
        }
    } else if (strcmp(protocol, "paper") == 0) {
        ld_split_config sc;
        ld_split_config_default(&sc);
        sc.protocol = LD_PROTOCOL_PAPER;
        sc.val_fraction = rec->val_fraction;
        sc.seed = rec->seed;
        snprintf(p->split_desc, sizeof p->split_desc, "all %d images: the paper protocol "
                 "splits patches, not images, so every image gave training patches and "
                 "detection here is measured on training images", n);
        snprintf(p->base_src, sizeof p->base_src, "all the images (every one was in training)");
        if (split_all) {
            if (want_patches) st = side_patches(&p->patches, labels, images, NULL, 1, &pc, &err);
            snprintf(p->cls_desc, sizeof p->cls_desc, "every patch of the %d images", n);
        } else {
            if (want_patches) st = ld_dataset_build(&p->ds, labels, images, &sc, &pc, &err);
            p->use_ds = want_patches && !st;
            snprintf(p->cls_desc, sizeof p->cls_desc, "the paper protocol's validation "
                     "patches (Keras validation_split %g of the shuffled patches, seed %llu): "
                     "flipped copies of training nodes are among them, the leak behind the "
                     "paper's accuracy", rec->val_fraction, (unsigned long long)rec->seed);
        }
    } else {
        /* val-labels, or nothing recorded: the given labels are all evaluation data */
        int known = strcmp(protocol, "val-labels") == 0;
        if (known) {
            snprintf(p->split_desc, sizeof p->split_desc, "all %d images of the labels given "
                     "(the model was validated on a separate labels file)", n);
            pc.seed = rec->seed + 1;   /* the validation stream of `train --val-labels` */
        } else {
            snprintf(p->split_desc, sizeof p->split_desc, "all %d images (the model records "
                     "no training split)", n);
            if (!split_all)
                fprintf(stderr, "lymphdet %s: warning: the model records no training split; "
                        "evaluating every image\n", cmd);
        }
        snprintf(p->base_src, sizeof p->base_src, "the evaluated images themselves (the "
                 "training labels are not known)");
        if (want_patches) st = side_patches(&p->patches, labels, images, NULL, 1, &pc, &err);
        snprintf(p->cls_desc, sizeof p->cls_desc, "every patch of the %d images", n);
    }
    if (st) return cli_fail(cmd, &err);
    if (!want_patches) return 0;
    const ld_patchset *ps = plan_patches(p);
    if (!split_all && rec->patches_val >= 0 && rec->patches_val != ps->n)
        fprintf(stderr, "lymphdet %s: warning: the re-created validation set has %d patches but "
                "the model recorded %ld: these labels or images are not the ones it was trained "
                "with\n", cmd, ps->n, rec->patches_val);
    char tail[80];
    snprintf(tail, sizeof tail, " (%d patches)", ps->n);
    strncat(p->cls_desc, tail, sizeof p->cls_desc - strlen(p->cls_desc) - 1);
    return 0;
}

/* ---- the two modes ---------------------------------------------------------------- */

typedef struct {
    const char *model, *results, *images, *labels, *out, *protocol, *split;
    detect_opts det;        /* the detector; a model's tuned settings fill what is not given */
    int argc;
    char **argv;
    int threads, quiet, bootstrap, seed;
    double score_threshold;
} options;

static void base_job(eval_job *job, const options *o, const ld_labels *labels)
{
    memset(job, 0, sizeof *job);
    job->cmd = cmd;
    job->out_dir = o->out;
    job->labels = labels;
    ld_eval_config_default(&job->cfg);
    job->cfg.n_resamples = o->bootstrap;
    job->cfg.seed = (uint64_t)o->seed;
    job->cfg.score_threshold = o->score_threshold;
}

static int run_results(const options *o, const ld_labels *labels)
{
    ld_error err = {0};
    ld_dets *dets = NULL;
    if (ld_results_load(&dets, o->results, labels, &err)) return cli_fail(cmd, &err);
    eval_job job;
    base_job(&job, o, labels);
    job.dets = dets;
    job.images_dir = o->images;
    job.baseline_source = "all the given labels (the evaluated images themselves: no training "
                          "split is known)";
    const char *keys[] = {"results", "labels", "images"};
    const char *values[] = {o->results, o->labels, o->images ? o->images : "(not given: no overlays)"};
    job.info_keys = keys;
    job.info_values = values;
    job.n_info = 3;
    int rc = eval_run(&job, NULL);
    for (int i = 0; i < labels->n_images; i++) ld_dets_free(&dets[i]);
    free(dets);
    return rc;
}

static int run_model(options *o, const ld_labels *labels)
{
    ld_error err = {0};
    ld_model m;
    if (ld_model_load(&m, o->model, 64, &err)) return cli_fail(cmd, &err);
    int rc = detect_opts_from_model(cmd, &o->det, &m, o->argc, o->argv);
    if (!rc && ld_detect_config_check(&o->det.cfg, &m.arch, &err)) rc = cli_fail(cmd, &err);
    if (rc) {
        rc = cli_fail(cmd, &err);
        ld_model_free(&m);
        return rc;
    }
    train_record rec;
    if (read_record(&rec, &m)) {
        ld_model_free(&m);
        return 1;
    }
    const char *protocol = strcmp(o->protocol, "model") == 0 ? rec.protocol : o->protocol;
    if (strcmp(o->protocol, "model") != 0 && rec.protocol[0] && strcmp(rec.protocol, o->protocol))
        fprintf(stderr, "lymphdet %s: warning: the model was trained with protocol %s; the "
                "%s split re-created here is not the one it was validated on\n", cmd,
                rec.protocol, o->protocol);
    plan p;
    ld_patch_metrics pm;
    ld_dets *dets = calloc((size_t)labels->n_images + 1, sizeof *dets);
    if (!dets) {
        fprintf(stderr, "lymphdet %s: out of memory\n", cmd);
        ld_model_free(&m);
        return 1;
    }
    rc = make_plan(&p, labels, o->images, &m, &rec, protocol, strcmp(o->split, "all") == 0);
    if (!rc && !m.arch.box_head) rc = eval_classify(cmd, &pm, &m, plan_patches(&p));
    if (!rc)
        rc = eval_detect(cmd, dets, &m, &o->det.cfg, labels, o->images, p.eval_mask, o->threads,
                         o->quiet);
    if (!rc) {
        eval_job job;
        base_job(&job, o, labels);
        char history[4200], results[4200], detector[400];
        snprintf(history, sizeof history, "%s.history.csv", o->model);
        snprintf(results, sizeof results, "%s/detections.json", o->out);
        struct stat sb;
        job.history_path = stat(history, &sb) == 0 ? history : NULL;
        job.detection_history = m.arch.box_head != 0;
        job.results_path = results;
        job.dets = dets;
        job.eval_mask = p.eval_mask;
        job.train_mask = p.train_mask;
        job.baseline_source = p.base_src;
        job.images_dir = o->images;
        job.cls = m.arch.box_head ? NULL : &pm;
        job.cls_desc = p.cls_desc;
        detect_opts_describe(detector, sizeof detector, &o->det.cfg);
        const char *preset = m.arch.preset;
        const char *keys[] = {"model", "preset", "labels", "images", "split", "detector"};
        const char *values[] = {o->model, preset, o->labels, o->images, p.split_desc, detector};
        job.info_keys = keys;
        job.info_values = values;
        job.n_info = 6;
        rc = eval_run(&job, NULL);
    }
    for (int i = 0; i < labels->n_images; i++) ld_dets_free(&dets[i]);
    free(dets);
    plan_free(&p);
    ld_model_free(&m);
    return rc;
}

int cmd_evaluate(int argc, char **argv)
{
    options o = {0};
    detect_opts_default(&o.det);
    o.argc = argc;
    o.argv = argv;
    o.protocol = "model";
    o.split = "val";
    o.threads = 1;
    o.bootstrap = 1000;
    o.seed = 1;
    const char *label_format = "auto";
    int voc_one_based = 0;
    cli_opt head[] = {
        {"model", OPT_STRING, &o.model, "MODEL", "model to evaluate (detects and classifies)", 0},
        {"results", OPT_STRING, &o.results, "RESULTS.json",
         "COCO results of any detector to evaluate instead of a model", 0},
        {"images", OPT_STRING, &o.images, "DIR",
         "folder of the images (needed with --model; with --results: overlays)", 0},
        {"labels", OPT_STRING, &o.labels, "FILE", "COCO JSON file, VOC or YOLO folder", 1},
        {"label-format", OPT_STRING, &label_format, "F", "auto|coco|voc|yolo", 0},
        {"voc-one-based", OPT_FLAG, &voc_one_based, NULL,
         "VOC boxes are 1-based inclusive (the official convention)", 0},
        {"out", OPT_STRING, &o.out, "DIR", "folder for metrics.json, the charts and report.html", 1},
        {"protocol", OPT_STRING, &o.protocol, "P",
         "split to re-create: model (as recorded in the model file), image or paper", 0},
        {"split", OPT_STRING, &o.split, "S",
         "val: only the model's validation images and patches; all: everything", 0},
    };
    cli_opt tail[] = {
        {"score-threshold", OPT_DOUBLE, &o.score_threshold, "S",
         "operating point for precision/recall/F1: detections with score >= S", 0},
        {"bootstrap", OPT_INT, &o.bootstrap, "N", "bootstrap resamples for the 95 % intervals (0: none)", 0},
        {"seed", OPT_INT, &o.seed, "N", "bootstrap seed (the split uses the model's own seed)", 0},
        {"threads", OPT_INT, &o.threads, "N", "images detected in parallel", 0},
        {"quiet", OPT_FLAG, &o.quiet, NULL, "no progress bar", 0},
    };
    enum { N_HEAD = sizeof head / sizeof head[0], N_TAIL = sizeof tail / sizeof tail[0] };
    cli_opt opts[N_HEAD + DETECT_OPT_COUNT + N_TAIL];
    memcpy(opts, head, sizeof head);
    detect_opts_table(opts + N_HEAD, &o.det);
    memcpy(opts + N_HEAD + DETECT_OPT_COUNT, tail, sizeof tail);
    int rc = cli_parse(cmd, "(--model MODEL --images DIR | --results RESULTS.json) --labels FILE "
                       "--out DIR [options]",
                       "Measures a detector against labels, with every metric defined exactly:\n"
                       "COCO AP (pycocotools), precision/recall/F1, the paper's per-label IoU\n"
                       "with detections per image and top-1 IoU, patch accuracy, the paper's\n"
                       "\"DSC\" beside the true Dice, bootstrap 95 % intervals, and a fixed-box\n"
                       "baseline. With --model, only the validation images and patches of the\n"
                       "split the model was trained with (re-created from its metadata); the\n"
                       "detection preset's tuned detector settings replace the defaults below.\n"
                       "Writes DIR/metrics.json, charts, overlays and DIR/report.html.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv, NULL, 0, NULL);
    if (rc >= 0) return rc;
    if (!o.model == !o.results)
        return cli_usage_error(cmd, "give exactly one of --model and --results");
    if (o.model && !o.images) return cli_usage_error(cmd, "--model needs --images");
    if (strcmp(o.split, "val") != 0 && strcmp(o.split, "all") != 0)
        return cli_usage_error(cmd, "--split must be val or all, not '%s'", o.split);
    if (strcmp(o.protocol, "model") != 0 && strcmp(o.protocol, "image") != 0 &&
        strcmp(o.protocol, "paper") != 0)
        return cli_usage_error(cmd, "--protocol must be model, image or paper, not '%s'", o.protocol);
    if (o.bootstrap < 0 || o.bootstrap > 1000000)
        return cli_usage_error(cmd, "--bootstrap must be in 0..1000000");
    if (o.threads < 1 || o.threads > 256) return cli_usage_error(cmd, "--threads must be 1..256");
    if (!(o.score_threshold >= 0 && o.score_threshold <= 1))
        return cli_usage_error(cmd, "--score-threshold must be in [0, 1]");
    if ((rc = detect_opts_finish(cmd, &o.det)) >= 0) return rc;
    ld_error err = {0};

    ld_label_options lo;
    ld_label_options_default(&lo);
    if (cli_label_format(cmd, label_format, &lo.format)) return 2;
    lo.voc_one_based = voc_one_based;
    lo.images_dir = o.images;
    ld_labels labels;
    if (ld_labels_load(&labels, o.labels, &lo, &err)) return cli_fail(cmd, &err);
    for (int i = 0; i < labels.n_warnings && !o.quiet; i++)
        fprintf(stderr, "lymphdet %s: warning: %s\n", cmd, labels.warnings[i]);
    rc = o.model ? run_model(&o, &labels) : run_results(&o, &labels);
    ld_labels_free(&labels);
    return rc;
}
