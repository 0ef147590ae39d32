/* kernels_scan.c — a scanner pass (scan.c) on the fast kernels: the blocks as a
 * pipeline of rows, and the dense layer (kernels.h states the contracts).
 *
 * Rows, not maps. Pooled row r of block k reads rows 2r .. 2r+3 of block k-1's
 * output, so as soon as block k-1 has made its row 2r+3, block k makes row r, and so
 * on down to the last block, whose rows feed the dense layer window row by window
 * row. Each block keeps its last R output rows in a ring (R = 4, or s_out for the
 * last block), every row written twice, at slot j % R and j % R + R, so that any R
 * consecutive rows lie contiguous in memory and the flattened kernels read them as
 * one plane. A 1876 px frame's conv-1 output (14 MB) would otherwise go through main
 * memory between blocks; the rings of the paper's network take 40 KB at any size.
 *
 * Within a block, conv rows 2r and 2r+1 are one flattened range of the kernel when
 * the input rows are close to the conv width (the few columns between the rows are
 * computed and ignored), else two ranges; a band holds those two conv rows for every
 * channel and is pooled at once. */
#include <string.h>
#include "kernels.h"

#define BAND_SLACK 32   /* garbage columns a single flattened range may span */
#define RING 4          /* rows kept of an inner block's output: the 4 a pool row reads */

static size_t band_floats(int f, int w)
{
    return (size_t)f * (2 * (size_t)(w > 2 ? w - 2 : 0) + BAND_SLACK);
}

size_t ld_fast_scan_scratch(const int *filters, int n_blocks, int s_out, int eh, int ew)
{
    size_t total = 0, band = 0;
    int h = eh, w = ew;
    for (int k = 0; k < n_blocks; k++) {
        int h2 = (h - 2) / 2, w2 = (w - 2) / 2, R = k == n_blocks - 1 ? s_out : RING;
        total += (size_t)filters[k] * 2 * R * (size_t)w2;
        size_t b = band_floats(filters[k], w);
        if (b > band) band = b;
        h = h2;
        w = w2;
    }
    return total + band;
}

typedef struct {
    int w, w2, h2;      /* input width, pooled width and height */
    int R;              /* ring rows */
    size_t plane;       /* 2 R w2: a channel's ring */
    float *ring;        /* [f, 2R, w2] */
    int done;           /* pooled rows made */
} stage;

/* Pooled row r of block k into its ring (and the mirror slot). */
static void make_row(const ld_kernels *K, stage *st, int k, float *band, const float *in, size_t rs,
                     size_t ps, const float *wt, const float *bias, int c, int f)
{
    stage *s = &st[k];
    int cw = 2 * s->w2;   /* the conv columns a pool window reads */
    int one = rs - (size_t)cw <= BAND_SLACK;
    size_t xstride = one ? rs : (size_t)cw, bplane = one ? rs + cw : 2 * (size_t)cw;
    if (one) {
        K->conv3x3(band, bplane, in, ps, (int)rs, wt, bias, c, f, 0, (long)(rs + cw));
    } else {
        K->conv3x3(band, bplane, in, ps, (int)rs, wt, bias, c, f, 0, cw);
        K->conv3x3(band + cw, bplane, in + rs, ps, (int)rs, wt, bias, c, f, 0, cw);
    }
    int slot = s->done % s->R;
    float *row = s->ring + (size_t)slot * s->w2;
    K->relu_pool(row, s->plane, band, bplane, (int)xstride, f, s->w2);
    for (int o = 0; o < f; o++)
        memcpy(row + (size_t)o * s->plane + (size_t)s->R * s->w2, row + (size_t)o * s->plane,
               (size_t)s->w2 * sizeof *row);
    s->done++;
}

void ld_fast_scan_pass(const ld_kernels *K, float *scratch, const float *const *wt,
                       const float *const *bias, const int *filters, int n_blocks, int s_out,
                       const float *img, size_t row_stride, int eh, int ew, int n_y, int q,
                       ld_scan_emit emit, void *ctx)
{
    stage st[LD_MAX_BLOCKS];
    float *p = scratch;
    int h = eh, w = ew;
    for (int k = 0; k < n_blocks; k++) {
        stage *s = &st[k];
        s->w = w;
        s->h2 = (h - 2) / 2;
        s->w2 = (w - 2) / 2;
        s->R = k == n_blocks - 1 ? s_out : RING;
        s->plane = 2 * (size_t)s->R * s->w2;
        s->ring = p;
        s->done = 0;
        p += (size_t)filters[k] * s->plane;
        h = s->h2;
        w = s->w2;
    }
    float *band = p;
    int last = n_blocks - 1, ty = 0;
    stage *sl = &st[last];
    while (st[0].done < st[0].h2) {
        make_row(K, st, 0, band, img + (size_t)(2 * st[0].done) * row_stride, row_stride, 0,
                 wt[0], bias[0], 1, filters[0]);
        for (int k = 1; k < n_blocks; k++) {
            stage *s = &st[k], *in = &st[k - 1];
            /* row r reads the input rows 2r .. 2r+3 */
            while (s->done < s->h2 && 2 * s->done + 3 < in->done) {
                const float *src = in->ring + (size_t)((2 * s->done) % in->R) * in->w2;
                make_row(K, st, k, band, src, (size_t)in->w2, in->plane, wt[k], bias[k],
                         filters[k - 1], filters[k]);
            }
        }
        while (ty < n_y && ty * q + s_out - 1 < sl->done) {
            emit(ctx, ty, sl->ring + (size_t)((ty * q) % sl->R) * sl->w2, sl->plane, (size_t)sl->w2);
            ty++;
        }
    }
}

void ld_fast_scan_dense(const ld_kernels *K, double *logit, float *part, const float *src,
                        size_t ps, size_t rs, const float *wd, double b, int c, int s, int n_x,
                        int q)
{
    long n = (long)(n_x - 1) * q + 1;
    K->dense_conv(part, (size_t)n, src, ps, (int)rs, wd, c, s, n);
    for (int t = 0; t < n_x; t++) {
        double z = b;
        for (int ch = 0; ch < c; ch++) z += part[(size_t)ch * n + (size_t)t * q];
        logit[t] = z;
    }
}
