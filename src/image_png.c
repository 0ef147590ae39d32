/* image_png.c — PNG decoding, header probing and writing with libpng.
 *
 * libpng reports errors by calling our error function, which records the message and
 * longjmps back (libpng never returns from an error). Its memory goes through
 * ld_alloc, so the tests' allocation-failure loop reaches libpng's error paths too.
 *
 * Every PNG flavour is reduced to 8-bit grey (c = 1) or RGB (c = 3) with libpng's own
 * transforms: palette -> RGB, 1/2/4-bit grey -> 8-bit, 16-bit -> 8-bit by
 * png_set_scale_16 (rounded v/257, not the truncating strip), alpha and tRNS dropped
 * (not composited: an ultrasound frame has no meaningful transparency), Adam7
 * interlacing undone. Gamma and colour-profile chunks are ignored, as Pillow does.
 * The whole file is read, through IEND: a cut-off or CRC-damaged file is an error even
 * when its last rows happen to decode. */
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <png.h>
#include "alloc.h"
#include "lymphdet/outfile.h"
#include "image_codec.h"

/* What our libpng callbacks share: where the bytes come from, and why it failed. */
typedef struct {
    const uint8_t *data;   /* memory source [size], or NULL when reading fp */
    size_t size, pos;
    FILE *fp;
    int truncated;         /* the source ran out of bytes */
    int read_error;        /* fp reported an I/O error */
    int out_of_memory;     /* an allocation for libpng failed */
    char msg[256];         /* libpng's error message */
} png_ctx;

static void on_error(png_structp png, png_const_charp msg)
{
    png_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;   /* ancillary-chunk trouble (bad iCCP, sRGB, ...) does not touch pixels */
}

static png_voidp on_alloc(png_structp png, png_alloc_size_t size)
{
    png_ctx *ctx = png_get_mem_ptr(png);
    void *p = ld_alloc(size, 1, "libpng", NULL);
    if (!p) ctx->out_of_memory = 1;
    return p;
}

static void on_free(png_structp png, png_voidp p)
{
    (void)png;
    ld_free(p);
}

static void on_read(png_structp png, png_bytep out, size_t n)
{
    png_ctx *ctx = png_get_io_ptr(png);
    if (ctx->fp) {
        size_t got = fread(out, 1, n, ctx->fp);
        if (got == n) return;
        if (ferror(ctx->fp)) {
            ctx->read_error = 1;
            png_error(png, "read failed");
        }
    } else if (n <= ctx->size - ctx->pos) {
        memcpy(out, ctx->data + ctx->pos, n);
        ctx->pos += n;
        return;
    }
    ctx->truncated = 1;
    png_error(png, "truncated PNG data");
}

/* The status and message for a longjmp out of libpng. */
static ld_status png_failure(const png_ctx *ctx, const char *name, ld_error *err)
{
    if (ctx->out_of_memory)
        return ld_fail(err, LD_ERR_NOMEM, "%s: out of memory decoding PNG", name);
    if (ctx->read_error) return ld_fail(err, LD_ERR_IO, "%s: read failed", name);
    if (ctx->truncated)
        return ld_fail(err, LD_ERR_INPUT, "%s: truncated PNG data (premature end of file)", name);
    return ld_fail(err, LD_ERR_INPUT, "%s: bad PNG data (libpng: %s)", name, ctx->msg);
}

/* The one reading routine. img == NULL: stop after the header (IHDR, checked by libpng)
 * and return its size in *w, *h. Otherwise decode the whole file into img. */
static ld_status png_read(ld_image *img, int *w, int *h, png_ctx *ctx, const char *name,
                          long max_pixels, ld_error *err)
{
    png_structp png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, ctx, on_error,
                                               on_warning, ctx, on_alloc, on_free);
    if (!png) return ld_fail(err, LD_ERR_NOMEM, "%s: out of memory starting libpng", name);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return ld_fail(err, LD_ERR_NOMEM, "%s: out of memory starting libpng", name);
    }
    /* volatile: assigned after setjmp and freed on the longjmp path */
    uint8_t *volatile px = NULL;           /* [h, w, c] */
    png_bytep *volatile rows = NULL;       /* [h] pointers into px */
    ld_status st = LD_OK;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        ld_free(rows);
        ld_free(px);
        return png_failure(ctx, name, err);
    }
    png_set_read_fn(png, ctx, on_read);
    /* libpng's default cap is 1e6 x 1e6; lift it so that our pixel limit, which names
     * the size, is the one that speaks (PNG itself allows up to 2^31 - 1) */
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_read_info(png, info);
    png_uint_32 pw, ph;
    int depth, colour, interlace;
    png_get_IHDR(png, info, &pw, &ph, &depth, &colour, &interlace, NULL, NULL);
    if (!img) {
        *w = (int)pw;    /* libpng has refused 0 and anything over PNG_UINT_31_MAX */
        *h = (int)ph;
        goto done;
    }
    st = ld_image_check_size(name, (long)pw, (long)ph, max_pixels, err);
    if (st != LD_OK) goto done;

    if (colour == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (colour == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_scale_16(png);
    /* unconditional: palette expansion turns tRNS into an alpha channel */
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int c = png_get_channels(png, info);
    size_t stride = png_get_rowbytes(png, info);
    if ((c != 1 && c != 3) || png_get_bit_depth(png, info) != 8 ||
        stride != (size_t)pw * (size_t)c) {
        st = ld_fail(err, LD_ERR_INPUT, "%s: unexpected PNG layout after conversion "
                     "(%d channels, %zu bytes a row)", name, c, stride);
        goto done;
    }
    int of = 0;
    size_t n = ld_mul2(stride, (size_t)ph, &of);
    px = of ? NULL : ld_alloc(n, 1, "PNG pixels", err);
    rows = px ? ld_alloc(ph, sizeof *rows, "PNG row pointers", err) : NULL;
    if (!rows) {
        if (of) ld_fail(err, LD_ERR_NOMEM, "PNG pixels: size overflows");
        st = ld_error_prefix(err, "%s", name);
        goto done;
    }
    for (png_uint_32 y = 0; y < ph; y++) rows[y] = px + (size_t)y * stride;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    img->w = (int)pw;
    img->h = (int)ph;
    img->c = c;
    img->px = px;
    px = NULL;
done:
    png_destroy_read_struct(&png, &info, NULL);
    ld_free(rows);
    ld_free(px);
    return st;
}

ld_status ld_image_png_decode(ld_image *img, const uint8_t *data, size_t size,
                              const char *name, long max_pixels, ld_error *err)
{
    memset(img, 0, sizeof *img);
    png_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.data = data;
    ctx.size = size;
    return png_read(img, NULL, NULL, &ctx, name, max_pixels, err);
}

ld_status ld_image_png_probe(int *w, int *h, FILE *fp, const char *name, ld_error *err)
{
    png_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.fp = fp;
    return png_read(NULL, w, h, &ctx, name, 0, err);
}

ld_status ld_image_save_png(const ld_image *img, const char *path, ld_error *err)
{
    if (!img || !img->px || img->w <= 0 || img->h <= 0 || (img->c != 1 && img->c != 3))
        return ld_fail(err, LD_ERR_USAGE, "%s: cannot save an empty or malformed image", path);
    ld_outfile out;
    ld_status st = ld_out_open(&out, path, err);
    if (st != LD_OK) return st;
    png_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    png_structp png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING, &ctx, on_error,
                                                on_warning, &ctx, on_alloc, on_free);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        ld_out_abort(&out);
        return ld_fail(err, LD_ERR_NOMEM, "%s: out of memory starting libpng", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        ld_out_abort(&out);
        if (ctx.out_of_memory)
            return ld_fail(err, LD_ERR_NOMEM, "%s: out of memory encoding PNG", path);
        return ld_fail(err, LD_ERR_IO, "%s: cannot write PNG (libpng: %s)", path, ctx.msg);
    }
    png_init_io(png, out.fp);
    png_set_IHDR(png, info, (png_uint_32)img->w, (png_uint_32)img->h, 8,
                 img->c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t stride = (size_t)img->w * (size_t)img->c;
    for (int y = 0; y < img->h; y++) png_write_row(png, img->px + (size_t)y * stride);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return ld_out_commit(&out, err);
}
