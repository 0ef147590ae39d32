/* report.h — what `lymphdet evaluate` writes: metrics.json and a self-contained
 * report.html.
 *
 * Both are made from one ld_report that points at already computed metrics
 * (metrics.h) and at PNG files already written (plot.h, draw.h). Both go through
 * outfile.h, so a failure never leaves a half-written file.
 *
 * metrics.json (every ratio that is not defined — NaN in metrics.h — is null):
 *   "evaluation":     what was evaluated: n_images, iou_threshold, score_threshold,
 *                     bootstrap_resamples, bootstrap_seed, baseline (how the
 *                     baseline box was made), then the report's info pairs as
 *                     strings (model, labels, split, ...);
 *   "detection":      AP, AP50, AP75, AR100 (pycocotools), n_gt, n_det, precision,
 *                     recall, f1 (operating point), detections_per_image,
 *                     iou_per_label {mean, median, q1, q3, min, max,
 *                     found_fraction, mean_found}, top1_iou,
 *                     ci95 {AP50, AP, iou_per_label_mean: [lo, hi] or null};
 *   "classification": accuracy, tp, fp, fn, tn, precision, recall, specificity,
 *                     f1, paper_dsc — only when patch metrics are given;
 *   "baseline":       the same keys as "detection", for the baseline's boxes —
 *                     only when a baseline is given.
 * Numbers are written with 15 significant digits (enough to tell any two
 * metrics apart, short enough to read: 0.1 stays 0.1).
 *
 * report.html opens offline: no external file, font, CSS or script; the PNG
 * figures are embedded as base64 data: URIs. It holds a table of every metric
 * with its exact definition, its 95 % interval and the baseline's value beside
 * it, a note on how to read per-label IoU, the charts and the example overlays. */
#ifndef LYMPHDET_REPORT_H
#define LYMPHDET_REPORT_H

#include "lymphdet/error.h"
#include "lymphdet/metrics.h"

typedef enum {
    LD_FIGURE_CHART = 0,    /* in the "Charts" section */
    LD_FIGURE_EXAMPLE       /* in the "Examples" section (overlays) */
} ld_figure_kind;

typedef struct {
    const char *path;       /* PNG file to embed (read when the HTML is written) */
    const char *title;      /* heading over it */
    const char *caption;    /* one or two sentences under it (may be NULL) */
    ld_figure_kind kind;
} ld_report_figure;

typedef struct {
    const char *title;                      /* <h1> and <title>; NULL: "lymphdet evaluation" */
    int n_images;                           /* images evaluated */
    const ld_eval_config *cfg;              /* thresholds and bootstrap settings used */
    const char *const *info_keys;           /* [n_info] what was evaluated, in order, e.g. */
    const char *const *info_values;         /* "model" -> "m.safetensors" */
    int n_info;
    const ld_detection_metrics *detection;  /* required */
    const ld_detection_metrics *baseline;   /* may be NULL */
    const char *baseline_desc;              /* how its box was made (with baseline) */
    const ld_patch_metrics *classification; /* may be NULL */
    const char *classification_desc;        /* which patches (with classification) */
    const ld_report_figure *figures;        /* [n_figures], in display order */
    int n_figures;
} ld_report;

/* Writes metrics.json (see the top of this file). */
ld_status ld_metrics_json_write(const char *path, const ld_report *r, ld_error *err);

/* Writes report.html; every figure's PNG is read and embedded (a missing or
 * unreadable file is an error naming it; a file that does not start with the
 * PNG signature is LD_ERR_INPUT). */
ld_status ld_report_html_write(const char *path, const ld_report *r, ld_error *err);

/* Standard base64 (RFC 4648, with '=' padding) of data[0..n) into out, which
 * must hold ld_base64_size(n) bytes (the text plus a terminating NUL). */
size_t ld_base64_size(size_t n);
void   ld_base64_encode(char *out, const unsigned char *data, size_t n);

#endif
