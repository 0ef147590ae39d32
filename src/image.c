/* image.c — 8-bit images: reading files, format detection, geometry, resizing and the
 * conversion to network input (see lymphdet/image.h; the codecs are image_jpeg.c and
 * image_png.c).
 *
 * Decoding: ld_image_decode (from memory) is the one decoding path; ld_image_load only
 * reads the file, with its size validated, and calls it, so a fuzzer feeding memory
 * exercises exactly what users run. The format comes from the magic bytes, never from
 * the file name. Both codecs check w*h against the pixel limit straight after the
 * header, before any pixel buffer exists.
 *
 * Ownership: every function that fills a dst gives it a new image (free it with
 * ld_image_free). dst may be src itself, whose pixels are then replaced; on failure
 * such an aliased src is left intact, and any other dst is left empty.
 *
 * Resizing reproduces Pillow's Image.resize(size, Image.BILINEAR) (Pillow >= 2.7,
 * libImaging/Resample.c) to the bit, not plain 4-tap bilinear interpolation:
 *   - a triangle filter whose support widens with the shrink factor (support =
 *     max(in/out, 1)), so shrinking averages every source pixel under the output pixel
 *     instead of sampling four of them. Ultrasound speckle is a high-frequency texture:
 *     squeezing a 160 px lesion into a 100 px patch by point sampling would alias it into
 *     a different texture than the one the network sees at native scale;
 *   - separable, horizontal pass first, each pass rounded to 8 bits, with the
 *     coefficients normalised to sum 1 and quantised to 22-bit fixed point exactly as
 *     Pillow does, so that patches cut by a Python user with Pillow are the same bytes
 *     as ours (checked against Pillow-made fixtures in tests/test_image.c). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "alloc.h"
#include "image_codec.h"
#include "lymphdet/image.h"

/* Largest file ld_image_load will read: far above any real frame (a 64-Mpixel RGB PNG
 * stored uncompressed is ~200 MB), low enough that a wrong path to a disk image or a
 * video is refused before it is slurped into memory. */
#define LD_IMAGE_MAX_FILE_BYTES (1024L * 1024 * 1024)

static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

typedef enum { FORMAT_UNKNOWN, FORMAT_JPEG, FORMAT_PNG } image_format;

/* JPEG: the SOI marker FF D8. PNG: its 8-byte signature, or a prefix of at least 4
 * bytes of it, so that a cut-off PNG is called truncated rather than unknown. */
static image_format detect(const uint8_t *data, size_t size)
{
    if (size >= 2 && data[0] == 0xFF && data[1] == 0xD8) return FORMAT_JPEG;
    size_t n = size < 8 ? size : 8;
    if (n >= 4 && memcmp(data, png_magic, n) == 0) return FORMAT_PNG;
    return FORMAT_UNKNOWN;
}

static ld_status unsupported(const char *name, const uint8_t *data, size_t size, ld_error *err)
{
    char hex[16] = "";   /* up to "xx xx xx xx" */
    for (size_t i = 0; i < size && i < 4; i++)
        snprintf(hex + strlen(hex), sizeof hex - strlen(hex), "%s%02x", i ? " " : "", data[i]);
    return ld_fail(err, LD_ERR_INPUT, "%s: unsupported image format (not JPEG or PNG), "
                   "starts with %s", name, hex);
}

ld_status ld_image_check_size(const char *name, long w, long h, long max_pixels, ld_error *err)
{
    if (w <= 0 || h <= 0)
        return ld_fail(err, LD_ERR_INPUT, "%s: image has zero size (%ldx%ld)", name, w, h);
    /* w, h < 2^31 (JPEG and PNG headers cannot say more), so the product fits */
    if ((long long)w * h > max_pixels)
        return ld_fail(err, LD_ERR_INPUT, "%s: image is %ldx%ld pixels, over the limit of %ld",
                       name, w, h, max_pixels);
    return LD_OK;
}

ld_status ld_image_alloc(ld_image *img, int w, int h, int c, ld_error *err)
{
    memset(img, 0, sizeof *img);
    if (w <= 0 || h <= 0 || (c != 1 && c != 3))
        return ld_fail(err, LD_ERR_USAGE, "cannot allocate a %dx%dx%d image", w, h, c);
    int of = 0;
    size_t n = ld_mul3((size_t)w, (size_t)h, (size_t)c, &of);
    uint8_t *px = of ? NULL : ld_alloc(n, 1, "image pixels", err);
    if (!px) {
        if (of) return ld_fail(err, LD_ERR_NOMEM, "a %dx%dx%d image is too large", w, h, c);
        return err ? err->status : LD_ERR_NOMEM;
    }
    img->w = w;
    img->h = h;
    img->c = c;
    img->px = px;
    return LD_OK;
}

void ld_image_free(ld_image *img)
{
    if (!img) return;
    ld_free(img->px);
    memset(img, 0, sizeof *img);
}

ld_status ld_image_decode(ld_image *img, const uint8_t *data, size_t size, const char *name,
                          long max_pixels, ld_error *err)
{
    memset(img, 0, sizeof *img);
    if (!name) name = "(memory)";
    if (size == 0) return ld_fail(err, LD_ERR_INPUT, "%s: empty file (0 bytes)", name);
    if (!data) return ld_fail(err, LD_ERR_USAGE, "%s: no data", name);
    if (max_pixels <= 0) max_pixels = LD_IMAGE_MAX_PIXELS_DEFAULT;
    switch (detect(data, size)) {
    case FORMAT_JPEG: return ld_image_jpeg_decode(img, data, size, name, max_pixels, err);
    case FORMAT_PNG:  return ld_image_png_decode(img, data, size, name, max_pixels, err);
    default:          return unsupported(name, data, size, err);
    }
}

ld_status ld_image_load(ld_image *img, const char *path, long max_pixels, ld_error *err)
{
    memset(img, 0, sizeof *img);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ld_fail(err, LD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ld_fail(err, LD_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ld_fail(err, LD_ERR_INPUT, "%s: not a regular file", path);
    }
    if (st.st_size < 0 || st.st_size > LD_IMAGE_MAX_FILE_BYTES) {
        close(fd);
        return ld_fail(err, LD_ERR_INPUT, "%s: file is %lld bytes, over the limit of %ld for "
                       "an image", path, (long long)st.st_size, LD_IMAGE_MAX_FILE_BYTES);
    }
    size_t size = (size_t)st.st_size, got = 0;
    uint8_t *buf = ld_alloc(size, 1, "the image file", err);
    if (!buf) {
        close(fd);
        return ld_error_prefix(err, "%s", path);
    }
    /* a file that shrinks while we read is decoded as the bytes we got (and is then
     * most likely reported truncated); one that grows is read up to its size at fstat */
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            ld_free(buf);
            return ld_fail(err, LD_ERR_IO, "%s: read failed: %s", path, strerror(e));
        }
        if (n == 0) break;
        got += (size_t)n;
    }
    close(fd);
    ld_status s = ld_image_decode(img, buf, got, path, max_pixels, err);
    ld_free(buf);
    return s;
}

ld_status ld_image_probe(const char *path, int *w, int *h, ld_error *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return ld_fail(err, LD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t head[8];
    size_t n = fread(head, 1, sizeof head, fp);
    ld_status s;
    if (ferror(fp)) {
        s = ld_fail(err, LD_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    } else if (n == 0) {
        s = ld_fail(err, LD_ERR_INPUT, "%s: empty file (0 bytes)", path);
    } else {
        rewind(fp);
        switch (detect(head, n)) {
        case FORMAT_JPEG: s = ld_image_jpeg_probe(w, h, fp, path, err); break;
        case FORMAT_PNG:  s = ld_image_png_probe(w, h, fp, path, err); break;
        default:          s = unsupported(path, head, n, err); break;
        }
    }
    fclose(fp);
    return s;
}

/* Hands a finished tmp to dst (see "Ownership" above). */
static ld_status give(ld_image *dst, const ld_image *src, ld_image *tmp)
{
    if (dst == src) ld_image_free(dst);
    *dst = *tmp;
    return LD_OK;
}

/* The failure side of the ownership rule. */
static ld_status drop(ld_image *dst, const ld_image *src, ld_status st)
{
    if (dst != src) memset(dst, 0, sizeof *dst);
    return st;
}

static int valid(const ld_image *img)
{
    return img && img->px && img->w > 0 && img->h > 0 && (img->c == 1 || img->c == 3);
}

/* BT.601 luma, rounded to nearest: (299 R + 587 G + 114 B + 500) / 1000. Equal R, G, B
 * give back the same value (as Pillow's convert("L") does), so grey frames stored as
 * RGB JPEGs lose nothing. */
static uint8_t luma(const uint8_t *p)
{
    return (uint8_t)((299u * p[0] + 587u * p[1] + 114u * p[2] + 500u) / 1000u);
}

ld_status ld_image_to_grey(ld_image *dst, const ld_image *src, ld_error *err)
{
    if (!valid(src)) return drop(dst, src, ld_fail(err, LD_ERR_USAGE, "to_grey: empty image"));
    ld_image tmp;
    ld_status st = ld_image_alloc(&tmp, src->w, src->h, 1, err);
    if (st != LD_OK) return drop(dst, src, st);
    size_t n = (size_t)src->w * (size_t)src->h;
    if (src->c == 1)
        memcpy(tmp.px, src->px, n);
    else
        for (size_t i = 0; i < n; i++) tmp.px[i] = luma(src->px + 3 * i);
    return give(dst, src, &tmp);
}

ld_status ld_image_crop(ld_image *dst, const ld_image *src, int x, int y, int w, int h,
                        ld_error *err)
{
    if (!valid(src)) return drop(dst, src, ld_fail(err, LD_ERR_USAGE, "crop: empty image"));
    /* written so that no sum can overflow int */
    if (x < 0 || y < 0 || w <= 0 || h <= 0 || x > src->w - w || y > src->h - h)
        return drop(dst, src, ld_fail(err, LD_ERR_USAGE, "crop (%d, %d, %d, %d) is not inside "
                                      "the %dx%d image", x, y, w, h, src->w, src->h));
    ld_image tmp;
    ld_status st = ld_image_alloc(&tmp, w, h, src->c, err);
    if (st != LD_OK) return drop(dst, src, st);
    size_t c = (size_t)src->c, row = (size_t)w * c;
    for (int r = 0; r < h; r++)
        memcpy(tmp.px + (size_t)r * row,
               src->px + (((size_t)(y + r) * (size_t)src->w) + (size_t)x) * c, row);
    return give(dst, src, &tmp);
}

void ld_image_flip_h(ld_image *img)
{
    if (!valid(img)) return;
    size_t c = (size_t)img->c;
    for (int y = 0; y < img->h; y++) {
        uint8_t *row = img->px + (size_t)y * (size_t)img->w * c;
        for (int a = 0, b = img->w - 1; a < b; a++, b--)
            for (size_t k = 0; k < c; k++) {
                uint8_t t = row[(size_t)a * c + k];
                row[(size_t)a * c + k] = row[(size_t)b * c + k];
                row[(size_t)b * c + k] = t;
            }
    }
}

void ld_image_flip_v(ld_image *img)
{
    if (!valid(img)) return;
    size_t row = (size_t)img->w * (size_t)img->c;
    for (int a = 0, b = img->h - 1; a < b; a++, b--) {
        uint8_t *p = img->px + (size_t)a * row, *q = img->px + (size_t)b * row;
        for (size_t i = 0; i < row; i++) {
            uint8_t t = p[i];
            p[i] = q[i];
            q[i] = t;
        }
    }
}

ld_status ld_image_rot90(ld_image *dst, const ld_image *src, int k, ld_error *err)
{
    if (!valid(src)) return drop(dst, src, ld_fail(err, LD_ERR_USAGE, "rot90: empty image"));
    int q = ((k % 4) + 4) % 4;   /* quarter turns counter-clockwise, 0..3 */
    int w = src->w, h = src->h;
    ld_image tmp;
    ld_status st = ld_image_alloc(&tmp, q % 2 ? h : w, q % 2 ? w : h, src->c, err);
    if (st != LD_OK) return drop(dst, src, st);
    size_t c = (size_t)src->c;
    /* for each output pixel (ox, oy), the source pixel (sx, sy) as numpy.rot90 maps it */
    for (int oy = 0; oy < tmp.h; oy++)
        for (int ox = 0; ox < tmp.w; ox++) {
            int sx, sy;
            switch (q) {
            case 0:  sx = ox;         sy = oy;         break;
            case 1:  sx = w - 1 - oy; sy = ox;         break;
            case 2:  sx = w - 1 - ox; sy = h - 1 - oy; break;
            default: sx = oy;         sy = h - 1 - ox; break;
            }
            memcpy(tmp.px + ((size_t)oy * (size_t)tmp.w + (size_t)ox) * c,
                   src->px + ((size_t)sy * (size_t)w + (size_t)sx) * c, c);
        }
    return give(dst, src, &tmp);
}

/* ---- resizing (Pillow's BILINEAR, see the top of the file) ---- */

#define RESAMPLE_BITS 22   /* Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2 */

typedef ld_resize_taps taps;

static void taps_free(taps *t)
{
    ld_free(t->first);
    ld_free(t->count);
    ld_free(t->coef);
    memset(t, 0, sizeof *t);
}

static double triangle(double x)
{
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear filter and the
 * whole-image box (0, in_size); the arithmetic is kept in the same order, in double,
 * so that every quantised weight is the same integer. Taps already made for these
 * sizes are kept as they are. */
static ld_status taps_make(taps *t, int in_size, int out_size, ld_error *err)
{
    if (t->coef && t->in_size == in_size && t->out_size == out_size) return LD_OK;
    taps_free(t);
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;   /* the triangle's support is 1 */
    double ss = 1.0 / filterscale;
    double ksize_d = ceil(support) * 2 + 1;
    if (ksize_d > (double)in_size + 2) ksize_d = (double)in_size + 2;   /* count <= in_size */
    t->ksize = (int)ksize_d;
    int of = 0;
    size_t nk = ld_mul2((size_t)out_size, (size_t)t->ksize, &of);
    if (of) return ld_fail(err, LD_ERR_NOMEM, "resize: %d x %d filter taps overflow",
                           out_size, t->ksize);
    double *w = ld_alloc((size_t)t->ksize, sizeof *w, "resize weights", err);   /* [ksize] */
    t->first = ld_alloc((size_t)out_size, sizeof *t->first, "resize taps", err);
    t->count = t->first ? ld_alloc((size_t)out_size, sizeof *t->count, "resize taps", err) : NULL;
    t->coef = t->count ? ld_zalloc(nk, sizeof *t->coef, "resize taps", err) : NULL;
    if (!w || !t->coef) {
        ld_free(w);
        taps_free(t);
        return err ? err->status : LD_ERR_NOMEM;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);   /* truncation, as Pillow rounds */
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        if (xmax > t->ksize) xmax = t->ksize;      /* never happens; keeps the bound local */
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            w[x] = triangle((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = t->coef + (size_t)xx * (size_t)t->ksize;
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            /* weights are >= 0 for the triangle, so Pillow's negative branch is not needed */
            k[x] = (int32_t)(0.5 + v * (1 << RESAMPLE_BITS));
        }
        t->first[xx] = xmin;
        t->count[xx] = xmax;
    }
    t->in_size = in_size;
    t->out_size = out_size;
    ld_free(w);
    return LD_OK;
}

/* The passes' inner loops are plain integer multiply-adds along rows: on x86-64 they
 * are compiled for AVX2 and AVX-512 as well, and the loader picks the best the CPU
 * has (GCC and clang function multi-versioning); elsewhere the plain build. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define RESIZE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RESIZE_CLONES
#endif

/* Pillow's clip8: the fixed-point sum (with its +0.5 already added) back to 0..255.
 * Sums fit in int32 as in Pillow: the weights are >= 0 and add up to about
 * 2^RESAMPLE_BITS, so a sum is at most about 255 * 2^22 < 2^31. */
static uint8_t clip8(int32_t s)
{
    s >>= RESAMPLE_BITS;
    return (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
}

/* dst [h, tw, c] from src [h, sw, c], resampling each row. */
static void pass_horizontal(uint8_t *dst, const uint8_t *src, int sw, int tw, int h, int c,
                            const taps *t)
{
    for (int y = 0; y < h; y++) {
        const uint8_t *in = src + (size_t)y * (size_t)sw * (size_t)c;
        uint8_t *out = dst + (size_t)y * (size_t)tw * (size_t)c;
        for (int xx = 0; xx < tw; xx++) {
            const int32_t *k = t->coef + (size_t)xx * (size_t)t->ksize;
            const uint8_t *p = in + (size_t)t->first[xx] * (size_t)c;
            for (int ch = 0; ch < c; ch++) {
                int32_t s = 1 << (RESAMPLE_BITS - 1);
                for (int x = 0; x < t->count[xx]; x++) s += (int32_t)p[(size_t)x * c + ch] * k[x];
                out[(size_t)xx * c + ch] = clip8(s);
            }
        }
    }
}

/* dst [th, w, c] from src [sh, w, c], resampling each column; acc [w c] is scratch.
 * A whole output row accumulates one input row at a time, so the inner loop runs
 * along contiguous pixels (and vectorises); the sums are those of Pillow's order. */
RESIZE_CLONES
static void pass_vertical(uint8_t *dst, const uint8_t *src, int w, int th, int c, const taps *t,
                          int32_t *acc)
{
    size_t row = (size_t)w * (size_t)c;
    for (int yy = 0; yy < th; yy++) {
        const int32_t *k = t->coef + (size_t)yy * (size_t)t->ksize;
        const uint8_t *in = src + (size_t)t->first[yy] * row;
        uint8_t *out = dst + (size_t)yy * row;
        for (size_t i = 0; i < row; i++) acc[i] = 1 << (RESAMPLE_BITS - 1);
        for (int y = 0; y < t->count[yy]; y++) {
            const uint8_t *r = in + (size_t)y * row;
            int32_t ky = k[y];
            for (size_t i = 0; i < row; i++) acc[i] += (int32_t)r[i] * ky;
        }
        for (size_t i = 0; i < row; i++) out[i] = clip8(acc[i]);
    }
}

/* Grows *buf to hold n bytes (never shrinks). */
static ld_status grow_bytes(uint8_t **buf, size_t *cap, size_t n, ld_error *err)
{
    if (n <= *cap) return LD_OK;
    uint8_t *p = ld_realloc(*buf, n, 1, "resized pixels", err);
    if (!p) return LD_ERR_NOMEM;
    *buf = p;
    *cap = n;
    return LD_OK;
}

#ifdef __SSE2__
/* dst rows (stride ds) = the 16 x 16 bytes at src (stride ss), transposed: four
 * rounds of interleaving, each doubling the width of the units moved */
static void transpose16(uint8_t *dst, size_t ds, const uint8_t *src, size_t ss)
{
    __m128i a[16], b[16];
    for (int i = 0; i < 16; i++) a[i] = _mm_loadu_si128((const __m128i *)(const void *)(src + i * ss));
    for (int i = 0; i < 8; i++) {
        b[2 * i] = _mm_unpacklo_epi8(a[2 * i], a[2 * i + 1]);
        b[2 * i + 1] = _mm_unpackhi_epi8(a[2 * i], a[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++) {
            a[4 * i + 2 * j] = _mm_unpacklo_epi16(b[4 * i + j], b[4 * i + j + 2]);
            a[4 * i + 2 * j + 1] = _mm_unpackhi_epi16(b[4 * i + j], b[4 * i + j + 2]);
        }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            b[8 * i + 2 * j] = _mm_unpacklo_epi32(a[8 * i + j], a[8 * i + j + 4]);
            b[8 * i + 2 * j + 1] = _mm_unpackhi_epi32(a[8 * i + j], a[8 * i + j + 4]);
        }
    for (int j = 0; j < 8; j++) {
        a[2 * j] = _mm_unpacklo_epi64(b[j], b[j + 8]);
        a[2 * j + 1] = _mm_unpackhi_epi64(b[j], b[j + 8]);
    }
    /* a[k] now holds column k of the tile */
    for (int k = 0; k < 16; k++) _mm_storeu_si128((__m128i *)(void *)(dst + k * ds), a[k]);
}
#endif

/* dst [w, h] = src [h, w] transposed (bytes), 16 x 16 tiles at a time */
static void transpose_bytes(uint8_t *dst, const uint8_t *src, int w, int h)
{
    int x0 = 0, y0 = 0;
#ifdef __SSE2__
    for (y0 = 0; y0 + 16 <= h; y0 += 16)
        for (x0 = 0; x0 + 16 <= w; x0 += 16)
            transpose16(dst + (size_t)x0 * h + y0, (size_t)h, src + (size_t)y0 * w + x0, (size_t)w);
    /* what the tiles left: the right columns of those rows, then the bottom rows */
    for (int y = 0; y < y0; y++)
        for (int x = x0; x < w; x++) dst[(size_t)x * h + y] = src[(size_t)y * w + x];
#endif
    for (int y = y0; y < h; y++)
        for (int x = 0; x < w; x++) dst[(size_t)x * h + y] = src[(size_t)y * w + x];
}

/* The horizontal pass, dst [rows, tw, c] from src [rows, sw, c]. Grey images take
 * it as a vertical pass of the transposed image (transpose, resample the columns,
 * transpose back): the same sums, but along contiguous pixels instead of one
 * short gather per output pixel, several times faster. */
static ld_status horizontal(ld_resizer *r, uint8_t *dst, const uint8_t *src, const uint8_t *src_t,
                            int sw, int tw, int rows, int c, ld_error *err)
{
    ld_status st = taps_make(&r->th, sw, tw, err);
    if (st) return st;
    if (c != 1) {
        pass_horizontal(dst, src, sw, tw, rows, c, &r->th);
        return LD_OK;
    }
    size_t n_in = (size_t)sw * (size_t)rows, n_mid = (size_t)tw * (size_t)rows;
    if ((!src_t && (st = grow_bytes(&r->t_in, &r->t_in_cap, n_in, err))) ||
        (st = grow_bytes(&r->t_mid, &r->t_mid_cap, n_mid, err)) ||
        (st = grow_bytes((uint8_t **)&r->acc, &r->acc_cap, (size_t)rows * sizeof(int32_t), err)))
        return st;
    if (!src_t) {
        transpose_bytes(r->t_in, src, sw, rows);               /* [sw, rows] */
        src_t = r->t_in;
    }
    pass_vertical(r->t_mid, src_t, rows, tw, 1, &r->th, r->acc);   /* [tw, rows] */
    transpose_bytes(dst, r->t_mid, rows, tw);                   /* [rows, tw] */
    return LD_OK;
}

void ld_image_transpose(uint8_t *dst, const ld_image *src)
{
    transpose_bytes(dst, src->px, src->w, src->h);
}

ld_status ld_resizer_run(ld_resizer *r, ld_image *view, const ld_image *src, int w, int h,
                         ld_error *err)
{
    return ld_resizer_run_t(r, view, src, NULL, w, h, err);
}

ld_status ld_resizer_run_t(ld_resizer *r, ld_image *view, const ld_image *src,
                           const uint8_t *src_t, int w, int h, ld_error *err)
{
    memset(view, 0, sizeof *view);
    if (!valid(src)) return ld_fail(err, LD_ERR_USAGE, "resize: empty image");
    if (w <= 0 || h <= 0)
        return ld_fail(err, LD_ERR_USAGE, "resize to %dx%d: sizes must be positive", w, h);
    int c = src->c, of = 0;
    size_t n_out = ld_mul3((size_t)w, (size_t)h, (size_t)c, &of);
    size_t n_mid = ld_mul3((size_t)w, (size_t)src->h, (size_t)c, &of);
    if (of) return ld_fail(err, LD_ERR_NOMEM, "resize to %dx%d: too large", w, h);
    ld_status st = grow_bytes(&r->out, &r->out_cap, n_out, err);
    if (st) return st;
    if (w == src->w && h == src->h) {
        /* Pillow copies when neither pass is needed */
        memcpy(r->out, src->px, n_out);
    } else if (h == src->h) {
        if ((st = horizontal(r, r->out, src->px, src_t, src->w, w, h, c, err))) return st;
    } else {
        const uint8_t *vin = src->px;   /* the vertical pass's input: [src->h, w, c] */
        if (w != src->w) {
            if ((st = grow_bytes(&r->mid, &r->mid_cap, n_mid, err)) ||
                (st = horizontal(r, r->mid, src->px, src_t, src->w, w, src->h, c, err)))
                return st;
            vin = r->mid;
        }
        if ((st = taps_make(&r->tv, src->h, h, err)) ||
            (st = grow_bytes((uint8_t **)&r->acc, &r->acc_cap, n_out / (size_t)h * sizeof(int32_t),
                             err)))
            return st;
        pass_vertical(r->out, vin, w, h, c, &r->tv, r->acc);
    }
    *view = (ld_image){w, h, c, r->out};
    return LD_OK;
}

void ld_resizer_free(ld_resizer *r)
{
    taps_free(&r->th);
    taps_free(&r->tv);
    ld_free(r->mid);
    ld_free(r->out);
    ld_free(r->acc);
    ld_free(r->t_in);
    ld_free(r->t_mid);
    memset(r, 0, sizeof *r);
}

ld_status ld_image_resize(ld_image *dst, const ld_image *src, int w, int h, ld_error *err)
{
    ld_resizer r = {0};
    ld_image view;
    ld_status st = ld_resizer_run(&r, &view, src, w, h, err);
    if (st != LD_OK) {
        ld_resizer_free(&r);
        return drop(dst, src, st);
    }
    ld_image tmp = view;   /* the result's buffer becomes the image's own */
    r.out = NULL;
    ld_resizer_free(&r);
    return give(dst, src, &tmp);
}

void ld_image_to_input(float *out, const ld_image *img)
{
    if (!valid(img)) return;
    size_t n = (size_t)img->w * (size_t)img->h;   /* out: [3, h, w] */
    for (size_t i = 0; i < n; i++) {
        uint8_t g = img->c == 1 ? img->px[i] : luma(img->px + 3 * i);
        /* float division by 255, as numpy's x.astype(float32) / 255 rounds it */
        float v = (float)g / 255.0f;
        out[i] = v;
        out[n + i] = v;
        out[2 * n + i] = v;
    }
}
