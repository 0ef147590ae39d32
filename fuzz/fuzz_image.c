/* fuzz_image.c — libFuzzer target for the image loading path (libjpeg-turbo, libpng).
 *
 * Input: the bytes of an image file. ld_image_decode is the one decoding path
 * (ld_image_load only reads the file and calls it). The pixel limit is set to 4 Mpixel
 * so a decompression bomb is refused from its header without slowing the fuzzer; the
 * limit check itself is the same code at any limit. Properties beyond "no crash":
 *   - a decoded image has w, h > 0, c in {1, 3}, and w*h within the limit;
 *   - ld_image_probe, reading only the header of the same bytes from a file, agrees
 *     with the decoder on width and height;
 *   - what the pipeline does next with any decoded image (grey, crop, Pillow-exact
 *     resize to the 100x100 patch, rotation, network input) stays in bounds. */
#include <stdint.h>
#include <stdlib.h>
#include "lymphdet/image.h"
#include "fuzz_util.h"

#define MAX_PIXELS (4L * 1024 * 1024)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_make_dir("image");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ld_image img, grey, out;
    ld_error err = {0};
    if (ld_image_decode(&img, data, size, "fuzz", MAX_PIXELS, &err) != LD_OK) {
        if (img.px || !err.msg[0]) abort();     /* failure leaves img empty, with a message */
        return 0;
    }
    if (img.w <= 0 || img.h <= 0 || (img.c != 1 && img.c != 3) ||
        (long long)img.w * img.h > MAX_PIXELS)
        abort();
    char path[512];
    int w = 0, h = 0;
    fuzz_write(path, sizeof path, "image", data, size);
    if (ld_image_probe(path, &w, &h, &err) != LD_OK || w != img.w || h != img.h) abort();

    if (ld_image_to_grey(&grey, &img, &err) == LD_OK) {
        int cw = grey.w > 1 ? grey.w / 2 : 1, ch = grey.h > 1 ? grey.h / 2 : 1;
        if (ld_image_crop(&out, &grey, grey.w - cw, grey.h - ch, cw, ch, &err) == LD_OK) {
            ld_image_flip_h(&out);
            ld_image_flip_v(&out);
            ld_image_free(&out);
        }
        if (ld_image_resize(&out, &grey, 100, 100, &err) == LD_OK) {
            float *x = malloc(sizeof(float) * 3 * 100 * 100);   /* [3, 100, 100] */
            if (x) ld_image_to_input(x, &out);
            free(x);
            ld_image_free(&out);
        }
        if (ld_image_rot90(&out, &grey, 1, &err) == LD_OK) {
            if (out.w != grey.h || out.h != grey.w) abort();
            ld_image_free(&out);
        }
        ld_image_free(&grey);
    }
    ld_image_free(&img);
    return 0;
}
