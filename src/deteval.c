/* deteval.c — scoring a detection model on labelled frames, choosing its detector
 * settings on validation frames, and keeping those settings in the model file
 * (dettrain.h, "evaluation and tuning").
 *
 * Tuning scans once per pyramid, keeping every window above the lowest threshold
 * with its decoded box (merge none), applies each NMS IoU to those windows as the
 * detector does (ld_merge), and derives every higher threshold by filtering:
 * greedy NMS visits boxes by descending score and a box is only ever suppressed
 * by a higher-scoring one, so the boxes kept at threshold t2 > t1 are exactly
 * those kept at t1 scoring above t2. Detections are compared with the metrics
 * module (pycocotools-exact AP). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "lymphdet/dettrain.h"

/* The views ld_coco_eval reads: frame i is image id i + 1, its boxes and the
 * first n_det[i] (highest-scoring) of dets[i]. */
static void views(ld_eval_image *imgs, const ld_frameset *fs, const ld_dets *dets,
                  const int *n_det)
{
    for (int i = 0; i < fs->n; i++) {
        imgs[i].id = i + 1;
        imgs[i].gt = fs->boxes[i];
        imgs[i].n_gt = fs->n_boxes[i];
        imgs[i].det = dets ? dets[i].d : NULL;
        imgs[i].n_det = dets ? (n_det ? n_det[i] : dets[i].n) : 0;
    }
}

static void free_dets(ld_dets *dets, int n)
{
    for (int i = 0; dets && i < n; i++) ld_dets_free(&dets[i]);
    ld_free(dets);
}

/* Runs the detector over fs into dets[fs->n] (out boxes by descending score). */
static ld_status detect_all(ld_dets *dets, const ld_model *m, const ld_detect_config *cfg,
                            const ld_frameset *fs, ld_error *err)
{
    ld_detector det;
    if (ld_detector_init(&det, m, cfg, err)) return err->status;
    ld_status st = LD_OK;
    for (int i = 0; i < fs->n && !st; i++) {
        const ld_image *f = &fs->frames[i];
        st = ld_detector_run(&det, f->px, f->w, f->h, 1, f->w, &dets[i], err);
    }
    ld_detector_free(&det);
    return st;
}

ld_status ld_det_evaluate(ld_coco_metrics *coco, ld_iou_stats *iou, ld_dets *dets_out,
                          const ld_model *m, const ld_detect_config *cfg,
                          const ld_frameset *fs, ld_error *err)
{
    ld_dets *dets = ld_zalloc((size_t)fs->n, sizeof *dets, "detections", err);
    ld_eval_image *imgs = dets ? ld_alloc((size_t)fs->n, sizeof *imgs, "evaluation views", err)
                               : NULL;
    if (!imgs) {
        ld_free(dets);
        return LD_ERR_NOMEM;
    }
    ld_status st = detect_all(dets, m, cfg, fs, err);
    if (!st) {
        views(imgs, fs, dets, NULL);
        if (coco) st = ld_coco_eval(coco, NULL, imgs, fs->n, 1, err);
        if (!st && iou) st = ld_label_iou(iou, NULL, imgs, fs->n, err);
    }
    ld_free(imgs);
    if (!st && dets_out) {
        memcpy(dets_out, dets, (size_t)fs->n * sizeof *dets);
        ld_free(dets);
    } else {
        free_dets(dets, fs->n);
    }
    return st;
}

static const double tune_nms[] = {0.3, 0.4, 0.5, 0.6};
static const double tune_thresholds[] = {0.05, 0.1, 0.2, 0.3, 0.4, 0.5};
#define N_NMS (int)(sizeof tune_nms / sizeof tune_nms[0])
#define N_THR (int)(sizeof tune_thresholds / sizeof tune_thresholds[0])
/* candidates within this much AP@0.5 of the best count as equal, and the one with the
 * fewest detections per image wins among them: a clinician reads every box */
#define AP50_TIE 0.01

/* Pyramid from s_max down by `ratio` while the frame still holds a window. */
static int make_pyramid(double *scales, double s_max, double ratio, int min_side, int S)
{
    int n = 0;
    for (double s = s_max; n < LD_MAX_SCALES && floor(s * min_side + 0.5) >= S; s /= ratio)
        scales[n++] = s;
    return n;
}

ld_status ld_det_tune(ld_detect_config *cfg, double *ap50, double *ap, const ld_model *m,
                      const ld_frameset *val, const double *max_scales, int n_max_scales,
                      void (*report)(void *user, const ld_detect_config *c, double ap50,
                                     double ap, double dets_per_image),
                      void *user, ld_error *err)
{
    if (val->n < 1) return ld_fail(err, LD_ERR_USAGE, "tuning needs validation frames");
    int min_side = INT32_MAX;
    for (int i = 0; i < val->n; i++) {
        if (val->frames[i].w < min_side) min_side = val->frames[i].w;
        if (val->frames[i].h < min_side) min_side = val->frames[i].h;
    }
    ld_dets *dets = ld_zalloc((size_t)val->n, sizeof *dets, "detections", err);
    ld_eval_image *imgs = dets ? ld_alloc((size_t)val->n, sizeof *imgs, "views", err) : NULL;
    int *n_det = imgs ? ld_alloc((size_t)val->n, sizeof(int), "detection counts", err) : NULL;
    if (!n_det) {
        ld_free(dets);
        ld_free(imgs);
        return LD_ERR_NOMEM;
    }
    typedef struct { ld_detect_config c; double ap50, ap, dpi; } cand;
    cand best = {0}, *all = NULL;
    int n_all = 0, cap = 0;
    const double ratios[2] = {sqrt(2.0), cbrt(2.0)};
    /* one scan per pyramid keeps every window above the lowest threshold (merge
     * none); each NMS IoU is then applied to those windows, as the detector would */
    ld_dets *windows = ld_zalloc((size_t)val->n, sizeof *windows, "windows", err);
    ld_merger mg = {0};
    ld_status st = windows ? LD_OK : LD_ERR_NOMEM;
    for (int a = 0; a < n_max_scales && !st; a++)
        for (int r = 0; r < 2 && !st; r++) {
            ld_detect_config c = *cfg;
            c.n_scales = make_pyramid(c.scales, max_scales[a], ratios[r], min_side,
                                      m->arch.input_size);
            if (c.n_scales == 0) continue;
            c.merge = LD_MERGE_NONE;
            c.threshold = tune_thresholds[0];
            for (int i = 0; i < val->n; i++) windows[i].n = 0;
            st = detect_all(windows, m, &c, val, err);
            c.merge = LD_MERGE_NMS;
            for (int q = 0; q < N_NMS && !st; q++) {
                c.nms_iou = tune_nms[q];
                for (int i = 0; i < val->n && !st; i++)
                    st = ld_merge(&mg, &dets[i], windows[i].d, windows[i].n, LD_MERGE_NMS,
                                  c.nms_iou, err);
                for (int k = 0; k < N_THR && !st; k++) {
                    long total = 0;
                    for (int i = 0; i < val->n; i++) {
                        int j = 0;
                        while (j < dets[i].n && dets[i].d[j].score > tune_thresholds[k]) j++;
                        n_det[i] = j;
                        total += j;
                    }
                    views(imgs, val, dets, n_det);
                    ld_coco_metrics cm;
                    st = ld_coco_eval(&cm, NULL, imgs, val->n, 1, err);
                    if (st) break;
                    c.threshold = tune_thresholds[k];
                    double dpi = (double)total / val->n;
                    if (report) report(user, &c, cm.ap50, cm.ap, dpi);
                    if (n_all == cap) {
                        cap = cap ? 2 * cap : 64;
                        cand *p = ld_realloc(all, (size_t)cap, sizeof *p, "candidates", err);
                        if (!p) { st = LD_ERR_NOMEM; break; }
                        all = p;
                    }
                    all[n_all++] = (cand){c, isnan(cm.ap50) ? 0 : cm.ap50,
                                          isnan(cm.ap) ? 0 : cm.ap, dpi};
                }
            }
        }
    free_dets(windows, val->n);
    ld_merger_free(&mg);
    if (!st && n_all == 0)
        st = ld_fail(err, LD_ERR_INPUT, "tuning: no pyramid fits the validation frames");
    if (!st) {
        double top = -1;
        for (int i = 0; i < n_all; i++)
            if (all[i].ap50 > top) top = all[i].ap50;
        int found = 0;
        for (int i = 0; i < n_all; i++) {
            const cand *x = &all[i];
            if (x->ap50 < top - AP50_TIE) continue;
            if (!found || x->dpi < best.dpi || (x->dpi == best.dpi && x->ap50 > best.ap50)) {
                best = *x;
                found = 1;
            }
        }
        *cfg = best.c;
        if (ap50) *ap50 = best.ap50;
        if (ap) *ap = best.ap;
    }
    ld_free(all);
    free_dets(dets, val->n);
    ld_free(imgs);
    ld_free(n_det);
    return st;
}

/* ---- settings in the model file ------------------------------------------- */

ld_status ld_detect_config_to_model(ld_model *m, const ld_detect_config *cfg, ld_error *err)
{
    char v[LD_MAX_SCALES * 24 + 1] = "";
    snprintf(v, sizeof v, "%.6g", cfg->threshold);
    if (ld_model_meta_set(m, "detect_threshold", v, err)) return err->status;
    snprintf(v, sizeof v, "%.6g", cfg->nms_iou);
    if (ld_model_meta_set(m, "detect_nms_iou", v, err)) return err->status;
    snprintf(v, sizeof v, "%d", cfg->stride);
    if (ld_model_meta_set(m, "detect_stride", v, err)) return err->status;
    if (ld_model_meta_set(m, "detect_merge", ld_merge_name(cfg->merge), err)) return err->status;
    v[0] = '\0';
    for (int k = 0; k < cfg->n_scales; k++) {
        size_t len = strlen(v);
        snprintf(v + len, sizeof v - len, k ? ",%.6g" : "%.6g", cfg->scales[k]);
    }
    return ld_model_meta_set(m, "detect_scales", v, err);
}

/* A number that is the whole of s, or -1 */
static int parse_number(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

ld_status ld_detect_config_from_model(ld_detect_config *cfg, const ld_model *m, ld_error *err)
{
    ld_detect_config_default(cfg);
    const char *s;
    double v;
#define BAD(key) ld_fail(err, LD_ERR_INPUT, "model metadata %s '%.40s' is not valid", key, s)
    if ((s = ld_model_meta_get(m, "detect_threshold"))) {
        if (parse_number(s, &v)) return BAD("detect_threshold");
        cfg->threshold = v;
    }
    if ((s = ld_model_meta_get(m, "detect_nms_iou"))) {
        if (parse_number(s, &v)) return BAD("detect_nms_iou");
        cfg->nms_iou = v;
    }
    if ((s = ld_model_meta_get(m, "detect_stride"))) {
        if (parse_number(s, &v) || v != floor(v) || v < 1 || v > 4096) return BAD("detect_stride");
        cfg->stride = (int)v;
    }
    if ((s = ld_model_meta_get(m, "detect_merge"))) {
        int mode = ld_merge_parse(s);
        if (mode < 0) return BAD("detect_merge");
        cfg->merge = (ld_merge_mode)mode;
    }
    if ((s = ld_model_meta_get(m, "detect_scales")) &&
        ld_detect_parse_scales(cfg, s, err))
        return ld_fail(err, LD_ERR_INPUT, "model metadata detect_scales '%.40s' is not valid", s);
#undef BAD
    if (ld_detect_config_check(cfg, &m->arch, err)) {
        ld_error_prefix(err, "model metadata");
        err->status = LD_ERR_INPUT;   /* a bad file, not a bad command line */
        return LD_ERR_INPUT;
    }
    return LD_OK;
}
