/* model_fast.c — the paper's CNN, forward and backward, on the fast kernels
 * (kernels.h); ld_model_forward/backward (model.c) call it unless the reference
 * kernels were asked for. Same semantics as the reference path, layer for layer
 * (tests/test_kernels.c compares whole passes); what differs is the arithmetic:
 *
 * - conv 1 reads one plane when the input's channels are equal (patches and frames
 *   are grey: SPEC §2.1), with its kernel summed over the channels; its weight
 *   gradient, equal for every channel, is computed once;
 * - a block's forward is conv (flattened, kernels.h) -> BN statistics from per-tile
 *   float partials added in double (two passes: mean, then squared deviations) ->
 *   one fused BN + ReLU + max-pool + dropout pass;
 * - a block's backward is the pool-level gradient sums -> the BN input gradient
 *   (written twice: flattened for the weight gradient, zero-padded for the input
 *   gradient) with the weight-gradient partials of the same rows while they are in
 *   cache -> the input gradient as a conv of the padded gradient with the kernel
 *   transposed and flipped;
 * - the dense layer uses the reference kernels (800 products per sample).
 *
 * Work is cut into units (a sample's tile of TILE_ROWS conv rows, or a sample's
 * channel plane) that write disjoint outputs; sums leave a unit as float partials
 * and are added in double in a fixed order by the caller, so results do not depend
 * on the number of threads (tested). Memory: every buffer is carved from the
 * model's activation block (ld_fastnet_layout); nothing is allocated per pass. */
#include <math.h>
#include <string.h>
#include "alloc.h"
#include "kernels.h"
#include "lymphdet/layers.h"

#define TILE_ROWS 8   /* conv rows per unit; even, so a tile holds whole pool windows */

typedef struct {
    int cin, f;          /* input channels (conv 1: as in the model), filters */
    int s, cc, p;        /* input side, conv side s - 2, pooled side cc / 2 */
    int tiles;           /* ceil(cc / TILE_ROWS) */
    long flat;           /* flattened conv outputs per plane: (cc - 1) s + cc */
    size_t plane;        /* cc * s: a conv plane in rows of stride s */
    float *conv;         /* [N, f, cc, s] conv output (columns cc, cc+1 garbage) */
    float *out;          /* [N, f, p, p] block output (dropout applied when training) */
    float *code, *xw;    /* [N, f, p, p] pool winners (LD_POOL_DEAD) and their xhat */
    float *mean, *invstd;/* [f] what the last forward normalised with */
    float *scale;        /* [f] backward: gamma * invstd */
    float *mean_d, *mean_dx; /* [f] backward: mean gradient and mean gradient * xhat */
} fblock;

struct ld_fastnet {
    int n_blocks, batch_cap, in_channels, input_size, flat;
    fblock b[LD_MAX_BLOCKS];
    float *input;        /* [N, C, S, S] training input (one plane per sample when folded) */
    int folded;          /* the last forward read one plane per sample */
    float *w1;           /* [f1, 1, 3, 3] conv 1 kernel summed over the input channels */
    float *wflip;        /* [cin, f, 3, 3] transposed, flipped kernel (input gradient) */
    float *stat_part;    /* [N, f, tiles] BN statistics partials */
    float *dw_part;      /* [N, tiles, f, cin, 9] weight-gradient partials */
    float *bsum_part;    /* [N, f, 2] pool-level gradient sums */
    float *gval;         /* [N, f, p, p] gradient reaching each pool window's winner */
    float *dconv;        /* [N, f, cc, s] BN input gradient, flattened (garbage columns 0) */
    float *dpad;         /* [N, f, cc + 4, cc + 4] the same, zero-padded by 2 */
    float *dinp[2];      /* [N, cin, s, s + 2] input gradients of blocks >= 1, ping-pong */
    float *dflat;        /* [N, D] gradient of the dense layer's input */
};

/* ---- layout -------------------------------------------------------------------- */

static size_t max_z(size_t a, size_t b) { return a > b ? a : b; }

/* Lays out (base non-NULL) or measures the single allocation; 0 on overflow. */
static size_t fast_layout(char *base, const ld_arch *a, int batch_cap)
{
    struct ld_fastnet measure, *F = base ? (struct ld_fastnet *)(void *)base : &measure;
    size_t off = sizeof *F;
    int of = 0;
#define CARVE(ptr, count)                                                    \
    do {                                                                     \
        size_t bytes_ = ld_mul2((count), sizeof(float), &of);                \
        off = (off + 63) & ~(size_t)63;                                      \
        (ptr) = base ? (float *)(void *)(base + off) : NULL;                 \
        off += bytes_ + 64; /* slack: a stray vector lane never lands in the next array */ \
        if (of || off < bytes_) return 0;                                    \
    } while (0)
    size_t N = (size_t)batch_cap;
    size_t m_stat = 0, m_dw = 0, m_bsum = 0, m_gval = 0, m_dconv = 0, m_dpad = 0, m_dinp = 0;
    int cin = a->in_channels, s = a->input_size;
    for (int k = 0; k < a->n_blocks; k++) {
        fblock *b = &F->b[k];
        b->cin = cin;
        b->f = a->filters[k];
        b->s = s;
        b->cc = s - 2;
        b->p = b->cc / 2;
        b->tiles = (b->cc + TILE_ROWS - 1) / TILE_ROWS;
        b->flat = (long)(b->cc - 1) * s + b->cc;
        b->plane = (size_t)b->cc * s;
        size_t pp = (size_t)b->p * b->p, nf = ld_mul2(N, (size_t)b->f, &of);
        CARVE(b->conv, ld_mul2(nf, b->plane, &of));
        CARVE(b->out, ld_mul2(nf, pp, &of));
        CARVE(b->code, ld_mul2(nf, pp, &of));
        CARVE(b->xw, ld_mul2(nf, pp, &of));
        CARVE(b->mean, (size_t)b->f);
        CARVE(b->invstd, (size_t)b->f);
        CARVE(b->scale, (size_t)b->f);
        CARVE(b->mean_d, (size_t)b->f);
        CARVE(b->mean_dx, (size_t)b->f);
        m_stat = max_z(m_stat, ld_mul2(nf, (size_t)b->tiles, &of));
        m_dw = max_z(m_dw, ld_mul3(ld_mul2(N, (size_t)b->tiles, &of), (size_t)b->f * b->cin, 9, &of));
        m_bsum = max_z(m_bsum, ld_mul2(nf, 2, &of));
        m_gval = max_z(m_gval, ld_mul2(nf, pp, &of));
        m_dconv = max_z(m_dconv, ld_mul2(nf, b->plane, &of));
        if (k > 0) {
            m_dpad = max_z(m_dpad, ld_mul3(nf, (size_t)b->cc + 4, (size_t)b->cc + 4, &of));
            m_dinp = max_z(m_dinp, ld_mul3(ld_mul2(N, (size_t)cin, &of), (size_t)s, (size_t)s + 2, &of));
        }
        cin = b->f;
        s = b->p;
    }
    F->n_blocks = a->n_blocks;
    F->batch_cap = batch_cap;
    F->in_channels = a->in_channels;
    F->input_size = a->input_size;
    F->flat = cin * s * s;
    F->folded = 0;
    CARVE(F->input, ld_mul3(N, (size_t)a->in_channels, (size_t)a->input_size * a->input_size, &of));
    CARVE(F->w1, (size_t)a->filters[0] * 9);
    size_t m_flip = 0;
    for (int k = 1; k < a->n_blocks; k++)
        m_flip = max_z(m_flip, (size_t)a->filters[k] * a->filters[k - 1] * 9);
    CARVE(F->wflip, m_flip);
    CARVE(F->stat_part, m_stat);
    CARVE(F->dw_part, m_dw);
    CARVE(F->bsum_part, m_bsum);
    CARVE(F->gval, m_gval);
    CARVE(F->dconv, m_dconv);
    CARVE(F->dpad, m_dpad);
    CARVE(F->dinp[0], m_dinp);
    CARVE(F->dinp[1], m_dinp);
    CARVE(F->dflat, ld_mul2(N, (size_t)F->flat, &of));
#undef CARVE
    return off;
}

size_t ld_fastnet_layout(void *base, const ld_arch *arch, int batch_cap)
{
    return fast_layout(base, arch, batch_cap);
}

/* ---- forward ------------------------------------------------------------------- */

typedef struct {
    const ld_kernels *K;
    fblock *b;
    const float *in;          /* the block input of sample 0 */
    size_t in_sample, in_plane;
    int cin;                  /* channels read (1 when conv 1 is folded) */
    const float *w, *bias;
    const float *gamma, *beta;
    const float *mean, *invstd;
    const float *mask;        /* [N, f, p, p] or NULL (inference) */
    int training;
    float *part;              /* statistics partials */
} fwd_job;

static void job_conv(void *ctx, int u)
{
    fwd_job *J = ctx;
    fblock *b = J->b;
    int n = u / b->tiles, t = u % b->tiles;
    long k0 = (long)t * TILE_ROWS * b->s, k1 = k0 + (long)TILE_ROWS * b->s;
    if (k1 > b->flat) k1 = b->flat;
    J->K->conv3x3(b->conv + (size_t)n * b->f * b->plane, b->plane, J->in + n * J->in_sample,
                  J->in_plane, b->s, J->w, J->bias, J->cin, b->f, k0, k1);
}

/* units: (sample, channel, tile) */
static void job_stat(void *ctx, int u, int sqdev)
{
    fwd_job *J = ctx;
    fblock *b = J->b;
    int t = u % b->tiles, o = (u / b->tiles) % b->f, n = u / (b->tiles * b->f);
    int r0 = t * TILE_ROWS, r1 = r0 + TILE_ROWS < b->cc ? r0 + TILE_ROWS : b->cc;
    const float *x = b->conv + ((size_t)n * b->f + o) * b->plane + (size_t)r0 * b->s;
    J->part[u] = sqdev ? J->K->rows_sqdev(x, r1 - r0, b->cc, b->s, J->mean[o])
                       : J->K->rows_sum(x, r1 - r0, b->cc, b->s);
}
static void job_sum(void *ctx, int u) { job_stat(ctx, u, 0); }
static void job_sqdev(void *ctx, int u) { job_stat(ctx, u, 1); }

/* units: (sample, channel) */
static void job_pool(void *ctx, int u)
{
    fwd_job *J = ctx;
    fblock *b = J->b;
    int o = u % b->f;
    size_t at = (size_t)u * b->p * b->p;
    J->K->bn_relu_pool(b->out + at, J->training ? b->code + at : NULL,
                       J->training ? b->xw + at : NULL, b->conv + (size_t)u * b->plane, b->s,
                       J->mask ? J->mask + at : NULL, b->p, J->mean[o], J->invstd[o],
                       J->gamma[o], J->beta[o], 0, b->p);
}

/* per-channel sums of the partials [n, f, tiles], in double, in a fixed order */
static double channel_total(const float *part, int n, int f, int tiles, int o)
{
    double s = 0.0;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < tiles; t++) s += part[((size_t)i * f + o) * tiles + t];
    return s;
}

static int channels_equal(const float *x, int n, int c, size_t plane)
{
    for (int i = 0; i < n; i++)
        for (int ch = 1; ch < c; ch++)
            if (memcmp(x + ((size_t)i * c + ch) * plane, x + (size_t)i * c * plane,
                       plane * sizeof *x) != 0)
                return 0;
    return 1;
}

void ld_fastnet_forward(ld_fastnet *F, const ld_kernels *K, ld_pool *pool, ld_model *m,
                        float *const *masks, const float *x, int n, int training, ld_rng *rng,
                        float *logits)
{
    const ld_arch *a = &m->arch;
    int C = a->in_channels;
    size_t SS = (size_t)a->input_size * a->input_size;
    F->folded = channels_equal(x, n, C, SS);
    const float *in = x;
    size_t in_sample = (size_t)C * SS;
    if (training) {
        /* backward needs conv 1's input after the caller's buffer may be gone */
        if (F->folded) {
            for (int i = 0; i < n; i++) memcpy(F->input + i * SS, x + i * in_sample, SS * sizeof *x);
            in_sample = SS;
        } else {
            memcpy(F->input, x, (size_t)n * in_sample * sizeof *x);
        }
        in = F->input;
        /* every block's mask now, in block order: the draws the reference makes */
        for (int k = 0; rng && k < a->n_blocks; k++) {
            const fblock *b = &F->b[k];
            ld_dropout_mask_fast(masks[k], rng, a->dropout, (long)n * b->f * b->p * b->p);
        }
    }
    if (F->folded) {
        const float *w = m->p[0].conv_w;
        for (int o = 0; o < a->filters[0]; o++)
            for (int t = 0; t < 9; t++) {
                float s = 0.0f;
                for (int ch = 0; ch < C; ch++) s += w[((size_t)o * C + ch) * 9 + t];
                F->w1[o * 9 + t] = s;
            }
    }
    size_t in_plane = SS;
    for (int k = 0; k < a->n_blocks; k++) {
        fblock *b = &F->b[k];
        const ld_block_params *p = &m->p[k];
        fwd_job J = {K, b, in, in_sample, in_plane, b->cin, p->conv_w, p->conv_b,
                     p->bn_gamma, p->bn_beta, b->mean, b->invstd, NULL, training, F->stat_part};
        if (k == 0 && F->folded) {
            J.cin = 1;
            J.w = F->w1;
        }
        ld_pool_run(pool, job_conv, &J, n * b->tiles);
        if (training) {
            double cnt = (double)n * b->cc * b->cc;
            int units = n * b->f * b->tiles;
            ld_pool_run(pool, job_sum, &J, units);
            for (int o = 0; o < b->f; o++)
                b->mean[o] = (float)(channel_total(F->stat_part, n, b->f, b->tiles, o) / cnt);
            ld_pool_run(pool, job_sqdev, &J, units);
            for (int o = 0; o < b->f; o++) {
                double var = channel_total(F->stat_part, n, b->f, b->tiles, o) / cnt;
                b->invstd[o] = (float)(1.0 / sqrt(var + a->bn_eps));
                /* the moving statistics exactly as ld_batchnorm_train_forward updates them */
                double unbiased = cnt > 1.0 ? var * cnt / (cnt - 1.0) : var;
                double mom = a->bn_momentum;
                p->bn_mean[o] = (float)(mom * (double)p->bn_mean[o] + (1.0 - mom) * (double)b->mean[o]);
                p->bn_var[o] = (float)(mom * (double)p->bn_var[o] + (1.0 - mom) * unbiased);
            }
            J.mask = masks[k];
        } else {
            for (int o = 0; o < b->f; o++) {
                b->mean[o] = p->bn_mean[o];
                b->invstd[o] = (float)(1.0 / sqrt((double)p->bn_var[o] + a->bn_eps));
            }
        }
        ld_pool_run(pool, job_pool, &J, n * b->f);
        in = b->out;
        in_sample = (size_t)b->f * b->p * b->p;
        in_plane = (size_t)b->p * b->p;
    }
    ld_dense_forward(logits, in, m->dense_w, m->dense_b, n, F->flat, 1);
}

/* ---- backward ------------------------------------------------------------------ */

typedef struct {
    const ld_kernels *K;
    struct ld_fastnet *F;
    fblock *b;
    const float *dout;        /* gradient of the block output, sample 0 */
    size_t dout_sample, dout_plane;
    int dstride;
    const float *mask;
    const float *in;          /* the block input, sample 0 */
    size_t in_sample, in_plane;
    int cin;                  /* channels of the weight gradient (1 when folded) */
    float *dinp;              /* NULL for block 0 */
} bwd_job;

/* units: (sample, channel) */
static void job_bsum(void *ctx, int u)
{
    bwd_job *J = ctx;
    fblock *b = J->b;
    int i = u / b->f, o = u % b->f;
    size_t at = (size_t)u * b->p * b->p;
    J->K->pool_bwd_sums(J->F->gval + at, J->F->bsum_part + 2 * (size_t)u,
                        J->dout + i * J->dout_sample + o * J->dout_plane, J->dstride,
                        J->mask + at, b->code + at, b->xw + at, b->p, 0, b->p);
}

/* units: (sample, tile): the BN input gradient of the tile's rows for every channel,
 * then the tile's weight-gradient partials */
static void job_dconv(void *ctx, int u)
{
    bwd_job *J = ctx;
    struct ld_fastnet *F = J->F;
    fblock *b = J->b;
    int i = u / b->tiles, t = u % b->tiles;
    int r0 = t * TILE_ROWS, r1 = r0 + TILE_ROWS < b->cc ? r0 + TILE_ROWS : b->cc;
    int wp = b->cc + 4;
    size_t pad_plane = (size_t)wp * wp;
    for (int o = 0; o < b->f; o++) {
        size_t po = (size_t)i * b->f + o;
        float *dpad = J->dinp ? F->dpad + po * pad_plane : NULL;
        J->K->bn_pool_dconv(F->dconv + po * b->plane, dpad, b->conv + po * b->plane, b->s, b->cc,
                            F->gval + po * b->p * b->p, b->code + po * b->p * b->p, b->p,
                            b->mean[o], b->invstd[o], b->scale[o], b->mean_d[o], b->mean_dx[o],
                            r0, r1);
        if (!dpad) continue;
        /* the zero border of the padded plane: this tile's rows, plus the top two
         * rows (first tile) and the bottom two (last tile) */
        for (int r = r0; r < r1; r++) {
            float *row = dpad + (size_t)(r + 2) * wp;
            row[0] = row[1] = row[wp - 2] = row[wp - 1] = 0.0f;
        }
        if (t == 0) memset(dpad, 0, 2 * (size_t)wp * sizeof *dpad);
        if (t == b->tiles - 1) memset(dpad + (size_t)(b->cc + 2) * wp, 0, 2 * (size_t)wp * sizeof *dpad);
    }
    long k0 = (long)r0 * b->s, k1 = (long)r1 * b->s;
    if (k1 > b->flat) k1 = b->flat;   /* the last garbage columns: zero, and past the input */
    J->K->conv3x3_dweight(F->dw_part + (size_t)u * b->f * J->cin * 9,
                          F->dconv + (size_t)i * b->f * b->plane, b->plane,
                          J->in + i * J->in_sample, J->in_plane, b->s, J->cin, b->f, k0, k1);
}

/* units: (sample, tile of input-gradient rows) */
static void job_dinp(void *ctx, int u)
{
    bwd_job *J = ctx;
    struct ld_fastnet *F = J->F;
    fblock *b = J->b;
    int s = b->s, ws = s + 2, tiles = (s + TILE_ROWS - 1) / TILE_ROWS;
    int i = u / tiles, t = u % tiles;
    long flat = (long)(s - 1) * ws + s, k0 = (long)t * TILE_ROWS * ws, k1 = k0 + (long)TILE_ROWS * ws;
    if (k1 > flat) k1 = flat;
    size_t dplane = (size_t)s * ws, pad_plane = (size_t)ws * ws;
    J->K->conv3x3(J->dinp + (size_t)i * b->cin * dplane, dplane,
                  F->dpad + (size_t)i * b->f * pad_plane, pad_plane, ws, F->wflip, NULL, b->f,
                  b->cin, k0, k1);
}

void ld_fastnet_backward(ld_fastnet *F, const ld_kernels *K, ld_pool *pool, ld_model *m,
                         float *const *masks, const float *dlogits, int n)
{
    const ld_arch *a = &m->arch;
    fblock *last = &F->b[a->n_blocks - 1];
    ld_dense_backward(F->dflat, m->ddense_w, m->ddense_b, dlogits, last->out, m->dense_w, n,
                      F->flat, 1);
    const float *dout = F->dflat;
    size_t dout_sample = (size_t)F->flat, dout_plane = (size_t)last->p * last->p;
    int dstride = last->p;
    int C = a->in_channels;
    size_t SS = (size_t)a->input_size * a->input_size;
    for (int k = a->n_blocks - 1; k >= 0; k--) {
        fblock *b = &F->b[k];
        const ld_block_params *p = &m->p[k];
        ld_block_params *g = &m->g[k];
        bwd_job J = {K, F, b, dout, dout_sample, dout_plane, dstride, masks[k], NULL, 0, 0,
                     b->cin, k > 0 ? F->dinp[k % 2] : NULL};
        if (k > 0) {
            const fblock *prev = &F->b[k - 1];
            J.in = prev->out;
            J.in_sample = (size_t)prev->f * prev->p * prev->p;
            J.in_plane = (size_t)prev->p * prev->p;
        } else {
            J.in = F->input;
            J.in_plane = SS;
            J.in_sample = F->folded ? SS : C * SS;
            if (F->folded) J.cin = 1;
        }
        /* BN + ReLU + pool: the sums over the pool windows' winners */
        ld_pool_run(pool, job_bsum, &J, n * b->f);
        double cnt = (double)n * b->cc * b->cc;
        for (int o = 0; o < b->f; o++) {
            double sd = 0.0, sdx = 0.0;
            for (int i = 0; i < n; i++) {
                sd += F->bsum_part[2 * ((size_t)i * b->f + o)];
                sdx += F->bsum_part[2 * ((size_t)i * b->f + o) + 1];
            }
            g->bn_beta[o] = (float)sd;
            g->bn_gamma[o] = (float)sdx;
            b->scale[o] = (float)(p->bn_gamma[o] * (double)b->invstd[o]);
            b->mean_d[o] = (float)(sd / cnt);
            b->mean_dx[o] = (float)(sdx / cnt);
        }
        /* the BN input gradient and the weight-gradient partials, tile by tile */
        ld_pool_run(pool, job_dconv, &J, n * b->tiles);
        int cw = J.cin;
        for (int o = 0; o < b->f; o++)
            for (int ch = 0; ch < cw; ch++)
                for (int t9 = 0; t9 < 9; t9++) {
                    double s = 0.0;
                    for (int u = 0; u < n * b->tiles; u++)
                        s += F->dw_part[(((size_t)u * b->f + o) * cw + ch) * 9 + t9];
                    if (cw == b->cin) {
                        g->conv_w[((size_t)o * b->cin + ch) * 9 + t9] = (float)s;
                        continue;
                    }
                    /* folded: every input channel saw the same plane */
                    for (int c2 = 0; c2 < b->cin; c2++)
                        g->conv_w[((size_t)o * b->cin + c2) * 9 + t9] = (float)s;
                }
        if (k == 0) break;
        /* the input gradient: a conv of the padded gradient with the kernel flipped */
        for (int o = 0; o < b->f; o++)
            for (int ch = 0; ch < b->cin; ch++)
                for (int t9 = 0; t9 < 9; t9++)
                    F->wflip[((size_t)ch * b->f + o) * 9 + (8 - t9)] =
                        p->conv_w[((size_t)o * b->cin + ch) * 9 + t9];
        ld_pool_run(pool, job_dinp, &J, n * ((b->s + TILE_ROWS - 1) / TILE_ROWS));
        dout = J.dinp;
        dstride = b->s + 2;
        dout_plane = (size_t)b->s * dstride;
        dout_sample = (size_t)b->cin * dout_plane;
    }
}
