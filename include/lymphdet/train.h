/* train.h — training the patch classifier as the paper did (Keras fit):
 * mini-batches of `batch` patches in an order reshuffled every epoch (the last,
 * partial batch is kept: 1562 patches -> 313 steps), Keras Adam, and after each
 * epoch the validation loss and accuracy in inference mode.
 *
 * Reported like Keras: train_loss and train_acc are the means over the epoch's
 * batches weighted by batch size, from the training-mode outputs (dropout on,
 * batch statistics) as the weights changed; val_* use the model at the end of
 * the epoch. Accuracy counts p > 0.5 (strict) as positive. */
#ifndef LYMPHDET_TRAIN_H
#define LYMPHDET_TRAIN_H

#include <stdint.h>
#include "lymphdet/error.h"
#include "lymphdet/model.h"
#include "lymphdet/patches.h"
#include "lymphdet/rng.h"

typedef struct {
    int epochs;              /* 20 */
    int batch;               /* 5 */
    ld_adam_config adam;     /* Keras defaults, lr 1e-4 */
    uint64_t seed;           /* epoch shuffles and dropout masks */
    const char *checkpoint;  /* NULL, or a file rewritten atomically after every epoch
                                with everything needed to resume (checkpoint.h) */
} ld_train_config;

/* Where a run stands between two epochs: with the model's weights and Adam moments
 * (held by the ld_model), this is all that training carries from one epoch to the
 * next, so continuing from it gives bit for bit what an uninterrupted run gives. */
typedef struct {
    int epochs_done;         /* history[0..epochs_done) are filled */
    ld_rng rng;              /* the shuffle and dropout stream after those epochs */
    int *order;              /* [n_order] the training order, reshuffled in place each epoch */
    int n_order;             /* the number of training patches */
} ld_train_state;

typedef struct {
    int epoch;               /* 1-based */
    double train_loss, train_acc;
    double val_loss, val_acc; /* NaN when there is no validation set */
    double seconds;          /* wall time of the epoch, validation included */
} ld_epoch_stats;

typedef struct {
    /* after every step: mean loss and accuracy of the epoch so far */
    void (*on_step)(void *user, int epoch, int step, int n_steps, double loss, double acc);
    /* after every epoch */
    void (*on_epoch)(void *user, const ld_epoch_stats *stats);
    void *user;
} ld_train_hooks;

void ld_train_config_default(ld_train_config *cfg);

/* Trains m (already initialised, batch_cap >= cfg->batch) on `train`, validating
 * on `val` (may be empty) after each epoch; history[cfg->epochs] receives the
 * epochs' figures. Allocates its batch buffers once. */
ld_status ld_train(ld_model *m, const ld_patchset *train, const ld_patchset *val,
                   const ld_train_config *cfg, const ld_train_hooks *hooks,
                   ld_epoch_stats *history, ld_error *err);
/* The same, continuing from `from` (NULL: from the start, as ld_train): m holds the
 * weights and Adam state after from->epochs_done epochs and history[0..epochs_done)
 * their figures (ld_checkpoint_load gives all three); epochs epochs_done+1 ..
 * cfg->epochs are run. With cfg->checkpoint set, a failure to write it ends training
 * with that error (a run that was asked to be resumable and is not should say so). */
ld_status ld_train_resume(ld_model *m, const ld_patchset *train, const ld_patchset *val,
                          const ld_train_config *cfg, const ld_train_hooks *hooks,
                          ld_epoch_stats *history, const ld_train_state *from, ld_error *err);

/* Inference over a whole patch set: probs[ps->n] and, if non-NULL, the mean BCE
 * loss against the patch labels (from the logits, as in training). */
ld_status ld_patches_predict(ld_model *m, const ld_patchset *ps, float *probs, double *loss,
                             ld_error *err);

#endif
