/* model.h — the paper's CNN (Taciuc et al. 2025, Table 1) and its training step.
 *
 * The network is described by an ld_arch, so the paper's network is the default
 * preset and a variant is another description, not other code:
 *
 *   input [n, C, S, S]                           C = in_channels (3), S = input_size (100)
 *   block k = 0..n_blocks-1, F = filters[k]:
 *     conv 3x3 valid, bias        [n, F, s-2, s-2]     (cross-correlation, no flip)
 *     batch norm                  (Keras: eps 1e-3, momentum 0.99)
 *     relu
 *     max-pool 2x2 stride 2       [n, F, (s-2)/2, (s-2)/2]  (floor)
 *     dropout (inverted, rate)    identity at inference
 *   flatten (C,H,W order)         [n, F_last * s_out * s_out]
 *   dense -> 1 logit              [n]        probability = sigmoid(logit)
 *   box -> 4 offsets              [n, 4]     detection preset only (arch.box_head),
 *                                            after dense in the state dict
 *
 * For the paper: 100 -> 98 -> 49 -> 47 -> 23 -> 21 -> 10; 800 dense inputs;
 * 1421 parameters, 1389 trainable (the BN moving mean/variance are not).
 *
 * Memory: parameters, gradients, Adam moments and activations are each ONE
 * allocation made by ld_model_init; forward/backward/adam never allocate. The
 * parameter buffer holds the tensors in PyTorch state-dict order (see `tensors`),
 * so the model file is that buffer with a header. */
#ifndef LYMPHDET_MODEL_H
#define LYMPHDET_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "lymphdet/error.h"
#include "lymphdet/rng.h"

#define LD_MAX_BLOCKS 6
#define LD_MAX_TENSORS (6 * LD_MAX_BLOCKS + 4)
#define LD_MAX_META 64

typedef struct {
    char preset[16];            /* "paper" */
    int input_size;             /* S: 100 */
    int in_channels;            /* C: 3 */
    int n_blocks;               /* 3 */
    int filters[LD_MAX_BLOCKS]; /* 4, 4, 8 */
    float dropout;              /* rate, 0.25 (the paper gives none) */
    float bn_eps;               /* 1e-3 (Keras) */
    float bn_momentum;          /* 0.99 (Keras convention: m = 0.99 m + 0.01 batch) */
    int box_head;               /* 0 (paper), or 4: a second dense head over the same
                                   D inputs, box.weight [4, D] + box.bias [4], giving
                                   the window's box offsets (tx, ty, tw, th); see
                                   dettrain.h. Not used by forward/backward/predict. */
    int anchor;                 /* with a box head: the side of the square box ("anchor")
                                   centred in each window that its offsets refine;
                                   0 means the window itself (S). Smaller than S, the
                                   window sees context around the box it judges. */
} ld_arch;

typedef struct {
    char name[32];              /* PyTorch state-dict name, e.g. "conv1.weight" */
    int ndim;
    int shape[4];
    size_t offset;              /* in floats, into params/grads/adam_m/adam_v */
    size_t numel;
    int trainable;              /* 0 for bn running_mean / running_var */
} ld_tensor;

typedef struct {
    float *conv_w;              /* [F, Cin, 3, 3] */
    float *conv_b;              /* [F] */
    float *bn_gamma;            /* [F] */
    float *bn_beta;             /* [F] */
    float *bn_mean;             /* [F] moving mean (not trainable) */
    float *bn_var;              /* [F] moving variance (not trainable) */
} ld_block_params;

typedef struct {
    float lr;       /* 1e-4 */
    float beta1;    /* 0.9 */
    float beta2;    /* 0.999 */
    float eps;      /* 1e-7 (Keras), added to sqrt(v), outside the bias correction */
} ld_adam_config;

typedef struct ld_acts ld_acts;   /* activation layout: private to model.c */

typedef struct {
    ld_arch arch;
    int n_tensors;
    ld_tensor tensors[LD_MAX_TENSORS];
    size_t n_params;            /* all floats, trainable or not */
    size_t n_trainable;
    float *params;              /* [n_params], state-dict order */
    float *grads;               /* [n_params], same layout; zero for non-trainable */
    float *adam_m, *adam_v;     /* [n_params] Adam moments */
    long adam_t;                /* Adam steps taken (t in the bias correction) */
    ld_block_params p[LD_MAX_BLOCKS];   /* views into params */
    ld_block_params g[LD_MAX_BLOCKS];   /* views into grads */
    float *dense_w, *dense_b;   /* [1, D], [1]; D = F_last * s_out * s_out */
    float *ddense_w, *ddense_b;
    float *box_w, *box_b;       /* [4, D], [4] when arch.box_head, else NULL */
    float *dbox_w, *dbox_b;
    int batch_cap;              /* largest n forward/backward accept */
    ld_acts *acts;              /* one allocation, sized for batch_cap */
    int n_meta;                 /* free-form metadata stored in the model file */
    char *meta_key[LD_MAX_META];
    char *meta_value[LD_MAX_META];
} ld_model;

void ld_arch_paper(ld_arch *arch);
/* The detection preset (docs/detection.md): a window of 64 px, 4 blocks
 * (4, 8, 16, 16 filters, stride 16 between windows), no dropout, and the box head;
 * trained densely on whole frames by dettrain.h, not by ld_train. */
void ld_arch_detect(ld_arch *arch);
void ld_adam_default(ld_adam_config *cfg);
/* spatial size after block k (k = n_blocks-1: the dense layer's input side) */
int  ld_arch_block_out(const ld_arch *arch, int k);
/* Checks sizes are positive and the last block's output is at least 1x1. */
ld_status ld_arch_validate(const ld_arch *arch, ld_error *err);

/* Allocates everything for `arch` and batches up to batch_cap; weights are set by
 * ld_model_init_weights (or a loader). On failure nothing is left allocated. */
ld_status ld_model_init(ld_model *m, const ld_arch *arch, int batch_cap, ld_error *err);
void      ld_model_free(ld_model *m);
/* Keras initialisation with a seed: Glorot-uniform conv and dense weights
 * (limit sqrt(6 / (fan_in + fan_out)), conv fan = channels * 3 * 3), zero biases,
 * gamma 1, beta 0, moving mean 0, moving variance 1; Adam state reset. */
void      ld_model_init_weights(ld_model *m, uint64_t seed);
/* Tensor by state-dict name, or NULL. */
const ld_tensor *ld_model_tensor(const ld_model *m, const char *name);

/* Forward pass on x[n, C, S, S] (n <= batch_cap) writing logits[n].
 * training = 0: BN uses the moving statistics, dropout is the identity.
 * training = 1: BN uses batch statistics and updates the moving ones; dropout
 *   masks are drawn from rng, or, when rng is NULL, taken as they are from the
 *   buffers ld_model_dropout_mask returns (tests inject PyTorch's masks). */
void ld_model_forward(ld_model *m, const float *x, int n, int training, ld_rng *rng,
                      float *logits);
/* Dropout mask of block k for the current batch: [n, F, s, s] values 0 or 1/(1-rate). */
float *ld_model_dropout_mask(ld_model *m, int k);
/* Mean binary cross-entropy from logits, as Keras computes it for a sigmoid output:
 * max(z,0) - z*y + log(1 + exp(-|z|)); dlogits[i] = (sigmoid(z_i) - y_i) / n. */
float ld_bce_logits(float *dlogits, const float *logits, const float *y, int n);
/* Backward pass of the last training forward; writes m->grads (overwrites). */
void ld_model_backward(ld_model *m, const float *dlogits, int n);
/* One Keras Adam step on the trainable tensors (t counts from 1). */
void ld_model_adam(ld_model *m, const ld_adam_config *cfg);
/* forward(training) + loss + backward + adam; returns the batch's mean loss and,
 * if logits is non-NULL, writes the training-mode logits[n]. */
float ld_model_train_step(ld_model *m, const float *x, const float *y, int n,
                          const ld_adam_config *cfg, ld_rng *rng, float *logits);
/* Inference probabilities for any n (processed in chunks of batch_cap). */
void ld_model_predict(ld_model *m, const float *x, int n, float *probs);

/* Kernels behind forward/backward/predict: "auto" (the default, also NULL: the
 * fastest this CPU runs), "avx512", "avx2" or "generic" (the SIMD kernels), or
 * "reference" (the plain kernels of layers.h, which the others are tested against).
 * LD_ERR_USAGE when the name is unknown or this CPU cannot run it. */
ld_status   ld_model_set_kernels(ld_model *m, const char *name, ld_error *err);
const char *ld_model_kernels(const ld_model *m);
/* Threads that forward/backward/predict use (default 1; 1..256). Results are the
 * same, bit for bit, for any number of threads. The reference kernels ignore it. */
ld_status   ld_model_set_threads(ld_model *m, int threads, ld_error *err);
int         ld_model_threads(const ld_model *m);

/* Metadata (strings) kept with the model and written to the file's __metadata__. */
ld_status   ld_model_meta_set(ld_model *m, const char *key, const char *value, ld_error *err);
const char *ld_model_meta_get(const ld_model *m, const char *key);

/* Model file: safetensors with PyTorch state-dict names and shapes (SPEC §5).
 * Saving goes through a temporary file and rename. Loading validates everything
 * (header bounds, JSON, dtype, names, shapes, offsets, length, finite values)
 * before trusting it, then ld_model_init's the architecture found in the
 * metadata with the given batch_cap. */
ld_status ld_model_save(const ld_model *m, const char *path, ld_error *err);
ld_status ld_model_load(ld_model *m, const char *path, int batch_cap, ld_error *err);

#endif
