/* layers.c — reference kernels of the paper's CNN (see include/lymphdet/layers.h).
 *
 * Plain loops, written for clarity first; inner loops run along contiguous rows so
 * the compiler can vectorise them, which keeps training the paper's network fast
 * enough without a second implementation. Batch sums use double accumulators (see
 * the header for why). */
#include <math.h>
#include <string.h>
#include "lymphdet/layers.h"
#include "lymphdet/model.h"

void ld_conv3x3_forward(float *restrict out, const float *restrict inp, const float *weight,
                        const float *bias, int n, int c, int f, int h, int w)
{
    int oh = h - 2, ow = w - 2;
    size_t in_plane = (size_t)h * w, out_plane = (size_t)oh * ow;
    for (int b = 0; b < n; b++) {
        for (int o = 0; o < f; o++) {
            float *op = out + ((size_t)b * f + o) * out_plane;          /* [oh, ow] */
            for (size_t k = 0; k < out_plane; k++) op[k] = bias[o];
            for (int ch = 0; ch < c; ch++) {
                const float *ip = inp + ((size_t)b * c + ch) * in_plane; /* [h, w] */
                const float *k9 = weight + ((size_t)o * c + ch) * 9;     /* [3, 3] */
                float w00 = k9[0], w01 = k9[1], w02 = k9[2], w10 = k9[3], w11 = k9[4],
                      w12 = k9[5], w20 = k9[6], w21 = k9[7], w22 = k9[8];
                for (int i = 0; i < oh; i++) {
                    float *orow = op + (size_t)i * ow;
                    const float *r0 = ip + (size_t)i * w, *r1 = r0 + w, *r2 = r1 + w;
                    /* all nine taps in one pass over the output row */
                    for (int j = 0; j < ow; j++)
                        orow[j] += w00 * r0[j] + w01 * r0[j + 1] + w02 * r0[j + 2]
                                 + w10 * r1[j] + w11 * r1[j + 1] + w12 * r1[j + 2]
                                 + w20 * r2[j] + w21 * r2[j + 1] + w22 * r2[j + 2];
                }
            }
        }
    }
}

void ld_conv3x3_backward(float *restrict dinp, float *dweight, float *dbias,
                         const float *restrict dout, const float *restrict inp,
                         const float *weight, int n, int c, int f, int h, int w)
{
    int oh = h - 2, ow = w - 2;
    size_t in_plane = (size_t)h * w, out_plane = (size_t)oh * ow;
    /* dbias[o] = sum over n, i, j of dout */
    for (int o = 0; dbias && o < f; o++) {
        double s = 0.0;
        for (int b = 0; b < n; b++) {
            const float *dp = dout + ((size_t)b * f + o) * out_plane;
            for (size_t k = 0; k < out_plane; k++) s += dp[k];
        }
        dbias[o] = (float)s;
    }
    /* dweight[o,ch,a,e] = sum over n, i, j of dout[n,o,i,j] * inp[n,ch,i+a,j+e]:
     * the nine taps are accumulated together, one output row at a time in float
     * (nine independent sums, <= a few hundred terms each), rows summed in double */
    for (int o = 0; o < f; o++) {
        for (int ch = 0; ch < c; ch++) {
            double acc[9] = {0};
            for (int b = 0; b < n; b++) {
                const float *dp = dout + ((size_t)b * f + o) * out_plane;
                const float *ip = inp + ((size_t)b * c + ch) * in_plane;
                for (int i = 0; i < oh; i++) {
                    const float *drow = dp + (size_t)i * ow;
                    const float *r0 = ip + (size_t)i * w, *r1 = r0 + w, *r2 = r1 + w;
                    float s00 = 0, s01 = 0, s02 = 0, s10 = 0, s11 = 0, s12 = 0, s20 = 0, s21 = 0, s22 = 0;
                    for (int j = 0; j < ow; j++) {
                        float d = drow[j];
                        s00 += d * r0[j]; s01 += d * r0[j + 1]; s02 += d * r0[j + 2];
                        s10 += d * r1[j]; s11 += d * r1[j + 1]; s12 += d * r1[j + 2];
                        s20 += d * r2[j]; s21 += d * r2[j + 1]; s22 += d * r2[j + 2];
                    }
                    acc[0] += s00; acc[1] += s01; acc[2] += s02;
                    acc[3] += s10; acc[4] += s11; acc[5] += s12;
                    acc[6] += s20; acc[7] += s21; acc[8] += s22;
                }
            }
            for (int k = 0; k < 9; k++) dweight[((size_t)o * c + ch) * 9 + k] = (float)acc[k];
        }
    }
    if (!dinp) return;
    /* dinp[n,ch,i+a,j+e] += weight[o,ch,a,e] * dout[n,o,i,j] (a full correlation) */
    memset(dinp, 0, (size_t)n * c * in_plane * sizeof *dinp);
    for (int b = 0; b < n; b++) {
        for (int ch = 0; ch < c; ch++) {
            float *ip = dinp + ((size_t)b * c + ch) * in_plane;
            for (int o = 0; o < f; o++) {
                const float *dp = dout + ((size_t)b * f + o) * out_plane;
                const float *wk = weight + ((size_t)o * c + ch) * 9;
                for (int i = 0; i < oh; i++) {
                    const float *drow = dp + (size_t)i * ow;
                    for (int a = 0; a < 3; a++) {
                        float *irow = ip + (size_t)(i + a) * w;
                        float w0 = wk[a * 3], w1 = wk[a * 3 + 1], w2 = wk[a * 3 + 2];
                        for (int j = 0; j < ow; j++) {
                            irow[j] += w0 * drow[j];
                            irow[j + 1] += w1 * drow[j];
                            irow[j + 2] += w2 * drow[j];
                        }
                    }
                }
            }
        }
    }
}

void ld_batchnorm_train_forward(float *out, float *xhat, float *mean, float *invstd,
                                float *run_mean, float *run_var, const float *inp,
                                const float *gamma, const float *beta, float eps,
                                float momentum, int n, int c, int hw)
{
    double m = (double)n * hw;
    for (int ch = 0; ch < c; ch++) {
        /* two passes in double: exact enough that the order of summation is irrelevant */
        double s = 0.0;
        for (int b = 0; b < n; b++) {
            const float *p = inp + ((size_t)b * c + ch) * hw;
            for (int k = 0; k < hw; k++) s += p[k];
        }
        double mu = s / m, ss = 0.0;
        for (int b = 0; b < n; b++) {
            const float *p = inp + ((size_t)b * c + ch) * hw;
            for (int k = 0; k < hw; k++) { double d = p[k] - mu; ss += d * d; }
        }
        double var = ss / m;
        float is = (float)(1.0 / sqrt(var + eps));
        float mu_f = (float)mu, g = gamma[ch], bt = beta[ch];
        for (int b = 0; b < n; b++) {
            size_t base = ((size_t)b * c + ch) * hw;
            for (int k = 0; k < hw; k++) {
                float xh = (inp[base + k] - mu_f) * is;
                xhat[base + k] = xh;
                out[base + k] = g * xh + bt;
            }
        }
        mean[ch] = mu_f;
        invstd[ch] = is;
        double unbiased = m > 1.0 ? var * m / (m - 1.0) : var;
        run_mean[ch] = (float)(momentum * (double)run_mean[ch] + (1.0 - momentum) * mu);
        run_var[ch] = (float)(momentum * (double)run_var[ch] + (1.0 - momentum) * unbiased);
    }
}

void ld_batchnorm_infer_forward(float *out, const float *inp, const float *gamma,
                                const float *beta, const float *run_mean, const float *run_var,
                                float eps, int n, int c, int hw)
{
    for (int ch = 0; ch < c; ch++) {
        float is = (float)(1.0 / sqrt((double)run_var[ch] + eps));
        float mu = run_mean[ch], g = gamma[ch], bt = beta[ch];
        for (int b = 0; b < n; b++) {
            size_t base = ((size_t)b * c + ch) * hw;
            for (int k = 0; k < hw; k++) out[base + k] = g * ((inp[base + k] - mu) * is) + bt;
        }
    }
}

void ld_batchnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                           const float *xhat, const float *gamma, const float *invstd,
                           int n, int c, int hw)
{
    double m = (double)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double sd = 0.0, sdx = 0.0;
        for (int b = 0; b < n; b++) {
            size_t base = ((size_t)b * c + ch) * hw;
            for (int k = 0; k < hw; k++) {
                sd += dout[base + k];
                sdx += (double)dout[base + k] * xhat[base + k];
            }
        }
        dbeta[ch] = (float)sd;
        dgamma[ch] = (float)sdx;
        double scale = gamma[ch] * (double)invstd[ch];
        double mean_d = sd / m, mean_dx = sdx / m;
        for (int b = 0; b < n; b++) {
            size_t base = ((size_t)b * c + ch) * hw;
            for (int k = 0; k < hw; k++)
                dinp[base + k] = (float)(scale * (dout[base + k] - mean_d - xhat[base + k] * mean_dx));
        }
    }
}

void ld_relu_forward(float *out, const float *inp, long count)
{
    for (long k = 0; k < count; k++) out[k] = inp[k] > 0.0f ? inp[k] : 0.0f;
}

void ld_relu_backward(float *dinp, const float *dout, const float *out, long count)
{
    for (long k = 0; k < count; k++) dinp[k] = out[k] > 0.0f ? dout[k] : 0.0f;
}

void ld_maxpool2_forward(float *out, int *argmax, const float *inp, int planes, int h, int w)
{
    int oh = h / 2, ow = w / 2;
    for (int p = 0; p < planes; p++) {
        const float *ip = inp + (size_t)p * h * w;
        float *op = out + (size_t)p * oh * ow;
        int *ap = argmax + (size_t)p * oh * ow;
        for (int i = 0; i < oh; i++) {
            for (int j = 0; j < ow; j++) {
                int best = 2 * i * w + 2 * j;
                const int cand[3] = {best + 1, best + w, best + w + 1};
                for (int k = 0; k < 3; k++)
                    if (ip[cand[k]] > ip[best]) best = cand[k];   /* strict: first max wins */
                op[i * ow + j] = ip[best];
                ap[i * ow + j] = best;
            }
        }
    }
}

void ld_maxpool2_backward(float *dinp, const float *dout, const int *argmax,
                          int planes, int h, int w)
{
    int oh = h / 2, ow = w / 2;
    memset(dinp, 0, (size_t)planes * h * w * sizeof *dinp);
    for (int p = 0; p < planes; p++) {
        float *ip = dinp + (size_t)p * h * w;
        const float *dp = dout + (size_t)p * oh * ow;
        const int *ap = argmax + (size_t)p * oh * ow;
        for (int k = 0; k < oh * ow; k++) ip[ap[k]] = dp[k];   /* windows never overlap */
    }
}

void ld_dropout_mask(float *mask, ld_rng *rng, float rate, long count)
{
    if (rate <= 0.0f) {
        for (long k = 0; k < count; k++) mask[k] = 1.0f;
        return;
    }
    float keep = 1.0f / (1.0f - rate);
    for (long k = 0; k < count; k++) mask[k] = ld_rng_float(rng) >= rate ? keep : 0.0f;
}

void ld_dropout_apply(float *out, const float *inp, const float *mask, long count)
{
    for (long k = 0; k < count; k++) out[k] = inp[k] * mask[k];
}

void ld_dense_forward(float *out, const float *inp, const float *weight, const float *bias,
                      int n, int d, int o)
{
    for (int b = 0; b < n; b++) {
        const float *x = inp + (size_t)b * d;
        for (int k = 0; k < o; k++) {
            const float *wr = weight + (size_t)k * d;
            double s = bias[k];
            for (int i = 0; i < d; i++) s += (double)wr[i] * x[i];
            out[(size_t)b * o + k] = (float)s;
        }
    }
}

void ld_dense_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                       const float *inp, const float *weight, int n, int d, int o)
{
    for (int k = 0; k < o; k++) {
        double sb = 0.0;
        for (int b = 0; b < n; b++) sb += dout[(size_t)b * o + k];
        dbias[k] = (float)sb;
        for (int i = 0; i < d; i++) {
            double s = 0.0;
            for (int b = 0; b < n; b++) s += (double)dout[(size_t)b * o + k] * inp[(size_t)b * d + i];
            dweight[(size_t)k * d + i] = (float)s;
        }
    }
    if (!dinp) return;
    for (int b = 0; b < n; b++) {
        for (int i = 0; i < d; i++) {
            double s = 0.0;
            for (int k = 0; k < o; k++) s += (double)dout[(size_t)b * o + k] * weight[(size_t)k * d + i];
            dinp[(size_t)b * d + i] = (float)s;
        }
    }
}

float ld_sigmoid(float z)
{
    if (z >= 0.0f) return 1.0f / (1.0f + expf(-z));
    float e = expf(z);   /* z < 0: exp(-z) could overflow, exp(z) cannot */
    return e / (1.0f + e);
}

/* TensorFlow's sigmoid_cross_entropy_with_logits, which Keras uses for a sigmoid
 * output: max(z, 0) - z * y + log1p(exp(-|z|)). */
float ld_bce_logits(float *dlogits, const float *logits, const float *y, int n)
{
    double s = 0.0;
    for (int i = 0; i < n; i++) {
        double z = logits[i];
        s += (z > 0.0 ? z : 0.0) - z * y[i] + log1p(exp(-fabs(z)));
        if (dlogits) dlogits[i] = (ld_sigmoid(logits[i]) - y[i]) / (float)n;
    }
    return n > 0 ? (float)(s / n) : 0.0f;
}
