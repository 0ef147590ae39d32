/* cmd_train.c — `lymphdet train`: cut patches, split, train the paper's network,
 * write the model and MODEL.history.csv.
 *
 * Crash safety: --checkpoint FILE is rewritten atomically after every epoch, and
 * --resume FILE continues that run after a crash or a kill: the data and options must
 * be the same (the checkpoint checks), and the model then written is identical byte for
 * byte to the one an uninterrupted run writes (tests/test_hostile.c). The history CSV
 * keeps the epochs done before the interruption with their original timings.
 * The model and its history are one result: a run that fails to write either (disk
 * full, read-only folder) leaves both old files as they were (save_results).
 *
 * stdout: the patch counts, one line per epoch, and the validation confusion
 * matrix in the layout of the paper's Table 2. stderr: a progress bar within each
 * epoch when stderr is a terminal. The model file holds no timings, so the same
 * seed gives a byte-identical file; times go to the history CSV. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "dataset_opts.h"
#include "train_detect.h"
#include "lymphdet/checkpoint.h"
#include "lymphdet/metrics.h"
#include "lymphdet/model.h"
#include "lymphdet/outfile.h"
#include "lymphdet/train.h"

typedef struct {
    cli_progress bar;
    int epochs;
} progress_state;

static void on_step(void *user, int epoch, int step, int n_steps, double loss, double acc)
{
    progress_state *p = user;
    if (!p->bar.enabled || (step % 16 && step != n_steps)) return;
    char label[32], suffix[64];
    snprintf(label, sizeof label, "epoch %d/%d", epoch, p->epochs);
    snprintf(suffix, sizeof suffix, "loss %.4f acc %.4f", loss, acc);
    p->bar.label = label;
    p->bar.total = n_steps;
    cli_progress_update(&p->bar, step, suffix);
}

static void on_epoch(void *user, const ld_epoch_stats *s)
{
    progress_state *p = user;
    cli_progress_end(&p->bar);
    printf("epoch %2d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  %.2f s\n",
           s->epoch, p->epochs, s->train_loss, s->train_acc, s->val_loss, s->val_acc, s->seconds);
    fflush(stdout);
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

/* MODEL and MODEL.history.csv, so that a failure leaves the old pair: the model goes
 * to a side file first (complete, through its own temporary file), then the history
 * is committed, and only then is the model renamed into place. */
static ld_status save_results(const ld_model *m, const char *model_path, const ld_epoch_stats *h,
                              int n, ld_error *err)
{
    char hist_path[4200], side[4200];
    snprintf(hist_path, sizeof hist_path, "%s.history.csv", model_path);
    snprintf(side, sizeof side, "%s.tmp.model-%ld", model_path, (long)getpid());
    if (ld_model_save(m, side, err)) return err->status;
    if (write_history(hist_path, h, n, err)) {
        unlink(side);
        return err->status;
    }
    if (rename(side, model_path) != 0) {
        unlink(side);
        return ld_fail(err, LD_ERR_IO, "%s: cannot rename the new model into place: %s",
                       model_path, strerror(errno));
    }
    return LD_OK;
}

static void count_labels(const ld_patchset *ps, int *pos, int *neg)
{
    *pos = *neg = 0;
    for (int i = 0; i < ps->n; i++) {
        if (ps->label[i]) (*pos)++;
        else (*neg)++;
    }
}

static void print_table2(const ld_patch_metrics *pm)
{
    printf("validation confusion matrix (p > 0.5), laid out as the paper's Table 2:\n"
           "                          Actually Positive (1)  Actually Negative (0)\n"
           "  Predicted Positive (1)  %21ld  %21ld\n"
           "  Predicted Negative (0)  %21ld  %21ld\n"
           "accuracy %.4f  precision %.4f  recall %.4f  specificity %.4f\n"
           "F1 = Dice %.4f  paper \"DSC\" 2*sum(pred)/(sum(pred)+sum(y)) %.4f (no overlap term)\n",
           pm->tp, pm->fp, pm->fn, pm->tn, pm->accuracy, pm->precision, pm->recall,
           pm->specificity, pm->f1, pm->paper_dsc);
}

/* what a later reader of the model file needs to know about how it was made */
static ld_status record_training(ld_model *m, const dataset_opts *d, const ld_dataset *ds,
                                 const ld_train_config *tc, const ld_patch_metrics *pm,
                                 double val_loss, ld_error *err)
{
    int tp, tn, vp, vn;
    count_labels(&ds->train, &tp, &tn);
    count_labels(&ds->val, &vp, &vn);
    const char *protocol = d->val_labels ? "val-labels" : d->protocol;
    ld_status st = cli_meta_set(m, "protocol", err, "%s", protocol);
    if (!st && !d->val_labels && strcmp(d->protocol, "image") == 0)
        st = cli_meta_set(m, "group_by", err, "%s", ds->group_fields[0] ? ds->group_fields : "(each image)");
    if (!st) st = cli_meta_set(m, "val_fraction", err, "%g", d->val_fraction);
    if (!st) st = cli_meta_set(m, "patches_train", err, "%d (%d positive, %d negative)", ds->train.n, tp, tn);
    if (!st) st = cli_meta_set(m, "patches_val", err, "%d (%d positive, %d negative)", ds->val.n, vp, vn);
    if (!st) st = cli_meta_set(m, "margin", err, "%d", d->margin);
    if (!st) st = cli_meta_set(m, "negatives", err, "%d", d->negatives);
    if (!st) st = cli_meta_set(m, "epochs", err, "%d", tc->epochs);
    if (!st) st = cli_meta_set(m, "batch", err, "%d", tc->batch);
    if (!st) st = cli_meta_set(m, "optimizer", err, "adam (keras) lr %g beta1 %g beta2 %g eps %g",
                               tc->adam.lr, tc->adam.beta1, tc->adam.beta2, tc->adam.eps);
    if (!st) st = cli_meta_set(m, "seed", err, "%d", d->seed);
    if (!st && ds->val.n > 0) {
        st = cli_meta_set(m, "val_accuracy", err, "%.6f", pm->accuracy);
        if (!st) st = cli_meta_set(m, "val_loss", err, "%.6f", val_loss);
        if (!st) st = cli_meta_set(m, "val_confusion", err, "tp %ld fp %ld fn %ld tn %ld",
                                    pm->tp, pm->fp, pm->fn, pm->tn);
        if (!st) st = cli_meta_set(m, "val_f1", err, "%.6f", pm->f1);
    }
    return st;
}

/* Fresh weights from the seed, or the state of an interrupted run (--resume): its
 * weights, Adam state and history, after checking it belongs to this run. */
static ld_status start_or_resume(ld_model *m, ld_checkpoint *ck, const char *resume,
                                 uint64_t init_seed, const ld_train_config *tc,
                                 const ld_dataset *ds, ld_epoch_stats *hist, ld_error *err)
{
    if (!resume) {
        ld_model_init_weights(m, init_seed);
        return LD_OK;
    }
    if (ld_checkpoint_load(ck, m, resume, err) ||
        ld_checkpoint_check(ck, tc, &ds->train, &ds->val, resume, err))
        return err->status;
    memcpy(hist, ck->history, (size_t)ck->state.epochs_done * sizeof *hist);
    printf("resuming from %s: %d of %d epochs done\n", resume, ck->state.epochs_done,
           tc->epochs);
    fflush(stdout);
    return LD_OK;
}

int cmd_train(int argc, char **argv)
{
    static const char *cmd = "train";
    if (train_wants_detect(argc, argv)) return cmd_train_detect(argc, argv);
    dataset_opts d;
    const char *out = NULL, *preset = "paper", *checkpoint = NULL, *resume = NULL;
    int epochs = 20, batch = 5, quiet = 0;
    double lr = 1e-4, dropout = 0.25;
    dataset_opts_default(&d);
    cli_opt opts[DATASET_OPT_COUNT + 9];
    dataset_opts_table(opts, &d);
    cli_opt own[] = {
        {"out", OPT_STRING, &out, "MODEL", "model file to write (safetensors)", 1},
        {"preset", OPT_STRING, &preset, "P", "paper (Table 1, this page) or detect (the default; see train --help)", 0},
        {"epochs", OPT_INT, &epochs, "N", "training epochs", 0},
        {"batch", OPT_INT, &batch, "N", "mini-batch size", 0},
        {"lr", OPT_DOUBLE, &lr, "X", "Adam learning rate", 0},
        {"dropout", OPT_DOUBLE, &dropout, "X", "dropout rate after each block", 0},
        {"quiet", OPT_FLAG, &quiet, NULL, "no progress bar", 0},
        {"checkpoint", OPT_STRING, &checkpoint, "FILE",
         "after every epoch, save what --resume needs to FILE (atomically)", 0},
        {"resume", OPT_STRING, &resume, "FILE",
         "continue the run checkpointed in FILE (same data and options; "
         "checkpoints then go on to FILE unless --checkpoint says otherwise)", 0},
    };
    memcpy(opts + DATASET_OPT_COUNT, own, sizeof own);
    int rc = cli_parse(cmd, "--preset paper --images DIR --labels FILE --out MODEL [options]",
                       "Cuts the paper's patches (box crops with a margin, 3 flipped/rotated copies,\n"
                       "negative windows clear of every box), splits them for validation, trains the\n"
                       "paper's CNN and writes MODEL and MODEL.history.csv.",
                       opts, DATASET_OPT_COUNT + 9, argc, argv, NULL, 0, NULL);
    if (rc >= 0) return rc;
    if (strcmp(preset, "paper") != 0)
        return cli_usage_error(cmd, "--preset must be paper, not '%s'", preset);
    if (epochs < 1 || epochs > 100000 || batch < 1 || batch > 4096)
        return cli_usage_error(cmd, "--epochs must be in 1..100000 and --batch in 1..4096");
    if (!(lr > 0) || !(dropout >= 0 && dropout < 1))
        return cli_usage_error(cmd, "--lr must be positive and --dropout in [0, 1)");

    ld_labels labels, val_labels;
    ld_dataset ds;
    if ((rc = dataset_opts_build(cmd, &d, &labels, &val_labels, &ds))) return rc;
    int tp, tn, vp, vn;
    count_labels(&ds.train, &tp, &tn);
    count_labels(&ds.val, &vp, &vn);
    printf("patches: %d train, %d validation\n", ds.train.n, ds.val.n);
    printf("  train %d positive + %d negative; validation %d positive + %d negative\n",
           tp, tn, vp, vn);
    if (d.val_labels)
        printf("  validation set: %s\n", d.val_labels);
    else if (strcmp(d.protocol, "paper") == 0)
        printf("  protocol paper: Keras validation_split %.2f of shuffled patches "
               "(flipped copies of one node fall on both sides)\n", d.val_fraction);
    else
        printf("  protocol image: %d groups of images (by %s) split %.0f/%.0f before cutting\n",
               ds.n_groups, ds.group_fields[0] ? ds.group_fields : "image", 100 * (1 - d.val_fraction),
               100 * d.val_fraction);
    fflush(stdout);

    ld_arch arch;
    ld_arch_paper(&arch);
    arch.input_size = d.patch;
    arch.dropout = (float)dropout;
    ld_train_config tc;
    ld_train_config_default(&tc);
    tc.epochs = epochs;
    tc.batch = batch;
    tc.adam.lr = (float)lr;
    ld_rng seeds;   /* one stream per purpose, all from --seed */
    ld_rng_seed(&seeds, (uint64_t)d.seed);
    uint64_t init_seed = ld_rng_u64(&seeds);
    tc.seed = ld_rng_u64(&seeds);
    tc.checkpoint = checkpoint ? checkpoint : resume;

    ld_model m;
    ld_checkpoint ck = {0};
    ld_error err = {0};
    ld_epoch_stats *hist = calloc((size_t)epochs, sizeof *hist);
    float *probs = malloc(((size_t)ds.val.n + 1) * sizeof *probs);
    float *y = malloc(((size_t)ds.val.n + 1) * sizeof *y);
    progress_state ps = {{0}, epochs};
    cli_progress_start(&ps.bar, "", 0, quiet);
    ld_train_hooks hooks = {on_step, on_epoch, &ps};
    ld_patch_metrics pm = {0};
    double val_loss = NAN;
    rc = 0;
    if (!hist || !probs || !y) {
        fprintf(stderr, "lymphdet %s: out of memory\n", cmd);
        rc = 1;
    } else if (ld_model_init(&m, &arch, batch, &err)) {
        rc = cli_fail(cmd, &err);
    } else {
        if (start_or_resume(&m, &ck, resume, init_seed, &tc, &ds, hist, &err) ||
            ld_train_resume(&m, &ds.train, &ds.val, &tc, &hooks, hist,
                            resume ? &ck.state : NULL, &err) ||
            ld_patches_predict(&m, &ds.val, probs, &val_loss, &err)) {
            rc = cli_fail(cmd, &err);
        } else {
            for (int i = 0; i < ds.val.n; i++) y[i] = ds.val.label[i];
            ld_patch_metrics_compute(&pm, probs, y, ds.val.n, 0.5f);
            if (ds.val.n > 0) print_table2(&pm);
            if (record_training(&m, &d, &ds, &tc, &pm, val_loss, &err) ||
                save_results(&m, out, hist, epochs, &err))
                rc = cli_fail(cmd, &err);
            if (!rc) printf("wrote %s and %s.history.csv\n", out, out);
        }
        ld_model_free(&m);
    }
    ld_checkpoint_free(&ck);
    free(hist);
    free(probs);
    free(y);
    ld_dataset_free(&ds);
    ld_labels_free(&labels);
    ld_labels_free(&val_labels);
    return rc;
}
