/* plot.h — the charts of the evaluation report, drawn with cairo into RGB images.
 *
 *   training curves   the paper's Fig. 8: loss and accuracy per epoch, training
 *                     and validation, from MODEL.history.csv;
 *   IoU box plot      the paper's Fig. 9: per-label IoU of one or more detectors
 *                     (the baseline beside the model), every value shown as a dot;
 *   confusion matrix  validation patches, laid out as the paper's Table 2;
 *   PR curve          precision against recall behind AP@0.5, raw and with COCO's
 *                     interpolated envelope.
 *
 * Every chart renders into a new w x h x 3 ld_image (free with ld_image_free;
 * save with ld_image_save_png). w and h must be in [LD_PLOT_MIN_SIDE,
 * LD_PLOT_MAX_SIDE]; text and lines scale with h, so a chart reads alike at any
 * size. NaN values are "not defined" (metrics.h) and are left out of lines and
 * boxes, never drawn as 0. Text uses cairo's toy font API with "DejaVu Sans". */
#ifndef LYMPHDET_PLOT_H
#define LYMPHDET_PLOT_H

#include "lymphdet/error.h"
#include "lymphdet/image.h"
#include "lymphdet/metrics.h"
#include "lymphdet/train.h"

#define LD_PLOT_MIN_SIDE 64
#define LD_PLOT_MAX_SIDE 4096

/* Reads a training history CSV as `lymphdet train` writes it: the header
 * "epoch,train_loss,train_acc,val_loss,val_acc,seconds", then one line per epoch
 * with 6 numbers ("nan" allowed: no validation set). Epochs must be 1, 2, 3, ...
 * in order. *hist receives a new array of *n entries (free with ld_history_free).
 * Errors name path:line and the cause; an absent file is LD_ERR_IO. At most
 * 1,000,000 lines. */
ld_status ld_history_load(ld_epoch_stats **hist, int *n, const char *path, ld_error *err);
void ld_history_free(ld_epoch_stats *hist);

/* Two panels side by side: loss (left) and accuracy (right) against the epoch,
 * training in blue, validation in orange (dashed), a dot per epoch. The loss axis
 * starts at 0; the accuracy axis ends at 1. When no epoch has an accuracy (the
 * detection preset's history), the loss panel takes the whole width. loss_title
 * names the loss (NULL: "Loss (binary cross-entropy)"). hist [n], n >= 1. */
ld_status ld_plot_history(ld_image *out, const ld_epoch_stats *hist, int n, const char *loss_title,
                          int w, int h, ld_error *err);

/* One box plot series: its values and the name written under its box. */
typedef struct {
    const char *name;
    const double *v;     /* [n] values in [0, 1] (NaN skipped) */
    int n;
} ld_plot_series;

/* Box plots on a 0..1 axis, one per series, side by side (Tukey's, as
 * matplotlib draws them by default): the box from q1 to q3 with a line at the
 * median (quantiles by ld_quantile_sorted, numpy's linear method), whiskers to
 * the most extreme values within 1.5 IQR of the box, a diamond at the mean, and
 * every value as a translucent dot spread sideways (a deterministic spread, so
 * the same data give the same picture) so that a pile of zeros — labels never
 * found — shows instead of hiding under a whisker. The axis runs from -0.04 to 1
 * so zeros sit clear of it. Under each box: its name, "n = ..." and how many
 * values are exactly 0. A series without values says so. n_series in 1..8. */
ld_status ld_plot_boxplot(ld_image *out, const ld_plot_series *series, int n_series,
                          const char *title, const char *ylabel, int w, int h, ld_error *err);

/* The confusion matrix as the paper's Table 2: rows "predicted positive /
 * negative", columns "actually positive / negative"; each cell shows its count
 * and its share of the column (tp's share is the recall, tn's the specificity),
 * shaded by that share (correct cells blue, wrong cells red). */
ld_status ld_plot_confusion(ld_image *out, long tp, long fp, long fn, long tn,
                            const char *title, int w, int h, ld_error *err);

/* Precision-recall curves (ld_pr_curve_compute), one per entry: the raw
 * cumulative precision after each detection as a thin line and COCO's
 * interpolated precision at the 101 recall points as a thick step line; the
 * legend, under the plot, gives each name with its AP at the curve's IoU
 * threshold and its number of detections. curves[i] may
 * have no points (drawn as "no detections" in the legend). n in 1..8. */
ld_status ld_plot_pr(ld_image *out, const ld_pr_curve *const *curves, const char *const *names,
                     int n, int w, int h, ld_error *err);

#endif
