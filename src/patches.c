/* patches.c — the paper's positive crops and negative windows (see patches.h).
 *
 * Every image of the set is decoded once, converted to grey, cut and freed (the
 * negatives' places are drawn from the labels first), so memory holds the patches
 * and one frame. Draw order is fixed (images in subset order, boxes in
 * file order, then negatives from one seeded generator), so the same seed gives
 * the same patches byte for byte. */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "alloc.h"
#include "lymphdet/image.h"
#include "lymphdet/patches.h"
#include "lymphdet/rng.h"

/* tries per requested negative before giving up (a set whose boxes cover every
 * window must fail with a message, not loop forever) */
#define NEG_TRIES_PER_PATCH 1000

void ld_patch_config_default(ld_patch_config *cfg)
{
    cfg->size = 100;
    cfg->margin = 20;
    cfg->augment = 1;
    cfg->n_negatives = -1;
    cfg->neg_ratio = 740.0 / 992.0;
    cfg->seed = 1;
    cfg->max_pixels = 0;
}

void ld_patchset_free(ld_patchset *ps)
{
    ld_free(ps->px);
    ld_free(ps->label);
    ld_free(ps->image);
    ld_free(ps->box);
    ld_free(ps->aug);
    ld_free(ps->x);
    ld_free(ps->y);
    memset(ps, 0, sizeof *ps);
}

static ld_status reserve(ld_patchset *ps, int need, ld_error *err)
{
    if (need <= ps->cap) return LD_OK;
    int cap = ps->cap ? ps->cap : 64;
    while (cap < need) cap *= 2;
    size_t pix = (size_t)ps->size * ps->size;
    void *p;
#define GROW(field, elems, what)                                                \
    if (!(p = ld_realloc(ps->field, (size_t)(elems), sizeof *ps->field, what, err))) \
        return LD_ERR_NOMEM;                                                    \
    ps->field = p;
    int of = 0;
    size_t npx = ld_mul2((size_t)cap, pix, &of);
    if (of) return ld_fail(err, LD_ERR_NOMEM, "patch set of %d patches is too large", cap);
    GROW(px, npx, "patch pixels")
    GROW(label, cap, "patch labels")
    GROW(image, cap, "patch sources")
    GROW(box, cap, "patch boxes")
    GROW(aug, cap, "patch augmentations")
    GROW(x, cap, "patch positions")
    GROW(y, cap, "patch positions")
#undef GROW
    ps->cap = cap;
    return LD_OK;
}

/* stores one patch (pixels copied from a size x size grey image) in slot i < cap */
static void put(ld_patchset *ps, int i, const ld_image *patch, int label, int image, int box,
                ld_aug aug, int x, int y)
{
    size_t pix = (size_t)ps->size * ps->size;
    memcpy(ps->px + (size_t)i * pix, patch->px, pix);
    ps->label[i] = (uint8_t)label;
    ps->image[i] = image;
    ps->box[i] = box;
    ps->aug[i] = (uint8_t)aug;
    ps->x[i] = x;
    ps->y[i] = y;
}

/* appends one patch */
static ld_status push(ld_patchset *ps, const ld_image *patch, int label, int image, int box,
                      ld_aug aug, int x, int y, ld_error *err)
{
    if (reserve(ps, ps->n + 1, err)) return err->status;
    put(ps, ps->n++, patch, label, image, box, aug, x, y);
    return LD_OK;
}

/* the margin-padded crop of box b, clamped to the image, in whole pixels:
 * columns floor(x) - margin .. ceil(x + w) + margin - 1 */
static void crop_rect(const ld_box *b, int margin, int w, int h, int r[4])
{
    int x0 = (int)floor(b->x) - margin, y0 = (int)floor(b->y) - margin;
    int x1 = (int)ceil(b->x + b->w) + margin, y1 = (int)ceil(b->y + b->h) + margin;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > w) x1 = w;
    if (y1 > h) y1 = h;
    r[0] = x0; r[1] = y0; r[2] = x1 - x0; r[3] = y1 - y0;
}

static ld_status add_positives(ld_patchset *ps, const ld_image *grey, const ld_label_image *li,
                               int image, const ld_patch_config *cfg, ld_error *err)
{
    for (int b = 0; b < li->n_boxes; b++) {
        int r[4];
        crop_rect(&li->boxes[b], cfg->margin, grey->w, grey->h, r);
        if (r[2] < 1 || r[3] < 1) continue;  /* a box clipped to nothing */
        ld_image crop = {0}, patch = {0}, turned = {0};
        ld_status st = ld_image_crop(&crop, grey, r[0], r[1], r[2], r[3], err);
        if (!st) st = ld_image_resize(&patch, &crop, ps->size, ps->size, err);
        if (!st) st = push(ps, &patch, 1, image, b, LD_AUG_NONE, r[0], r[1], err);
        if (!st && cfg->augment) {
            ld_image_flip_h(&patch);
            st = push(ps, &patch, 1, image, b, LD_AUG_FLIP_H, r[0], r[1], err);
            ld_image_flip_h(&patch);
            if (!st) {
                ld_image_flip_v(&patch);
                st = push(ps, &patch, 1, image, b, LD_AUG_FLIP_V, r[0], r[1], err);
                ld_image_flip_v(&patch);
            }
            if (!st) st = ld_image_rot90(&turned, &patch, 2, err);
            if (!st) st = push(ps, &turned, 1, image, b, LD_AUG_ROT180, r[0], r[1], err);
        }
        ld_image_free(&crop);
        ld_image_free(&patch);
        ld_image_free(&turned);
        if (st) return st;
    }
    return LD_OK;
}

/* 1 when the window [x, x+s) x [y, y+s) shares positive area with no box */
static int window_is_clear(const ld_label_image *li, int x, int y, int s)
{
    for (int b = 0; b < li->n_boxes; b++) {
        const ld_box *bx = &li->boxes[b];
        double iw = fmin(x + s, bx->x + bx->w) - fmax(x, bx->x);
        double ih = fmin(y + s, bx->y + bx->h) - fmax(y, bx->y);
        if (iw > 0 && ih > 0) return 0;
    }
    return 1;
}

static ld_status load_grey(ld_image *grey, const char *images_dir, const ld_label_image *li,
                           long max_pixels, ld_error *err)
{
    char path[4096];
    ld_image img = {0};
    ld_status st = ld_label_image_path(path, sizeof path, images_dir, li->file_name, err);
    if (!st) st = ld_image_load(&img, path, max_pixels, err);
    if (!st && (img.w != li->width || img.h != li->height))
        st = ld_fail(err, LD_ERR_INPUT, "%s: image is %dx%d but the labels say %dx%d", path,
                     img.w, img.h, li->width, li->height);
    if (!st) st = ld_image_to_grey(grey, &img, err);
    ld_image_free(&img);
    return st;
}

/* the number of positives add_positives will cut from li (boxes clipped to nothing
 * give none), known from the labels alone */
static long count_positives(const ld_label_image *li, const ld_patch_config *cfg)
{
    long n = 0;
    for (int b = 0; b < li->n_boxes; b++) {
        int r[4];
        crop_rect(&li->boxes[b], cfg->margin, li->width, li->height, r);
        if (r[2] >= 1 && r[3] >= 1) n += cfg->augment ? 4 : 1;
    }
    return n;
}

/* Draws the negative windows from the labels alone (an image's size is its labels'
 * size: load_grey checks it): want windows as (image k of the subset, x, y) in
 * draw order. Returns how many were found before max_tries ran out. */
static long draw_negatives(int *neg_k, int *neg_x, int *neg_y, long want, const int *at,
                           int n_fit, const ld_labels *labels, const int *subset,
                           const ld_patch_config *cfg, long *tries)
{
    long max_tries = want * NEG_TRIES_PER_PATCH, found = 0;
    ld_rng rng;
    ld_rng_seed(&rng, cfg->seed);
    *tries = 0;
    while (found < want && n_fit > 0 && *tries < max_tries) {
        (*tries)++;
        int k = at[ld_rng_below(&rng, (uint64_t)n_fit)];
        const ld_label_image *li = &labels->images[subset ? subset[k] : k];
        int x = (int)ld_rng_below(&rng, (uint64_t)(li->width - cfg->size + 1));
        int y = (int)ld_rng_below(&rng, (uint64_t)(li->height - cfg->size + 1));
        if (!window_is_clear(li, x, y, cfg->size)) continue;
        neg_k[found] = k;
        neg_x[found] = x;
        neg_y[found] = y;
        found++;
    }
    return found;
}

ld_status ld_patches_build(ld_patchset *out, const ld_labels *labels, const char *images_dir,
                           const int *subset, int n_subset, const ld_patch_config *cfg,
                           ld_error *err)
{
    memset(out, 0, sizeof *out);
    out->size = cfg->size;
    if (cfg->size < 1 || cfg->margin < 0)
        return ld_fail(err, LD_ERR_USAGE, "patch size must be positive and margin non-negative");
    int n_img = subset ? n_subset : labels->n_images;

    /* Everything but the pixels is known from the labels: the positives' count,
     * hence the negatives wanted, and where the negatives are. So images are decoded
     * one at a time, cut, and freed: memory holds the patches and one frame. */
    long n_pos = 0;
    int n_fit = 0;   /* images at least size x size: the only ones negatives come from */
    int *at = ld_alloc((size_t)n_img, sizeof *at, "image indices", err);
    if (!at) return LD_ERR_NOMEM;
    for (int k = 0; k < n_img; k++) {
        const ld_label_image *li = &labels->images[subset ? subset[k] : k];
        n_pos += count_positives(li, cfg);
        if (li->width >= cfg->size && li->height >= cfg->size) at[n_fit++] = k;
    }
    long want = cfg->n_negatives >= 0 ? cfg->n_negatives : lround(n_pos * cfg->neg_ratio);
    int *neg = ld_alloc((size_t)want * 3 + 1, sizeof *neg, "negative windows", err);
    ld_status st = neg ? LD_OK : LD_ERR_NOMEM;
    long tries = 0, found = 0;
    if (!st) {
        found = draw_negatives(neg, neg + want, neg + 2 * want, want, at, n_fit, labels, subset,
                               cfg, &tries);
        if (n_pos + found > INT32_MAX)
            st = ld_fail(err, LD_ERR_NOMEM, "%ld patches are too many", n_pos + found);
    }
    if (!st) st = reserve(out, (int)(n_pos + found), err);

    /* positives in image order first, then the negatives in draw order: slot
     * n_pos + j holds negative j, filled when its image is decoded */
    for (int k = 0; !st && k < n_img; k++) {
        int i = subset ? subset[k] : k;
        const ld_label_image *li = &labels->images[i];
        ld_image grey = {0};
        st = load_grey(&grey, images_dir, li, cfg->max_pixels, err);
        if (!st) st = add_positives(out, &grey, li, i, cfg, err);
        for (long j = 0; !st && j < found; j++) {
            if (neg[j] != k) continue;
            int x = neg[want + j], y = neg[2 * want + j];
            ld_image win = {0};
            st = ld_image_crop(&win, &grey, x, y, cfg->size, cfg->size, err);
            if (!st) put(out, (int)(n_pos + j), &win, 0, i, -1, LD_AUG_NONE, x, y);
            ld_image_free(&win);
        }
        ld_image_free(&grey);
    }
    if (!st) {
        assert(out->n == n_pos);
        out->n = (int)(n_pos + found);
    }
    if (!st && found < want)
        st = ld_fail(err, LD_ERR_INPUT,
                     "found only %ld of %ld negative windows (%dx%d, clear of every box) "
                     "in %ld tries: too few or too small images, or boxes cover them",
                     found, want, cfg->size, cfg->size, tries);
    ld_free(neg);
    ld_free(at);
    if (st) ld_patchset_free(out);
    return st;
}

ld_status ld_patchset_select(ld_patchset *dst, const ld_patchset *src, const int *idx, int n,
                             ld_error *err)
{
    memset(dst, 0, sizeof *dst);
    dst->size = src->size;
    if (reserve(dst, n, err)) {
        ld_patchset_free(dst);
        return err->status;
    }
    size_t pix = (size_t)src->size * src->size;
    for (int k = 0; k < n; k++) {
        int i = idx[k];
        memcpy(dst->px + (size_t)k * pix, src->px + (size_t)i * pix, pix);
        dst->label[k] = src->label[i];
        dst->image[k] = src->image[i];
        dst->box[k] = src->box[i];
        dst->aug[k] = src->aug[i];
        dst->x[k] = src->x[i];
        dst->y[k] = src->y[i];
    }
    dst->n = n;
    return LD_OK;
}

void ld_patches_batch(float *x, float *y, const ld_patchset *ps, const int *idx, int n)
{
    size_t pix = (size_t)ps->size * ps->size;
    for (int k = 0; k < n; k++) {
        const uint8_t *src = ps->px + (size_t)idx[k] * pix;
        float *dst = x + (size_t)k * 3 * pix;   /* [3, size, size] */
        for (size_t p = 0; p < pix; p++) dst[p] = src[p] / 255.0f;
        memcpy(dst + pix, dst, pix * sizeof *dst);
        memcpy(dst + 2 * pix, dst, pix * sizeof *dst);
        if (y) y[k] = (float)ps->label[idx[k]];
    }
}
