/* dettrain.h — training the network to FIND lesions (issue 7): dense, IoU-labelled
 * training on whole frames, multi-scale, with a box-regression head.
 *
 * Why. The paper's patch task (whole lesions squeezed into squares against
 * windows that never touch a lesion) teaches a classifier that fires on every
 * window touching anything dark, so its windows cannot be ranked (AP@0.5 ~0.03 on
 * BUSI). Here the fully-convolutional form of the network is trained on frames:
 * every output position is a sample, labelled by how well its window matches a
 * labelled box, so windows half on a lesion or at the wrong scale are negatives.
 *
 * Windows and anchors. With S = input_size and P = 2^n_blocks, output position
 * (i, j) of a crop is the S x S window whose top-left corner is (P j, P i) in it —
 * exactly what the detector scans (detect.h). Each window judges one square box,
 * its anchor: side A = arch.anchor (0: A = S), centred in the window (centre a),
 * so that with A < S the network sees context around the box it judges. The box
 * head (box.weight [4, D], the dense layer's twin over the same D inputs) predicts
 * the usual single-stage offsets:
 *   tx = (gx + gw/2 - ax) / A    ty = (gy + gh/2 - ay) / A
 *   tw = log(gw / A)             th = log(gh / A)
 * decoded back with tw, th clamped to [-LD_BOX_LOG_MAX, LD_BOX_LOG_MAX].
 *
 * Labels (ld_det_assign), by the IoU of a window's ANCHOR with the boxes, for
 * windows fully inside the frame: positive when the IoU with some box is
 * >= pos_iou, or it is the best window of a box whose IoU with it is
 * >= min_best_iou (so small or elongated boxes get one); negative when its largest
 * IoU is < neg_iou; ignored otherwise, and ignored when the window leaves the
 * frame (crops are padded). A positive regresses to the box it overlaps most (its
 * forced box for a best window).
 *
 * Multi-scale sampling (ld_dettrainer_sample). For each training frame one
 * labelled box is picked (for a frame without boxes, the size of a random box of
 * the training set) and the frame is resized by s = A r / sqrt(gw gh) with the
 * size ratio r = 2^U(-size_range, size_range), times an independent per-axis
 * jitter (augment.h scale_jitter): windows meet that lesion at 1/2..2 times their
 * size, so they learn both where and at which pyramid level to fire. A crop x
 * crop region is cut (containing the box with probability p_center, else
 * anywhere); frames smaller than the crop are padded by mirroring (only batch-norm
 * statistics see the padding: no labelled window reaches into it).
 *
 * Loss, normalised by the number of positives P+ in the mini-batch (at least 1):
 *   objectness: focal loss (Lin et al. 2017) over every labelled window,
 *     FL = -a_t (1 - p_t)^gamma log p_t, a_t = alpha for positives, 1 - alpha for
 *     negatives (alpha < 0: no weighting); or, with ld_obj_ohem, binary
 *     cross-entropy on the positives and the ohem_ratio x max(P+, 1) negatives of
 *     highest loss (hard-negative mining, as SSD), both computed from the logit;
 *   box: box_weight x smooth-L1 (beta) of the 4 offsets, positives only.
 * Batch norm normalises over every position of every crop of the mini-batch.
 *
 * Memory: an ld_dettrainer makes its allocations once (activations, batch input,
 * labels and targets, scratch); forward/backward/loss never allocate. */
#ifndef LYMPHDET_DETTRAIN_H
#define LYMPHDET_DETTRAIN_H

#include <stdint.h>
#include "lymphdet/augment.h"
#include "lymphdet/detect.h"
#include "lymphdet/error.h"
#include "lymphdet/image.h"
#include "lymphdet/labels.h"
#include "lymphdet/metrics.h"
#include "lymphdet/model.h"
#include "lymphdet/rng.h"

#define LD_BOX_LOG_MAX 4.0      /* |tw|, |th| clamp when decoding: boxes up to e^4 S */

/* ---- the new layers, losses and box coding (reference kernels, tested) ------- */

/* The dense layer as a k x k valid convolution over a feature map (how a
 * fully-convolutional pass evaluates it at every window):
 *   out[n,o,i,j] = bias[o] + sum_{c,u,v} weight[o,c,u,v] * inp[n,c,i+u,j+v]
 * out [n, o, h-k+1, w-k+1], inp [n, c, h, w], weight [o, c, k, k] (= the dense
 * weight [o, D] with D in C,H,W order), bias [o]. Sums in double. */
void ld_headconv_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int n, int c, int o, int h, int w, int k);
/* dinp [n, c, h, w] (overwritten; NULL: skipped), dweight [o, c, k, k], dbias [o]
 * (overwritten); dout [n, o, h-k+1, w-k+1]. */
void ld_headconv_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight,
                          int n, int c, int o, int h, int w, int k);

/* ld_conv3x3_backward (layers.h) without the bias gradient, arranged for whole
 * crops: each row's nine weight-gradient sums are kept in 8 float partial sums
 * (so they vectorise), rows summed in double; the input gradient is nine
 * vectorised axpys per row. Same sizes and layout as the reference; results
 * within float rounding of it (tests/test_dettrain.c). */
void ld_conv3x3_backward_rows(float *dinp, float *dweight, const float *dout, const float *inp,
                              const float *weight, int n, int c, int f, int h, int w);

/* Objectness loss over count logits with labels 1 (positive), 0 (negative) or
 * -1 (ignored: no loss, zero gradient). Focal loss with alpha (< 0: a_t = 1) and
 * gamma (0: binary cross-entropy), summed and divided by norm; dlogits[count]
 * receives the gradient of that mean. Computed from the logit in double
 * (log p_t = -softplus(-z) for positives, -softplus(z) for negatives). */
float ld_objectness_loss(float *dlogits, const float *logits, const int8_t *label, int count,
                         float alpha, float gamma, float norm);
/* Hard-negative mining: keeps every positive and the `keep` negatives of highest
 * binary cross-entropy (ties: lower index first), setting the other negatives of
 * label[count] to -1. idx [count] is scratch. Returns the negatives kept. */
int ld_ohem_select(int8_t *label, const float *logits, int count, int keep, int *idx);
/* Smooth-L1 (Huber with beta: 0.5 d^2 / beta if |d| < beta, else |d| - beta / 2) of
 * pred - target for the positions whose label is 1, summed over the 4 offsets and
 * divided by norm. pred, target, dpred [n, 4, hw]; label [n, hw]. beta 0 is L1. */
float ld_smooth_l1_loss(float *dpred, const float *pred, const float *target,
                        const int8_t *label, int n, int hw, float beta, float norm);

/* Box coding against the anchor of side A centred in the window with top-left
 * (wx, wy) and side S (see the top). */
void ld_box_encode(float t[4], double gx, double gy, double gw, double gh,
                   double wx, double wy, double S, double A);
void ld_box_decode(double box[4] /* x, y, w, h */, const float t[4],
                   double wx, double wy, double S, double A);

typedef struct {
    double pos_iou;             /* [0.5] */
    double neg_iou;             /* [0.4] */
    double min_best_iou;        /* [0.3] */
} ld_assign_config;

/* Labels the ny x nx windows of side S whose top-left corners are (x0 + j step,
 * y0 + i step), by the IoU of their anchors (side A, centred), against
 * boxes[0..n) (all in one frame's coordinates). A window is usable when it lies
 * inside [0, fw) x [0, fh). label [ny, nx] gets 1 / 0 / -1, target [4, ny, nx]
 * the offsets of positives (0 elsewhere). Returns the number of positives. */
int ld_det_assign(int8_t *label, float *target, int nx, int ny, double x0, double y0,
                  double step, double S, double A, double fw, double fh, const ld_box *boxes,
                  int n, const ld_assign_config *cfg);

/* ---- frames ----------------------------------------------------------------- */

/* Grey frames with their boxes, decoded once and kept for training/evaluation.
 * Boxes are scaled by (decoded size / labelled size) if the two differ. */
typedef struct {
    int n;
    ld_image *frames;           /* [n] grey */
    ld_box **boxes;             /* [n] -> [n_boxes[i]] */
    int *n_boxes;               /* [n] */
    int *label_index;           /* [n] the image's index in the labels */
} ld_frameset;

/* Loads images[subset[0..n_subset)] of labels (subset NULL: all). */
ld_status ld_frameset_load(ld_frameset *fs, const ld_labels *labels, const char *images_dir,
                           const int *subset, int n_subset, long max_pixels, ld_error *err);
void      ld_frameset_free(ld_frameset *fs);

/* ---- training --------------------------------------------------------------- */

typedef enum { LD_OBJ_FOCAL = 0, LD_OBJ_OHEM = 1 } ld_obj_loss_kind;

typedef struct {
    ld_assign_config assign;
    ld_obj_loss_kind obj_loss;  /* [focal] */
    float focal_alpha;          /* [0.25] */
    float focal_gamma;          /* [2] */
    int ohem_ratio;             /* [3] negatives per positive */
    float box_weight;           /* [1] */
    float smooth_l1_beta;       /* [1/9] */
    float prior;                /* [0.01] initial objectness probability (dense bias) */
    int crop;                   /* [192] crop side; S + k P keeps every window whole */
    int batch;                  /* [8] crops per step */
    int epochs;                 /* [60] */
    float size_range;           /* [1] lesion / window ratio 2^U(-r, r) */
    float p_center;             /* [0.8] */
    double max_scale;           /* [3] largest resize factor of a frame */
    ld_adam_config adam;        /* Keras Adam, lr [1e-3] */
    float lr_final;             /* [0.05] cosine decay of the learning rate over all steps,
                                   from lr to lr_final x lr (1: constant) */
    ld_augment_config aug;
    uint64_t seed;              /* crops, augmentation, dropout */
} ld_dettrain_config;

void ld_dettrain_config_default(ld_dettrain_config *cfg);
/* Ranges; LD_ERR_USAGE naming the field. */
ld_status ld_dettrain_config_check(const ld_dettrain_config *cfg, const ld_arch *arch,
                                   ld_error *err);

typedef struct ld_detacts ld_detacts;   /* activation layout: private */

/* The fully-convolutional network over a batch of crops, in training mode, built
 * on a model's parameters and gradients (the model keeps them; ld_model_adam
 * steps them). The input channels are equal (grey), so conv 1 runs on one plane
 * with its kernel summed over them; its gradient is then the same for each. */
typedef struct {
    ld_model *m;                /* not owned */
    int batch, crop;            /* B, C */
    int nx, ny;                 /* windows per crop side */
    float *x;                   /* [B, C, C] grey / 255 */
    int8_t *label;              /* [B, ny, nx] */
    float *target;              /* [B, 4, ny, nx] */
    float *obj;                 /* [B, ny, nx] objectness logits of the last forward */
    float *box;                 /* [B, 4, ny, nx] box offsets of the last forward */
    float *dobj;                /* [B, ny, nx] */
    float *dbox;                /* [B, 4, ny, nx] */
    ld_detacts *acts;           /* one allocation: activations and backward scratch */
    float *aug_scratch;         /* photometric augmentation scratch */
    int *idx;                   /* [max(B ny nx, C)] hard-negative mining scratch */
} ld_dettrainer;

/* For crops of side `crop` (>= S) and batches up to `batch`. m must have the box head. */
ld_status ld_dettrainer_init(ld_dettrainer *t, ld_model *m, int batch, int crop,
                             const ld_augment_config *aug, ld_error *err);
void      ld_dettrainer_free(ld_dettrainer *t);

/* Training-mode forward of crops x[0..n) into obj and box (BN batch statistics
 * over all n C C positions, moving statistics updated; dropout masks from rng). */
void  ld_dettrainer_forward(ld_dettrainer *t, int n, ld_rng *rng);
/* The loss of the last forward against label/target (dobj, dbox filled; with
 * ohem, label is pruned in place). Returns the total; parts may be NULL. */
typedef struct {
    double obj, box;            /* the two terms (box already times box_weight) */
    int n_pos, n_neg;           /* labelled windows that counted */
} ld_det_loss_parts;
float ld_dettrainer_loss(ld_dettrainer *t, int n, const ld_dettrain_config *cfg,
                         ld_det_loss_parts *parts);
/* Gradients of the last forward's loss into m->grads (overwritten). */
void  ld_dettrainer_backward(ld_dettrainer *t, int n);

/* Fills slot b of the batch from frame f of fs: scale, flips, crop, augmentation,
 * labels (see the top). */
ld_status ld_dettrainer_sample(ld_dettrainer *t, int b, const ld_frameset *fs, int f,
                               const ld_dettrain_config *cfg, ld_rng *rng, ld_error *err);

typedef struct {
    int epoch;
    double loss, obj_loss, box_loss;   /* means over the epoch's steps */
    double pos_per_crop;
    double val_ap50, val_ap;           /* NaN when not evaluated this epoch */
    double seconds;
} ld_det_epoch;

/* Where a run stands between two epochs: with the model's weights and Adam state
 * (held by the ld_model), this is all that training carries from one epoch to the
 * next, so continuing from it gives bit for bit what an uninterrupted run gives
 * (checkpoint.h saves and loads it). */
typedef struct {
    int epochs_done;            /* history[0..epochs_done) are filled */
    ld_rng rng;                 /* crops, augmentation and shuffles after those epochs */
    int *order;                 /* [n_order] the training order, reshuffled in place each epoch */
    int n_order;                /* the number of training frames */
    float *best;                /* [n_params] the weights of the best epoch so far */
    int best_epoch;             /* 0: no epoch evaluated yet (best is unused) */
    double best_ap50, best_ap;  /* its tuning scores */
} ld_dettrain_state;

typedef struct {
    void (*on_step)(void *user, int epoch, int step, int n_steps, double loss);
    void (*on_epoch)(void *user, const ld_det_epoch *e);
    /* after every epoch (after on_epoch), e.g. to write a checkpoint; an error ends
     * training with it. NULL: none. */
    ld_status (*on_state)(void *user, const ld_dettrain_state *st, const ld_det_epoch *history,
                          ld_error *err);
    void *user;
} ld_dettrain_hooks;

/* Evaluation during training: every eval_every epochs (and after the last) the
 * model is scored on `val` with `detect` (AP@0.5, then AP, decide) and the best
 * weights are kept; at the end m holds them and *best_epoch says which. val NULL
 * or empty: no evaluation, m is the last epoch's. */
typedef struct {
    const ld_frameset *val;
    const ld_detect_config *detect;
    int eval_every;             /* [5] */
} ld_dettrain_eval;

/* Trains m (ld_model_init'ed with a box head; weights initialised by the caller;
 * the dense bias is set here from cfg->prior) on `train`. history[cfg->epochs]. */
ld_status ld_dettrain(ld_model *m, const ld_frameset *train, const ld_dettrain_config *cfg,
                      const ld_dettrain_eval *eval, const ld_dettrain_hooks *hooks,
                      ld_det_epoch *history, int *best_epoch, ld_error *err);
/* The same, continuing from `from` (NULL: from the start, as ld_dettrain): m holds
 * the weights and Adam state after from->epochs_done epochs (the dense bias is then
 * not reset) and history[0..epochs_done) their figures (ld_detcheckpoint_load gives
 * all three); epochs epochs_done+1 .. cfg->epochs are run. from->n_order must be
 * train->n. */
ld_status ld_dettrain_resume(ld_model *m, const ld_frameset *train, const ld_dettrain_config *cfg,
                             const ld_dettrain_eval *eval, const ld_dettrain_hooks *hooks,
                             ld_det_epoch *history, const ld_dettrain_state *from,
                             int *best_epoch, ld_error *err);

/* ---- evaluation and tuning --------------------------------------------------- */

/* Runs the detector over every frame of fs: dets[fs->n] (caller frees each with
 * ld_dets_free; NULL: not kept), and the COCO metrics and per-label IoU of the
 * results (either may be NULL). */
ld_status ld_det_evaluate(ld_coco_metrics *coco, ld_iou_stats *iou, ld_dets *dets,
                          const ld_model *m, const ld_detect_config *cfg,
                          const ld_frameset *fs, ld_error *err);

/* Chooses the detector settings on validation frames: pyramids from the largest
 * factor s_max in {max_scales} down to the smallest that still holds one window,
 * in steps of 2^(1/2) or 2^(1/3); NMS IoU in {0.3, 0.4, 0.5, 0.6}; threshold in
 * {0.05, 0.1, 0.2, 0.3, 0.4, 0.5}. The criterion is AP@0.5, then AP, then fewer
 * detections per image (a higher threshold). cfg gets the winner; ap50/ap (may be
 * NULL) its figures. report (may be NULL) is called for every candidate. */
ld_status ld_det_tune(ld_detect_config *cfg, double *ap50, double *ap, const ld_model *m,
                      const ld_frameset *val, const double *max_scales, int n_max_scales,
                      void (*report)(void *user, const ld_detect_config *c, double ap50,
                                     double ap, double dets_per_image),
                      void *user, ld_error *err);

/* The detector settings as model metadata ("detect_threshold", "detect_nms_iou",
 * "detect_scales", "detect_stride", "detect_merge") and back: ld_detect_config_from_model
 * starts from ld_detect_config_default and overrides what the model records. */
ld_status ld_detect_config_to_model(ld_model *m, const ld_detect_config *cfg, ld_error *err);
ld_status ld_detect_config_from_model(ld_detect_config *cfg, const ld_model *m, ld_error *err);

#endif
