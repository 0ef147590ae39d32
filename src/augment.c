/* augment.c — flips, gamma, contrast, brightness, blur and speckle noise for
 * training frames (augment.h states each operation and the order of the draws).
 *
 * Why these: frames from another scanner differ mostly in overall gain and
 * time-gain compensation (brightness, contrast, gamma), in resolution (blur, scale)
 * and in speckle statistics (multiplicative noise); a left-right flip is a
 * plausible frame, a top-bottom one is not (the probe is at the top, shadows fall
 * downwards), so the second is off by default.
 *
 * Sums over a frame (the mean for contrast) and the blur weights are computed in
 * double so that the result does not depend on the frame's size through rounding. */
#include <math.h>
#include <string.h>
#include "lymphdet/augment.h"

void ld_augment_config_default(ld_augment_config *cfg)
{
    cfg->flip_h = 1;
    cfg->flip_v = 0;
    cfg->gamma = 0.3f;
    cfg->contrast = 0.2f;
    cfg->brightness = 0.1f;
    cfg->blur = 1.0f;
    cfg->speckle = 0.15f;
    cfg->scale_jitter = 0.25f;
}

void ld_augment_config_none(ld_augment_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
}

/* U(-a, a) from one draw */
static double sym_uniform(ld_rng *rng, double a)
{
    return a * (2.0 * ld_rng_double(rng) - 1.0);
}

double ld_augment_normal(ld_rng *rng)
{
    double u1 = 1.0 - ld_rng_double(rng);   /* (0, 1]: log never sees 0 */
    double u2 = ld_rng_double(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void ld_augment_draw_flips(int *fh, int *fv, const ld_augment_config *cfg, ld_rng *rng)
{
    *fh = cfg->flip_h ? ld_rng_double(rng) < 0.5 : 0;
    *fv = cfg->flip_v ? ld_rng_double(rng) < 0.5 : 0;
}

void ld_augment_flip_boxes(ld_box *boxes, int n, double w, double h, int fh, int fv)
{
    for (int i = 0; i < n; i++) {
        if (fh) boxes[i].x = w - (boxes[i].x + boxes[i].w);
        if (fv) boxes[i].y = h - (boxes[i].y + boxes[i].h);
    }
}

void ld_augment_flip_plane(float *img, int w, int h, int fh, int fv)
{
    if (fh)
        for (int y = 0; y < h; y++) {
            float *row = img + (size_t)y * w;
            for (int a = 0, b = w - 1; a < b; a++, b--) {
                float t = row[a];
                row[a] = row[b];
                row[b] = t;
            }
        }
    if (fv)
        for (int a = 0, b = h - 1; a < b; a++, b--) {
            float *ra = img + (size_t)a * w, *rb = img + (size_t)b * w;
            for (int x = 0; x < w; x++) {
                float t = ra[x];
                ra[x] = rb[x];
                rb[x] = t;
            }
        }
}

static int blur_radius(float sigma)
{
    return sigma > 0 ? (int)ceil(3.0 * sigma) : 0;
}

size_t ld_augment_scratch_size(int w, int h, const ld_augment_config *cfg)
{
    int r = blur_radius(cfg->blur);
    return (size_t)(w > h ? w : h) + 2 * (size_t)(r > 64 ? 64 : r);
}

/* Index i mirrored into [0, n) with the edge sample repeated (...cba|abc...|cba...),
 * for any i: reflection is periodic with period 2n. */
static int mirror(int i, int n)
{
    int p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

/* One line of n samples, `step` floats apart, convolved with the symmetric kernel
 * k[0..r] (k[d] weights offsets +-d); line holds n + 2 r floats. */
static void blur_line(float *x, size_t step, int n, const double *k, int r, float *line)
{
    for (int i = -r; i < n + r; i++) line[i + r] = x[(size_t)mirror(i, n) * step];
    for (int i = 0; i < n; i++) {
        const float *c = line + i + r;
        double s = k[0] * c[0];
        for (int d = 1; d <= r; d++) s += k[d] * ((double)c[-d] + c[d]);
        x[(size_t)i * step] = (float)s;
    }
}

void ld_gaussian_blur(float *img, int w, int h, float sigma, float *scratch)
{
    /* radii beyond 64 (sigma > 21 px) are no use for augmentation: capped, which
     * keeps the kernel on the stack */
    int r = blur_radius(sigma);
    if (r == 0) return;
    if (r > 64) r = 64;
    double k[64 + 1], sum = 0;
    for (int d = 0; d <= r; d++) {
        k[d] = exp(-(double)d * d / (2.0 * (double)sigma * sigma));
        sum += d ? 2 * k[d] : k[d];
    }
    for (int d = 0; d <= r; d++) k[d] /= sum;
    for (int y = 0; y < h; y++) blur_line(img + (size_t)y * w, 1, w, k, r, scratch);
    for (int x = 0; x < w; x++) blur_line(img + x, (size_t)w, h, k, r, scratch);
}

void ld_augment_photometric(float *img, int w, int h, float *scratch,
                            const ld_augment_config *cfg, ld_rng *rng)
{
    size_t n = (size_t)w * h;
    if (cfg->gamma > 0) {
        double g = exp(sym_uniform(rng, cfg->gamma));
        for (size_t i = 0; i < n; i++) img[i] = img[i] > 0 ? (float)pow(img[i], g) : 0.0f;
    }
    if (cfg->contrast > 0) {
        double c = 1.0 + sym_uniform(rng, cfg->contrast), mu = 0;
        for (size_t i = 0; i < n; i++) mu += img[i];
        mu /= (double)(n ? n : 1);
        for (size_t i = 0; i < n; i++) img[i] = (float)(mu + c * (img[i] - mu));
    }
    if (cfg->brightness > 0) {
        float b = (float)sym_uniform(rng, cfg->brightness);
        for (size_t i = 0; i < n; i++) img[i] += b;
    }
    if (cfg->blur > 0) {
        int on = ld_rng_double(rng) < 0.5;
        float sigma = (float)(cfg->blur * ld_rng_double(rng));
        if (on) ld_gaussian_blur(img, w, h, sigma, scratch);
    }
    if (cfg->speckle > 0) {
        /* Box-Muller's two branches feed two pixels: half the draws, logs and cosines */
        double s = cfg->speckle * ld_rng_double(rng);
        for (size_t i = 0; i < n; i += 2) {
            double u1 = 1.0 - ld_rng_double(rng), u2 = ld_rng_double(rng);
            double r = s * sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
            img[i] = (float)(img[i] * (1.0 + r * cos(th)));
            if (i + 1 < n) img[i + 1] = (float)(img[i + 1] * (1.0 + r * sin(th)));
        }
    }
    for (size_t i = 0; i < n; i++) img[i] = img[i] < 0 ? 0.0f : img[i] > 1 ? 1.0f : img[i];
}
