/* augment.h — training-time augmentation of grey frames, so that a network trained
 * on one hospital's scanner has seen other gains, gammas, resolutions and noise.
 *
 * Every operation is switchable (its parameter 0 turns it off) and every random
 * choice comes from the caller's ld_rng, in a fixed order (flips, then gamma,
 * contrast, brightness, blur, speckle), each drawn only when its operation is on:
 * the same seed and configuration give the same frames, bit for bit.
 *
 * Pixels are floats in [0, 1] (grey / 255, the network's input), one plane
 * [h, w] with rows w floats apart. The photometric chain, for a pixel x:
 *   gamma       x = x^g,                    log g ~ U(-gamma, gamma)
 *   contrast    x = mu + c (x - mu),         c ~ U(1 - contrast, 1 + contrast),
 *                                            mu the mean of the frame before it
 *   brightness  x = x + b,                   b ~ U(-brightness, brightness)
 *   blur        Gaussian, sigma ~ U(0, blur), on a frame with probability 1/2
 *               (both drawn always); separable, radius ceil(3 sigma), borders
 *               mirrored (...cba|abc...)
 *   speckle     x = x (1 + s n),             n ~ N(0, 1) per pixel (Box-Muller, the
 *                                            cosine and sine branches of one pair
 *                                            of draws for two pixels in a row),
 *                                            s ~ U(0, speckle) per frame: the
 *               multiplicative noise of coherent ultrasound imaging
 * and finally every value is clamped to [0, 1].
 * Geometric: a left-right flip (and, if asked, top-bottom: off by default since
 * an ultrasound frame has a top, the probe, and lesions cast shadows downwards)
 * applied to the frame and its boxes together. Scale jitter is a factor
 * 2^U(-scale_jitter, scale_jitter) that the caller applies when resizing
 * (dettrain.c draws it when it picks a frame's scale). */
#ifndef LYMPHDET_AUGMENT_H
#define LYMPHDET_AUGMENT_H

#include "lymphdet/labels.h"
#include "lymphdet/rng.h"

typedef struct {
    int flip_h;           /* 1: mirror left-right with probability 1/2 [1] */
    int flip_v;           /* 1: mirror top-bottom with probability 1/2 [0] */
    float gamma;          /* max |log g| [0.3] */
    float contrast;       /* max relative contrast change [0.2] */
    float brightness;     /* max shift, in [0, 1] units [0.1] */
    float blur;           /* max Gaussian sigma in px [1.0] */
    float speckle;        /* max multiplicative noise std [0.15] */
    float scale_jitter;   /* max |log2 factor| of the frame scale [0.25] */
} ld_augment_config;

void ld_augment_config_default(ld_augment_config *cfg);
/* every operation off */
void ld_augment_config_none(ld_augment_config *cfg);

/* Draws the flips: *fh, *fv set to 0 or 1 (1 draw each when enabled). */
void ld_augment_draw_flips(int *fh, int *fv, const ld_augment_config *cfg, ld_rng *rng);
/* Mirrors boxes[0..n) of a w x h frame: x -> w - (x + bw) (and y likewise). */
void ld_augment_flip_boxes(ld_box *boxes, int n, double w, double h, int fh, int fv);
/* Mirrors the plane img [h, w] in place. */
void ld_augment_flip_plane(float *img, int w, int h, int fh, int fv);

/* The photometric chain above on img [h, w] in place. scratch holds
 * ld_augment_scratch_size(w, h, cfg) floats: one mirrored line of max(w, h) + 2 r,
 * r = min(ceil(3 cfg->blur), 64); nothing is allocated. */
void   ld_augment_photometric(float *img, int w, int h, float *scratch,
                              const ld_augment_config *cfg, ld_rng *rng);
size_t ld_augment_scratch_size(int w, int h, const ld_augment_config *cfg);

/* The building blocks, exposed for tests (deterministic, no rng):
 * Gaussian blur of img [h, w] with sigma (> 0) and radius r = ceil(3 sigma), mirrored
 * borders, weights exp(-d^2 / (2 sigma^2)) normalised to sum 1 (computed in double;
 * r capped at 64); scratch as above with blur = sigma. sigma <= 0 leaves img as is. */
void ld_gaussian_blur(float *img, int w, int h, float sigma, float *scratch);
/* A standard normal draw (Box-Muller, the cosine branch; 2 uniform draws). */
double ld_augment_normal(ld_rng *rng);

#endif
