/* draw.c — overlays of labels and detections, and heat maps, rendered with cairo
 * (see include/lymphdet/draw.h).
 *
 * The frame is copied into a cairo RGB24 surface (one uint32 0x00RRGGBB per
 * pixel, rows cairo's stride apart), cairo strokes the boxes and fills the text,
 * and the surface is copied back into an ld_image. cairo allocates internally:
 * its status is checked after drawing and a failure reported as LD_ERR_NOMEM.
 *
 * Text is only ever a score ("0.97") or a colour-bar end ("0", "1"), so it is set
 * in a built-in 5x7 pixel font of the digits and the point, filled as cairo
 * rectangles, rather than through cairo's font API: that API loads fontconfig,
 * whose process-wide configuration is never freed (leak checkers flag it), and
 * whose result depends on the fonts a machine has. This way a picture is the
 * same on every machine, pixel for pixel. */
#include <cairo.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "lymphdet/draw.h"

/* matplotlib's viridis at 0, 1/8, ..., 1 */
static const unsigned char viridis[9][3] = {
    {68, 1, 84},    {71, 45, 123},  {59, 82, 139},  {44, 114, 142}, {33, 145, 140},
    {40, 174, 128}, {94, 201, 98},  {173, 220, 48}, {253, 231, 37}};

void ld_colormap(unsigned char rgb[3], float v)
{
    if (!(v > 0)) v = 0;     /* NaN too */
    if (v > 1) v = 1;
    float t = v * 8;
    int i = (int)t < 8 ? (int)t : 7;
    float f = t - i;
    for (int k = 0; k < 3; k++)
        rgb[k] = (unsigned char)lrintf(viridis[i][k] + f * (viridis[i + 1][k] - viridis[i][k]));
}

/* 5x7 glyphs of "0123456789.", one 5-bit row each, most significant bit left */
static const unsigned char glyphs[11][7] = {
    {14, 17, 19, 21, 25, 17, 14}, {4, 12, 4, 4, 4, 4, 14},    {14, 17, 1, 2, 4, 8, 31},
    {31, 2, 4, 2, 1, 17, 14},     {2, 6, 10, 18, 31, 2, 2},   {31, 16, 30, 1, 1, 17, 14},
    {6, 8, 16, 30, 17, 17, 14},   {31, 1, 2, 4, 8, 8, 8},     {14, 17, 17, 14, 17, 17, 14},
    {14, 17, 17, 15, 1, 2, 12},   {0, 0, 0, 0, 0, 12, 12}};

/* Width of text in the pixel font with dots of px x px: 6 px per glyph (5 + gap),
 * less the last gap. */
static double text_width(const char *text, double px)
{
    size_t n = strlen(text);
    return n ? (6.0 * n - 1) * px : 0;
}

/* Fills text (digits and '.'; anything else is a space) with its top-left
 * corner at (x, y), in the current source colour. */
static void draw_text(cairo_t *cr, double x, double y, const char *text, double px)
{
    for (; *text; text++, x += 6 * px) {
        int g = *text == '.' ? 10 : *text >= '0' && *text <= '9' ? *text - '0' : -1;
        if (g < 0) continue;
        for (int r = 0; r < 7; r++)
            for (int c = 0; c < 5; c++)
                if (glyphs[g][r] >> (4 - c) & 1) cairo_rectangle(cr, x + c * px, y + r * px, px, px);
    }
    cairo_fill(cr);
}

static int frame_ok(const ld_image *f)
{
    return f && f->px && f->w > 0 && f->h > 0 && (f->c == 1 || f->c == 3);
}

/* A cairo surface holding the frame; NULL (and err) on failure. */
static cairo_surface_t *surface_from(const ld_image *frame, ld_error *err)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, frame->w, frame->h);
    cairo_status_t cs = cairo_surface_status(s);
    if (cs != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        ld_fail(err, LD_ERR_NOMEM, "drawing a %dx%d image: %s", frame->w, frame->h,
                cairo_status_to_string(cs));
        return NULL;
    }
    cairo_surface_flush(s);
    unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < frame->h; y++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)y * stride);
        const uint8_t *p = frame->px + (size_t)y * frame->w * frame->c;
        for (int x = 0; x < frame->w; x++) {
            uint32_t r = p[0], g = frame->c == 3 ? p[1] : p[0], b = frame->c == 3 ? p[2] : p[0];
            row[x] = r << 16 | g << 8 | b;
            p += frame->c;
        }
    }
    cairo_surface_mark_dirty(s);
    return s;
}

/* Copies the surface into a new RGB image and destroys it (and cr). */
static ld_status finish(ld_image *out, cairo_t *cr, cairo_surface_t *s, ld_error *err)
{
    cairo_status_t cs = cairo_status(cr);
    cairo_destroy(cr);
    cairo_surface_flush(s);
    ld_status st = LD_OK;
    if (cs != CAIRO_STATUS_SUCCESS)
        st = ld_fail(err, LD_ERR_NOMEM, "drawing: %s", cairo_status_to_string(cs));
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    if (st == LD_OK) st = ld_image_alloc(out, w, h, 3, err);
    if (st == LD_OK) {
        const unsigned char *data = cairo_image_surface_get_data(s);
        int stride = cairo_image_surface_get_stride(s);
        for (int y = 0; y < h; y++) {
            const uint32_t *row = (const uint32_t *)(const void *)(data + (size_t)y * stride);
            uint8_t *p = out->px + (size_t)y * w * 3;
            for (int x = 0; x < w; x++, p += 3) {
                p[0] = (uint8_t)(row[x] >> 16);
                p[1] = (uint8_t)(row[x] >> 8);
                p[2] = (uint8_t)row[x];
            }
        }
    }
    cairo_surface_destroy(s);
    return st;
}

/* line width and text size for a frame: 2 px and 12 px at 469 px */
static double line_width(const ld_image *f)
{
    double s = (f->w < f->h ? f->w : f->h) / 235.0;
    return s < 1.0 ? 1.0 : s;
}

/* The outline of the box [x, x+w) x [y, y+h) drawn just inside it, so a box on
 * whole pixels gets crisp lines lw pixels wide on its first and last pixels. */
static void stroke_box(cairo_t *cr, double x, double y, double w, double h, double lw)
{
    double iw = w - lw > 0 ? w - lw : 0, ih = h - lw > 0 ? h - lw : 0;
    cairo_rectangle(cr, x + lw / 2, y + lw / 2, iw, ih);
    cairo_stroke(cr);
}

ld_status ld_draw_overlay(ld_image *out, const ld_image *frame, const ld_box *labels,
                          int n_labels, const ld_det *dets, int n_dets, ld_error *err)
{
    memset(out, 0, sizeof *out);
    if (!frame_ok(frame) || n_labels < 0 || n_dets < 0 || (n_labels && !labels) ||
        (n_dets && !dets))
        return ld_fail(err, LD_ERR_USAGE, "overlay: bad arguments");
    cairo_surface_t *s = surface_from(frame, err);
    if (!s) return err->status;
    cairo_t *cr = cairo_create(s);
    double lw = line_width(frame), px = round(lw) < 1 ? 1 : round(lw);   /* font dot */
    cairo_set_line_width(cr, lw);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_MITER);

    cairo_set_source_rgb(cr, 0.95, 0.1, 0.1);
    for (int i = 0; i < n_labels; i++)
        stroke_box(cr, labels[i].x, labels[i].y, labels[i].w, labels[i].h, lw);

    /* lowest score first, so the best boxes and their tags end up on top */
    for (int i = n_dets - 1; i >= 0; i--) {
        const ld_det *d = &dets[i];
        cairo_set_source_rgb(cr, 0.15, 0.45, 1.0);
        stroke_box(cr, d->x, d->y, d->w, d->h, lw);
        char text[16];
        snprintf(text, sizeof text, "%.2f", d->score);
        double tw = text_width(text, px) + 2 * px, th = 9 * px;
        double tx = round(d->x), ty = round(d->y) - th;
        if (ty < 0) ty = round(d->y);                /* no room above: inside the box */
        if (tx + tw > frame->w) tx = frame->w - tw;
        if (tx < 0) tx = 0;
        cairo_rectangle(cr, tx, ty, tw, th);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 1, 1, 1);
        draw_text(cr, tx + px, ty + px, text, px);
    }
    return finish(out, cr, s, err);
}

ld_status ld_draw_heatmap(ld_image *out, const ld_image *frame, const float *heat, ld_error *err)
{
    memset(out, 0, sizeof *out);
    if (!frame_ok(frame) || !heat) return ld_fail(err, LD_ERR_USAGE, "heat map: bad arguments");
    cairo_surface_t *s = surface_from(frame, err);
    if (!s) return err->status;
    /* blend in the surface's memory: half grey frame, half colour */
    cairo_surface_flush(s);
    unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < frame->h; y++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)y * stride);
        const uint8_t *p = frame->px + (size_t)y * frame->w * frame->c;
        for (int x = 0; x < frame->w; x++, p += frame->c) {
            unsigned g = frame->c == 3 ? (299u * p[0] + 587u * p[1] + 114u * p[2] + 500u) / 1000u
                                       : p[0];
            unsigned char rgb[3];
            ld_colormap(rgb, heat[(size_t)y * frame->w + x]);
            uint32_t r = (g + rgb[0] + 1) / 2, gg = (g + rgb[1] + 1) / 2, b = (g + rgb[2] + 1) / 2;
            row[x] = r << 16 | gg << 8 | b;
        }
    }
    cairo_surface_mark_dirty(s);

    /* colour bar, bottom right: 0 on the left, 1 on the right */
    cairo_t *cr = cairo_create(s);
    double lw = line_width(frame), bw = 50 * lw, bh = 5 * lw;
    double px = round(lw) < 1 ? 1 : round(lw), bx = round(frame->w - bw - 4 * lw);
    double by = round(frame->h - bh - 4 * lw);
    if (bx > 0 && by > 9 * px) {
        cairo_pattern_t *grad = cairo_pattern_create_linear(bx, 0, bx + bw, 0);
        for (int i = 0; i < 9; i++)
            cairo_pattern_add_color_stop_rgb(grad, i / 8.0, viridis[i][0] / 255.0,
                                             viridis[i][1] / 255.0, viridis[i][2] / 255.0);
        cairo_rectangle(cr, bx, by, bw, bh);
        cairo_set_source(cr, grad);
        cairo_fill(cr);
        cairo_pattern_destroy(grad);
        cairo_set_source_rgb(cr, 1, 1, 1);
        draw_text(cr, bx, by - 8 * px, "0", px);
        draw_text(cr, bx + bw - text_width("1", px), by - 8 * px, "1", px);
    }
    return finish(out, cr, s, err);
}
