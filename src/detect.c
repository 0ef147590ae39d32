/* detect.c — the detector: a pyramid of dense scans merged into boxes, behind the
 * embedding API of detect.h §3.
 *
 * A run converts the frame to grey (BT.601, exactly as ld_image_to_grey rounds
 * it, so a detection equals classifying the same window with `classify`), then
 * for each scale factor f resizes the grey frame to round(f w) x round(f h) with
 * the level's own ld_resizer (ld_image_resize's filter; factor 1 reads the frame
 * itself), scans it, and maps every
 * window whose probability is > threshold back to the frame by the actual
 * per-axis ratio of the integer sizes. Windows of all levels, in level order and
 * raster order within a level, go to ld_merge together, so overlapping boxes
 * found at different scales merge like those of one scale.
 *
 * Buffers (grey frame, resized levels and their filter taps, float level, score
 * maps, window list, merge scratch, the caller's output capacity) are sized for
 * the largest frame seen, before any
 * scanning, from the total number of windows the frame can produce: once warm
 * for a size, a run allocates nothing, whatever the number of positives. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "lymphdet/detect.h"
#include "lymphdet/dettrain.h"

/* frames above this many pixels are refused rather than allocated (same limit
 * as decoding) */
#define MAX_FRAME_PIXELS LD_IMAGE_MAX_PIXELS_DEFAULT
#define MAX_SCALE 16.0

void ld_detect_config_default(ld_detect_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->threshold = 0.95;
    cfg->merge = LD_MERGE_CLUSTER;   /* best AP@0.5 for the paper preset on held-out BUSI (README) */
    cfg->nms_iou = 0.3;
    cfg->cluster_iou = 0.0;
    cfg->stride = 8;
    cfg->n_scales = 1;
    cfg->scales[0] = 1.0;
}

ld_status ld_detect_config_check(const ld_detect_config *cfg, const ld_arch *arch,
                                 ld_error *err)
{
    if (!(cfg->threshold >= 0 && cfg->threshold <= 1))
        return ld_fail(err, LD_ERR_USAGE, "threshold %g is outside [0, 1]", cfg->threshold);
    if ((unsigned)cfg->merge > LD_MERGE_CLUSTER)
        return ld_fail(err, LD_ERR_USAGE, "unknown merge mode %d", (int)cfg->merge);
    if (!(cfg->nms_iou >= 0 && cfg->nms_iou <= 1))
        return ld_fail(err, LD_ERR_USAGE, "NMS IoU %g is outside [0, 1]", cfg->nms_iou);
    if (!(cfg->cluster_iou >= 0 && cfg->cluster_iou <= 1))
        return ld_fail(err, LD_ERR_USAGE, "cluster IoU %g is outside [0, 1]", cfg->cluster_iou);
    if (cfg->n_scales < 1 || cfg->n_scales > LD_MAX_SCALES)
        return ld_fail(err, LD_ERR_USAGE, "%d scales: give 1 to %d", cfg->n_scales, LD_MAX_SCALES);
    for (int k = 0; k < cfg->n_scales; k++)
        if (!(cfg->scales[k] > 0 && cfg->scales[k] <= MAX_SCALE))
            return ld_fail(err, LD_ERR_USAGE, "scale %g is outside (0, %g]", cfg->scales[k],
                           MAX_SCALE);
    if (arch->n_blocks < 1 || arch->n_blocks > LD_MAX_BLOCKS)
        return ld_fail(err, LD_ERR_USAGE, "architecture with %d blocks", arch->n_blocks);
    int period = 1 << arch->n_blocks;
    if (cfg->stride <= 0 || (period % cfg->stride != 0 && cfg->stride % period != 0))
        return ld_fail(err, LD_ERR_USAGE, "stride %d must divide %d or be a multiple of it",
                       cfg->stride, period);
    return LD_OK;
}

ld_status ld_detect_parse_scales(ld_detect_config *cfg, const char *list, ld_error *err)
{
    int n = 0;
    const char *p = list;
    for (;;) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || (*end != ',' && *end != '\0') || !isfinite(v))
            return ld_fail(err, LD_ERR_USAGE, "scales '%s': expected numbers separated by commas",
                           list);
        if (!(v > 0 && v <= MAX_SCALE))
            return ld_fail(err, LD_ERR_USAGE, "scales '%s': %g is outside (0, %g]", list, v,
                           MAX_SCALE);
        if (n == LD_MAX_SCALES)
            return ld_fail(err, LD_ERR_USAGE, "scales '%s': at most %d", list, LD_MAX_SCALES);
        cfg->scales[n++] = v;
        if (*end == '\0') break;
        p = end + 1;
    }
    cfg->n_scales = n;
    return LD_OK;
}

ld_status ld_detector_init(ld_detector *det, const ld_model *m, const ld_detect_config *cfg,
                           ld_error *err)
{
    memset(det, 0, sizeof *det);
    if (ld_detect_config_check(cfg, &m->arch, err)) return err->status;
    det->cfg = *cfg;
    for (int v = 0; v < 256; v++) det->unit[v] = (float)v / 255.0f;
    return ld_scanner_init(&det->scanner, m, err);
}

void ld_detector_free(ld_detector *det)
{
    ld_scanner_free(&det->scanner);
    ld_merger_free(&det->merger);
    for (int k = 0; k < LD_MAX_SCALES; k++) ld_free(det->maps[k].probs);
    ld_free(det->grey);
    ld_free(det->grey_t);
    for (int k = 0; k < LD_MAX_SCALES; k++) ld_resizer_free(&det->resize[k]);
    ld_free(det->input);
    ld_dets_free(&det->windows);
    ld_free(det->deltas);
    memset(det, 0, sizeof *det);
}

/* *buf grows to n elements of sz bytes if it holds fewer (*cap counts elements). */
static ld_status grow(void **buf, size_t *cap, size_t n, size_t sz, const char *what,
                      ld_error *err)
{
    if (n <= *cap) return LD_OK;
    void *p = ld_alloc(n, sz, what, err);
    if (!p) return err->status;
    ld_free(*buf);
    *buf = p;
    *cap = n;
    return LD_OK;
}

/* BT.601 luma rounded as ld_image_to_grey does: (299 R + 587 G + 114 B + 500) / 1000. */
static void frame_to_grey(uint8_t *grey, const uint8_t *px, int w, int h, int c, int stride_bytes)
{
    for (int y = 0; y < h; y++) {
        const uint8_t *row = px + (size_t)y * (size_t)stride_bytes;
        uint8_t *out = grey + (size_t)y * (size_t)w;
        if (c == 1) {
            memcpy(out, row, (size_t)w);
            continue;
        }
        for (int x = 0; x < w; x++) {
            const uint8_t *p = row + (size_t)x * 3;
            out[x] = (uint8_t)((299u * p[0] + 587u * p[1] + 114u * p[2] + 500u) / 1000u);
        }
    }
}

/* Lays out the levels for a w x h frame and sizes every buffer for them.
 * *total receives the number of windows over all levels. */
static ld_status plan_levels(ld_detector *det, int w, int h, long *total, ld_error *err)
{
    const ld_detect_config *cfg = &det->cfg;
    int S = det->scanner.size;
    size_t input = 0;
    *total = 0;
    for (int k = 0; k < cfg->n_scales; k++) {
        ld_score_map *m = &det->maps[k];
        double f = cfg->scales[k];
        double ws = floor(f * w + 0.5), hs = floor(f * h + 0.5);
        m->factor = f;
        m->nx = m->ny = 0;
        if (ws * hs > (double)MAX_FRAME_PIXELS)
            return ld_fail(err, LD_ERR_INPUT, "frame %dx%d at scale %g is over %ld pixels", w, h,
                           f, (long)MAX_FRAME_PIXELS);
        m->w = ws < 1 ? 1 : (int)ws;
        m->h = hs < 1 ? 1 : (int)hs;
        if (m->w < S || m->h < S) continue;   /* too small for one window at this level */
        if (ld_scan_grid(&m->nx, &m->ny, &det->scanner, m->w, m->h, cfg->stride, err))
            return err->status;
        size_t n = (size_t)m->nx * (size_t)m->ny;
        if (grow((void **)&m->probs, &det->map_cap[k], n, sizeof(float), "score map", err))
            return err->status;
        if ((size_t)m->w * (size_t)m->h > input) input = (size_t)m->w * (size_t)m->h;
        if (det->scanner.box_head &&
            grow((void **)&det->deltas, &det->deltas_cap, 4 * n, sizeof(float), "box offsets", err))
            return err->status;
        *total += (long)n;
    }
    if (*total == 0)
        return ld_fail(err, LD_ERR_INPUT, "frame %dx%d is smaller than the %d px window at every "
                       "scale", w, h, S);
    if (*total > INT32_MAX / 2)
        return ld_fail(err, LD_ERR_INPUT, "frame %dx%d gives %ld windows, too many", w, h, *total);
    if (grow((void **)&det->input, &det->input_cap, input, sizeof(float), "level pixels", err) ||
        ld_dets_reserve(&det->windows, (int)*total, err) ||
        ld_merger_reserve(&det->merger, (int)*total, err))
        return err->status;
    return LD_OK;
}

/* Scans level k of the grey frame and appends its positive windows, mapped to
 * the frame, to det->windows. */
static ld_status scan_level(ld_detector *det, int k, int w, int h, ld_error *err)
{
    ld_score_map *m = &det->maps[k];
    const uint8_t *px = det->grey;
    if (m->w != w || m->h != h) {
        ld_image frame = {w, h, 1, det->grey}, level;
        if (ld_resizer_run_t(&det->resize[k], &level, &frame, det->grey_t, m->w, m->h, err))
            return err->status;
        px = level.px;
    }
    size_t n = (size_t)m->w * (size_t)m->h;
    for (size_t i = 0; i < n; i++) det->input[i] = det->unit[px[i]];
    int stride = det->cfg.stride;
    float *deltas = det->scanner.box_head ? det->deltas : NULL;
    if (ld_scanner_run_boxes(&det->scanner, m->probs, deltas, det->input, m->w, m->h,
                             (size_t)m->w, stride, err))
        return err->status;

    /* window (i, j) covers [j s, j s + S) x [i s, i s + S) of the level */
    double rx = (double)w / m->w, ry = (double)h / m->h, S = det->scanner.size;
    for (int i = 0; i < m->ny; i++)
        for (int j = 0; j < m->nx; j++) {
            float p = m->probs[(size_t)i * m->nx + j];
            if (!(p > det->cfg.threshold)) continue;
            ld_det d = {(double)j * stride * rx, (double)i * stride * ry, S * rx, S * ry, p, 0};
            if (deltas) {
                /* the decoded box, mapped to the frame and clipped to it */
                double b[4];
                ld_box_decode(b, deltas + ((size_t)i * m->nx + j) * 4, (double)j * stride,
                              (double)i * stride, S, det->scanner.anchor);
                double x1 = fmax(0, b[0] * rx), y1 = fmax(0, b[1] * ry);
                double x2 = fmin(w, (b[0] + b[2]) * rx), y2 = fmin(h, (b[1] + b[3]) * ry);
                if (!(x2 > x1 && y2 > y1)) continue;
                d.x = x1;
                d.y = y1;
                d.w = x2 - x1;
                d.h = y2 - y1;
            }
            det->windows.d[det->windows.n++] = d;
        }
    return LD_OK;
}

ld_status ld_detector_run(ld_detector *det, const uint8_t *px, int w, int h, int c,
                          int stride_bytes, ld_dets *out, ld_error *err)
{
    out->n = 0;
    det->w = det->h = 0;
    if (!px || w <= 0 || h <= 0 || (c != 1 && c != 3) || stride_bytes < 0 ||
        (size_t)stride_bytes < (size_t)w * (size_t)c)
        return ld_fail(err, LD_ERR_USAGE, "detect: bad frame (%dx%d, %d channels, %d bytes per "
                       "row)", w, h, c, stride_bytes);
    if ((double)w * h > (double)MAX_FRAME_PIXELS)
        return ld_fail(err, LD_ERR_INPUT, "frame %dx%d is over %ld pixels", w, h,
                       (long)MAX_FRAME_PIXELS);
    long total;
    if (plan_levels(det, w, h, &total, err) ||
        grow((void **)&det->grey, &det->grey_cap, (size_t)w * (size_t)h, 1, "grey frame", err) ||
        grow((void **)&det->grey_t, &det->grey_t_cap, (size_t)w * (size_t)h, 1, "grey frame", err) ||
        ld_dets_reserve(out, (int)total, err))
        return err->status;
    frame_to_grey(det->grey, px, w, h, c, stride_bytes);
    int resized = 0;   /* a level other than the frame's own size: resizing needs the transpose */
    for (int k = 0; k < det->cfg.n_scales; k++)
        resized |= det->maps[k].nx > 0 && (det->maps[k].w != w || det->maps[k].h != h);
    if (resized) ld_image_transpose(det->grey_t, &(ld_image){w, h, 1, det->grey});
    det->windows.n = 0;
    for (int k = 0; k < det->cfg.n_scales; k++)
        if (det->maps[k].nx > 0 && scan_level(det, k, w, h, err)) return err->status;
    det->w = w;
    det->h = h;
    double iou = det->cfg.merge == LD_MERGE_CLUSTER ? det->cfg.cluster_iou : det->cfg.nms_iou;
    return ld_merge(&det->merger, out, det->windows.d, det->windows.n, det->cfg.merge, iou, err);
}

const ld_score_map *ld_detector_map(const ld_detector *det, int k)
{
    return det->w > 0 && k >= 0 && k < det->cfg.n_scales ? &det->maps[k] : NULL;
}

/* Bilinear read of map m at fractional window index (fi, fj), clamped to the grid. */
static float map_at(const ld_score_map *m, double fi, double fj)
{
    if (fi < 0) fi = 0;
    if (fj < 0) fj = 0;
    if (fi > m->ny - 1) fi = m->ny - 1;
    if (fj > m->nx - 1) fj = m->nx - 1;
    int i0 = (int)fi, j0 = (int)fj;
    int i1 = i0 + 1 < m->ny ? i0 + 1 : i0, j1 = j0 + 1 < m->nx ? j0 + 1 : j0;
    double a = fi - i0, b = fj - j0;
    const float *p = m->probs;
    double top = p[(size_t)i0 * m->nx + j0] * (1 - b) + p[(size_t)i0 * m->nx + j1] * b;
    double bot = p[(size_t)i1 * m->nx + j0] * (1 - b) + p[(size_t)i1 * m->nx + j1] * b;
    return (float)(top * (1 - a) + bot * a);
}

void ld_detector_heat(const ld_detector *det, float *heat)
{
    int w = det->w, h = det->h;
    double half = det->scanner.size / 2.0, s = det->cfg.stride;
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++) heat[i] = 0.0f;
    for (int k = 0; k < det->cfg.n_scales; k++) {
        const ld_score_map *m = &det->maps[k];
        if (m->nx == 0) continue;
        double rx = (double)m->w / w, ry = (double)m->h / h;
        for (int y = 0; y < h; y++) {
            /* the pixel centre in level pixels, then in window-centre units */
            double fi = ((y + 0.5) * ry - half) / s;
            for (int x = 0; x < w; x++) {
                float v = map_at(m, fi, ((x + 0.5) * rx - half) / s);
                if (v > heat[(size_t)y * w + x]) heat[(size_t)y * w + x] = v;
            }
        }
    }
}
