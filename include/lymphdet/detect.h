/* detect.h — finding nodes in a whole frame: exact dense scanning, merging of
 * positive windows into boxes, an image pyramid, and the embedding API.
 *
 * Three layers, each usable on its own:
 *
 * 1. ld_scanner runs the network fully-convolutionally over a grey image. Every
 *    block is conv 3x3 valid + 2x2 floor pool, so with P = 2^n_blocks (8 for the
 *    paper) one pass over an image yields, at each point of its last feature map,
 *    exactly the probability of the S x S window (S = input_size) whose top-left
 *    corner is P times that point; the dense layer becomes an F_last x s_out x
 *    s_out convolution. Strides that divide P come from P/stride x P/stride
 *    passes shifted by multiples of the stride; strides that are multiples of P
 *    evaluate the dense layer only where needed. No window is computed twice and
 *    only windows that lie wholly inside the image are reported (the network
 *    reads only the top-left 94 x 94 pixels, but a window is the full S x S).
 *    The result equals ld_model_predict on the cropped window up to float
 *    rounding (BN is folded into the conv, and conv1 sums its kernel over the
 *    equal input channels).
 *
 * 2. ld_merge turns positive windows (score > threshold) into boxes: none (every
 *    window, the paper), nms (greedy by descending score, suppressing IoU >
 *    nms_iou) or cluster (see below). IoU is continuous, as pycocotools computes it.
 *
 * 3. ld_detector combines both over a pyramid of scales: the frame is resized by
 *    each factor (ld_image_resize, Pillow-style antialiased bilinear), scanned,
 *    and every window is mapped back to the frame by the ACTUAL per-axis ratio
 *    of the integer resized size (w_s / w, h_s / h), so a window (x, y, S, S) in
 *    the resized image is the box (x w / w_s, y h / h_s, S w / w_s, S h / h_s).
 *    Windows of all scales are merged together. With a box head (the detection
 *    preset) a positive window's box is its decoded box instead (ld_box_decode in
 *    dettrain.h: the window as anchor, offsets of centre and log-size), mapped
 *    back the same way and clipped to the frame; NMS then runs on those boxes.
 *
 * Coordinates are continuous pixels as in labels.h: a window whose top-left
 * pixel is (x, y) covers [x, x + S) x [y, y + S).
 *
 * Memory: every object owns its buffers and grows them only when an image needs
 * more than any before; a second call on an image of the same size allocates
 * nothing, at every pyramid level (each level keeps its resizer: image.h's
 * ld_resizer; tested with the fault-injection hook). Objects are not shared
 * between threads: give each thread its own scanner or detector (built from the
 * same read-only model). */
#ifndef LYMPHDET_DETECT_H
#define LYMPHDET_DETECT_H

#include <stddef.h>
#include <stdint.h>
#include "lymphdet/detections.h"
#include "lymphdet/error.h"
#include "lymphdet/image.h"
#include "lymphdet/model.h"

/* ---- 1. dense scanning ------------------------------------------------------ */

typedef struct {
    int size;                   /* S: window side (input_size) */
    int period;                 /* P = 2^n_blocks: window step of one pass */
    int n_blocks;
    int filters[LD_MAX_BLOCKS];
    int in_channels;            /* of the original network (conv1's are summed) */
    int s_out;                  /* side of the last feature map of one window */
    float *weights;             /* one allocation: folded conv weights and biases of
                                   every block, then the dense kernel and bias */
    const float *conv_w[LD_MAX_BLOCKS];  /* [F, Cin, 3, 3]; block 0: Cin = 1 */
    const float *conv_b[LD_MAX_BLOCKS];  /* [F] */
    const float *dense_w;       /* [F_last, s_out, s_out] */
    float dense_b;
    int box_head;               /* 4 when the model has a box head (dettrain.h), else 0 */
    int anchor;                 /* side of the box each window's offsets refine */
    const float *box_w;         /* [4, F_last, s_out, s_out] (in `weights`), or NULL */
    float box_b[4];
    float *scratch;             /* one allocation: feature maps, conv rows, sums */
    size_t scratch_cap;         /* in floats */
} ld_scanner;

/* Copies the model's inference weights, with BN folded in, so the model may be
 * freed afterwards. Allocates no scratch yet. */
ld_status ld_scanner_init(ld_scanner *sc, const ld_model *m, ld_error *err);
void      ld_scanner_free(ld_scanner *sc);

/* Number of windows at `stride` on a w x h image: nx = (w - S) / stride + 1,
 * ny likewise. Fails (LD_ERR_USAGE) when the stride neither divides P nor is a
 * multiple of it, and (LD_ERR_INPUT) when the image is smaller than S. */
ld_status ld_scan_grid(int *nx, int *ny, const ld_scanner *sc, int w, int h, int stride,
                       ld_error *err);

/* Probabilities of every window: probs[i * nx + j] for the window whose top-left
 * corner is (j * stride, i * stride). probs [ny, nx] (see ld_scan_grid);
 * img [h, w] grey values in [0, 1] (pixel / 255), rows `row_stride` floats apart.
 * Allocates only when this image needs more scratch than any before. */
ld_status ld_scanner_run(ld_scanner *sc, float *probs, const float *img, int w, int h,
                         size_t row_stride, int stride, ld_error *err);
/* The same, and for a model with a box head the box offsets of every window:
 * deltas[(i * nx + j) * 4 + q] = (tx, ty, tw, th) of window (i, j) (decode with
 * ld_box_decode, dettrain.h). deltas may be NULL; ignored without a box head. */
ld_status ld_scanner_run_boxes(ld_scanner *sc, float *probs, float *deltas, const float *img,
                               int w, int h, size_t row_stride, int stride, ld_error *err);

/* ---- 2. merging ------------------------------------------------------------- */

typedef enum {
    LD_MERGE_NONE = 0,          /* every positive window is a box (the paper) */
    LD_MERGE_NMS,               /* greedy non-maximum suppression */
    LD_MERGE_CLUSTER            /* one box per group of overlapping windows */
} ld_merge_mode;

/* "none", "nms", "cluster" -> mode; -1 when unknown. And back. */
int         ld_merge_parse(const char *name);
const char *ld_merge_name(ld_merge_mode mode);

/* Intersection over union of two boxes, continuous (no +1), as pycocotools:
 * 0 when the union is empty. */
double ld_det_iou(const ld_det *a, const ld_det *b);

/* Scratch for ld_merge, grown to the largest input seen. */
typedef struct {
    int *idx;                   /* [4 * cap]: order, sort buffer, links, best members */
    double *acc;                /* [10 * cap]: per-group sums */
    size_t cap;
} ld_merger;

/* Grows the scratch to n boxes (ld_merge does it too; reserving the largest n
 * first keeps later calls free of allocation). */
ld_status ld_merger_reserve(ld_merger *mg, int n, ld_error *err);
void      ld_merger_free(ld_merger *mg);

/* Merges the boxes in[0..n) into out (emptied first; out != in), which ends up
 * sorted by descending score, ties in input order:
 *   NONE    all boxes.
 *   NMS     visit boxes by descending score (ties: input order); keep a box
 *           unless its IoU with an already kept box is > iou.
 *   CLUSTER link every two boxes whose IoU is > iou (iou = 0: any overlap of
 *           positive area); each connected group becomes one box whose corners
 *           (x1, y1, x2, y2) are the score-weighted means of its members'
 *           corners and whose score is the members' maximum. The mean keeps
 *           the box on the members' consensus (as weighted box fusion does)
 *           where a union would grow with every stray window; across scales
 *           it averages window sizes, so a node seen by windows of two
 *           pyramid levels gets a box of in-between size. Ties between groups
 *           are ordered by their first member in input order.
 * out->category: that of the highest-scoring member. No allocation when mg
 * and out already hold in->n boxes. */
ld_status ld_merge(ld_merger *mg, ld_dets *out, const ld_det *in, int n, ld_merge_mode mode,
                   double iou, ld_error *err);

/* Grows dets' capacity to at least n (never shrinks); keeps its boxes. */
ld_status ld_dets_reserve(ld_dets *dets, int n, ld_error *err);

/* ---- 3. the detector ------------------------------------------------------- */

#define LD_MAX_SCALES 16

typedef struct {
    double threshold;           /* a window is positive when p > threshold [0.95] */
    ld_merge_mode merge;        /* [LD_MERGE_CLUSTER] */
    double nms_iou;             /* NMS suppresses IoU > nms_iou [0.3] */
    double cluster_iou;         /* CLUSTER links IoU > cluster_iou [0: any overlap] */
    int stride;                 /* window step in the (resized) image [8] */
    int n_scales;               /* [1] */
    double scales[LD_MAX_SCALES];   /* resize factors, e.g. 2, 1.41, 1, 0.71, 0.5 [1] */
} ld_detect_config;

void ld_detect_config_default(ld_detect_config *cfg);
/* Checks ranges (threshold in [0, 1], IoUs in [0, 1], 1..LD_MAX_SCALES scales in
 * (0, 16], stride usable with this architecture). LD_ERR_USAGE with a message. */
ld_status ld_detect_config_check(const ld_detect_config *cfg, const ld_arch *arch,
                                 ld_error *err);
/* Parses "2,1.41,1" into cfg->scales / n_scales (LD_ERR_USAGE when malformed). */
ld_status ld_detect_parse_scales(ld_detect_config *cfg, const char *list, ld_error *err);

/* The scores of one pyramid level from the last run. */
typedef struct {
    double factor;              /* the requested scale */
    int w, h;                   /* resized image size: round(factor * frame size) */
    int nx, ny;                 /* windows; 0 x 0 when the level is smaller than S */
    float *probs;               /* [ny, nx], window (i, j) at (j, i) * stride in the
                                   resized image; owned by the detector */
} ld_score_map;

typedef struct {
    ld_detect_config cfg;
    ld_scanner scanner;
    ld_merger merger;
    int w, h;                   /* frame size of the last run */
    ld_score_map maps[LD_MAX_SCALES];   /* [cfg.n_scales] */
    size_t map_cap[LD_MAX_SCALES];
    uint8_t *grey;              /* [h, w] the frame as grey pixels */
    uint8_t *grey_t;            /* [w, h] the same, transposed (for the resizers) */
    size_t grey_cap, grey_t_cap;
    ld_resizer resize[LD_MAX_SCALES];   /* each level's resizing buffers and taps */
    float *input;               /* [h_s, w_s] the level as grey / 255 */
    float unit[256];            /* v / 255 for every grey value v (a division per pixel
                                   costs more than the rest of the conversion) */
    size_t input_cap;
    ld_dets windows;            /* positive windows of all levels, frame coordinates */
    float *deltas;              /* [ny, nx, 4] box offsets of the current level (box head) */
    size_t deltas_cap;
} ld_detector;

/* Scanner from the model (copied: the model may be freed afterwards) and a
 * checked copy of cfg. */
ld_status ld_detector_init(ld_detector *det, const ld_model *m, const ld_detect_config *cfg,
                           ld_error *err);
void      ld_detector_free(ld_detector *det);

/* Detects on an 8-bit frame: px[y * stride_bytes + x * c + k], c = 1 (grey) or 3
 * (RGB, converted to grey by BT.601 like ld_image_to_grey). out is emptied and
 * filled with the merged boxes in frame coordinates, by descending score
 * (category 0). No file I/O; no allocation when the detector and out have
 * already seen a frame of this size (out keeps its capacity: reuse it), as
 * long as every scale is 1 (see the top of this file).
 * Fails with LD_ERR_INPUT when the frame is smaller than the window at every scale. */
ld_status ld_detector_run(ld_detector *det, const uint8_t *px, int w, int h, int c,
                          int stride_bytes, ld_dets *out, ld_error *err);

/* Level k's score map of the last run (k < cfg.n_scales), or NULL. */
const ld_score_map *ld_detector_map(const ld_detector *det, int k);

/* A per-pixel score over the frame of the last run, for heatmaps: each level's
 * map is read at the pixel's position relative to the window centres
 * (bilinear, clamped at the edges) and the maximum over levels is taken; 0
 * where no level has windows. heat [h, w] with w, h the frame size. */
void ld_detector_heat(const ld_detector *det, float *heat);

#endif
