/* test_image.c — the image module: decoding every PNG flavour and JPEG, refusing bad
 * files with a message naming them, the pixel limit, probing, PNG round trips, geometry
 * on hand-written arrays, network input, and resizing against Pillow.
 *
 * Fixtures: tests/fixtures/images/ (README.md there; made by tools/make_image_fixtures.py).
 * Most 8x6 fixtures hold grey = 30x + 5y or RGB = (30x, 40y, 15(x + y)), so expected
 * values are written here as formulas, not read from another file. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "alloc.h"
#include "lymphdet/image.h"
#include "test.h"

#define FIX "tests/fixtures/images/"

static ld_status load(ld_image *img, const char *name, long max_pixels, ld_error *err)
{
    char path[512];
    snprintf(path, sizeof path, FIX "%s", name);
    return ld_image_load(img, path, max_pixels, err);
}

static int grey_at(int x, int y) { return 30 * x + 5 * y; }

static int rgb_at(int x, int y, int k)
{
    return k == 0 ? 30 * x : k == 1 ? 40 * y : 15 * (x + y);
}

/* max |img - expected(x, y, k)| over all samples; -1 if the shape differs */
static int max_diff_fn(const ld_image *img, int w, int h, int c, int (*f)(int, int, int))
{
    if (!img->px || img->w != w || img->h != h || img->c != c) return -1;
    int m = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                int d = abs(img->px[(y * w + x) * c + k] - f(x, y, k));
                if (d > m) m = d;
            }
    return m;
}

static int f_grey(int x, int y, int k) { (void)k; return grey_at(x, y); }
static int f_rgb(int x, int y, int k) { return rgb_at(x, y, k); }
static int f_grey1(int x, int y, int k) { (void)k; return (x + y) % 2 * 255; }
static int f_grey2(int x, int y, int k) { (void)k; return (x + y) % 4 * 85; }
static int f_frame(int x, int y, int k) { (void)k; return (x * 37 + y * 91 + x * y * 13) % 251; }
static int f_palette(int x, int y, int k)
{
    static const int pal[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {200, 100, 50}};
    return pal[(x + y) % 4][k];
}

/* loads a fixture that must decode, and returns its max difference from f */
static int load_diff(const char *name, int w, int h, int c, int (*f)(int, int, int))
{
    ld_image img;
    ld_error err = {0};
    ld_status st = load(&img, name, 0, &err);
    CHECK_MSG(st == LD_OK, "%s: status %d: %s", name, st, err.msg);
    int d = st == LD_OK ? max_diff_fn(&img, w, h, c, f) : -1;
    ld_image_free(&img);
    return d;
}

/* max |a - b| of two images of the same shape, -1 if shapes differ */
static int max_diff(const ld_image *a, const ld_image *b)
{
    if (!a->px || !b->px || a->w != b->w || a->h != b->h || a->c != b->c) return -1;
    int m = 0;
    for (size_t i = 0; i < (size_t)a->w * a->h * a->c; i++) {
        int d = abs(a->px[i] - b->px[i]);
        if (d > m) m = d;
    }
    return m;
}

TEST_SUITE(image_png_decode)
{
    CHECK_INT(load_diff("grey_8x6.png", 8, 6, 1, f_grey), 0);
    CHECK_INT(load_diff("rgb_8x6.png", 8, 6, 3, f_rgb), 0);
    /* 16-bit samples 257v + 100 round back to v */
    CHECK_INT(load_diff("grey16_8x6.png", 8, 6, 1, f_grey), 0);
    CHECK_INT(load_diff("rgb16_8x6.png", 8, 6, 3, f_rgb), 0);
    /* palette -> RGB, with and without a tRNS chunk (transparency dropped) */
    CHECK_INT(load_diff("palette_8x6.png", 8, 6, 3, f_palette), 0);
    CHECK_INT(load_diff("palette_trns_8x6.png", 8, 6, 3, f_palette), 0);
    /* alpha dropped, not composited */
    CHECK_INT(load_diff("grey_alpha_8x6.png", 8, 6, 1, f_grey), 0);
    CHECK_INT(load_diff("rgba_8x6.png", 8, 6, 3, f_rgb), 0);
    /* low bit depths stretched to 0..255: 1 bit -> 0/255, 2 bits -> 0/85/170/255 */
    CHECK_INT(load_diff("grey1_8x6.png", 8, 6, 1, f_grey1), 0);
    CHECK_INT(load_diff("grey2_8x6.png", 8, 6, 1, f_grey2), 0);
    CHECK_INT(load_diff("interlaced_grey_8x6.png", 8, 6, 1, f_grey), 0);
    CHECK_INT(load_diff("interlaced_rgb_8x6.png", 8, 6, 3, f_rgb), 0);
    CHECK_INT(load_diff("frame_64x48.png", 64, 48, 1, f_frame), 0);

    /* the same bytes from memory, with the name used in messages */
    FILE *fp = fopen(FIX "grey_8x6.png", "rb");
    uint8_t buf[4096];
    size_t n = fp ? fread(buf, 1, sizeof buf, fp) : 0;
    if (fp) fclose(fp);
    ld_image img;
    ld_error err = {0};
    CHECK_INT(ld_image_decode(&img, buf, n, "memory.png", 0, &err), LD_OK);
    CHECK_INT(max_diff_fn(&img, 8, 6, 1, f_grey), 0);
    ld_image_free(&img);
    CHECK(img.px == NULL && img.w == 0);
}

TEST_SUITE(image_jpeg_decode)
{
    /* quality 100 (4:4:4 for colour): close to the source values */
    CHECK_INT(load_diff("grey_q100.jpg", 8, 6, 1, f_grey), 0);
    int d = load_diff("rgb_q100.jpg", 8, 6, 3, f_rgb);
    CHECK(d >= 0 && d <= 3);
    d = load_diff("rgb_progressive.jpg", 8, 6, 3, f_rgb);
    CHECK(d >= 0 && d <= 5);
    /* lossy files: exactly the pixels Pillow reads (same libjpeg-turbo, islow IDCT,
     * fancy upsampling of the 4:2:0 chroma) */
    static const char *const lossy[][2] = {
        {"rgb_420.jpg", "rgb_420.pillow.png"},
        {"rgb_progressive.jpg", "rgb_progressive.pillow.png"},
        {"frame_64x48.jpg", "frame_64x48.pillow.png"},
    };
    for (int i = 0; i < 3; i++) {
        ld_image a, b;
        ld_error err = {0};
        CHECK_INT(load(&a, lossy[i][0], 0, &err), LD_OK);
        CHECK_INT(load(&b, lossy[i][1], 0, &err), LD_OK);
        CHECK_MSG(max_diff(&a, &b) == 0, "%s vs Pillow: max diff %d", lossy[i][0], max_diff(&a, &b));
        ld_image_free(&a);
        ld_image_free(&b);
    }
    /* 4:2:0 blurs the colour edges but keeps the mean close (measured 4.0 in Pillow) */
    ld_image img;
    ld_error err = {0};
    CHECK_INT(load(&img, "rgb_420.jpg", 0, &err), LD_OK);
    CHECK(img.w == 8 && img.h == 6 && img.c == 3);
    double sum = 0;
    for (int y = 0; y < 6 && img.px; y++)
        for (int x = 0; x < 8; x++)
            for (int k = 0; k < 3; k++) sum += abs(img.px[(y * 8 + x) * 3 + k] - rgb_at(x, y, k));
    CHECK(sum / 144 < 5.0);
    ld_image_free(&img);
}

/* a failing load: status, the fixture's path in the message, and a phrase of the cause */
static void check_refused(const char *name, long max_pixels, ld_status want, const char *phrase)
{
    char path[512];
    snprintf(path, sizeof path, FIX "%s", name);
    ld_image img = {1, 1, 1, NULL};
    ld_error err = {0};
    ld_status st = ld_image_load(&img, path, max_pixels, &err);
    CHECK_MSG(st == want, "%s: status %d, want %d (%s)", name, st, want, err.msg);
    CHECK_MSG(err.status == want, "%s: err.status %d", name, err.status);
    CHECK_MSG(strncmp(err.msg, path, strlen(path)) == 0, "%s: message \"%s\" does not start "
              "with the path", name, err.msg);
    CHECK_MSG(strstr(err.msg, phrase) != NULL, "%s: message \"%s\" lacks \"%s\"", name,
              err.msg, phrase);
    CHECK_MSG(img.px == NULL && img.w == 0, "%s: image not left empty", name);
}

TEST_SUITE(image_refused)
{
    check_refused("truncated_scan.jpg", 0, LD_ERR_INPUT, "truncated JPEG data");
    check_refused("truncated_header.jpg", 0, LD_ERR_INPUT, "truncated JPEG data");
    check_refused("missing_eoi.jpg", 0, LD_ERR_INPUT, "truncated JPEG data");
    check_refused("zero_height.jpg", 0, LD_ERR_INPUT, "Empty JPEG image");
    check_refused("cmyk_8x6.jpg", 0, LD_ERR_INPUT, "CMYK/YCCK JPEG is not supported");
    check_refused("bad_crc.png", 0, LD_ERR_INPUT, "bad PNG data (libpng: IDAT: CRC error)");
    check_refused("bad_idat.png", 0, LD_ERR_INPUT, "bad PNG data (libpng: IDAT:");
    check_refused("truncated.png", 0, LD_ERR_INPUT, "truncated PNG data");
    check_refused("empty.jpg", 0, LD_ERR_INPUT, "empty file (0 bytes)");
    check_refused("text.jpg", 0, LD_ERR_INPUT,
                  "unsupported image format (not JPEG or PNG), starts with 54 68 69 73");
    check_refused("grey_8x6.bmp", 0, LD_ERR_INPUT,
                  "unsupported image format (not JPEG or PNG), starts with 42 4d");
    check_refused("no_such_file.png", 0, LD_ERR_IO, "cannot open: No such file or directory");
    check_refused("resize", 0, LD_ERR_INPUT, "not a regular file");
    /* the pixel limit: 8 x 6 = 48 pixels */
    check_refused("grey_8x6.png", 47, LD_ERR_INPUT, "image is 8x6 pixels, over the limit of 47");
    check_refused("grey_q100.jpg", 47, LD_ERR_INPUT, "image is 8x6 pixels, over the limit of 47");
    CHECK_INT(load_diff("grey_8x6.png", 8, 6, 1, f_grey), 0);
    ld_image img;
    ld_error err = {0};
    CHECK_INT(load(&img, "grey_q100.jpg", 48, &err), LD_OK);
    ld_image_free(&img);

    /* a PNG whose header claims 100000 x 100000: refused by the default limit */
    check_refused("huge_header.png", 0, LD_ERR_INPUT,
                  "image is 100000x100000 pixels, over the limit of 67108864");
    /* ... before any pixel memory: it makes exactly as many allocations as an 8x6 PNG
     * stopped by the limit, and fewer than an 8x6 PNG that is decoded (pixels + rows) */
    ld_alloc_fail_after(0);
    load(&img, "huge_header.png", 0, &err);
    long n_huge = ld_alloc_fail_after(0);
    load(&img, "grey_8x6.png", 47, &err);
    long n_small_refused = ld_alloc_fail_after(0);
    load(&img, "grey_8x6.png", 0, &err);
    long n_small_decoded = ld_alloc_fail_after(0);
    ld_image_free(&img);
    CHECK_INT(n_huge, n_small_refused);
    CHECK(n_small_decoded >= n_huge + 2);

    /* from memory: the caller's name leads the message */
    static const uint8_t abc[] = {'a', 'b', 'c'};
    CHECK_INT(ld_image_decode(&img, abc, sizeof abc, "x.bmp", 0, &err), LD_ERR_INPUT);
    CHECK_STR(err.msg, "x.bmp: unsupported image format (not JPEG or PNG), starts with 61 62 63");
    CHECK_INT(ld_image_decode(&img, abc, 0, "x.jpg", 0, &err), LD_ERR_INPUT);
    CHECK_STR(err.msg, "x.jpg: empty file (0 bytes)");
    /* the first 5 bytes of a PNG signature: a cut-off PNG, not an unknown format */
    static const uint8_t png5[] = {0x89, 'P', 'N', 'G', '\r'};
    CHECK_INT(ld_image_decode(&img, png5, sizeof png5, "cut.png", 0, &err), LD_ERR_INPUT);
    CHECK_STR(err.msg, "cut.png: truncated PNG data (premature end of file)");
    static const uint8_t jpg2[] = {0xFF, 0xD8};
    CHECK_INT(ld_image_decode(&img, jpg2, sizeof jpg2, "cut.jpg", 0, &err), LD_ERR_INPUT);
    CHECK_STR(err.msg, "cut.jpg: truncated JPEG data (premature end of file)");
}

TEST_SUITE(image_probe)
{
    static const struct { const char *name; int w, h; } ok[] = {
        {"grey_8x6.png", 8, 6}, {"rgb_q100.jpg", 8, 6}, {"interlaced_rgb_8x6.png", 8, 6},
        {"frame_64x48.jpg", 64, 48}, {"rgb_progressive.jpg", 8, 6},
        {"huge_header.png", 100000, 100000},   /* probing reads the header, allocates nothing */
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, FIX "%s", ok[i].name);
        int w = -1, h = -1;
        ld_error err = {0};
        CHECK_MSG(ld_image_probe(path, &w, &h, &err) == LD_OK, "%s: %s", path, err.msg);
        CHECK_MSG(w == ok[i].w && h == ok[i].h, "%s: %dx%d", path, w, h);
    }
    static const struct { const char *name; ld_status st; const char *phrase; } bad[] = {
        {"text.jpg", LD_ERR_INPUT, "unsupported image format"},
        {"empty.jpg", LD_ERR_INPUT, "empty file"},
        {"truncated_header.jpg", LD_ERR_INPUT, "truncated JPEG data"},
        {"zero_height.jpg", LD_ERR_INPUT, "Empty JPEG image"},
        {"no_such_file.jpg", LD_ERR_IO, "cannot open"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, FIX "%s", bad[i].name);
        int w = -1, h = -1;
        ld_error err = {0};
        CHECK_MSG(ld_image_probe(path, &w, &h, &err) == bad[i].st, "%s: %s", path, err.msg);
        CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, bad[i].phrase), "%s: \"%s\"", path,
                  err.msg);
    }
}

/* a w x h x c image whose bytes are (i * 37 + 11) mod 256 */
static ld_image pattern_bytes(int w, int h, int c)
{
    ld_image img;
    ld_image_alloc(&img, w, h, c, NULL);
    for (size_t i = 0; img.px && i < (size_t)w * h * c; i++) img.px[i] = (uint8_t)(i * 37 + 11);
    return img;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

TEST_SUITE(image_save_png)
{
    const char *dir = test_tmpdir("image-save");
    char path[512];
    for (int c = 1; c <= 3; c += 2) {
        ld_image a = pattern_bytes(13, 7, c), b;
        ld_error err = {0};
        snprintf(path, sizeof path, "%s/round_%d.png", dir, c);
        CHECK_INT(ld_image_save_png(&a, path, &err), LD_OK);
        CHECK_INT(ld_image_load(&b, path, 0, &err), LD_OK);
        CHECK_INT(max_diff(&a, &b), 0);
        /* overwriting replaces the file */
        ld_image_flip_v(&a);
        CHECK_INT(ld_image_save_png(&a, path, &err), LD_OK);
        ld_image_free(&b);
        CHECK_INT(ld_image_load(&b, path, 0, &err), LD_OK);
        CHECK_INT(max_diff(&a, &b), 0);
        ld_image_free(&a);
        ld_image_free(&b);
    }
    CHECK_INT(count_entries(dir), 2);   /* no temporary left behind */
    ld_image a = pattern_bytes(4, 4, 1);
    ld_error err = {0};
    snprintf(path, sizeof path, "%s/missing/out.png", dir);
    CHECK_INT(ld_image_save_png(&a, path, &err), LD_ERR_IO);
    CHECK(strstr(err.msg, "missing/out.png") != NULL);
    ld_image empty = {0};
    snprintf(path, sizeof path, "%s/empty.png", dir);
    CHECK_INT(ld_image_save_png(&empty, path, &err), LD_ERR_USAGE);
    CHECK_INT(count_entries(dir), 2);
    ld_image_free(&a);
}

/* img equals the h x w x c array want */
static int equals(const ld_image *img, int w, int h, int c, const uint8_t *want)
{
    return img->px && img->w == w && img->h == h && img->c == c &&
           memcmp(img->px, want, (size_t)w * h * c) == 0;
}

TEST_SUITE(image_geometry)
{
    /* 3 wide, 2 high:  1 2 3
     *                  4 5 6 */
    static const uint8_t px[6] = {1, 2, 3, 4, 5, 6};
    ld_image src;
    ld_error err = {0};
    CHECK_INT(ld_image_alloc(&src, 3, 2, 1, &err), LD_OK);
    memcpy(src.px, px, 6);
    ld_image out = {0};

    CHECK_INT(ld_image_crop(&out, &src, 1, 0, 2, 2, &err), LD_OK);
    CHECK(equals(&out, 2, 2, 1, (const uint8_t[]){2, 3, 5, 6}));
    ld_image_free(&out);
    CHECK_INT(ld_image_crop(&out, &src, 0, 1, 3, 1, &err), LD_OK);
    CHECK(equals(&out, 3, 1, 1, (const uint8_t[]){4, 5, 6}));
    ld_image_free(&out);
    CHECK_INT(ld_image_crop(&out, &src, 2, 1, 1, 1, &err), LD_OK);
    CHECK(equals(&out, 1, 1, 1, (const uint8_t[]){6}));
    ld_image_free(&out);
    CHECK_INT(ld_image_crop(&out, &src, 1, 0, 3, 1, &err), LD_ERR_USAGE);
    CHECK(strstr(err.msg, "crop (1, 0, 3, 1) is not inside the 3x2 image") != NULL);
    CHECK(out.px == NULL);
    CHECK_INT(ld_image_crop(&out, &src, -1, 0, 1, 1, &err), LD_ERR_USAGE);
    CHECK_INT(ld_image_crop(&out, &src, 0, 0, 0, 1, &err), LD_ERR_USAGE);

    CHECK_INT(ld_image_crop(&out, &src, 0, 0, 3, 2, &err), LD_OK);
    ld_image_flip_h(&out);
    CHECK(equals(&out, 3, 2, 1, (const uint8_t[]){3, 2, 1, 6, 5, 4}));
    ld_image_flip_h(&out);
    ld_image_flip_v(&out);
    CHECK(equals(&out, 3, 2, 1, (const uint8_t[]){4, 5, 6, 1, 2, 3}));
    ld_image_free(&out);

    /* counter-clockwise quarter turns, as numpy.rot90 and PIL's ROTATE_90 */
    static const uint8_t r1[6] = {3, 6, 2, 5, 1, 4};   /* 2 wide, 3 high */
    static const uint8_t r2[6] = {6, 5, 4, 3, 2, 1};   /* 3 wide, 2 high */
    static const uint8_t r3[6] = {4, 1, 5, 2, 6, 3};   /* 2 wide, 3 high */
    static const struct { int k, w, h; const uint8_t *want; } rots[] = {
        {0, 3, 2, px}, {1, 2, 3, r1}, {2, 3, 2, r2}, {3, 2, 3, r3},
        {-1, 2, 3, r3}, {-2, 3, 2, r2}, {-3, 2, 3, r1}, {4, 3, 2, px}, {5, 2, 3, r1},
    };
    for (size_t i = 0; i < sizeof rots / sizeof rots[0]; i++) {
        CHECK_INT(ld_image_rot90(&out, &src, rots[i].k, &err), LD_OK);
        CHECK_MSG(equals(&out, rots[i].w, rots[i].h, 1, rots[i].want), "rot90 k=%d", rots[i].k);
        ld_image_free(&out);
    }
    /* four turns in place (dst == src) come back to the start */
    CHECK_INT(ld_image_crop(&out, &src, 0, 0, 3, 2, &err), LD_OK);
    for (int i = 0; i < 4; i++) CHECK_INT(ld_image_rot90(&out, &out, 1, &err), LD_OK);
    CHECK(equals(&out, 3, 2, 1, px));
    ld_image_free(&out);

    /* RGB: the three samples of a pixel move together */
    ld_image rgb;
    CHECK_INT(ld_image_alloc(&rgb, 3, 2, 3, &err), LD_OK);
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 3; k++) rgb.px[i * 3 + k] = (uint8_t)(10 * px[i] + k);
    CHECK_INT(ld_image_rot90(&out, &rgb, 1, &err), LD_OK);
    uint8_t want[18];
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 3; k++) want[i * 3 + k] = (uint8_t)(10 * r1[i] + k);
    CHECK(equals(&out, 2, 3, 3, want));
    ld_image_free(&out);
    ld_image_flip_h(&rgb);
    static const uint8_t fh[6] = {3, 2, 1, 6, 5, 4};
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 3; k++) want[i * 3 + k] = (uint8_t)(10 * fh[i] + k);
    CHECK(equals(&rgb, 3, 2, 3, want));
    ld_image_free(&rgb);
    ld_image_free(&src);
    CHECK(src.px == NULL);
    ld_image_free(NULL);

    CHECK_INT(ld_image_alloc(&src, 0, 2, 1, &err), LD_ERR_USAGE);
    CHECK_INT(ld_image_alloc(&src, 2, 2, 2, &err), LD_ERR_USAGE);
}

TEST_SUITE(image_grey_input)
{
    /* BT.601 rounded: red 76.245 -> 76, green 149.685 -> 150, blue 29.07 -> 29,
     * (10, 20, 30) 18.15 -> 18, (1, 2, 2) 1.701 -> 2, equal channels unchanged */
    static const uint8_t rgb[6][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255},
                                      {10, 20, 30}, {1, 2, 2}, {100, 100, 100}};
    static const uint8_t grey[6] = {76, 150, 29, 18, 2, 100};
    ld_image src, g;
    ld_error err = {0};
    CHECK_INT(ld_image_alloc(&src, 3, 2, 3, &err), LD_OK);
    memcpy(src.px, rgb, sizeof rgb);
    CHECK_INT(ld_image_to_grey(&g, &src, &err), LD_OK);
    CHECK(equals(&g, 3, 2, 1, grey));
    ld_image g2;
    CHECK_INT(ld_image_to_grey(&g2, &g, &err), LD_OK);   /* grey stays as it is */
    CHECK(equals(&g2, 3, 2, 1, grey));
    ld_image_free(&g2);

    /* [3, h, w], each channel grey / 255 */
    float in[18];
    ld_image_to_input(in, &src);
    int ok = 1;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 6; i++) ok &= in[k * 6 + i] == (float)grey[i] / 255.0f;
    CHECK(ok);
    CHECK_NEAR(in[0], 76 / 255.0, 1e-7);
    CHECK_NEAR(in[6 + 5], 100 / 255.0, 1e-7);
    float in2[18];
    ld_image_to_input(in2, &g);   /* grey or RGB source: the same input */
    CHECK(memcmp(in, in2, sizeof in) == 0);
    ld_image one;
    CHECK_INT(ld_image_alloc(&one, 2, 1, 1, &err), LD_OK);
    one.px[0] = 0;
    one.px[1] = 255;
    float in3[6];
    ld_image_to_input(in3, &one);
    CHECK(in3[0] == 0.0f && in3[1] == 1.0f && in3[2] == 0.0f && in3[3] == 1.0f &&
          in3[4] == 0.0f && in3[5] == 1.0f);
    ld_image_free(&one);
    ld_image_free(&g);
    ld_image_free(&src);
}

/* The resize sources: the same formula as pattern() in tools/make_image_fixtures.py. */
static ld_image resize_source(int w, int h, int c)
{
    ld_image img;
    ld_image_alloc(&img, w, h, c, NULL);
    for (int y = 0; img.px && y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                img.px[(y * w + x) * c + k] = (uint8_t)((x * 7 + y * 13 + (x * y % 17) * 11 + k * 85) % 256);
    return img;
}

TEST_SUITE(image_resize)
{
    ld_error err = {0};
    ld_image src, out;
    /* by hand: 4 -> 2 has support 2; output 0 is centred at 1.0 and takes inputs 0..2
     * with triangle weights 0.75, 0.75, 0.25 (sum 1.75): (0*3 + 70*3 + 140) / 7 = 50;
     * output 1 (centre 3.0): (70 + 140*3 + 210*3) / 7 = 160 */
    CHECK_INT(ld_image_alloc(&src, 4, 1, 1, &err), LD_OK);
    memcpy(src.px, (const uint8_t[]){0, 70, 140, 210}, 4);
    CHECK_INT(ld_image_resize(&out, &src, 2, 1, &err), LD_OK);
    CHECK(equals(&out, 2, 1, 1, (const uint8_t[]){50, 160}));
    ld_image_free(&out);
    ld_image_free(&src);
    /* 2 -> 4 is plain bilinear: centres 0.25, 0.75, 1.25, 1.75 in input pixels, edges
     * clamped: 0, 0.75*0 + 0.25*100, 0.25*0 + 0.75*100, 100 */
    CHECK_INT(ld_image_alloc(&src, 2, 1, 1, &err), LD_OK);
    memcpy(src.px, (const uint8_t[]){0, 100}, 2);
    CHECK_INT(ld_image_resize(&out, &src, 4, 1, &err), LD_OK);
    CHECK(equals(&out, 4, 1, 1, (const uint8_t[]){0, 25, 75, 100}));
    ld_image_free(&out);
    /* the same thing down a column */
    ld_image col;
    CHECK_INT(ld_image_rot90(&col, &src, 1, &err), LD_OK);
    CHECK_INT(ld_image_resize(&out, &col, 1, 4, &err), LD_OK);
    CHECK(equals(&out, 1, 4, 1, (const uint8_t[]){100, 75, 25, 0}));
    ld_image_free(&out);
    ld_image_free(&col);
    CHECK_INT(ld_image_resize(&out, &src, 0, 4, &err), LD_ERR_USAGE);
    CHECK(out.px == NULL);
    ld_image_free(&src);

    /* against Pillow 9.4's Image.resize(..., BILINEAR) */
    static const struct { int sw, sh, c, w, h; } cases[] = {
        {37, 29, 1, 16, 11}, {37, 29, 1, 80, 61}, {37, 29, 1, 37, 13}, {37, 29, 1, 15, 29},
        {21, 17, 3, 9, 7}, {21, 17, 3, 45, 30}, {21, 17, 3, 30, 8},
        {160, 48, 1, 100, 30}, {200, 26, 1, 100, 20}, {5, 1, 1, 1, 1}, {1, 1, 1, 3, 3},
    };
    int worst = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "resize/%dx%dx%d_to_%dx%d.png", cases[i].sw, cases[i].sh,
                 cases[i].c, cases[i].w, cases[i].h);
        ld_image want;
        CHECK_MSG(load(&want, name, 0, &err) == LD_OK, "%s: %s", name, err.msg);
        src = resize_source(cases[i].sw, cases[i].sh, cases[i].c);
        CHECK_INT(ld_image_resize(&out, &src, cases[i].w, cases[i].h, &err), LD_OK);
        int d = max_diff(&out, &want);
        CHECK_MSG(d == 0, "%s: max diff from Pillow %d", name, d);
        if (d > worst || d < 0) worst = d < 0 ? 999 : d;
        /* in place gives the same */
        CHECK_INT(ld_image_resize(&src, &src, cases[i].w, cases[i].h, &err), LD_OK);
        CHECK_INT(max_diff(&src, &want), 0);
        ld_image_free(&want);
        ld_image_free(&out);
        ld_image_free(&src);
    }
    CHECK_INT(worst, 0);
    /* same size is a copy */
    src = resize_source(7, 5, 3);
    CHECK_INT(ld_image_resize(&out, &src, 7, 5, &err), LD_OK);
    CHECK_INT(max_diff(&out, &src), 0);
    ld_image_free(&out);
    ld_image_free(&src);

    /* a reused resizer gives what ld_image_resize gives, whatever sizes came before,
     * and a call with the previous call's sizes allocates nothing */
    ld_resizer r = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int rep = 0; rep < 2; rep++) {
            src = resize_source(cases[i].sw, cases[i].sh, cases[i].c);
            CHECK_INT(ld_image_resize(&out, &src, cases[i].w, cases[i].h, &err), LD_OK);
            ld_image view;
            if (rep) ld_alloc_fail_after(1);
            ld_status st = ld_resizer_run(&r, &view, &src, cases[i].w, cases[i].h, &err);
            long allocs = rep ? ld_alloc_fail_after(0) : 0;
            CHECK_INT(st, LD_OK);
            CHECK_INT(allocs, 0);
            CHECK(st == LD_OK && max_diff(&view, &out) == 0);
            ld_image_free(&out);
            ld_image_free(&src);
        }
    }
    ld_resizer_free(&r);
}

/* Every allocation, made to fail in turn, gives LD_ERR_NOMEM (never a crash, never a
 * half-filled image; leaks are caught by `make sanitize`). The loop ends at the first
 * k that no longer hits an allocation. */
TEST_SUITE(image_alloc_failures)
{
    static const char *const files[] = {"rgb_8x6.png", "interlaced_grey_8x6.png",
                                        "rgb_q100.jpg", "frame_64x48.jpg"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        int clean = 1, k;
        for (k = 1; k < 1000; k++) {
            ld_image img;
            ld_error err = {0};
            ld_alloc_fail_after(k);
            ld_status st = load(&img, files[f], 0, &err);
            ld_alloc_fail_after(0);
            if (st == LD_OK) {
                ld_image_free(&img);
                break;
            }
            clean &= st == LD_ERR_NOMEM && img.px == NULL && strstr(err.msg, files[f]) != NULL;
        }
        CHECK_MSG(clean && k > 1 && k < 1000, "%s: allocation failures not clean (k=%d)",
                  files[f], k);
    }
    ld_image src = resize_source(37, 29, 3);
    int clean = 1, k;
    for (k = 1; k < 100; k++) {
        ld_image out;
        ld_error err = {0};
        ld_alloc_fail_after(k);
        ld_status st = ld_image_resize(&out, &src, 16, 11, &err);
        ld_alloc_fail_after(0);
        if (st == LD_OK) {
            ld_image_free(&out);
            break;
        }
        clean &= st == LD_ERR_NOMEM && out.px == NULL;
    }
    CHECK_MSG(clean && k > 4, "resize: allocation failures not clean (k=%d)", k);
    const char *dir = test_tmpdir("image-nomem");
    char path[512];
    snprintf(path, sizeof path, "%s/out.png", dir);
    clean = 1;
    for (k = 1; k < 1000; k++) {
        ld_error err = {0};
        ld_alloc_fail_after(k);
        ld_status st = ld_image_save_png(&src, path, &err);
        ld_alloc_fail_after(0);
        if (st == LD_OK) break;
        clean &= st == LD_ERR_NOMEM && count_entries(dir) == 0;
    }
    CHECK_MSG(clean && k > 1 && k < 1000, "save_png: allocation failures not clean (k=%d)", k);
    ld_image_free(&src);
}
