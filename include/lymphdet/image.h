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
/* In-place mirror left-right / top-bottom. */
void ld_image_flip_h(ld_image *img);
void ld_image_flip_v(ld_image *img);
/* Rotates counter-clockwise by k * 90 degrees into dst (k any integer). */
ld_status ld_image_rot90(ld_image *dst, const ld_image *src, int k, ld_error *err);

/* Network input from an image: out[3, h, w] (CHW, one image of an NCHW batch),
 * value = grey / 255 in each of the 3 equal channels (RGB converted to grey first). */
void ld_image_to_input(float *out, const ld_image *img);

#endif
