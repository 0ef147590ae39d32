/* layers.h — reference kernels for every layer of the paper's CNN (llm.c style).
 *
 * Each layer is a plain forward/backward pair on float arrays, NCHW layout, with
 * outputs first, then inputs, then sizes. These are the definitions the model is
 * built from and the kernels the finite-difference and PyTorch golden tests check;
 * faster kernels elsewhere are tested against them.
 *
 * Conventions shared by every kernel:
 * - backward functions OVERWRITE their outputs (dinp, dweight, dbias): they never
 *   accumulate into what was there, so callers need not zero gradient buffers;
 * - sums over a batch (conv and dense weight gradients, BN statistics and the BN
 *   backward's per-element arithmetic, dense dot products) are accumulated in
 *   double (the conv weight gradient: float per output row, double across rows), so
 *   results stay within a few float roundings of the exact value whatever the
 *   summation order: the C library follows an exact (float64) PyTorch reference
 *   to <= 4e-7 through ten Adam steps (tests/test_model.c);
 * - sizes are ints: the model validates its shapes before calling (ld_arch_validate).
 * Semantics are Keras's (SPEC §2.7); each function cites the definition it follows. */
#ifndef LYMPHDET_LAYERS_H
#define LYMPHDET_LAYERS_H

#include "lymphdet/rng.h"

/* 3x3 valid cross-correlation with bias (Keras Conv2D / torch conv2d: no kernel flip):
 *   out[n,f,i,j] = bias[f] + sum_{c,a,b} weight[f,c,a,b] * inp[n,c,i+a,j+b]
 * out [n, f, h-2, w-2], inp [n, c, h, w], weight [f, c, 3, 3], bias [f]; h, w >= 3;
 * out must not overlap inp. */
void ld_conv3x3_forward(float *restrict out, const float *restrict inp, const float *weight,
                        const float *bias, int n, int c, int f, int h, int w);
/* dinp [n, c, h, w] (may be NULL: the first layer's input gradient is never needed),
 * dweight [f, c, 3, 3], dbias [f] (may be NULL: skipped); dout [n, f, h-2, w-2];
 * inp, weight as in forward; dinp must not overlap dout or inp. */
void ld_conv3x3_backward(float *restrict dinp, float *dweight, float *dbias,
                         const float *restrict dout, const float *restrict inp,
                         const float *weight, int n, int c, int f, int h, int w);

/* Batch normalisation over n*h*w per channel, training mode (Keras fused kernel):
 *   mean = avg x, var = avg (x - mean)^2 (biased), invstd = 1 / sqrt(var + eps)
 *   xhat = (x - mean) * invstd, out = gamma * xhat + beta
 * and the moving statistics, with m = n*h*w (Keras 2 feeds the UNBIASED variance):
 *   run_mean = momentum * run_mean + (1 - momentum) * mean
 *   run_var  = momentum * run_var  + (1 - momentum) * var * m / (m - 1)   (var if m == 1)
 * out, xhat [n, c, h, w]; mean, invstd [c] (saved for backward); run_mean, run_var [c]
 * updated in place; inp [n, c, h, w]; gamma, beta [c]. */
void ld_batchnorm_train_forward(float *out, float *xhat, float *mean, float *invstd,
                                float *run_mean, float *run_var, const float *inp,
                                const float *gamma, const float *beta, float eps,
                                float momentum, int n, int c, int hw);
/* Inference: out = gamma * (x - run_mean) / sqrt(run_var + eps) + beta. */
void ld_batchnorm_infer_forward(float *out, const float *inp, const float *gamma,
                                const float *beta, const float *run_mean, const float *run_var,
                                float eps, int n, int c, int hw);
/* Backward of the training forward (m = n*h*w):
 *   dbeta = sum dout, dgamma = sum dout * xhat,
 *   dinp = gamma * invstd * (dout - dbeta / m - xhat * dgamma / m)   (in double)
 * dinp [n, c, h, w] (may alias dout); dgamma, dbeta [c]; dout, xhat [n, c, h, w];
 * gamma, invstd [c]. */
void ld_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                           const float *xhat, const float *gamma, const float *invstd,
                           int n, int c, int hw);

/* out = max(inp, 0); out, inp [count] (may alias). */
void ld_relu_forward(float *out, const float *inp, long count);
/* dinp = dout where out > 0, else 0 (the derivative at 0 is taken as 0, like Keras
 * and torch); dinp, dout, out [count] (dinp may alias dout). */
void ld_relu_backward(float *dinp, const float *dout, const float *out, long count);

/* 2x2 max-pool, stride 2, floor (Keras "valid"): out is (h/2) x (w/2); an odd last
 * row/column never reaches the output. argmax[k] is the index of the winning
 * element inside its own h x w input plane. Ties: the FIRST maximum in row-major
 * window order (top-left, top-right, bottom-left, bottom-right) wins, because later
 * elements replace the running maximum only when strictly greater.
 * out, argmax [planes, h/2, w/2]; inp [planes, h, w]; planes = n * c. */
void ld_maxpool2_forward(float *out, int *argmax, const float *inp, int planes, int h, int w);
/* dinp [planes, h, w]: dout routed to the winners, 0 elsewhere. */
void ld_maxpool2_backward(float *dinp, const float *dout, const int *argmax,
                          int planes, int h, int w);

/* Inverted dropout mask (Keras / torch): each element is kept with probability
 * 1 - rate, drawing u = ld_rng_float and keeping when u >= rate; a kept element is
 * 1 / (1 - rate), a dropped one 0. rate 0 gives all ones and draws nothing.
 * mask [count]; 0 <= rate < 1. */
void ld_dropout_mask(float *mask, ld_rng *rng, float rate, long count);
/* out = inp * mask (dropout forward) and dinp = dout * mask (its backward: the same
 * operation); out, inp, mask [count] (out may alias inp). */
void ld_dropout_apply(float *out, const float *inp, const float *mask, long count);

/* Fully connected: out[n,o] = bias[o] + sum_d weight[o,d] * inp[n,d]
 * out [n, o], inp [n, d], weight [o, d] (torch Linear layout), bias [o]. */
void ld_dense_forward(float *out, const float *inp, const float *weight, const float *bias,
                      int n, int d, int o);
/* dinp [n, d] (may be NULL), dweight [o, d], dbias [o]; dout [n, o]. */
void ld_dense_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                       const float *inp, const float *weight, int n, int d, int o);

/* Numerically stable logistic function, 1 / (1 + exp(-z)), never overflowing. */
float ld_sigmoid(float z);

/* The binary cross-entropy from logits is ld_bce_logits in model.h (defined in layers.c). */

#endif
