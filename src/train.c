/* train.c — the training loop (see train.h).
 *
 * Everything one epoch hands to the next is the model (weights, BN moving statistics,
 * Adam moments and step) plus an ld_train_state (the random stream and the training
 * order, which each epoch reshuffles in place). Keeping exactly that explicit is what
 * makes a checkpoint after any epoch enough to continue bit for bit (checkpoint.h). */
#include <math.h>
#include <string.h>
#include <time.h>
#include "alloc.h"
#include "lymphdet/checkpoint.h"
#include "lymphdet/train.h"

void ld_train_config_default(ld_train_config *cfg)
{
    cfg->epochs = 20;
    cfg->batch = 5;
    ld_adam_default(&cfg->adam);
    cfg->seed = 1;
    cfg->checkpoint = NULL;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float sigmoidf(float z) { return 1.0f / (1.0f + expf(-z)); }

/* number of logits[0..n) whose probability is on the side of its label (p > 0.5 is 1) */
static int n_correct(const float *logits, const float *y, int n)
{
    int c = 0;
    for (int i = 0; i < n; i++) c += (sigmoidf(logits[i]) > 0.5f) == (y[i] > 0.5f);
    return c;
}

ld_status ld_patches_predict(ld_model *m, const ld_patchset *ps, float *probs, double *loss,
                             ld_error *err)
{
    int chunk = m->batch_cap, s = ps->size;
    size_t in = (size_t)3 * s * s;
    float *x = ld_alloc((size_t)chunk * in, sizeof *x, "a batch", err);   /* [chunk, 3, s, s] */
    float *scratch = ld_alloc((size_t)chunk * 3, sizeof *scratch, "a batch", err);
    int *idx = ld_alloc((size_t)chunk, sizeof *idx, "a batch", err);
    if (!x || !scratch || !idx) {
        ld_free(x); ld_free(scratch); ld_free(idx);
        return LD_ERR_NOMEM;
    }
    float *logits = scratch, *y = scratch + chunk, *dl = scratch + 2 * chunk;
    double sum = 0;
    for (int b = 0; b < ps->n; b += chunk) {
        int nb = ps->n - b < chunk ? ps->n - b : chunk;
        for (int k = 0; k < nb; k++) idx[k] = b + k;
        ld_patches_batch(x, y, ps, idx, nb);
        ld_model_forward(m, x, nb, 0, NULL, logits);
        sum += (double)ld_bce_logits(dl, logits, y, nb) * nb;
        for (int k = 0; k < nb; k++) probs[b + k] = sigmoidf(logits[k]);
    }
    if (loss) *loss = ps->n ? sum / ps->n : NAN;
    ld_free(x); ld_free(scratch); ld_free(idx);
    return LD_OK;
}

ld_status ld_train(ld_model *m, const ld_patchset *train, const ld_patchset *val,
                   const ld_train_config *cfg, const ld_train_hooks *hooks,
                   ld_epoch_stats *history, ld_error *err)
{
    return ld_train_resume(m, train, val, cfg, hooks, history, NULL, err);
}

ld_status ld_train_resume(ld_model *m, const ld_patchset *train, const ld_patchset *val,
                          const ld_train_config *cfg, const ld_train_hooks *hooks,
                          ld_epoch_stats *history, const ld_train_state *from, ld_error *err)
{
    if (cfg->batch < 1 || cfg->batch > m->batch_cap)
        return ld_fail(err, LD_ERR_USAGE, "batch size %d is not in 1..%d", cfg->batch, m->batch_cap);
    if (train->n < 1) return ld_fail(err, LD_ERR_INPUT, "no training patches");
    if (train->size != m->arch.input_size)
        return ld_fail(err, LD_ERR_USAGE, "patches are %dx%d but the network takes %dx%d",
                       train->size, train->size, m->arch.input_size, m->arch.input_size);
    if (from && (from->n_order != train->n || from->epochs_done < 0 ||
                 from->epochs_done > cfg->epochs))
        return ld_fail(err, LD_ERR_USAGE, "resuming after %d epochs on %d patches, but this "
                       "run has %d epochs on %d patches", from->epochs_done, from->n_order,
                       cfg->epochs, train->n);
    int s = train->size, B = cfg->batch, n = train->n, n_val = val ? val->n : 0;
    int n_steps = (n + B - 1) / B;
    size_t in = (size_t)3 * s * s;
    float *x = ld_alloc((size_t)B * in, sizeof *x, "a training batch", err);   /* [B, 3, s, s] */
    float *ylog = ld_alloc((size_t)2 * B, sizeof *ylog, "a training batch", err);
    int *order = ld_alloc((size_t)n, sizeof *order, "the training order", err);
    float *probs = ld_alloc((size_t)n_val, sizeof *probs, "validation outputs", err);
    ld_status st = x && ylog && order && probs ? LD_OK : LD_ERR_NOMEM;
    float *y = ylog, *logits = ylog ? ylog + B : NULL;   /* [B] each */
    ld_train_state state = {0, {{0}}, order, n};
    if (from) {
        state.epochs_done = from->epochs_done;
        state.rng = from->rng;
        if (order) memcpy(order, from->order, (size_t)n * sizeof *order);
    } else {
        ld_rng_seed(&state.rng, cfg->seed);
        for (int i = 0; order && i < n; i++) order[i] = i;
    }
    uint64_t fingerprint = cfg->checkpoint && !st ? ld_patches_fingerprint(train, val) : 0;

    for (int e = state.epochs_done; !st && e < cfg->epochs; e++) {
        double t0 = now_seconds(), loss_sum = 0;
        long correct = 0;
        ld_rng_shuffle(&state.rng, order, n);
        for (int step = 0; step < n_steps; step++) {
            int b = step * B, nb = n - b < B ? n - b : B;
            ld_patches_batch(x, y, train, order + b, nb);
            float loss = ld_model_train_step(m, x, y, nb, &cfg->adam, &state.rng, logits);
            loss_sum += (double)loss * nb;
            correct += n_correct(logits, y, nb);
            if (hooks && hooks->on_step)
                hooks->on_step(hooks->user, e + 1, step + 1, n_steps, loss_sum / (b + nb),
                               (double)correct / (b + nb));
        }
        ld_epoch_stats *h = &history[e];
        h->epoch = e + 1;
        h->train_loss = loss_sum / n;
        h->train_acc = (double)correct / n;
        h->val_loss = h->val_acc = NAN;
        if (n_val > 0) {
            st = ld_patches_predict(m, val, probs, &h->val_loss, err);
            long ok = 0;
            for (int i = 0; i < n_val; i++) ok += (probs[i] > 0.5f) == (val->label[i] != 0);
            h->val_acc = (double)ok / n_val;
        }
        h->seconds = now_seconds() - t0;
        state.epochs_done = e + 1;
        if (!st && cfg->checkpoint)
            st = ld_checkpoint_save(cfg->checkpoint, m, cfg, &state, history, fingerprint, n_val,
                                    err);
        if (!st && hooks && hooks->on_epoch) hooks->on_epoch(hooks->user, h);
    }
    ld_free(x);
    ld_free(ylog);
    ld_free(order);
    ld_free(probs);
    return st;
}
