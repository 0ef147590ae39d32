/* image_codec.h — the JPEG and PNG codecs behind lymphdet/image.h (internal).
 *
 * image.c detects the format from the magic bytes and calls one of these; each codec
 * has one reading routine used both by decode (from memory) and by probe (from an
 * open file, header only), so the two can never disagree about what a file is. */
#ifndef LYMPHDET_IMAGE_CODEC_H
#define LYMPHDET_IMAGE_CODEC_H

#include <stdint.h>
#include <stdio.h>
#include "lymphdet/image.h"

/* Refuses zero sizes and w*h over max_pixels (already resolved: > 0), naming the file;
 * called by both codecs straight after the header, before any pixel is allocated. */
ld_status ld_image_check_size(const char *name, long w, long h, long max_pixels, ld_error *err);

/* Decode a whole file held in memory into img (c = 1 or 3); img is left empty on failure. */
ld_status ld_image_jpeg_decode(ld_image *img, const uint8_t *data, size_t size,
                               const char *name, long max_pixels, ld_error *err);
ld_status ld_image_png_decode(ld_image *img, const uint8_t *data, size_t size,
                              const char *name, long max_pixels, ld_error *err);

/* Read the header from fp (positioned at the start of the file): width and height only. */
ld_status ld_image_jpeg_probe(int *w, int *h, FILE *fp, const char *name, ld_error *err);
ld_status ld_image_png_probe(int *w, int *h, FILE *fp, const char *name, ld_error *err);

#endif
