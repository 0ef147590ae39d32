/* draw.h — pictures of detections: overlays and heat maps (cairo).
 *
 * Overlay (the paper's Figs. 10-12): the frame in grey (or colour), labelled boxes
 * in red, predicted boxes in blue, each prediction with its score in white on a
 * blue tag above its top-left corner (inside the box when there is no room
 * above). Line width and text size grow with the frame so a 469 px frame and a
 * 1000 px one read alike. Text uses a built-in pixel font (no fontconfig), so a
 * picture is identical on every machine.
 *
 * Heat map: the frame in grey with a colour map of per-pixel scores (see
 * ld_detector_heat) blended over it, half and half, and a small colour bar from 0
 * to 1 in the bottom-right corner. The colour map is viridis (perceptually
 * uniform, readable in grey and by colour-blind readers), interpolated linearly
 * between 9 of its stops.
 *
 * Both render into a new RGB ld_image (c = 3): save it with ld_image_save_png. */
#ifndef LYMPHDET_DRAW_H
#define LYMPHDET_DRAW_H

#include "lymphdet/detections.h"
#include "lymphdet/error.h"
#include "lymphdet/image.h"
#include "lymphdet/labels.h"

/* out: a new w x h x 3 image (free with ld_image_free); frame: grey or RGB;
 * labels [n_labels] in red (may be NULL when n_labels is 0); dets [n_dets] in
 * blue with scores. Boxes in continuous pixel coordinates (labels.h). */
ld_status ld_draw_overlay(ld_image *out, const ld_image *frame, const ld_box *labels,
                          int n_labels, const ld_det *dets, int n_dets, ld_error *err);

/* out: a new w x h x 3 image; heat [h, w] scores in [0, 1] (clamped). */
ld_status ld_draw_heatmap(ld_image *out, const ld_image *frame, const float *heat,
                          ld_error *err);

/* The colour of score v (clamped to [0, 1]) in the heat map: rgb[3]. */
void ld_colormap(unsigned char rgb[3], float v);

#endif
