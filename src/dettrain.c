/* dettrain.c — dense, IoU-labelled, multi-scale training of the detection preset
 * (dettrain.h states the method; docs/detection.md the experiments behind it).
 *
 * Pieces, in file order: the head convolution (the dense and box layers run at
 * every window), the losses (focal / hard-negative-mined cross-entropy, smooth-L1),
 * box coding and window labelling, the frame set, the trainer (a fully-
 * convolutional training forward/backward over a batch of crops built from the
 * reference kernels of layers.h on a model's own parameter and gradient buffers),
 * the crop sampler, and the training loop. Evaluation and tuning are in deteval.c.
 *
 * Conv 1 on a grey plane: the network's C input channels are equal, so
 * conv1(x) = conv over one plane with the kernel summed over channels, and the
 * gradient of every channel's kernel equals the summed kernel's gradient. That is
 * exact, and a third of conv 1's work (the largest layer at full resolution).
 * Conv biases get an exactly zero gradient, as in model.c (batch norm follows). */
#include <assert.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include "alloc.h"
#include "lymphdet/dettrain.h"
#include "lymphdet/layers.h"

/* ---- head convolution ------------------------------------------------------- */

void ld_headconv_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int n, int c, int o, int h, int w, int k)
{
    int oh = h - k + 1, ow = w - k + 1;
    for (int b = 0; b < n; b++)
        for (int q = 0; q < o; q++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++) {
                    double s = bias[q];
                    for (int ch = 0; ch < c; ch++) {
                        const float *ip = inp + (((size_t)b * c + ch) * h + i) * w + j;
                        const float *wp = weight + ((size_t)q * c + ch) * k * k;
                        for (int u = 0; u < k; u++)
                            for (int v = 0; v < k; v++)
                                s += (double)wp[u * k + v] * ip[(size_t)u * w + v];
                    }
                    out[(((size_t)b * o + q) * oh + i) * ow + j] = (float)s;
                }
}

void ld_headconv_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight,
                          int n, int c, int o, int h, int w, int k)
{
    int oh = h - k + 1, ow = w - k + 1;
    size_t plane = (size_t)oh * ow;
    for (int q = 0; q < o; q++) {
        double sb = 0;
        for (int b = 0; b < n; b++) {
            const float *dp = dout + ((size_t)b * o + q) * plane;
            for (size_t t = 0; t < plane; t++) sb += dp[t];
        }
        dbias[q] = (float)sb;
        for (int ch = 0; ch < c; ch++)
            for (int u = 0; u < k; u++)
                for (int v = 0; v < k; v++) {
                    double s = 0;
                    for (int b = 0; b < n; b++) {
                        const float *dp = dout + ((size_t)b * o + q) * plane;
                        const float *ip = inp + ((size_t)b * c + ch) * h * w;
                        for (int i = 0; i < oh; i++)
                            for (int j = 0; j < ow; j++)
                                s += (double)dp[(size_t)i * ow + j] *
                                     ip[(size_t)(i + u) * w + j + v];
                    }
                    dweight[(((size_t)q * c + ch) * k + u) * k + v] = (float)s;
                }
    }
    if (!dinp) return;
    /* dinp[b,ch,y,x] = sum over q, u, v of weight[q,ch,u,v] dout[b,q,y-u,x-v] */
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    double s = 0;
                    for (int q = 0; q < o; q++) {
                        const float *dp = dout + ((size_t)b * o + q) * plane;
                        const float *wp = weight + ((size_t)q * c + ch) * k * k;
                        for (int u = 0; u < k; u++) {
                            int i = y - u;
                            if (i < 0 || i >= oh) continue;
                            for (int v = 0; v < k; v++) {
                                int j = x - v;
                                if (j >= 0 && j < ow) s += (double)wp[u * k + v] * dp[(size_t)i * ow + j];
                            }
                        }
                    }
                    dinp[(((size_t)b * c + ch) * h + y) * w + x] = (float)s;
                }
}

/* ---- conv backward for whole crops ------------------------------------------- */

#define LANES 8

/* y += a x over n floats (a function of its own, so that restrict lets it vectorise) */
static void axpy(float *restrict y, const float *restrict x, float a, int n)
{
    for (int j = 0; j < n; j++) y[j] += a * x[j];
}

void ld_conv3x3_backward_rows(float *restrict dinp, float *dweight, const float *restrict dout,
                              const float *restrict inp, const float *weight,
                              int n, int c, int f, int h, int w)
{
    int oh = h - 2, ow = w - 2, full = ow / LANES * LANES;
    size_t in_plane = (size_t)h * w, out_plane = (size_t)oh * ow;
    for (int o = 0; o < f; o++)
        for (int ch = 0; ch < c; ch++) {
            double acc[9] = {0};
            for (int b = 0; b < n; b++) {
                const float *dp = dout + ((size_t)b * f + o) * out_plane;
                const float *ip = inp + ((size_t)b * c + ch) * in_plane;
                for (int i = 0; i < oh; i++) {
                    const float *d = dp + (size_t)i * ow;
                    /* nine sums over the row in LANES independent partial sums each, so
                     * that the loop vectorises without reassociating a float sum */
                    float part[9][LANES] = {{0}};
                    for (int a = 0; a < 3; a++) {
                        const float *r = ip + (size_t)(i + a) * w;
                        for (int j = 0; j < full; j += LANES)
                            for (int t = 0; t < LANES; t++) {
                                float dv = d[j + t];
                                part[3 * a][t] += dv * r[j + t];
                                part[3 * a + 1][t] += dv * r[j + t + 1];
                                part[3 * a + 2][t] += dv * r[j + t + 2];
                            }
                        for (int j = full; j < ow; j++) {
                            part[3 * a][0] += d[j] * r[j];
                            part[3 * a + 1][0] += d[j] * r[j + 1];
                            part[3 * a + 2][0] += d[j] * r[j + 2];
                        }
                    }
                    for (int q = 0; q < 9; q++) {
                        float s = 0;
                        for (int t = 0; t < LANES; t++) s += part[q][t];
                        acc[q] += s;
                    }
                }
            }
            for (int q = 0; q < 9; q++) dweight[((size_t)o * c + ch) * 9 + q] = (float)acc[q];
        }
    if (!dinp) return;
    /* dinp[ch, i + a, j + e] += weight[o, ch, a, e] dout[o, i, j]: one axpy per tap */
    memset(dinp, 0, (size_t)n * c * in_plane * sizeof *dinp);
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++) {
            float *ip = dinp + ((size_t)b * c + ch) * in_plane;
            for (int o = 0; o < f; o++) {
                const float *dp = dout + ((size_t)b * f + o) * out_plane;
                const float *wk = weight + ((size_t)o * c + ch) * 9;
                for (int i = 0; i < oh; i++) {
                    const float *d = dp + (size_t)i * ow;
                    for (int a = 0; a < 3; a++)
                        for (int e = 0; e < 3; e++)
                            axpy(ip + (size_t)(i + a) * w + e, d, wk[a * 3 + e], ow);
                }
            }
        }
}

/* ---- losses ------------------------------------------------------------------- */

/* log(1 + e^x) without overflow */
static double softplus(double x)
{
    return (x > 0 ? x : 0) + log1p(exp(-fabs(x)));
}

float ld_objectness_loss(float *dlogits, const float *logits, const int8_t *label, int count,
                         float alpha, float gamma, float norm)
{
    double total = 0;
    for (int i = 0; i < count; i++) {
        if (label[i] < 0) {
            dlogits[i] = 0.0f;
            continue;
        }
        double s = label[i] ? 1.0 : -1.0, z = logits[i];
        double log_pt = -softplus(-s * z);              /* log sigmoid(s z) */
        double pt = exp(log_pt), one_m = 1.0 / (1.0 + exp(s * z));   /* 1 - pt, stably */
        double at = alpha < 0 ? 1.0 : label[i] ? alpha : 1.0 - alpha;
        double mod = gamma == 0 ? 1.0 : pow(one_m, gamma);
        total += -at * mod * log_pt;
        /* d/dz of -a_t (1 - p_t)^g log p_t, with dp_t/dz = s p_t (1 - p_t) */
        dlogits[i] = (float)(s * at * mod * (gamma * pt * log_pt - one_m) / norm);
    }
    return (float)(total / norm);
}

int ld_ohem_select(int8_t *label, const float *logits, int count, int keep, int *idx)
{
    /* a negative's cross-entropy, softplus(z), grows with z: the hardest negatives
     * are those of highest logit; idx[0..kept) holds them in descending order */
    int kept = 0;
    for (int i = 0; i < count; i++) {
        if (label[i] != 0) continue;
        if (kept == keep && !(keep > 0 && logits[i] > logits[idx[kept - 1]])) continue;
        int p = kept < keep ? kept++ : kept - 1;
        while (p > 0 && logits[i] > logits[idx[p - 1]]) {   /* strict: earlier index wins ties */
            idx[p] = idx[p - 1];
            p--;
        }
        idx[p] = i;
    }
    for (int i = 0; i < count; i++)
        if (label[i] == 0) label[i] = -1;
    for (int r = 0; r < kept; r++) label[idx[r]] = 0;
    return kept;
}

float ld_smooth_l1_loss(float *dpred, const float *pred, const float *target,
                        const int8_t *label, int n, int hw, float beta, float norm)
{
    double total = 0;
    for (int b = 0; b < n; b++)
        for (int q = 0; q < 4; q++)
            for (int t = 0; t < hw; t++) {
                size_t i = ((size_t)b * 4 + q) * hw + t;
                if (label[(size_t)b * hw + t] != 1) {
                    dpred[i] = 0.0f;
                    continue;
                }
                double d = (double)pred[i] - target[i], a = fabs(d), g;
                if (a < beta) {
                    total += 0.5 * d * d / beta;
                    g = d / beta;
                } else {
                    total += a - 0.5 * beta;
                    g = d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0;
                }
                dpred[i] = (float)(g / norm);
            }
    return (float)(total / norm);
}

/* ---- box coding and labelling ---------------------------------------------- */

void ld_box_encode(float t[4], double gx, double gy, double gw, double gh,
                   double wx, double wy, double S, double A)
{
    t[0] = (float)((gx + gw / 2 - (wx + S / 2)) / A);
    t[1] = (float)((gy + gh / 2 - (wy + S / 2)) / A);
    t[2] = (float)log(gw / A);
    t[3] = (float)log(gh / A);
}

static double clamp_log(double v)
{
    return v < -LD_BOX_LOG_MAX ? -LD_BOX_LOG_MAX : v > LD_BOX_LOG_MAX ? LD_BOX_LOG_MAX : v;
}

void ld_box_decode(double box[4], const float t[4], double wx, double wy, double S, double A)
{
    double cx = wx + S / 2 + t[0] * A, cy = wy + S / 2 + t[1] * A;
    double w = A * exp(clamp_log(t[2])), h = A * exp(clamp_log(t[3]));
    box[0] = cx - w / 2;
    box[1] = cy - h / 2;
    box[2] = w;
    box[3] = h;
}

int ld_det_assign(int8_t *label, float *target, int nx, int ny, double x0, double y0,
                  double step, double S, double A, double fw, double fh, const ld_box *boxes,
                  int n, const ld_assign_config *cfg)
{
    size_t plane = (size_t)nx * ny;
    int n_pos = 0;
    double inset = (S - A) / 2;   /* the anchor is centred in its window */
    for (int i = 0; i < ny; i++)
        for (int j = 0; j < nx; j++) {
            size_t p = (size_t)i * nx + j;
            double wx = x0 + j * step, wy = y0 + i * step;
            for (int q = 0; q < 4; q++) target[q * plane + p] = 0.0f;
            if (wx < 0 || wy < 0 || wx + S > fw || wy + S > fh) {
                label[p] = -1;
                continue;
            }
            double best = 0;
            int g = -1;
            for (int k = 0; k < n; k++) {
                double iou = ld_iou_xywh(wx + inset, wy + inset, A, A, boxes[k].x, boxes[k].y,
                                         boxes[k].w, boxes[k].h);
                if (iou > best) best = iou, g = k;
            }
            label[p] = best >= cfg->pos_iou ? 1 : best < cfg->neg_iou ? 0 : -1;
            if (label[p] == 1) {
                float t[4];
                ld_box_encode(t, boxes[g].x, boxes[g].y, boxes[g].w, boxes[g].h, wx, wy, S, A);
                for (int q = 0; q < 4; q++) target[q * plane + p] = t[q];
                n_pos++;
            }
        }
    /* every box's best usable window (first in raster order on ties) */
    for (int k = 0; k < n; k++) {
        double best = 0;
        size_t bp = 0;
        for (int i = 0; i < ny; i++)
            for (int j = 0; j < nx; j++) {
                size_t p = (size_t)i * nx + j;
                double wx = x0 + j * step, wy = y0 + i * step;
                if (wx < 0 || wy < 0 || wx + S > fw || wy + S > fh) continue;
                double iou = ld_iou_xywh(wx + inset, wy + inset, A, A, boxes[k].x, boxes[k].y,
                                         boxes[k].w, boxes[k].h);
                if (iou > best) best = iou, bp = p;
            }
        if (best <= 0 || best < cfg->min_best_iou || label[bp] == 1) continue;
        float t[4];
        double wx = x0 + (double)(bp % nx) * step, wy = y0 + (double)(bp / nx) * step;
        ld_box_encode(t, boxes[k].x, boxes[k].y, boxes[k].w, boxes[k].h, wx, wy, S, A);
        for (int q = 0; q < 4; q++) target[q * plane + bp] = t[q];
        label[bp] = 1;
        n_pos++;
    }
    return n_pos;
}

/* ---- frames ----------------------------------------------------------------- */

void ld_frameset_free(ld_frameset *fs)
{
    for (int i = 0; fs->frames && i < fs->n; i++) ld_image_free(&fs->frames[i]);
    for (int i = 0; fs->boxes && i < fs->n; i++) ld_free(fs->boxes[i]);
    ld_free(fs->frames);
    ld_free(fs->boxes);
    ld_free(fs->n_boxes);
    ld_free(fs->label_index);
    memset(fs, 0, sizeof *fs);
}

ld_status ld_frameset_load(ld_frameset *fs, const ld_labels *labels, const char *images_dir,
                           const int *subset, int n_subset, long max_pixels, ld_error *err)
{
    memset(fs, 0, sizeof *fs);
    int n = subset ? n_subset : labels->n_images;
    fs->frames = ld_zalloc((size_t)n, sizeof *fs->frames, "frames", err);
    fs->boxes = fs->frames ? ld_zalloc((size_t)n, sizeof *fs->boxes, "frame boxes", err) : NULL;
    fs->n_boxes = fs->boxes ? ld_zalloc((size_t)n, sizeof(int), "frame boxes", err) : NULL;
    fs->label_index = fs->n_boxes ? ld_zalloc((size_t)n, sizeof(int), "frame index", err) : NULL;
    if (!fs->label_index) {
        ld_frameset_free(fs);
        return LD_ERR_NOMEM;
    }
    fs->n = n;
    for (int i = 0; i < n; i++) {
        int li = subset ? subset[i] : i;
        const ld_label_image *li_img = &labels->images[li];
        char path[4096];
        ld_image raw = {0};
        if (ld_label_image_path(path, sizeof path, images_dir, li_img->file_name, err) ||
            ld_image_load(&raw, path, max_pixels, err) ||
            ld_image_to_grey(&fs->frames[i], &raw, err)) {
            ld_image_free(&raw);
            ld_frameset_free(fs);
            return err->status;
        }
        ld_image_free(&raw);
        fs->label_index[i] = li;
        fs->boxes[i] = ld_alloc((size_t)li_img->n_boxes, sizeof(ld_box), "frame boxes", err);
        if (!fs->boxes[i]) {
            ld_frameset_free(fs);
            return LD_ERR_NOMEM;
        }
        /* boxes follow the decoded pixels if the labels state another size */
        double sx = li_img->width > 0 ? (double)fs->frames[i].w / li_img->width : 1.0;
        double sy = li_img->height > 0 ? (double)fs->frames[i].h / li_img->height : 1.0;
        for (int k = 0; k < li_img->n_boxes; k++) {
            ld_box b = li_img->boxes[k];
            b.x *= sx;
            b.w *= sx;
            b.y *= sy;
            b.h *= sy;
            b.category = 0;   /* one class: lesion (the detector is class-agnostic) */
            fs->boxes[i][k] = b;
        }
        fs->n_boxes[i] = li_img->n_boxes;
    }
    return LD_OK;
}

/* ---- configuration ----------------------------------------------------------- */

void ld_dettrain_config_default(ld_dettrain_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->assign.pos_iou = 0.5;
    cfg->assign.neg_iou = 0.4;
    cfg->assign.min_best_iou = 0.3;
    cfg->obj_loss = LD_OBJ_FOCAL;
    cfg->focal_alpha = 0.25f;
    cfg->focal_gamma = 2.0f;
    cfg->ohem_ratio = 3;
    cfg->box_weight = 1.0f;
    cfg->smooth_l1_beta = 1.0f / 9.0f;
    cfg->prior = 0.01f;
    cfg->crop = 192;
    cfg->batch = 8;
    cfg->epochs = 60;
    cfg->size_range = 1.0f;
    cfg->p_center = 0.8f;
    cfg->max_scale = 3.0;
    ld_adam_default(&cfg->adam);
    cfg->adam.lr = 1e-3f;
    cfg->lr_final = 0.05f;
    ld_augment_config_default(&cfg->aug);
    cfg->seed = 1;
}

ld_status ld_dettrain_config_check(const ld_dettrain_config *cfg, const ld_arch *arch,
                                   ld_error *err)
{
    int S = arch->input_size, P = 1 << arch->n_blocks;
    if (!arch->box_head)
        return ld_fail(err, LD_ERR_USAGE, "detection training needs a network with a box head "
                       "(preset %s has none)", arch->preset);
    const ld_assign_config *a = &cfg->assign;
    if (!(a->neg_iou > 0 && a->neg_iou <= a->pos_iou && a->pos_iou <= 1 &&
          a->min_best_iou >= 0 && a->min_best_iou <= 1))
        return ld_fail(err, LD_ERR_USAGE, "IoU thresholds: need 0 < neg (%g) <= pos (%g) <= 1 "
                       "and min-best (%g) in [0, 1]", a->neg_iou, a->pos_iou, a->min_best_iou);
    if (cfg->crop < S || cfg->crop > 2048 || (cfg->crop - S) % P != 0)
        return ld_fail(err, LD_ERR_USAGE, "crop %d: must be %d + a multiple of %d, at most 2048",
                       cfg->crop, S, P);
    if (cfg->batch < 1 || cfg->batch > 1024 || cfg->epochs < 1 || cfg->epochs > 100000)
        return ld_fail(err, LD_ERR_USAGE, "batch %d (1..1024) or epochs %d (1..100000) out of range",
                       cfg->batch, cfg->epochs);
    if (!(cfg->prior > 0 && cfg->prior < 1) || !(cfg->focal_gamma >= 0 && cfg->focal_gamma <= 10) ||
        !(cfg->focal_alpha < 1) || cfg->ohem_ratio < 1 || !(cfg->box_weight >= 0) ||
        !(cfg->smooth_l1_beta >= 0) || !(cfg->size_range >= 0 && cfg->size_range <= 4) ||
        !(cfg->p_center >= 0 && cfg->p_center <= 1) || !(cfg->max_scale > 0 && cfg->max_scale <= 16) ||
        !(cfg->adam.lr > 0) || !(cfg->lr_final > 0 && cfg->lr_final <= 1))
        return ld_fail(err, LD_ERR_USAGE, "detection training settings out of range (prior in "
                       "(0,1), gamma in [0,10], alpha < 1, ohem ratio >= 1, box weight and beta "
                       ">= 0, size range in [0,4], p_center in [0,1], max scale in (0,16], lr > 0, "
                       "final lr fraction in (0,1])");
    const ld_augment_config *g = &cfg->aug;
    if (!(g->gamma >= 0 && g->gamma <= 2 && g->contrast >= 0 && g->contrast < 1 &&
          g->brightness >= 0 && g->brightness <= 1 && g->blur >= 0 && g->blur <= 8 &&
          g->speckle >= 0 && g->speckle <= 2 && g->scale_jitter >= 0 && g->scale_jitter <= 2))
        return ld_fail(err, LD_ERR_USAGE, "augmentation settings out of range (gamma [0,2], "
                       "contrast [0,1), brightness [0,1], blur [0,8], speckle [0,2], "
                       "scale jitter [0,2])");
    return LD_OK;
}

/* ---- the trainer: activations ---------------------------------------------- */

typedef struct {
    int cin, f;                 /* input channels (block 0: 1, the grey plane), filters */
    int h, w;                   /* input side */
    int ch, cw;                 /* conv output: h - 2, w - 2 */
    int ph, pw;                 /* pooled: ch / 2, cw / 2 */
    float *conv, *xhat, *bn, *relu;   /* [B, f, ch, cw] */
    float *pool, *mask, *drop;        /* [B, f, ph, pw] */
    int *argmax;                      /* [B, f, ph, pw] */
    float *mean, *invstd;             /* [f] */
} dblock;

struct ld_detacts {
    int n;                      /* crops in the last forward, 0 before any */
    int k;                      /* head kernel side: s_out */
    dblock b[LD_MAX_BLOCKS];
    float *w1;                  /* [f1, 1, 3, 3] conv 1 summed over input channels */
    float *dw1;                 /* [f1, 1, 3, 3] */
    float *dlast, *dlast2;      /* [B, F, hL, wL] gradients at the last map, two heads */
    float *dsmall[2], *dpool;   /* [max B f ph pw] */
    float *dbig[2];             /* [max B f ch cw] */
};

/* Lays out (base non-NULL) or measures the activation block, as model.c does:
 * struct first, then arrays at 64-byte offsets; 0 on overflow. */
static size_t detacts_layout(char *base, const ld_arch *a, int B, int C)
{
    struct ld_detacts measure, *A = base ? (struct ld_detacts *)base : &measure;
    size_t off = sizeof(struct ld_detacts);
    int of = 0;
#define CARVE(ptr, type, count)                                              \
    do {                                                                     \
        size_t bytes_ = ld_mul2((count), sizeof(type), &of);                 \
        off = (off + 63) & ~(size_t)63;                                      \
        (ptr) = base ? (type *)(base + off) : NULL;                          \
        off += bytes_;                                                       \
        if (of || off < bytes_) return 0;                                    \
    } while (0)
    size_t max_big = 0, max_small = 0;
    int cin = 1, h = C, w = C;
    for (int k = 0; k < a->n_blocks; k++) {
        dblock *b = &A->b[k];
        b->cin = cin;
        b->f = a->filters[k];
        b->h = h;
        b->w = w;
        b->ch = h - 2;
        b->cw = w - 2;
        b->ph = b->ch / 2;
        b->pw = b->cw / 2;
        size_t big = ld_mul3((size_t)B, (size_t)b->f, (size_t)b->ch * b->cw, &of);
        size_t small = ld_mul3((size_t)B, (size_t)b->f, (size_t)b->ph * b->pw, &of);
        /* the kernels take counts and planes as int / long */
        if (of || big > INT_MAX || (size_t)b->ch * b->cw > INT_MAX) return 0;
        if (big > max_big) max_big = big;
        if (small > max_small) max_small = small;
        CARVE(b->conv, float, big);
        CARVE(b->xhat, float, big);
        CARVE(b->bn, float, big);
        CARVE(b->relu, float, big);
        CARVE(b->pool, float, small);
        CARVE(b->mask, float, small);
        CARVE(b->drop, float, small);
        CARVE(b->argmax, int, small);
        CARVE(b->mean, float, (size_t)b->f);
        CARVE(b->invstd, float, (size_t)b->f);
        cin = b->f;
        h = b->ph;
        w = b->pw;
    }
    A->n = 0;
    A->k = ld_arch_block_out(a, a->n_blocks - 1);
    CARVE(A->w1, float, (size_t)a->filters[0] * 9);
    CARVE(A->dw1, float, (size_t)a->filters[0] * 9);
    CARVE(A->dlast, float, max_small);
    CARVE(A->dlast2, float, max_small);
    CARVE(A->dsmall[0], float, max_small);
    CARVE(A->dsmall[1], float, max_small);
    CARVE(A->dpool, float, max_small);
    CARVE(A->dbig[0], float, max_big);
    CARVE(A->dbig[1], float, max_big);
#undef CARVE
    return off;
}

void ld_dettrainer_free(ld_dettrainer *t)
{
    ld_free(t->x);
    ld_free(t->label);
    ld_free(t->target);
    ld_free(t->obj);
    ld_free(t->box);
    ld_free(t->dobj);
    ld_free(t->dbox);
    ld_free(t->acts);
    ld_free(t->aug_scratch);
    ld_free(t->idx);
    memset(t, 0, sizeof *t);
}

ld_status ld_dettrainer_init(ld_dettrainer *t, ld_model *m, int batch, int crop,
                             const ld_augment_config *aug, ld_error *err)
{
    memset(t, 0, sizeof *t);
    const ld_arch *a = &m->arch;
    int S = a->input_size, P = 1 << a->n_blocks;
    if (!a->box_head)
        return ld_fail(err, LD_ERR_USAGE, "detection training needs a network with a box head");
    if (batch < 1 || crop < S || (crop - S) % P != 0 || crop > 4096)
        return ld_fail(err, LD_ERR_USAGE, "trainer: batch %d, crop %d (must be %d + a multiple "
                       "of %d)", batch, crop, S, P);
    t->m = m;
    t->batch = batch;
    t->crop = crop;
    t->nx = t->ny = (crop - S) / P + 1;
    int of = 0;
    size_t pix = ld_mul3((size_t)batch, (size_t)crop, (size_t)crop, &of);
    size_t pos = (size_t)batch * t->nx * t->ny;   /* < pix */
    size_t acts_bytes = of ? 0 : detacts_layout(NULL, a, batch, crop);
    if (acts_bytes == 0)
        return ld_fail(err, LD_ERR_NOMEM, "trainer: activations for %d crops of %d px overflow",
                       batch, crop);
    t->x = ld_alloc(pix, sizeof(float), "training crops", err);
    t->label = t->x ? ld_alloc(pos, 1, "window labels", err) : NULL;
    t->target = t->label ? ld_alloc(pos * 4, sizeof(float), "box targets", err) : NULL;
    t->obj = t->target ? ld_alloc(pos, sizeof(float), "objectness", err) : NULL;
    t->box = t->obj ? ld_alloc(pos * 4, sizeof(float), "box offsets", err) : NULL;
    t->dobj = t->box ? ld_alloc(pos, sizeof(float), "objectness gradient", err) : NULL;
    t->dbox = t->dobj ? ld_alloc(pos * 4, sizeof(float), "box gradient", err) : NULL;
    /* mining scratch [pos], also the sampler's column lookup [crop] */
    t->idx = t->dbox ? ld_alloc(pos > (size_t)crop ? pos : (size_t)crop, sizeof(int),
                                "mining scratch", err) : NULL;
    ld_augment_config none;
    ld_augment_config_none(&none);
    size_t aug_n = ld_augment_scratch_size(crop, crop, aug ? aug : &none);
    t->aug_scratch = t->idx ? ld_alloc(aug_n, sizeof(float), "augmentation scratch", err) : NULL;
    char *block = t->aug_scratch ? ld_zalloc(acts_bytes, 1, "trainer activations", err) : NULL;
    if (!block) {
        ld_dettrainer_free(t);
        return LD_ERR_NOMEM;
    }
    detacts_layout(block, a, batch, crop);
    t->acts = (ld_detacts *)block;
    for (int k = 0; k < a->n_blocks; k++) {
        dblock *b = &t->acts->b[k];
        size_t count = (size_t)batch * b->f * b->ph * b->pw;
        for (size_t i = 0; i < count; i++) b->mask[i] = 1.0f;
    }
    return LD_OK;
}

/* ---- the trainer: forward, loss, backward ---------------------------------- */

void ld_dettrainer_forward(ld_dettrainer *t, int n, ld_rng *rng)
{
    assert(n >= 1 && n <= t->batch);
    ld_model *m = t->m;
    const ld_arch *a = &m->arch;
    struct ld_detacts *A = t->acts;
    int f1 = a->filters[0], cin = a->in_channels;
    for (int o = 0; o < f1; o++)
        for (int q = 0; q < 9; q++) {
            double s = 0;
            for (int c = 0; c < cin; c++) s += m->p[0].conv_w[((size_t)o * cin + c) * 9 + q];
            A->w1[o * 9 + q] = (float)s;
        }
    A->n = n;
    const float *in = t->x;
    for (int k = 0; k < a->n_blocks; k++) {
        dblock *b = &A->b[k];
        const ld_block_params *p = &m->p[k];
        int hw = b->ch * b->cw;
        long big = (long)n * b->f * hw, small = (long)n * b->f * b->ph * b->pw;
        ld_conv3x3_forward(b->conv, in, k ? p->conv_w : A->w1, p->conv_b, n, b->cin, b->f, b->h, b->w);
        ld_batchnorm_train_forward(b->bn, b->xhat, b->mean, b->invstd, p->bn_mean, p->bn_var,
                                   b->conv, p->bn_gamma, p->bn_beta, a->bn_eps, a->bn_momentum,
                                   n, b->f, hw);
        ld_relu_forward(b->relu, b->bn, big);
        ld_maxpool2_forward(b->pool, b->argmax, b->relu, n * b->f, b->ch, b->cw);
        if (a->dropout > 0) {
            if (rng) ld_dropout_mask(b->mask, rng, a->dropout, small);
            ld_dropout_apply(b->drop, b->pool, b->mask, small);
        } else {
            memcpy(b->drop, b->pool, (size_t)small * sizeof *b->drop);
        }
        in = b->drop;
    }
    const dblock *L = &A->b[a->n_blocks - 1];
    ld_headconv_forward(t->obj, in, m->dense_w, m->dense_b, n, L->f, 1, L->ph, L->pw, A->k);
    ld_headconv_forward(t->box, in, m->box_w, m->box_b, n, L->f, 4, L->ph, L->pw, A->k);
}

float ld_dettrainer_loss(ld_dettrainer *t, int n, const ld_dettrain_config *cfg,
                         ld_det_loss_parts *parts)
{
    int hw = t->nx * t->ny, count = n * hw, n_pos = 0, n_neg = 0;
    for (int i = 0; i < count; i++) n_pos += t->label[i] == 1;
    float norm = n_pos > 0 ? (float)n_pos : 1.0f;
    float alpha = cfg->focal_alpha, gamma = cfg->focal_gamma;
    if (cfg->obj_loss == LD_OBJ_OHEM) {
        ld_ohem_select(t->label, t->obj, count, cfg->ohem_ratio * (n_pos > 0 ? n_pos : 1), t->idx);
        alpha = -1.0f;
        gamma = 0.0f;
    }
    for (int i = 0; i < count; i++) n_neg += t->label[i] == 0;
    float lo = ld_objectness_loss(t->dobj, t->obj, t->label, count, alpha, gamma, norm);
    float lb = 0;
    if (cfg->box_weight > 0)   /* box_weight x (sum / norm): one division by norm / weight */
        lb = ld_smooth_l1_loss(t->dbox, t->box, t->target, t->label, n, hw,
                               cfg->smooth_l1_beta, norm / cfg->box_weight);
    else
        memset(t->dbox, 0, (size_t)count * 4 * sizeof *t->dbox);
    if (parts) {
        parts->obj = lo;
        parts->box = lb;
        parts->n_pos = n_pos;
        parts->n_neg = n_neg;
    }
    return lo + lb;
}

void ld_dettrainer_backward(ld_dettrainer *t, int n)
{
    ld_model *m = t->m;
    const ld_arch *a = &m->arch;
    struct ld_detacts *A = t->acts;
    assert(n >= 1 && n == A->n);
    memset(m->grads, 0, m->n_params * sizeof *m->grads);   /* moving stats, conv biases: 0 */
    const dblock *L = &A->b[a->n_blocks - 1];
    ld_headconv_backward(A->dlast, m->ddense_w, m->ddense_b, t->dobj, L->drop, m->dense_w,
                         n, L->f, 1, L->ph, L->pw, A->k);
    ld_headconv_backward(A->dlast2, m->dbox_w, m->dbox_b, t->dbox, L->drop, m->box_w,
                         n, L->f, 4, L->ph, L->pw, A->k);
    size_t last = (size_t)n * L->f * L->ph * L->pw;
    for (size_t i = 0; i < last; i++) A->dlast[i] += A->dlast2[i];
    const float *dout = A->dlast;
    for (int k = a->n_blocks - 1; k >= 0; k--) {
        const dblock *b = &A->b[k];
        const ld_block_params *p = &m->p[k];
        ld_block_params *g = &m->g[k];
        int hw = b->ch * b->cw;
        long big = (long)n * b->f * hw, small = (long)n * b->f * b->ph * b->pw;
        ld_dropout_apply(A->dpool, dout, b->mask, small);
        ld_maxpool2_backward(A->dbig[0], A->dpool, b->argmax, n * b->f, b->ch, b->cw);
        ld_relu_backward(A->dbig[0], A->dbig[0], b->relu, big);
        ld_batchnorm_backward(A->dbig[1], g->bn_gamma, g->bn_beta, A->dbig[0], b->xhat,
                              p->bn_gamma, b->invstd, n, b->f, hw);
        const float *in = k > 0 ? A->b[k - 1].drop : t->x;
        float *dinp = k > 0 ? A->dsmall[k % 2] : NULL;
        ld_conv3x3_backward_rows(dinp, k ? g->conv_w : A->dw1, A->dbig[1], in,
                                 k ? p->conv_w : A->w1, n, b->cin, b->f, b->h, b->w);
        dout = dinp;
    }
    int f1 = a->filters[0], cin = a->in_channels;
    for (int o = 0; o < f1; o++)
        for (int c = 0; c < cin; c++)
            memcpy(m->g[0].conv_w + ((size_t)o * cin + c) * 9, A->dw1 + (size_t)o * 9,
                   9 * sizeof(float));
}

/* ---- the crop sampler -------------------------------------------------------- */

/* Index i mirrored into [0, n) (edge repeated, periodic for any i). */
static int mirror_index(int i, int n)
{
    int p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

/* sqrt(w h) of a random box of the set: the size a frame without boxes is shown
 * at (up to 64 tries, else the window's own size) */
static double random_box_size(const ld_frameset *fs, ld_rng *rng, double S)
{
    for (int tries = 0; tries < 64; tries++) {
        int f = (int)ld_rng_below(rng, (uint64_t)fs->n);
        if (fs->n_boxes[f] == 0) continue;
        const ld_box *b = &fs->boxes[f][ld_rng_below(rng, (uint64_t)fs->n_boxes[f])];
        return sqrt(b->w * b->h);
    }
    return S;
}

/* Crop origin along one axis of a frame of size fs_len: the box [b0, b0 + bl)
 * inside the crop when possible (its centre placed at random within the slack),
 * else anywhere. */
static int crop_origin(int frame, int C, int have_box, double b0, double bl, ld_rng *rng)
{
    if (frame <= C) return 0;
    double o;
    if (have_box) {
        double slack = fabs(C - bl) / 2;
        o = b0 + bl / 2 - C / 2.0 + slack * (2 * ld_rng_double(rng) - 1);
    } else {
        o = ld_rng_double(rng) * (frame - C + 1);
    }
    int oi = (int)floor(o);
    return oi < 0 ? 0 : oi > frame - C ? frame - C : oi;
}

#define MAX_SAMPLE_BOXES 256

ld_status ld_dettrainer_sample(ld_dettrainer *t, int slot, const ld_frameset *fs, int f,
                               const ld_dettrain_config *cfg, ld_rng *rng, ld_error *err)
{
    const ld_arch *a = &t->m->arch;
    const ld_image *frame = &fs->frames[f];
    double S = a->input_size, A = a->anchor ? a->anchor : S;
    int P = 1 << a->n_blocks, C = t->crop, nb = fs->n_boxes[f];
    if (nb > MAX_SAMPLE_BOXES) nb = MAX_SAMPLE_BOXES;
    ld_box boxes[MAX_SAMPLE_BOXES];
    memcpy(boxes, fs->boxes[f], (size_t)nb * sizeof *boxes);

    /* the scale: the chosen lesion meets the window at ratio r (see dettrain.h) */
    int target = nb > 0 ? (int)ld_rng_below(rng, (uint64_t)nb) : -1;
    double size = target >= 0 ? sqrt(boxes[target].w * boxes[target].h)
                              : random_box_size(fs, rng, A);
    double r = exp2(cfg->size_range * (2 * ld_rng_double(rng) - 1));
    double jx = exp2(cfg->aug.scale_jitter * (2 * ld_rng_double(rng) - 1));
    double jy = exp2(cfg->aug.scale_jitter * (2 * ld_rng_double(rng) - 1));
    double s = A * r / (size > 1 ? size : 1);
    double sx = s * jx, sy = s * jy;
    /* at least one window, at most max_scale */
    double lo_x = S / frame->w, lo_y = S / frame->h;
    if (sx > cfg->max_scale) sx = cfg->max_scale;
    if (sy > cfg->max_scale) sy = cfg->max_scale;
    if (sx < lo_x) sx = lo_x;
    if (sy < lo_y) sy = lo_y;
    int W = (int)ceil(sx * frame->w - 1e-9), H = (int)ceil(sy * frame->h - 1e-9);
    if (W < (int)S) W = (int)S;
    if (H < (int)S) H = (int)S;

    double rx = (double)W / frame->w, ry = (double)H / frame->h;
    for (int k = 0; k < nb; k++) {
        boxes[k].x *= rx;
        boxes[k].w *= rx;
        boxes[k].y *= ry;
        boxes[k].h *= ry;
    }
    int fh, fv;
    ld_augment_draw_flips(&fh, &fv, &cfg->aug, rng);
    ld_augment_flip_boxes(boxes, nb, W, H, fh, fv);

    int centred = target >= 0 && ld_rng_double(rng) < cfg->p_center;
    const ld_box *tb = target >= 0 ? &boxes[target] : NULL;
    int x0 = crop_origin(W, C, centred, tb ? tb->x : 0, tb ? tb->w : 0, rng);
    int y0 = crop_origin(H, C, centred, tb ? tb->y : 0, tb ? tb->h : 0, rng);
    /* Only the part of the resized (and flipped) frame the crop shows is made: the
     * matching part of the frame, with 2 px of margin, resized by the same factor
     * (Pillow's filter, as the detector resizes). Its pixel k then sits within a
     * pixel of resized-frame column a rx + k. The flips act on coordinates. */
    int cw = W < C ? W : C, ch = H < C ? H : C;
    int ux0 = fh ? W - x0 - cw : x0, uy0 = fv ? H - y0 - ch : y0;
    int ax = (int)floor(ux0 / rx) - 2, bx = (int)ceil((ux0 + cw) / rx) + 2;
    int ay = (int)floor(uy0 / ry) - 2, by = (int)ceil((uy0 + ch) / ry) + 2;
    ax = ax < 0 ? 0 : ax;
    ay = ay < 0 ? 0 : ay;
    bx = bx > frame->w ? frame->w : bx;
    by = by > frame->h ? frame->h : by;
    int tw = (int)floor((bx - ax) * rx + 0.5), th = (int)floor((by - ay) * ry + 0.5);
    tw = tw < 1 ? 1 : tw;
    th = th < 1 ? 1 : th;
    int offx = (int)floor(ax * rx + 0.5), offy = (int)floor(ay * ry + 0.5);
    ld_image part = {0}, scaled = {0};
    if (ld_image_crop(&part, frame, ax, ay, bx - ax, by - ay, err) ||
        ld_image_resize(&scaled, &part, tw, th, err)) {
        ld_image_free(&part);
        return err->status;
    }
    ld_image_free(&part);
    float *x = t->x + (size_t)slot * C * C;
    int *cols = t->idx;   /* mining scratch, free until the loss: [C] column lookup */
    for (int xx = 0; xx < C; xx++) {
        int X = mirror_index(x0 + xx, W), k = (fh ? W - 1 - X : X) - offx;
        cols[xx] = k < 0 ? 0 : k >= tw ? tw - 1 : k;
    }
    for (int y = 0; y < C; y++) {
        int Y = mirror_index(y0 + y, H), k = (fv ? H - 1 - Y : Y) - offy;
        const uint8_t *row = scaled.px + (size_t)(k < 0 ? 0 : k >= th ? th - 1 : k) * tw;
        for (int xx = 0; xx < C; xx++) x[(size_t)y * C + xx] = (float)row[cols[xx]] / 255.0f;
    }
    ld_image_free(&scaled);
    ld_augment_photometric(x, C, C, t->aug_scratch, &cfg->aug, rng);

    /* windows in frame coordinates, usable inside the resized frame only */
    size_t plane = (size_t)t->nx * t->ny;
    ld_det_assign(t->label + (size_t)slot * plane, t->target + (size_t)slot * 4 * plane, t->nx,
                  t->ny, x0, y0, P, S, A, W, H, boxes, nb, &cfg->assign);
    return LD_OK;
}

/* ---- the training loop -------------------------------------------------------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

ld_status ld_dettrain(ld_model *m, const ld_frameset *train, const ld_dettrain_config *cfg,
                      const ld_dettrain_eval *eval, const ld_dettrain_hooks *hooks,
                      ld_det_epoch *history, int *best_epoch, ld_error *err)
{
    return ld_dettrain_resume(m, train, cfg, eval, hooks, history, NULL, best_epoch, err);
}

ld_status ld_dettrain_resume(ld_model *m, const ld_frameset *train, const ld_dettrain_config *cfg,
                             const ld_dettrain_eval *eval, const ld_dettrain_hooks *hooks,
                             ld_det_epoch *history, const ld_dettrain_state *from,
                             int *best_epoch, ld_error *err)
{
    if (ld_dettrain_config_check(cfg, &m->arch, err)) return err->status;
    if (train->n < 1) return ld_fail(err, LD_ERR_INPUT, "no training frames");
    if (from && (from->n_order != train->n || from->epochs_done < 0 ||
                 from->epochs_done > cfg->epochs))
        return ld_fail(err, LD_ERR_USAGE, "resume: %d frames and %d epochs done do not fit "
                       "this run (%d frames, %d epochs)", from->n_order, from->epochs_done,
                       train->n, cfg->epochs);
    int use_val = eval && eval->val && eval->val->n > 0 && eval->detect;
    ld_dettrainer t;
    if (ld_dettrainer_init(&t, m, cfg->batch, cfg->crop, &cfg->aug, err)) return err->status;
    ld_dettrain_state s = {0};
    s.n_order = train->n;
    s.order = ld_alloc((size_t)train->n, sizeof(int), "training order", err);
    s.best = s.order ? ld_alloc(m->n_params, sizeof(float), "best weights", err) : NULL;
    if (!s.order || !s.best) {
        ld_free(s.order);
        ld_dettrainer_free(&t);
        return LD_ERR_NOMEM;
    }
    s.best_ap50 = s.best_ap = -1;
    if (from) {
        s.epochs_done = from->epochs_done;
        s.rng = from->rng;
        memcpy(s.order, from->order, (size_t)train->n * sizeof *s.order);
        s.best_epoch = from->best_epoch;
        if (from->best_epoch > 0) {
            memcpy(s.best, from->best, m->n_params * sizeof *s.best);
            s.best_ap50 = from->best_ap50;
            s.best_ap = from->best_ap;
        }
    } else {
        /* focal-loss initialisation: every window starts at probability `prior` */
        m->dense_b[0] = (float)-log((1.0 - cfg->prior) / cfg->prior);
        ld_rng_seed(&s.rng, cfg->seed);
        for (int i = 0; i < train->n; i++) s.order[i] = i;
    }
    int n_steps = (train->n + cfg->batch - 1) / cfg->batch;
    int every = eval && eval->eval_every > 0 ? eval->eval_every : 5;
    ld_status st = LD_OK;
    for (int e = s.epochs_done + 1; e <= cfg->epochs && !st; e++) {
        double t0 = now_seconds(), sum = 0, so = 0, sb = 0, pos = 0;
        ld_rng_shuffle(&s.rng, s.order, train->n);
        for (int k = 0; k < n_steps && !st; k++) {
            int n = train->n - k * cfg->batch < cfg->batch ? train->n - k * cfg->batch : cfg->batch;
            for (int b = 0; b < n && !st; b++)
                st = ld_dettrainer_sample(&t, b, train, s.order[k * cfg->batch + b], cfg, &s.rng,
                                          err);
            if (st) break;
            ld_det_loss_parts parts;
            ld_dettrainer_forward(&t, n, &s.rng);
            float loss = ld_dettrainer_loss(&t, n, cfg, &parts);
            ld_dettrainer_backward(&t, n);
            /* cosine decay from lr to lr_final lr over every step of the run */
            double progress = ((double)(e - 1) * n_steps + k) / ((double)cfg->epochs * n_steps);
            ld_adam_config adam = cfg->adam;
            adam.lr = (float)(cfg->adam.lr * (cfg->lr_final + (1 - cfg->lr_final) * 0.5 *
                                                               (1 + cos(3.141592653589793 * progress))));
            ld_model_adam(m, &adam);
            sum += loss;
            so += parts.obj;
            sb += parts.box;
            pos += parts.n_pos;
            if (hooks && hooks->on_step) hooks->on_step(hooks->user, e, k + 1, n_steps, sum / (k + 1));
        }
        if (st) break;
        ld_det_epoch *h = &history[e - 1];
        h->epoch = e;
        h->loss = sum / n_steps;
        h->obj_loss = so / n_steps;
        h->box_loss = sb / n_steps;
        h->pos_per_crop = pos / train->n;
        h->val_ap50 = h->val_ap = NAN;
        if (use_val && (e % every == 0 || e == cfg->epochs)) {
            ld_coco_metrics cm;
            st = ld_det_evaluate(&cm, NULL, NULL, m, eval->detect, eval->val, err);
            if (st) break;
            h->val_ap50 = cm.ap50;
            h->val_ap = cm.ap;
            if (cm.ap50 > s.best_ap50 || (cm.ap50 == s.best_ap50 && cm.ap > s.best_ap)) {
                s.best_ap50 = cm.ap50;
                s.best_ap = cm.ap;
                memcpy(s.best, m->params, m->n_params * sizeof *s.best);
                s.best_epoch = e;
            }
        }
        h->seconds = now_seconds() - t0;
        s.epochs_done = e;
        if (hooks && hooks->on_epoch) hooks->on_epoch(hooks->user, h);
        if (hooks && hooks->on_state) st = hooks->on_state(hooks->user, &s, history, err);
    }
    if (best_epoch) *best_epoch = use_val && s.best_epoch > 0 ? s.best_epoch : cfg->epochs;
    if (!st && use_val && s.best_epoch > 0) memcpy(m->params, s.best, m->n_params * sizeof *s.best);
    ld_free(s.best);
    ld_free(s.order);
    ld_dettrainer_free(&t);
    return st;
}
