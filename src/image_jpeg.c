/* image_jpeg.c — JPEG decoding and header probing with libjpeg-turbo.
 *
 * libjpeg's default error_exit prints and calls exit(); here it longjmps back to the
 * reading routine with the message instead. libjpeg also "recovers" from a truncated
 * file by inventing an EOI marker and padding the rest of the image with grey, issuing
 * only a warning: a half-received frame would then become a silently grey training
 * image. So the warnings that mean pixels were lost or invented (premature end of file,
 * premature end of a data segment, bad Huffman/arithmetic code, resync) are errors here.
 * Warnings that do not touch pixels (extraneous bytes before a marker, an unknown JFIF
 * revision, a bad ICC marker) are ignored, as every viewer does. A file missing only
 * its final EOI marker is also refused: we cannot tell it from a cut-off file.
 *
 * Colour: grey JPEGs decode to c = 1, YCbCr and RGB ones to c = 3, with libjpeg's own
 * colour conversion, fancy upsampling and the integer "islow" IDCT: the same pixels
 * Pillow reads from the same file. CMYK/YCCK JPEGs (print files, never ultrasound
 * frames) are REJECTED with a clear message rather than converted, because a faithful
 * conversion needs the file's ICC profile and Adobe's inverted-ink convention. */
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>
#include "alloc.h"
#include "image_codec.h"

typedef struct {
    struct jpeg_error_mgr pub;  /* first member: libjpeg hands back a pointer to it */
    jmp_buf jump;
    ld_status status;
    char msg[JMSG_LENGTH_MAX + 64];
} jpeg_failure;

static void on_error(j_common_ptr cinfo)
{
    jpeg_failure *f = (jpeg_failure *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    cinfo->err->format_message(cinfo, text);
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
        f->status = LD_ERR_INPUT;
        snprintf(f->msg, sizeof f->msg, "truncated JPEG data (premature end of file)");
        break;
    case JERR_OUT_OF_MEMORY:
        f->status = LD_ERR_NOMEM;
        snprintf(f->msg, sizeof f->msg, "out of memory decoding JPEG (%s)", text);
        break;
    case JERR_FILE_READ:
        f->status = LD_ERR_IO;
        snprintf(f->msg, sizeof f->msg, "read failed (%s)", text);
        break;
    default:
        f->status = LD_ERR_INPUT;
        snprintf(f->msg, sizeof f->msg, "bad JPEG data (libjpeg: %s)", text);
        break;
    }
    longjmp(f->jump, 1);
}

/* msg_level -1 is a corrupt-data warning, >= 0 a trace message. */
static void on_message(j_common_ptr cinfo, int msg_level)
{
    if (msg_level >= 0) return;
    cinfo->err->num_warnings++;
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
        on_error(cinfo);
        break;
    default:
        break;
    }
}

/* The one reading routine. img == NULL: stop after the header and return its size in
 * *w, *h (from fp). Otherwise decode data[size] into img, within max_pixels. */
static ld_status jpeg_read(ld_image *img, int *w, int *h, FILE *fp, const uint8_t *data,
                           size_t size, const char *name, long max_pixels, ld_error *err)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_failure fail;
    /* volatile: assigned after setjmp and freed on the longjmp path */
    uint8_t *volatile px = NULL;   /* [h, w, c] */

    memset(&cinfo, 0, sizeof cinfo);
    memset(&fail, 0, sizeof fail);
    cinfo.err = jpeg_std_error(&fail.pub);
    fail.pub.error_exit = on_error;
    fail.pub.emit_message = on_message;
    if (setjmp(fail.jump)) {
        jpeg_destroy_decompress(&cinfo);
        ld_free(px);
        return ld_fail(err, fail.status, "%s: %s", name, fail.msg);
    }
    ld_status st = LD_OK;
    jpeg_create_decompress(&cinfo);
    if (fp)
        jpeg_stdio_src(&cinfo, fp);
    else
        jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);   /* requires an image: errors on a tables-only file */

    if (!img) {
        /* libjpeg has already refused zero sizes and anything over JPEG_MAX_DIMENSION */
        *w = (int)cinfo.image_width;
        *h = (int)cinfo.image_height;
        goto done;
    }
    st = ld_image_check_size(name, (long)cinfo.image_width, (long)cinfo.image_height,
                             max_pixels, err);
    if (st != LD_OK) goto done;

    int c;
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo.out_color_space = JCS_GRAYSCALE;
        c = 1;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        cinfo.out_color_space = JCS_RGB;
        c = 3;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        st = ld_fail(err, LD_ERR_INPUT, "%s: CMYK/YCCK JPEG is not supported "
                     "(save it as RGB or grey)", name);
        goto done;
    default:
        st = ld_fail(err, LD_ERR_INPUT, "%s: JPEG colour space with %d components is not "
                     "supported", name, cinfo.num_components);
        goto done;
    }
    cinfo.dct_method = JDCT_ISLOW;
    jpeg_start_decompress(&cinfo);
    int iw = (int)cinfo.output_width, ih = (int)cinfo.output_height;
    if (cinfo.output_components != c || cinfo.output_width != cinfo.image_width ||
        cinfo.output_height != cinfo.image_height) {
        st = ld_fail(err, LD_ERR_INPUT, "%s: unexpected JPEG output (%d components, %dx%d)",
                     name, cinfo.output_components, iw, ih);
        goto done;
    }
    int of = 0;
    size_t n = ld_mul3((size_t)iw, (size_t)ih, (size_t)c, &of);
    px = of ? NULL : ld_alloc(n, 1, "JPEG pixels", err);
    if (!px) {
        if (of) ld_fail(err, LD_ERR_NOMEM, "JPEG pixels: size overflows");
        st = ld_error_prefix(err, "%s", name);
        goto done;
    }
    size_t stride = (size_t)iw * (size_t)c;
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = px + (size_t)cinfo.output_scanline * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);   /* reads to EOI: a cut-off tail is caught here */
    img->w = iw;
    img->h = ih;
    img->c = c;
    img->px = px;
    px = NULL;
done:
    jpeg_destroy_decompress(&cinfo);
    ld_free(px);
    return st;
}

ld_status ld_image_jpeg_decode(ld_image *img, const uint8_t *data, size_t size,
                               const char *name, long max_pixels, ld_error *err)
{
    memset(img, 0, sizeof *img);
#if SIZE_MAX > ULONG_MAX
    if (size > ULONG_MAX)
        return ld_fail(err, LD_ERR_INPUT, "%s: JPEG data too large (%zu bytes)", name, size);
#endif
    return jpeg_read(img, NULL, NULL, NULL, data, size, name, max_pixels, err);
}

ld_status ld_image_jpeg_probe(int *w, int *h, FILE *fp, const char *name, ld_error *err)
{
    return jpeg_read(NULL, w, h, fp, NULL, 0, name, 0, err);
}
