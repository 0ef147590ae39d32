/* plot.c — the report's charts (see include/lymphdet/plot.h), drawn with cairo.
 *
 * A chart is a white RGB24 cairo surface; a small "frame" maps data coordinates
 * to pixels inside margins, draws the grid, tick labels and axis titles, and the
 * chart functions draw their marks on it. The surface is copied into an
 * ld_image at the end. Sizes are in units of u = h / 400, so the same chart
 * drawn twice as tall has twice the text and line widths.
 *
 * cairo allocates internally and records failure in its context: the status is
 * checked once at the end and reported as LD_ERR_NOMEM. */
#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "lymphdet/plot.h"

static const double PI = 3.14159265358979323846;

/* colours (matplotlib's tab10, which readers know from their own plots) */
static const double BLUE[3] = {0.122, 0.467, 0.706};
static const double ORANGE[3] = {1.000, 0.498, 0.055};
static const double GREEN[3] = {0.173, 0.627, 0.173};
static const double RED[3] = {0.839, 0.153, 0.157};
static const double PURPLE[3] = {0.580, 0.404, 0.741};
static const double BROWN[3] = {0.549, 0.337, 0.294};
static const double GREY[3] = {0.498, 0.498, 0.498};
static const double OLIVE[3] = {0.737, 0.741, 0.133};
static const double *const PALETTE[8] = {BLUE, ORANGE, GREEN, RED, PURPLE, BROWN, GREY, OLIVE};

/* ---- canvas ------------------------------------------------------------------- */

typedef struct {
    cairo_surface_t *s;
    cairo_t *cr;
    int w, h;
    double u;       /* 1 at a 400 px tall chart */
} canvas;

static ld_status canvas_open(canvas *c, int w, int h, const char *what, ld_error *err)
{
    memset(c, 0, sizeof *c);
    if (w < LD_PLOT_MIN_SIDE || h < LD_PLOT_MIN_SIDE || w > LD_PLOT_MAX_SIDE ||
        h > LD_PLOT_MAX_SIDE)
        return ld_fail(err, LD_ERR_USAGE, "%s: size %dx%d is outside %d..%d", what, w, h,
                       LD_PLOT_MIN_SIDE, LD_PLOT_MAX_SIDE);
    c->s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    c->cr = cairo_create(c->s);
    c->w = w;
    c->h = h;
    c->u = h / 400.0;
    cairo_set_source_rgb(c->cr, 1, 1, 1);
    cairo_paint(c->cr);
    cairo_select_font_face(c->cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_line_join(c->cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(c->cr, CAIRO_LINE_CAP_ROUND);
    return LD_OK;
}

/* Copies the surface into a new RGB image and releases cairo's objects. */
static ld_status canvas_close(canvas *c, ld_image *out, const char *what, ld_error *err)
{
    cairo_status_t cs = cairo_status(c->cr);
    cairo_destroy(c->cr);
    cairo_surface_flush(c->s);
    if (cs == CAIRO_STATUS_SUCCESS) cs = cairo_surface_status(c->s);
    ld_status st = LD_OK;
    if (cs != CAIRO_STATUS_SUCCESS)
        st = ld_fail(err, LD_ERR_NOMEM, "%s: drawing failed: %s", what, cairo_status_to_string(cs));
    if (!st) st = ld_image_alloc(out, c->w, c->h, 3, err);
    if (!st) {
        const unsigned char *data = cairo_image_surface_get_data(c->s);
        int stride = cairo_image_surface_get_stride(c->s);
        for (int y = 0; y < c->h; y++) {
            const uint32_t *row = (const uint32_t *)(const void *)(data + (size_t)y * stride);
            uint8_t *p = out->px + (size_t)y * c->w * 3;
            for (int x = 0; x < c->w; x++, p += 3) {
                p[0] = (uint8_t)(row[x] >> 16);
                p[1] = (uint8_t)(row[x] >> 8);
                p[2] = (uint8_t)row[x];
            }
        }
    }
    cairo_surface_destroy(c->s);
    memset(c, 0, sizeof *c);
    return st;
}

static void rgb(cairo_t *cr, const double c[3]) { cairo_set_source_rgb(cr, c[0], c[1], c[2]); }
static void rgba(cairo_t *cr, const double c[3], double a)
{
    cairo_set_source_rgba(cr, c[0], c[1], c[2], a);
}

/* Text anchored at (x, y): ax = 0 left, 0.5 centre, 1 right; ay likewise from
 * the top of capital letters (0) to the baseline (1). angle in radians. */
static void text(const canvas *c, double x, double y, double ax, double ay, double size,
                 int bold, double angle, const char *s)
{
    cairo_t *cr = c->cr;
    cairo_save(cr);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t te;
    cairo_text_extents(cr, s, &te);
    double cap = size * 0.73;   /* cap height of DejaVu Sans */
    cairo_translate(cr, x, y);
    cairo_rotate(cr, angle);
    cairo_move_to(cr, -ax * te.x_advance, cap * ay);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

static double text_width(const canvas *c, double size, int bold, const char *s)
{
    cairo_t *cr = c->cr;
    cairo_save(cr);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t te;
    cairo_text_extents(cr, s, &te);
    cairo_restore(cr);
    return te.x_advance;
}

/* ---- axes ------------------------------------------------------------------- */

typedef struct {
    const canvas *c;
    double x0, y0, x1, y1;          /* plot area: left, top, right, bottom (pixels) */
    double xmin, xmax, ymin, ymax;  /* data range */
} frame;

static double fx(const frame *f, double x)
{
    return f->x0 + (x - f->xmin) / (f->xmax - f->xmin) * (f->x1 - f->x0);
}
static double fy(const frame *f, double y)
{
    return f->y1 - (y - f->ymin) / (f->ymax - f->ymin) * (f->y1 - f->y0);
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about `want` ticks. */
static double nice_step(double range, int want)
{
    double raw = range / want, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void tick_label(char *buf, size_t size, double v, double step)
{
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) < step * 1e-9) v = 0;   /* no "-0.0" */
    snprintf(buf, size, "%.*f", dec, v);
}

/* x axis ticks: none (categories), any numbers, whole numbers only (epochs) */
enum { XT_NONE, XT_NUMBER, XT_INTEGER };

/* Grid, ticks with labels, the plot area's border, axis titles and the title. */
static void draw_axes(const frame *f, const char *title, const char *xlabel, const char *ylabel,
                      int xticks)
{
    const canvas *c = f->c;
    cairo_t *cr = c->cr;
    double u = c->u, fs = 12 * u;
    double xs = nice_step(f->xmax - f->xmin, 6), ys = nice_step(f->ymax - f->ymin, 5);
    if (xticks == XT_INTEGER && xs < 1) xs = 1;
    char buf[32];
    cairo_set_line_width(cr, 1 * u);
    for (double v = ceil(f->ymin / ys - 1e-9) * ys; v <= f->ymax + ys * 1e-9; v += ys) {
        double y = fy(f, v);
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, f->x0, y);
        cairo_line_to(cr, f->x1, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        tick_label(buf, sizeof buf, v, ys);
        text(c, f->x0 - 6 * u, y, 1, 0.5, fs, 0, 0, buf);
    }
    for (double v = ceil(f->xmin / xs - 1e-9) * xs; xticks && v <= f->xmax + xs * 1e-9; v += xs) {
        double x = fx(f, v);
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, x, f->y0);
        cairo_line_to(cr, x, f->y1);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        tick_label(buf, sizeof buf, v, xs);
        text(c, x, f->y1 + 6 * u, 0.5, 1.0 + 0.2, fs, 0, 0, buf);
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_rectangle(cr, f->x0, f->y0, f->x1 - f->x0, f->y1 - f->y0);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    if (xlabel) text(c, (f->x0 + f->x1) / 2, f->y1 + 34 * u, 0.5, 1, 13 * u, 0, 0, xlabel);
    if (ylabel) text(c, f->x0 - 46 * u, (f->y0 + f->y1) / 2, 0.5, 0, 13 * u, 0, -PI / 2, ylabel);
    if (title) text(c, (f->x0 + f->x1) / 2, f->y0 - 14 * u, 0.5, 0.5, 14 * u, 1, 0, title);
}

/* A frame with the usual margins inside the rectangle (x, y, w, h) of the canvas. */
static frame frame_in(const canvas *c, double x, double y, double w, double h)
{
    double u = c->u;
    frame f = {c, x + 62 * u, y + 34 * u, x + w - 16 * u, y + h - 52 * u, 0, 1, 0, 1};
    return f;
}

/* where a legend goes: inside the plot area's top-right or bottom-left corner,
 * or under the plot (below the x axis title), where it can hide no data */
enum { LEGEND_TOP_RIGHT, LEGEND_BOTTOM_LEFT, LEGEND_BELOW };
#define LEGEND_ROW 18   /* height of a legend line, in u */

/* Legend entries in a box at `where`. style: 0 solid line, 1 dashed line, 2 a
 * filled square. */
typedef struct {
    const char *label;
    const double *color;
    int style;
} legend_entry;

static void draw_legend(const frame *f, const legend_entry *e, int n, int where)
{
    const canvas *c = f->c;
    cairo_t *cr = c->cr;
    double u = c->u, fs = 11.5 * u, row = LEGEND_ROW * u, sample = 26 * u, wmax = 0;
    for (int i = 0; i < n; i++) {
        double tw = text_width(c, fs, 0, e[i].label);
        if (tw > wmax) wmax = tw;
    }
    double bw = wmax + sample + 22 * u, bh = n * row + 10 * u, bx, by;
    if (where == LEGEND_TOP_RIGHT) {
        bx = f->x1 - bw - 8 * u;
        by = f->y0 + 8 * u;
    } else if (where == LEGEND_BOTTOM_LEFT) {
        bx = f->x0 + 8 * u;
        by = f->y1 - bh - 8 * u;
    } else {
        bx = (f->x0 + f->x1 - bw) / 2;
        by = f->y1 + 44 * u;
    }
    cairo_set_source_rgba(cr, 1, 1, 1, 0.9);
    cairo_rectangle(cr, bx, by, bw, bh);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
    cairo_set_line_width(cr, 1 * u);
    cairo_stroke(cr);
    for (int i = 0; i < n; i++) {
        double y = by + 5 * u + row * (i + 0.5), x = bx + 8 * u;
        rgb(cr, e[i].color);
        if (e[i].style == 2) {
            cairo_rectangle(cr, x + sample / 2 - 5 * u, y - 5 * u, 10 * u, 10 * u);
            cairo_fill(cr);
        } else {
            double dash[2] = {6 * u, 4 * u};
            cairo_set_dash(cr, dash, e[i].style ? 2 : 0, 0);
            cairo_set_line_width(cr, 2.2 * u);
            cairo_move_to(cr, x, y);
            cairo_line_to(cr, x + sample, y);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
        }
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text(c, x + sample + 6 * u, y, 0, 0.5, fs, 0, 0, e[i].label);
    }
}

/* ---- training history ----------------------------------------------------------- */

void ld_history_free(ld_epoch_stats *hist) { ld_free(hist); }

/* strtod of one comma-separated field; *p advances past it and its comma.
 * Returns 0, or 1 when it is not a number, 2 when the line ends too early,
 * 3 when the last field is followed by more text. */
static int read_field(double *v, const char **p, int last)
{
    char *end;
    errno = 0;
    *v = strtod(*p, &end);
    if (end == *p || errno == ERANGE) return **p == '\0' && !last ? 2 : 1;
    if (last) return *end == '\0' ? 0 : *end == ',' ? 3 : 1;
    if (*end == '\0') return 2;
    if (*end != ',') return 1;
    *p = end + 1;
    return 0;
}

ld_status ld_history_load(ld_epoch_stats **hist, int *n, const char *path, ld_error *err)
{
    static const char *const header = "epoch,train_loss,train_acc,val_loss,val_acc,seconds";
    *hist = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) return ld_fail(err, LD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char line[512];
    int lineno = 0, cap = 0, count = 0;
    ld_epoch_stats *h = NULL;
    ld_status st = LD_OK;
    while (!st && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            st = ld_fail(err, LD_ERR_INPUT, "%s:%d: line too long", path, lineno);
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (lineno == 1) {
            if (strcmp(line, header) != 0)
                st = ld_fail(err, LD_ERR_INPUT, "%s:1: not a training history (expected the "
                             "header \"%s\")", path, header);
            continue;
        }
        if (len == 0) continue;
        if (count >= 1000000) {
            st = ld_fail(err, LD_ERR_INPUT, "%s:%d: more than 1000000 epochs", path, lineno);
            break;
        }
        double v[6];
        const char *p = line;
        for (int k = 0; k < 6 && !st; k++) {
            int bad = read_field(&v[k], &p, k == 5);
            if (bad == 1)
                st = ld_fail(err, LD_ERR_INPUT, "%s:%d: field %d is not a number", path, lineno,
                             k + 1);
            else if (bad)
                st = ld_fail(err, LD_ERR_INPUT, "%s:%d: %s 6 comma-separated numbers", path,
                             lineno, bad == 2 ? "fewer than" : "more than");
        }
        if (st) break;
        if (v[0] != count + 1) {
            st = ld_fail(err, LD_ERR_INPUT, "%s:%d: epoch %g where %d was expected", path,
                         lineno, v[0], count + 1);
            break;
        }
        for (int k = 1; k < 6 && !st; k++)
            if (isinf(v[k]))
                st = ld_fail(err, LD_ERR_INPUT, "%s:%d: field %d is infinite", path, lineno, k + 1);
        if (st) break;
        if (count == cap) {
            int nc = cap ? 2 * cap : 32;
            ld_epoch_stats *g = ld_realloc(h, (size_t)nc, sizeof *g, "the training history", err);
            if (!g) {
                st = LD_ERR_NOMEM;
                break;
            }
            h = g;
            cap = nc;
        }
        h[count++] = (ld_epoch_stats){(int)v[0], v[1], v[2], v[3], v[4], v[5]};
    }
    if (!st && ferror(f)) st = ld_fail(err, LD_ERR_IO, "%s: read error", path);
    if (!st && lineno == 0) st = ld_fail(err, LD_ERR_INPUT, "%s: empty file", path);
    if (!st && count == 0) st = ld_fail(err, LD_ERR_INPUT, "%s: no epochs", path);
    fclose(f);
    if (st) {
        ld_free(h);
        return st;
    }
    *hist = h;
    *n = count;
    return LD_OK;
}

/* min and max of the finite values of a field over the epochs */
static void field_range(double *lo, double *hi, const ld_epoch_stats *h, int n, size_t off)
{
    for (int i = 0; i < n; i++) {
        double v = *(const double *)(const void *)((const char *)&h[i] + off);
        if (!isfinite(v)) continue;
        if (v < *lo) *lo = v;
        if (v > *hi) *hi = v;
    }
}

/* A line through the finite values of one field (broken at NaN), dots at each. */
static void draw_field(const frame *f, const ld_epoch_stats *h, int n, size_t off,
                       const double *color, int dashed)
{
    cairo_t *cr = f->c->cr;
    double u = f->c->u, dash[2] = {6 * u, 4 * u};
    rgb(cr, color);
    cairo_set_line_width(cr, 2.2 * u);
    cairo_set_dash(cr, dash, dashed ? 2 : 0, 0);
    int pen = 0;
    for (int i = 0; i < n; i++) {
        double v = *(const double *)(const void *)((const char *)&h[i] + off);
        if (!isfinite(v)) {
            pen = 0;
            continue;
        }
        if (pen) cairo_line_to(cr, fx(f, h[i].epoch), fy(f, v));
        else cairo_move_to(cr, fx(f, h[i].epoch), fy(f, v));
        pen = 1;
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    if (n > 60) return;
    for (int i = 0; i < n; i++) {
        double v = *(const double *)(const void *)((const char *)&h[i] + off);
        if (!isfinite(v)) continue;
        cairo_arc(cr, fx(f, h[i].epoch), fy(f, v), 3 * u, 0, 2 * PI);
        cairo_fill(cr);
    }
}

static int has_finite(const ld_epoch_stats *h, int n, size_t off)
{
    double lo = INFINITY, hi = -INFINITY;
    field_range(&lo, &hi, h, n, off);
    return lo <= hi;
}

ld_status ld_plot_history(ld_image *out, const ld_epoch_stats *hist, int n, const char *loss_title,
                          int w, int h, ld_error *err)
{
    memset(out, 0, sizeof *out);
    if (!hist || n < 1) return ld_fail(err, LD_ERR_USAGE, "training curves: no epochs");
    canvas c;
    ld_status st = canvas_open(&c, w, h, "training curves", err);
    if (st) return st;
    static const struct {
        const char *title, *ylabel;
        size_t train, val;
    } panel[2] = {
        {"Loss (binary cross-entropy)", "loss", offsetof(ld_epoch_stats, train_loss),
         offsetof(ld_epoch_stats, val_loss)},
        {"Accuracy (p > 0.5)", "accuracy", offsetof(ld_epoch_stats, train_acc),
         offsetof(ld_epoch_stats, val_acc)},
    };
    int n_panels = has_finite(hist, n, panel[1].train) || has_finite(hist, n, panel[1].val) ? 2 : 1;
    for (int k = 0; k < n_panels; k++) {
        frame f = frame_in(&c, k * w / (double)n_panels, 0, w / (double)n_panels, h);
        double lo = INFINITY, hi = -INFINITY;
        field_range(&lo, &hi, hist, n, panel[k].train);
        field_range(&lo, &hi, hist, n, panel[k].val);
        if (!(lo <= hi)) lo = hi = k ? 1 : 0;   /* every value NaN: an empty panel */
        if (k == 0) {
            f.ymin = 0;
            f.ymax = hi > 0 ? hi * 1.08 : 1;
        } else {
            f.ymax = 1;
            f.ymin = lo < 1 ? floor(lo * 10 - 0.5) / 10 : 0.9;   /* room below the lowest */
            if (f.ymin < 0) f.ymin = 0;
        }
        f.xmin = n > 1 ? 1 : 0.5;
        f.xmax = n > 1 ? n : 1.5;
        draw_axes(&f, k == 0 && loss_title ? loss_title : panel[k].title, "epoch", panel[k].ylabel,
                  XT_INTEGER);
        cairo_save(c.cr);
        cairo_rectangle(c.cr, f.x0, f.y0, f.x1 - f.x0, f.y1 - f.y0);
        cairo_clip(c.cr);
        draw_field(&f, hist, n, panel[k].train, BLUE, 0);
        draw_field(&f, hist, n, panel[k].val, ORANGE, 1);
        cairo_restore(c.cr);
        legend_entry e[2] = {{"training", BLUE, 0}, {"validation", ORANGE, 1}};
        int has_val = has_finite(hist, n, panel[k].val);
        draw_legend(&f, e, has_val ? 2 : 1, k == 0 ? LEGEND_TOP_RIGHT : LEGEND_BOTTOM_LEFT);
    }
    return canvas_close(&c, out, "training curves", err);
}

/* ---- box plot -------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorted copy of the non-NaN values; *k receives their number. */
static double *sorted_values(int *k, const ld_plot_series *s, ld_error *err)
{
    double *v = ld_alloc((size_t)s->n, sizeof *v, "box plot values", err);
    if (!v) return NULL;
    int m = 0;
    for (int i = 0; i < s->n; i++)
        if (!isnan(s->v[i])) v[m++] = s->v[i];
    qsort(v, (size_t)m, sizeof *v, cmp_double);
    *k = m;
    return v;
}

static void draw_box(const frame *f, const double *v, int k, double xc, double half,
                     const double *color)
{
    cairo_t *cr = f->c->cr;
    double u = f->c->u;
    double q1 = ld_quantile_sorted(v, k, 0.25), med = ld_quantile_sorted(v, k, 0.5);
    double q3 = ld_quantile_sorted(v, k, 0.75), iqr = q3 - q1, sum = 0;
    double lo = q1, hi = q3;   /* whisker ends: extreme values within 1.5 IQR */
    for (int i = 0; i < k; i++) {
        sum += v[i];
        if (v[i] >= q1 - 1.5 * iqr && v[i] < lo) lo = v[i];
        if (v[i] <= q3 + 1.5 * iqr && v[i] > hi) hi = v[i];
    }
    /* the values first, behind the box: spread by the golden ratio, no randomness */
    for (int i = 0; i < k; i++) {
        double t = fmod((i + 1) * 0.6180339887498949, 1.0) - 0.5;
        rgba(cr, color, 0.35);
        cairo_arc(cr, xc + t * 1.6 * half, fy(f, v[i]), 2.6 * u, 0, 2 * PI);
        cairo_fill(cr);
    }
    cairo_set_line_width(cr, 1.8 * u);
    rgba(cr, color, 0.18);
    cairo_rectangle(cr, xc - half, fy(f, q3), 2 * half, fy(f, q1) - fy(f, q3));
    cairo_fill_preserve(cr);
    rgb(cr, color);
    cairo_stroke(cr);
    cairo_move_to(cr, xc, fy(f, q3));
    cairo_line_to(cr, xc, fy(f, hi));
    cairo_move_to(cr, xc - half / 2, fy(f, hi));
    cairo_line_to(cr, xc + half / 2, fy(f, hi));
    cairo_move_to(cr, xc, fy(f, q1));
    cairo_line_to(cr, xc, fy(f, lo));
    cairo_move_to(cr, xc - half / 2, fy(f, lo));
    cairo_line_to(cr, xc + half / 2, fy(f, lo));
    cairo_stroke(cr);
    cairo_set_line_width(cr, 3 * u);
    cairo_move_to(cr, xc - half, fy(f, med));
    cairo_line_to(cr, xc + half, fy(f, med));
    cairo_stroke(cr);
    for (int i = 0; i < k; i++)   /* Tukey's outliers as open circles */
        if (v[i] < lo || v[i] > hi) {
            cairo_set_line_width(cr, 1.4 * u);
            cairo_arc(cr, xc, fy(f, v[i]), 3.5 * u, 0, 2 * PI);
            cairo_stroke(cr);
        }
    double mean = sum / k, ym = fy(f, mean), d = 6 * u;
    cairo_move_to(cr, xc, ym - d);
    cairo_line_to(cr, xc + d, ym);
    cairo_line_to(cr, xc, ym + d);
    cairo_line_to(cr, xc - d, ym);
    cairo_close_path(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    cairo_set_line_width(cr, 1.4 * u);
    cairo_stroke(cr);
}

ld_status ld_plot_boxplot(ld_image *out, const ld_plot_series *series, int n_series,
                          const char *title, const char *ylabel, int w, int h, ld_error *err)
{
    memset(out, 0, sizeof *out);
    if (!series || n_series < 1 || n_series > 8)
        return ld_fail(err, LD_ERR_USAGE, "box plot: %d series (1..8 allowed)", n_series);
    for (int i = 0; i < n_series; i++)
        if (series[i].n < 0 || (series[i].n && !series[i].v))
            return ld_fail(err, LD_ERR_USAGE, "box plot: series %d has no values array", i);
    canvas c;
    ld_status st = canvas_open(&c, w, h, "box plot", err);
    if (st) return st;
    double u = c.u;
    frame f = frame_in(&c, 0, 0, w, h);
    f.y1 -= 14 * u;   /* two lines under each box, and the key */
    f.xmin = 0;
    f.xmax = n_series;
    f.ymin = -0.04;   /* values of 0 (labels never found) sit clear of the axis */
    f.ymax = 1;
    draw_axes(&f, title, NULL, ylabel, XT_NONE);
    double slot = (f.x1 - f.x0) / n_series, half = slot * 0.22;
    if (half > 60 * u) half = 60 * u;
    for (int i = 0; i < n_series && !st; i++) {
        double xc = f.x0 + slot * (i + 0.5);
        const double *color = PALETTE[i];
        int k = 0;
        double *v = sorted_values(&k, &series[i], err);
        if (!v) {
            st = LD_ERR_NOMEM;
            break;
        }
        char buf[64];
        if (k > 0) draw_box(&f, v, k, xc, half, color);
        else {
            cairo_set_source_rgb(c.cr, 0.4, 0.4, 0.4);
            text(&c, xc, (f.y0 + f.y1) / 2, 0.5, 0.5, 12 * u, 0, 0, "no values");
        }
        cairo_set_source_rgb(c.cr, 0.1, 0.1, 0.1);
        text(&c, xc, f.y1 + 8 * u, 0.5, 1, 12.5 * u, 1, 0, series[i].name ? series[i].name : "");
        int zeros = 0;
        for (int j = 0; j < k; j++) zeros += v[j] == 0;
        if (zeros) snprintf(buf, sizeof buf, "n = %d, %d at 0", k, zeros);
        else snprintf(buf, sizeof buf, "n = %d", k);
        cairo_set_source_rgb(c.cr, 0.3, 0.3, 0.3);
        text(&c, xc, f.y1 + 27 * u, 0.5, 1, 11.5 * u, 0, 0, buf);
        ld_free(v);
    }
    if (st) {
        cairo_destroy(c.cr);
        cairo_surface_destroy(c.s);
        return st;
    }
    /* a key for the marks */
    cairo_set_source_rgb(c.cr, 0.3, 0.3, 0.3);
    text(&c, f.x0, h - 8 * u, 0, 0.2, 10.5 * u, 0, 0,
         "box: quartiles; line: median; diamond: mean; whiskers: 1.5 IQR; dots: values");
    return canvas_close(&c, out, "box plot", err);
}

/* ---- confusion matrix ---------------------------------------------------------- */

ld_status ld_plot_confusion(ld_image *out, long tp, long fp, long fn, long tn,
                            const char *title, int w, int h, ld_error *err)
{
    memset(out, 0, sizeof *out);
    if (tp < 0 || fp < 0 || fn < 0 || tn < 0)
        return ld_fail(err, LD_ERR_USAGE, "confusion matrix: negative count");
    canvas c;
    ld_status st = canvas_open(&c, w, h, "confusion matrix", err);
    if (st) return st;
    double u = c.u;
    cairo_t *cr = c.cr;
    double left = 150 * u, top = 86 * u, right = 16 * u, bottom = 40 * u;
    if (left > w * 0.4) left = w * 0.4;
    double cw = (w - left - right) / 2, ch = (h - top - bottom) / 2;
    long count[2][2] = {{tp, fp}, {fn, tn}};             /* [row predicted][column actual] */
    long col[2] = {tp + fn, fp + tn};
    static const char *const names[2][2] = {{"TP", "FP"}, {"FN", "TN"}};
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    if (title) text(&c, w / 2.0, 20 * u, 0.5, 0.5, 14 * u, 1, 0, title);
    text(&c, left + cw / 2, top - 34 * u, 0.5, 0.5, 12.5 * u, 1, 0, "Actually positive (1)");
    text(&c, left + 1.5 * cw, top - 34 * u, 0.5, 0.5, 12.5 * u, 1, 0, "Actually negative (0)");
    char buf[64];
    for (int j = 0; j < 2; j++) {
        snprintf(buf, sizeof buf, "%ld patches", col[j]);
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
        text(&c, left + (j + 0.5) * cw, top - 14 * u, 0.5, 0.5, 11 * u, 0, 0, buf);
    }
    for (int i = 0; i < 2; i++) {
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text(&c, left - 10 * u, top + (i + 0.5) * ch - 9 * u, 1, 0.5, 12.5 * u, 1, 0,
             "Predicted");
        text(&c, left - 10 * u, top + (i + 0.5) * ch + 9 * u, 1, 0.5, 12.5 * u, 1, 0,
             i ? "negative (0)" : "positive (1)");
        for (int j = 0; j < 2; j++) {
            double share = col[j] ? (double)count[i][j] / col[j] : NAN;
            const double *base = i == j ? BLUE : RED;
            double a = isnan(share) ? 0 : 0.12 + 0.78 * share;
            double x = left + j * cw, y = top + i * ch;
            cairo_set_source_rgb(cr, 1 - a * (1 - base[0]), 1 - a * (1 - base[1]),
                                 1 - a * (1 - base[2]));
            cairo_rectangle(cr, x, y, cw, ch);
            cairo_fill_preserve(cr);
            cairo_set_source_rgb(cr, 1, 1, 1);
            cairo_set_line_width(cr, 3 * u);
            cairo_stroke(cr);
            int dark = a > 0.55;
            if (dark) cairo_set_source_rgb(cr, 1, 1, 1);
            else cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
            snprintf(buf, sizeof buf, "%s %ld", names[i][j], count[i][j]);
            text(&c, x + cw / 2, y + ch / 2 - 10 * u, 0.5, 0.5, 20 * u, 1, 0, buf);
            if (isnan(share)) snprintf(buf, sizeof buf, "(no patches in this column)");
            else snprintf(buf, sizeof buf, "%.1f %% of the column", 100 * share);
            text(&c, x + cw / 2, y + ch / 2 + 16 * u, 0.5, 0.5, 11.5 * u, 0, 0, buf);
        }
    }
    long n = tp + fp + fn + tn;
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    if (n > 0)
        snprintf(buf, sizeof buf, "accuracy (TP + TN) / n = %ld / %ld = %.4f", tp + tn, n,
                 (double)(tp + tn) / n);
    else
        snprintf(buf, sizeof buf, "no patches");
    text(&c, w / 2.0, h - bottom / 2, 0.5, 0.5, 11.5 * u, 0, 0, buf);
    return canvas_close(&c, out, "confusion matrix", err);
}

/* ---- precision-recall ---------------------------------------------------------- */

ld_status ld_plot_pr(ld_image *out, const ld_pr_curve *const *curves, const char *const *names,
                     int n, int w, int h, ld_error *err)
{
    memset(out, 0, sizeof *out);
    if (!curves || n < 1 || n > 8)
        return ld_fail(err, LD_ERR_USAGE, "precision-recall plot: %d curves (1..8 allowed)", n);
    for (int i = 0; i < n; i++)
        if (!curves[i] || curves[i]->n < 0 ||
            (curves[i]->n && (!curves[i]->precision || !curves[i]->recall)))
            return ld_fail(err, LD_ERR_USAGE, "precision-recall plot: curve %d is empty", i);
    canvas c;
    ld_status st = canvas_open(&c, w, h, "precision-recall plot", err);
    if (st) return st;
    double u = c.u;
    cairo_t *cr = c.cr;
    frame f = frame_in(&c, 0, 0, w, h);
    f.xmin = 0;
    f.xmax = 1;
    f.ymin = 0;
    f.ymax = 1.02;
    char title[96];
    snprintf(title, sizeof title, "Precision-recall at IoU %.2f", curves[0]->iou_threshold);
    /* the legend goes under the plot: a detector's curve and a baseline's can run
     * anywhere, along the top or along the bottom, and a legend inside would hide one */
    f.y1 -= 14 * u + n * LEGEND_ROW * u + 10 * u;
    draw_axes(&f, title, "recall", "precision", XT_NUMBER);
    legend_entry e[8];
    char labels[8][160];
    cairo_save(cr);
    cairo_rectangle(cr, f.x0 - 3 * u, f.y0 - 3 * u, f.x1 - f.x0 + 6 * u, f.y1 - f.y0 + 6 * u);
    cairo_clip(cr);
    for (int i = 0; i < n; i++) {
        const ld_pr_curve *pc = curves[i];
        const double *color = PALETTE[i];
        int defined = pc->n > 0 && !isnan(pc->ap);
        if (defined) {
            /* the raw curve: a thin line through (recall, precision) after each detection */
            rgba(cr, color, 0.55);
            cairo_set_line_width(cr, 1.2 * u);
            for (int k = 0; k < pc->n; k++) {
                double x = fx(&f, pc->recall[k]), y = fy(&f, pc->precision[k]);
                if (k) cairo_line_to(cr, x, y);
                else cairo_move_to(cr, x, y);
            }
            cairo_stroke(cr);
            /* COCO's interpolated precision: constant between recall points, 0 beyond */
            rgb(cr, color);
            cairo_set_line_width(cr, 2.6 * u);
            for (int r = 0; r < LD_COCO_N_REC; r++) {
                double x = fx(&f, r / 100.0), y = fy(&f, pc->interp[r]);
                if (r) cairo_line_to(cr, x, y);
                else cairo_move_to(cr, x, y);
                if (r + 1 < LD_COCO_N_REC) cairo_line_to(cr, fx(&f, (r + 1) / 100.0), y);
            }
            cairo_stroke(cr);
        }
        const char *name = names && names[i] ? names[i] : "detector";
        if (defined)
            snprintf(labels[i], sizeof labels[i], "%s: AP %.3f (%d detections)", name, pc->ap, pc->n);
        else
            snprintf(labels[i], sizeof labels[i], "%s: %s", name,
                     pc->n_gt == 0 ? "no labels" : "no detections");
        e[i] = (legend_entry){labels[i], color, 0};
    }
    cairo_restore(cr);
    draw_legend(&f, e, n, LEGEND_BELOW);
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    text(&c, f.x0, h - 8 * u, 0, 0.2, 10.5 * u, 0, 0,
         "thin: raw precision; thick: COCO's interpolated precision (AP is its mean)");
    return canvas_close(&c, out, "precision-recall plot", err);
}
