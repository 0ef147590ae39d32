/* evaluate_run.h — what `evaluate` and `crossval` share: running the detector
 * over a set of labelled images, re-creating a model's validation patches, the
 * fixed-box baseline, and writing DIR/metrics.json, the charts, the overlays
 * and DIR/report.html with a summary table on stdout.
 *
 * Functions return an exit code (0, 1 bad input or environment, 2 usage) after
 * printing any message as "lymphdet CMD: ...". */
#ifndef LYMPHDET_CLI_EVALUATE_RUN_H
#define LYMPHDET_CLI_EVALUATE_RUN_H

#include <stdint.h>
#include "lymphdet/detect.h"
#include "lymphdet/labels.h"
#include "lymphdet/metrics.h"
#include "lymphdet/model.h"
#include "lymphdet/patches.h"

/* Detects on every image i of `labels` with mask[i] != 0 (mask NULL: all),
 * reading it from images_dir, on `threads` threads (each with its own detector;
 * results do not depend on the thread count). dets [n_images] must be zeroed;
 * images outside the mask keep no detections. */
int eval_detect(const char *cmd, ld_dets *dets, const ld_model *m, const ld_detect_config *cfg,
                const ld_labels *labels, const char *images_dir, const uint8_t *mask,
                int threads, int quiet);

/* Patch classification of `ps` by the model at p > 0.5 (metrics.h). */
int eval_classify(const char *cmd, ld_patch_metrics *pm, ld_model *m, const ld_patchset *ps);

/* Indices of the images with mask[i] == want (mask NULL: every image counts as
 * want == 1); returns how many, into idx [n_images]. */
int eval_select(int *idx, const uint8_t *mask, int n_images, int want);

typedef struct {
    const char *cmd;
    const char *out_dir;             /* created when absent */
    const ld_labels *labels;         /* every image */
    const ld_dets *dets;             /* [labels->n_images] detections */
    const uint8_t *eval_mask;        /* [n_images] images to evaluate; NULL: all */
    const uint8_t *train_mask;       /* [n_images] images whose labels make the baseline;
                                        NULL: the labels of every image */
    const char *baseline_source;     /* words: where those labels come from */
    const char *images_dir;          /* for overlays; NULL: no overlays */
    const ld_patch_metrics *cls;     /* patch classification, or NULL */
    const char *cls_desc;            /* which patches */
    const char *history_path;        /* training history CSV, or NULL */
    int detection_history;           /* 1: the history is the detection preset's (its loss
                                        is the detection loss, with no accuracies) */
    const char *results_path;        /* write the evaluated detections here, or NULL */
    ld_eval_config cfg;
    const char *const *info_keys;    /* [n_info] shown in the report and metrics.json */
    const char *const *info_values;
    int n_info;
    int no_summary;                  /* 1: no summary table on stdout */
} eval_job;

typedef struct {
    ld_detection_metrics det, base;  /* base is valid when has_base */
    int has_base;
    int n_images;
} eval_outcome;

/* Computes the metrics and writes everything (see the top of this file).
 * On success `res` (may be NULL) holds the metrics: free with eval_outcome_free. */
int  eval_run(const eval_job *job, eval_outcome *res);
void eval_outcome_free(eval_outcome *res);

#endif
