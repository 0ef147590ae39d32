/* report.c — metrics.json (jansson) and the self-contained report.html (see
 * include/lymphdet/report.h).
 *
 * The metric table is data: one row per number, with the definition a reader
 * needs to interpret it, so the HTML, and anything else that lists metrics,
 * cannot drift from what metrics.h computes. Undefined values (NaN) become JSON
 * null and "n/a" in the HTML, never 0.
 *
 * jansson allocates with malloc, outside the fault-injection hook: every object
 * it returns is checked, and a failure is reported as LD_ERR_NOMEM. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "lymphdet/outfile.h"
#include "lymphdet/report.h"

/* ---- base64 ----------------------------------------------------------------- */

size_t ld_base64_size(size_t n) { return (n + 2) / 3 * 4 + 1; }

void ld_base64_encode(char *out, const unsigned char *data, size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0, o = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)data[i] << 16 | (unsigned)data[i + 1] << 8 | data[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)data[i] << 16;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        unsigned v = (unsigned)data[i] << 16 | (unsigned)data[i + 1] << 8;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
}

/* ---- the metrics, as rows --------------------------------------------------- */

typedef enum {
    M_AP50, M_AP, M_AP75, M_AR100, M_PRECISION, M_RECALL, M_F1, M_DPI, M_TOP1,
    M_IOU_MEAN, M_IOU_MEDIAN, M_IOU_Q1, M_IOU_Q3, M_IOU_MIN, M_IOU_MAX, M_FOUND, M_MEAN_FOUND,
    M_N_GT, M_N_DET
} det_metric;

typedef enum { FMT_FRACTION, FMT_DECIMAL, FMT_COUNT } value_format;

typedef struct {
    det_metric id;
    const char *name;       /* shown in the table */
    value_format fmt;
    const char *definition; /* HTML */
} det_row;

static const det_row det_rows[] = {
    {M_AP50, "AP@0.5", FMT_FRACTION,
     "Average precision at IoU &ge; 0.5, exactly as pycocotools computes it: the detections "
     "of all images ranked by score (at most 100 per image), each matched greedily to the "
     "unmatched labelled box it overlaps most with IoU &ge; 0.5; precision made non-increasing "
     "and averaged at the 101 recall points 0, 0.01, &hellip;, 1."},
    {M_AP, "AP@[.5:.95]", FMT_FRACTION,
     "The same AP averaged over the 10 IoU thresholds 0.50, 0.55, &hellip;, 0.95 (COCO's "
     "primary metric): it rewards boxes that fit the node, not only touch it."},
    {M_AP75, "AP@0.75", FMT_FRACTION, "AP at IoU &ge; 0.75: tight boxes only."},
    {M_AR100, "AR@100", FMT_FRACTION,
     "Recall with at most 100 detections per image, averaged over the 10 IoU thresholds."},
    {M_PRECISION, "precision", FMT_FRACTION,
     "At the operating point (detections with score &ge; the score threshold, all of them): "
     "the share of detections matched to a labelled box at IoU &ge; 0.5 (greedy by score, "
     "each box matched once)."},
    {M_RECALL, "recall", FMT_FRACTION,
     "At the operating point: the share of labelled boxes matched by a detection."},
    {M_F1, "F1", FMT_FRACTION, "At the operating point: 2 TP / (2 TP + FP + FN)."},
    {M_DPI, "detections per image", FMT_DECIMAL,
     "Detections divided by images (all images). A detector that fires many boxes scores "
     "well on per-label IoU while being useless: read that number with this one."},
    {M_TOP1, "top-1 IoU", FMT_FRACTION,
     "For each image with labels: the IoU between its single highest-scoring detection and "
     "the labelled box that detection overlaps most (0 without detections); mean over those "
     "images. Firing more boxes does not raise it."},
    {M_IOU_MEAN, "per-label IoU: mean", FMT_FRACTION,
     "The paper's IoU (its Fig. 9): for each labelled box, the highest IoU with any detection "
     "of its image (0 when there is none); the mean over all labelled boxes."},
    {M_IOU_MEDIAN, "per-label IoU: median", FMT_FRACTION,
     "Median of the per-label IoU (numpy's linear interpolation)."},
    {M_IOU_Q1, "per-label IoU: first quartile", FMT_FRACTION, "25th percentile (numpy's linear)."},
    {M_IOU_Q3, "per-label IoU: third quartile", FMT_FRACTION, "75th percentile (numpy's linear)."},
    {M_IOU_MIN, "per-label IoU: minimum", FMT_FRACTION, "Lowest per-label IoU."},
    {M_IOU_MAX, "per-label IoU: maximum", FMT_FRACTION, "Highest per-label IoU."},
    {M_FOUND, "labels found", FMT_FRACTION,
     "Share of labelled boxes with per-label IoU &gt; 0 (touched by at least one detection)."},
    {M_MEAN_FOUND, "per-label IoU of found labels", FMT_FRACTION,
     "Mean per-label IoU over the labelled boxes with IoU &gt; 0."},
    {M_N_GT, "labelled boxes", FMT_COUNT, "Labelled boxes in the evaluated images."},
    {M_N_DET, "detections", FMT_COUNT, "Detections in the evaluated images (all scores)."},
};

static double det_value(const ld_detection_metrics *m, det_metric id)
{
    switch (id) {
    case M_AP50:       return m->coco.ap50;
    case M_AP:         return m->coco.ap;
    case M_AP75:       return m->coco.ap75;
    case M_AR100:      return m->coco.ar100;
    case M_PRECISION:  return m->point.precision;
    case M_RECALL:     return m->point.recall;
    case M_F1:         return m->point.f1;
    case M_DPI:        return m->iou.dets_per_image;
    case M_TOP1:       return m->iou.top1_iou;
    case M_IOU_MEAN:   return m->iou.mean;
    case M_IOU_MEDIAN: return m->iou.median;
    case M_IOU_Q1:     return m->iou.q1;
    case M_IOU_Q3:     return m->iou.q3;
    case M_IOU_MIN:    return m->iou.min;
    case M_IOU_MAX:    return m->iou.max;
    case M_FOUND:      return m->iou.found_fraction;
    case M_MEAN_FOUND: return m->iou.mean_found;
    case M_N_GT:       return (double)m->coco.n_gt;
    case M_N_DET:      return (double)m->coco.n_det;
    }
    return NAN;
}

/* the bootstrap interval of a metric, or NULL when it has none */
static const ld_ci *det_ci(const ld_detection_metrics *m, det_metric id)
{
    switch (id) {
    case M_AP50:     return &m->boot.ap50;
    case M_AP:       return &m->boot.ap;
    case M_IOU_MEAN: return &m->boot.mean_iou;
    default:         return NULL;
    }
}

typedef enum {
    C_ACCURACY, C_PAPER_DSC, C_F1, C_PRECISION, C_RECALL, C_SPECIFICITY, C_TP, C_FP, C_FN, C_TN
} cls_metric;

typedef struct {
    cls_metric id;
    const char *name;
    value_format fmt;
    const char *definition;
} cls_row;

static const cls_row cls_rows[] = {
    {C_ACCURACY, "accuracy", FMT_FRACTION,
     "(TP + TN) / n; a patch is called positive when p &gt; 0.5 (strict), the paper's Eq. 2."},
    {C_PAPER_DSC, "paper &ldquo;DSC&rdquo;", FMT_FRACTION,
     "2 &Sigma;pred / (&Sigma;pred + &Sigma;y), as the paper printed it. It has no overlap "
     "term: it compares only how many patches are called positive with how many are, so a "
     "classifier calling exactly the wrong patches positive scores 1. Not the Dice "
     "coefficient (next row)."},
    {C_F1, "Dice = F1", FMT_FRACTION,
     "2 TP / (2 TP + FP + FN): the true Dice coefficient of the predicted and labelled 0/1 "
     "vectors."},
    {C_PRECISION, "precision", FMT_FRACTION, "TP / (TP + FP)."},
    {C_RECALL, "recall (sensitivity)", FMT_FRACTION, "TP / (TP + FN)."},
    {C_SPECIFICITY, "specificity", FMT_FRACTION, "TN / (TN + FP)."},
    {C_TP, "TP", FMT_COUNT, "Node patches called positive."},
    {C_FP, "FP", FMT_COUNT, "Background patches called positive."},
    {C_FN, "FN", FMT_COUNT, "Node patches called negative."},
    {C_TN, "TN", FMT_COUNT, "Background patches called negative."},
};

static double cls_value(const ld_patch_metrics *m, cls_metric id)
{
    switch (id) {
    case C_ACCURACY:    return m->accuracy;
    case C_PAPER_DSC:   return m->paper_dsc;
    case C_F1:          return m->f1;
    case C_PRECISION:   return m->precision;
    case C_RECALL:      return m->recall;
    case C_SPECIFICITY: return m->specificity;
    case C_TP:          return (double)m->tp;
    case C_FP:          return (double)m->fp;
    case C_FN:          return (double)m->fn;
    case C_TN:          return (double)m->tn;
    }
    return NAN;
}

/* ---- metrics.json ----------------------------------------------------------- */

/* Builders that remember any allocation failure in *bad instead of crashing. */
static void put(json_t *obj, const char *key, json_t *v, int *bad)
{
    if (!obj || !v || json_object_set_new(obj, key, v) != 0) *bad = 1;
}

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *interval(const ld_ci *ci, int *bad)
{
    if (!(isfinite(ci->lo) && isfinite(ci->hi))) return json_null();
    json_t *a = json_array();
    if (!a || json_array_append_new(a, json_real(ci->lo)) ||
        json_array_append_new(a, json_real(ci->hi)))
        *bad = 1;
    return a;
}

static json_t *detection_json(const ld_detection_metrics *m, int *bad)
{
    json_t *o = json_object(), *iou = json_object(), *ci = json_object();
    put(o, "AP", num(m->coco.ap), bad);
    put(o, "AP50", num(m->coco.ap50), bad);
    put(o, "AP75", num(m->coco.ap75), bad);
    put(o, "AR100", num(m->coco.ar100), bad);
    put(o, "n_gt", json_integer(m->coco.n_gt), bad);
    put(o, "n_det", json_integer(m->coco.n_det), bad);
    put(o, "precision", num(m->point.precision), bad);
    put(o, "recall", num(m->point.recall), bad);
    put(o, "f1", num(m->point.f1), bad);
    put(o, "detections_per_image", num(m->iou.dets_per_image), bad);
    put(iou, "mean", num(m->iou.mean), bad);
    put(iou, "median", num(m->iou.median), bad);
    put(iou, "q1", num(m->iou.q1), bad);
    put(iou, "q3", num(m->iou.q3), bad);
    put(iou, "min", num(m->iou.min), bad);
    put(iou, "max", num(m->iou.max), bad);
    put(iou, "found_fraction", num(m->iou.found_fraction), bad);
    put(iou, "mean_found", num(m->iou.mean_found), bad);
    put(o, "iou_per_label", iou, bad);
    put(o, "top1_iou", num(m->iou.top1_iou), bad);
    put(ci, "AP50", interval(&m->boot.ap50, bad), bad);
    put(ci, "AP", interval(&m->boot.ap, bad), bad);
    put(ci, "iou_per_label_mean", interval(&m->boot.mean_iou, bad), bad);
    put(o, "ci95", ci, bad);
    return o;
}

static json_t *classification_json(const ld_patch_metrics *m, int *bad)
{
    json_t *o = json_object();
    put(o, "accuracy", num(m->accuracy), bad);
    put(o, "tp", json_integer(m->tp), bad);
    put(o, "fp", json_integer(m->fp), bad);
    put(o, "fn", json_integer(m->fn), bad);
    put(o, "tn", json_integer(m->tn), bad);
    put(o, "precision", num(m->precision), bad);
    put(o, "recall", num(m->recall), bad);
    put(o, "specificity", num(m->specificity), bad);
    put(o, "f1", num(m->f1), bad);
    put(o, "paper_dsc", num(m->paper_dsc), bad);
    return o;
}

static ld_status check_report(const ld_report *r, const char *path, ld_error *err)
{
    if (!r || !r->detection || !r->cfg || r->n_info < 0 || r->n_figures < 0 ||
        (r->n_info && (!r->info_keys || !r->info_values)) || (r->n_figures && !r->figures))
        return ld_fail(err, LD_ERR_USAGE, "%s: incomplete report description", path);
    for (int i = 0; i < r->n_info; i++)
        if (!r->info_keys[i] || !r->info_values[i])
            return ld_fail(err, LD_ERR_USAGE, "%s: info entry %d is empty", path, i);
    return LD_OK;
}

ld_status ld_metrics_json_write(const char *path, const ld_report *r, ld_error *err)
{
    ld_status st = check_report(r, path, err);
    if (st) return st;
    int bad = 0;
    json_t *root = json_object(), *ev = json_object();
    put(ev, "n_images", json_integer(r->n_images), &bad);
    put(ev, "iou_threshold", num(r->cfg->iou_threshold), &bad);
    put(ev, "score_threshold", num(r->cfg->score_threshold), &bad);
    put(ev, "bootstrap_resamples", json_integer(r->cfg->n_resamples), &bad);
    put(ev, "bootstrap_seed", json_integer((json_int_t)r->cfg->seed), &bad);
    if (r->baseline && r->baseline_desc)
        put(ev, "baseline", json_string(r->baseline_desc), &bad);
    if (r->classification && r->classification_desc)
        put(ev, "classification_patches", json_string(r->classification_desc), &bad);
    for (int i = 0; i < r->n_info; i++) {
        json_t *s = json_string(r->info_values[i]);
        if (!s) {   /* the only way json_string fails besides memory */
            json_decref(root);
            json_decref(ev);
            return ld_fail(err, LD_ERR_INPUT, "%s: %s is not valid UTF-8", path, r->info_keys[i]);
        }
        put(ev, r->info_keys[i], s, &bad);
    }
    put(root, "evaluation", ev, &bad);
    put(root, "detection", detection_json(r->detection, &bad), &bad);
    if (r->classification) put(root, "classification", classification_json(r->classification, &bad), &bad);
    if (r->baseline) put(root, "baseline", detection_json(r->baseline, &bad), &bad);
    if (bad) {
        json_decref(root);
        return ld_fail(err, LD_ERR_NOMEM, "%s: out of memory building the JSON", path);
    }
    ld_outfile out;
    st = ld_out_open(&out, path, err);
    if (!st) {
        if (json_dumpf(root, out.fp, JSON_INDENT(2) | JSON_REAL_PRECISION(15)) != 0 ||
            fputc('\n', out.fp) == EOF) {
            ld_out_abort(&out);
            st = ld_fail(err, LD_ERR_IO, "%s: write failed", path);
        } else {
            st = ld_out_commit(&out, err);
        }
    }
    json_decref(root);
    return st;
}

/* ---- report.html ------------------------------------------------------------ */

/* a character of text with &, <, >, " escaped */
static void put_escaped_char(FILE *f, char c)
{
    switch (c) {
    case '&': fputs("&amp;", f); break;
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '"': fputs("&quot;", f); break;
    default:  fputc(c, f);
    }
}

static void put_escaped(FILE *f, const char *s)
{
    for (; s && *s; s++) put_escaped_char(f, *s);
}

static void put_value(FILE *f, double v, value_format fmt)
{
    if (isnan(v)) fputs("<span class=\"na\" title=\"not defined (a ratio with a zero "
                        "denominator)\">n/a</span>", f);
    else if (fmt == FMT_COUNT) fprintf(f, "%.0f", v);
    else if (fmt == FMT_DECIMAL) fprintf(f, "%.2f", v);
    else fprintf(f, "%.3f", v);
}

static void put_ci(FILE *f, const ld_ci *ci)
{
    if (!ci) fputs("<span class=\"dash\">&mdash;</span>", f);
    else if (!(isfinite(ci->lo) && isfinite(ci->hi))) fputs("<span class=\"na\">n/a</span>", f);
    else fprintf(f, "%.3f &ndash; %.3f", ci->lo, ci->hi);
}

static const char *const css =
    "body{font-family:'DejaVu Sans',Arial,Helvetica,sans-serif;color:#1a1a1a;margin:0;"
    "background:#f4f5f7;line-height:1.45}"
    "main{max-width:1100px;margin:0 auto;padding:24px 32px 48px;background:#fff}"
    "h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:32px 0 10px;"
    "border-bottom:2px solid #dde1e6;padding-bottom:4px}h3{font-size:16px;margin:18px 0 6px}"
    "table{border-collapse:collapse;width:100%;font-size:14px}"
    "th,td{padding:6px 9px;border-bottom:1px solid #e3e6ea;vertical-align:top;text-align:left}"
    "th{background:#eef1f4;font-weight:600}"
    "td.v,th.v{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}"
    "td.name{white-space:nowrap;font-weight:600}td.def{color:#444;font-size:13px}"
    "tr.group td{background:#f7f8fa;font-weight:700;color:#2b4a6b;padding-top:12px}"
    "table.info td:first-child{width:190px;color:#555;white-space:nowrap}"
    "table.info td{font-size:14px;overflow-wrap:anywhere}"
    ".na{color:#a33}.dash{color:#999}"
    ".note{background:#fff8e6;border-left:4px solid #e0a800;padding:10px 14px;margin:14px 0;"
    "font-size:14px}"
    ".glance{font-size:15px}.glance li{margin:4px 0}"
    "figure{margin:18px 0;display:inline-block;vertical-align:top;max-width:100%}"
    "figure img{max-width:100%;height:auto;border:1px solid #dde1e6}"
    "figcaption{font-size:13px;color:#444;max-width:560px;margin-top:4px}"
    ".examples figure{margin-right:14px;max-width:340px}"
    ".examples figure img{width:340px}"
    "footer{margin-top:36px;font-size:12px;color:#777}";

/* The whole file into memory (at most 256 MiB); *size receives its length. */
static unsigned char *read_file(size_t *size, const char *path, ld_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ld_fail(err, LD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        ld_fail(err, LD_ERR_IO, "%s: cannot read its size", path);
        return NULL;
    }
    if (n > 256L * 1024 * 1024) {
        fclose(f);
        ld_fail(err, LD_ERR_INPUT, "%s: %ld bytes is too large to embed", path, n);
        return NULL;
    }
    unsigned char *data = ld_alloc((size_t)n, 1, path, err);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
        ld_free(data);
        data = NULL;
        ld_fail(err, LD_ERR_IO, "%s: read error", path);
    }
    fclose(f);
    *size = (size_t)n;
    return data;
}

/* <figure> with the PNG as a data: URI */
static ld_status put_figure(FILE *f, const ld_report_figure *fig, ld_error *err)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t n = 0;
    unsigned char *data = read_file(&n, fig->path, err);
    if (!data) return err->status;
    if (n < 8 || memcmp(data, sig, 8) != 0) {
        ld_free(data);
        return ld_fail(err, LD_ERR_INPUT, "%s: not a PNG file", fig->path);
    }
    char *b64 = ld_alloc(ld_base64_size(n), 1, "a figure's base64 text", err);
    if (!b64) {
        ld_free(data);
        return LD_ERR_NOMEM;
    }
    ld_base64_encode(b64, data, n);
    ld_free(data);
    fputs("<figure>", f);
    /* a chart carries its title inside the picture; an example needs one above */
    if (fig->title && fig->kind == LD_FIGURE_EXAMPLE) {
        fputs("<h3>", f);
        put_escaped(f, fig->title);
        fputs("</h3>", f);
    }
    fputs("<img alt=\"", f);
    put_escaped(f, fig->title ? fig->title : fig->path);
    fprintf(f, "\" src=\"data:image/png;base64,%s\">", b64);
    ld_free(b64);
    if (fig->caption) {
        fputs("<figcaption>", f);
        put_escaped(f, fig->caption);
        fputs("</figcaption>", f);
    }
    fputs("</figure>\n", f);
    return LD_OK;
}

static void put_det_rows(FILE *f, const ld_report *r, int from, int to)
{
    for (int i = from; i < to; i++) {
        const det_row *row = &det_rows[i];
        fprintf(f, "<tr><td class=\"name\">%s</td><td class=\"v\">", row->name);
        put_value(f, det_value(r->detection, row->id), row->fmt);
        fputs("</td><td class=\"v\">", f);
        put_ci(f, det_ci(r->detection, row->id));
        fputs("</td><td class=\"v\">", f);
        if (r->baseline) put_value(f, det_value(r->baseline, row->id), row->fmt);
        else fputs("<span class=\"dash\">&mdash;</span>", f);
        fprintf(f, "</td><td class=\"def\">%s</td></tr>\n", row->definition);
    }
}

static int det_index(det_metric id)
{
    for (int i = 0; i < (int)(sizeof det_rows / sizeof det_rows[0]); i++)
        if (det_rows[i].id == id) return i;
    return 0;
}

/* "0.123 [0.050, 0.210]" or "n/a" */
static void put_with_ci(FILE *f, double v, const ld_ci *ci)
{
    put_value(f, v, FMT_FRACTION);
    if (ci && isfinite(ci->lo) && isfinite(ci->hi))
        fprintf(f, " (95 %% interval %.3f&ndash;%.3f)", ci->lo, ci->hi);
}

/* A few sentences with the numbers that matter, before the full table. */
static void put_glance(FILE *f, const ld_report *r)
{
    const ld_detection_metrics *d = r->detection, *b = r->baseline;
    fputs("<ul class=\"glance\">\n<li><b>AP@0.5</b> ", f);
    put_with_ci(f, d->coco.ap50, &d->boot.ap50);
    if (b) {
        fputs("; the fixed-box baseline scores ", f);
        put_value(f, b->coco.ap50, FMT_FRACTION);
    }
    fputs(".</li>\n<li><b>Mean per-label IoU</b> ", f);
    put_with_ci(f, d->iou.mean, &d->boot.mean_iou);
    fputs(" with ", f);
    put_value(f, d->iou.dets_per_image, FMT_DECIMAL);
    fputs(" detections per image", f);
    if (b) {
        fputs("; the baseline, with one box per image, scores ", f);
        put_value(f, b->iou.mean, FMT_FRACTION);
    }
    fputs(". Top-1 IoU (only each image's best box counts): ", f);
    put_value(f, d->iou.top1_iou, FMT_FRACTION);
    fputs(".</li>\n", f);
    if (r->classification) {
        const ld_patch_metrics *c = r->classification;
        fputs("<li><b>Patch accuracy</b> ", f);
        put_value(f, c->accuracy, FMT_FRACTION);
        fputs(", the paper's &ldquo;DSC&rdquo; ", f);
        put_value(f, c->paper_dsc, FMT_FRACTION);
        fputs(", the true Dice (F1) ", f);
        put_value(f, c->f1, FMT_FRACTION);
        fprintf(f, " on %ld patches.</li>\n", c->tp + c->fp + c->fn + c->tn);
    }
    fputs("</ul>\n", f);
}

static void put_table(FILE *f, const ld_report *r)
{
    fputs("<table class=\"metrics\">\n<tr><th>metric</th><th class=\"v\">value</th>"
          "<th class=\"v\">95 % interval</th><th class=\"v\">baseline</th>"
          "<th>definition</th></tr>\n", f);
    int n_det = (int)(sizeof det_rows / sizeof det_rows[0]);
    int a = det_index(M_PRECISION), b = det_index(M_DPI), c = det_index(M_N_GT);
    fputs("<tr class=\"group\"><td colspan=\"5\">Detection: COCO metrics (pycocotools)"
          "</td></tr>\n", f);
    put_det_rows(f, r, 0, a);
    fprintf(f, "<tr class=\"group\"><td colspan=\"5\">Detection at the operating point "
               "(score &ge; %g, IoU &ge; %g)</td></tr>\n",
            r->cfg->score_threshold, r->cfg->iou_threshold);
    put_det_rows(f, r, a, b);
    fputs("<tr class=\"group\"><td colspan=\"5\">Per-label IoU (the paper's measure) and "
          "what to read it with</td></tr>\n", f);
    put_det_rows(f, r, b, c);
    fputs("<tr class=\"group\"><td colspan=\"5\">Counts</td></tr>\n", f);
    put_det_rows(f, r, c, n_det);
    if (r->classification) {
        fputs("<tr class=\"group\"><td colspan=\"5\">Patch classification (the paper's "
              "Table 2)", f);
        if (r->classification_desc) {
            fputs(": ", f);
            put_escaped(f, r->classification_desc);
        }
        fputs("</td></tr>\n", f);
        for (size_t i = 0; i < sizeof cls_rows / sizeof cls_rows[0]; i++) {
            const cls_row *row = &cls_rows[i];
            fprintf(f, "<tr><td class=\"name\">%s</td><td class=\"v\">", row->name);
            put_value(f, cls_value(r->classification, row->id), row->fmt);
            fprintf(f, "</td><td class=\"v\"><span class=\"dash\">&mdash;</span></td>"
                       "<td class=\"v\"><span class=\"dash\">&mdash;</span></td>"
                       "<td class=\"def\">%s</td></tr>\n", row->definition);
        }
    }
    fputs("</table>\n", f);
}

static ld_status put_figures(FILE *f, const ld_report *r, ld_figure_kind kind, ld_error *err)
{
    for (int i = 0; i < r->n_figures; i++) {
        if (r->figures[i].kind != kind) continue;
        ld_status st = put_figure(f, &r->figures[i], err);
        if (st) return st;
    }
    return LD_OK;
}

static int count_figures(const ld_report *r, ld_figure_kind kind)
{
    int n = 0;
    for (int i = 0; i < r->n_figures; i++) n += r->figures[i].kind == kind;
    return n;
}

ld_status ld_report_html_write(const char *path, const ld_report *r, ld_error *err)
{
    ld_status st = check_report(r, path, err);
    if (st) return st;
    ld_outfile out;
    if ((st = ld_out_open(&out, path, err))) return st;
    FILE *f = out.fp;
    const char *title = r->title ? r->title : "lymphdet evaluation";
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>", f);
    put_escaped(f, title);
    fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body>\n<main>\n<h1>", css);
    put_escaped(f, title);
    fputs("</h1>\n<table class=\"info\">\n", f);
    fprintf(f, "<tr><td>images evaluated</td><td>%d</td></tr>\n", r->n_images);
    for (int i = 0; i < r->n_info; i++) {
        fputs("<tr><td>", f);
        for (const char *k = r->info_keys[i]; *k; k++) {   /* JSON keys read as words */
            if (*k == '_') fputc(' ', f);
            else put_escaped_char(f, *k);
        }
        fputs("</td><td>", f);
        put_escaped(f, r->info_values[i]);
        fputs("</td></tr>\n", f);
    }
    if (r->baseline && r->baseline_desc) {
        fputs("<tr><td>baseline</td><td>", f);
        put_escaped(f, r->baseline_desc);
        fputs("</td></tr>\n", f);
    }
    if (r->cfg->n_resamples > 0)
        fprintf(f, "<tr><td>95 %% intervals</td><td>bootstrap over images: %d resamples, "
                   "seed %llu, 2.5th and 97.5th percentiles</td></tr>\n",
                r->cfg->n_resamples, (unsigned long long)r->cfg->seed);
    else
        fputs("<tr><td>95 % intervals</td><td>not computed (bootstrap off)</td></tr>\n", f);
    fputs("</table>\n<h2>At a glance</h2>\n", f);
    put_glance(f, r);
    fputs("<div class=\"note\"><b>How to read these numbers.</b> The paper reports patch "
          "accuracy, a &ldquo;DSC&rdquo; that has no overlap term, and per-label IoU. "
          "Per-label IoU gives each labelled box the best IoU of <i>any</i> detection in its "
          "image, so a detector that fires many boxes scores well on it while being useless: "
          "read it with the detections per image, the top-1 IoU and the baseline (one fixed "
          "box per image, which knows nothing about the image). AP@0.5 and AP@[.5:.95] "
          "penalise every false box and are the numbers to compare detectors by. "
          "&ldquo;n/a&rdquo; marks a value that is not defined (a ratio with a zero "
          "denominator), never a 0.</div>\n", f);
    fputs("<h2>All metrics</h2>\n", f);
    put_table(f, r);
    st = LD_OK;
    if (count_figures(r, LD_FIGURE_CHART)) {
        fputs("<h2>Charts</h2>\n<div class=\"charts\">\n", f);
        st = put_figures(f, r, LD_FIGURE_CHART, err);
        fputs("</div>\n", f);
    }
    if (!st && count_figures(r, LD_FIGURE_EXAMPLE)) {
        fputs("<h2>Examples</h2>\n<p>Labelled boxes in <b style=\"color:#e01a1a\">red</b>, "
              "detections in <b style=\"color:#2673ff\">blue</b> with their scores.</p>\n"
              "<div class=\"examples\">\n", f);
        st = put_figures(f, r, LD_FIGURE_EXAMPLE, err);
        fputs("</div>\n", f);
    }
    if (st) {
        ld_out_abort(&out);
        return st;
    }
    fprintf(f, "<footer>Written by lymphdet %s. Metric definitions: include/lymphdet/metrics.h."
               "</footer>\n</main>\n</body>\n</html>\n", LD_VERSION);
    return ld_out_commit(&out, err);
}
