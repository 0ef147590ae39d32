/* image.h — 8-bit images: decoding (libjpeg-turbo, libpng), geometry, PNG output,
 * and conversion to the network's input.
 *
 * Pixels are interleaved, row-major: px[(y * w + x) * c + k], c = 1 (grey) or 3 (RGB).
 * Coordinates are pixel indices; a crop (x, y, w, h) takes columns x..x+w-1.
 * Functions that fill an image (img or dst) give it new pixels, freed with ld_image_free;
 * dst may be src itself, whose pixels are then replaced. On failure img, or a dst other
 * than src, is left empty (safe to free); an aliased src is left intact. */
#ifndef LYMPHDET_IMAGE_H
#define LYMPHDET_IMAGE_H

#include <stdint.h>
#include <stddef.h>
#include "lymphdet/error.h"

typedef struct {
    int w, h, c;        /* width, height, channels (1 or 3) */
    uint8_t *px;        /* [h, w, c], owned by the image */
} ld_image;

/* Default pixel limit for decoding (w*h), checked from the header BEFORE allocating. */
#define LD_IMAGE_MAX_PIXELS_DEFAULT (64L * 1024 * 1024)

/* Allocates an uninitialised w x h x c image. */
ld_status ld_image_alloc(ld_image *img, int w, int h, int c, ld_error *err);
void      ld_image_free(ld_image *img);

/* Decodes a JPEG or PNG file (format from its magic bytes, not its name) into
 * grey (c=1) or RGB (c=3), 8 bits per sample (16-bit PNG scaled to 8; palette and
 * alpha handled: alpha is dropped). max_pixels <= 0 means the default limit.
 * Errors name the file: not found, unsupported format, truncated/corrupt data,
 * too large. */
ld_status ld_image_load(ld_image *img, const char *path, long max_pixels, ld_error *err);
/* The same from memory; `name` is used in messages. */
ld_status ld_image_decode(ld_image *img, const uint8_t *data, size_t size, const char *name,
                          long max_pixels, ld_error *err);
/* Reads only the header: width and height, without decoding pixels. */
ld_status ld_image_probe(const char *path, int *w, int *h, ld_error *err);

/* Writes a PNG (grey or RGB), through a temporary file and rename. */
ld_status ld_image_save_png(const ld_image *img, const char *path, ld_error *err);

/* Grey copy: c=1 as is; RGB by ITU-R BT.601 luma, 0.299 R + 0.587 G + 0.114 B, rounded. */
ld_status ld_image_to_grey(ld_image *dst, const ld_image *src, ld_error *err);
/* Copies the rectangle (x, y, w, h), which must lie inside src. */
ld_status ld_image_crop(ld_image *dst, const ld_image *src, int x, int y, int w, int h, ld_error *err);
/* Resizes to w x h with an antialiased bilinear (triangle) filter whose support
 * widens by the shrink factor, as Pillow's BILINEAR does: plain bilinear when
 * enlarging, area-like averaging when shrinking (no aliasing of speckle). */
ld_status ld_image_resize(ld_image *dst, const ld_image *src, int w, int h, ld_error *err);

/* The filter taps of one resampling pass along an axis (internal to image.c). */
typedef struct {
    int in_size, out_size;   /* what they were made for; 0: none yet */
    int ksize;               /* taps per output sample */
    int *first, *count;      /* [out_size] first input index, taps used */
    int32_t *coef;           /* [out_size, ksize] fixed-point weights */
} ld_resize_taps;

/* The same resize for a caller that resizes frames of the same sizes again and
 * again (the detector's pyramid levels): the taps of the last sizes are kept, and
 * the intermediate and output pixels live in buffers that only grow, so a call
 * with the sizes of the previous one allocates nothing. Zero-initialise it. */
typedef struct {
    ld_resize_taps th, tv;   /* horizontal and vertical passes */
    uint8_t *mid, *out;      /* after the horizontal pass; the result */
    uint8_t *t_in, *t_mid;   /* grey: the source and the horizontal pass, transposed */
    int32_t *acc;            /* one output row of a pass's sums */
    size_t mid_cap, out_cap, t_in_cap, t_mid_cap, acc_cap;   /* bytes */
} ld_resizer;

/* Resizes src to w x h exactly as ld_image_resize; *view is set to the result,
 * which lives in r (do not free it) and holds until r's next call or free. */
ld_status ld_resizer_run(ld_resizer *r, ld_image *view, const ld_image *src, int w, int h,
                         ld_error *err);
/* The same for a grey src whose transpose src_t [src->w, src->h] the caller made
 * (ld_image_transpose): resizing one frame to several sizes transposes it once.
 * src_t NULL: as ld_resizer_run. */
ld_status ld_resizer_run_t(ld_resizer *r, ld_image *view, const ld_image *src,
                           const uint8_t *src_t, int w, int h, ld_error *err);
/* dst [src->w, src->h] = the grey image src transposed. */
void      ld_image_transpose(uint8_t *dst, const ld_image *src);
void      ld_resizer_free(ld_resizer *r);
/* In-place mirror left-right / top-bottom. */
void ld_image_flip_h(ld_image *img);
void ld_image_flip_v(ld_image *img);
/* Rotates counter-clockwise by k * 90 degrees into dst (k any integer). */
ld_status ld_image_rot90(ld_image *dst, const ld_image *src, int k, ld_error *err);

/* Network input from an image: out[3, h, w] (CHW, one image of an NCHW batch),
 * value = grey / 255 in each of the 3 equal channels (RGB converted to grey first). */
void ld_image_to_input(float *out, const ld_image *img);

#endif
