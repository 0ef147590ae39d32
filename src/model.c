/* model.c — the paper's CNN (Taciuc et al. 2025, Table 1) built from layers.c:
 * the tensor table, Keras initialisation, forward, backward, Keras Adam and the
 * training step (model.h states the contract; ld_model_save/load live in model_file.c).
 *
 * Memory (llm.c's discipline): ld_model_init makes exactly five allocations —
 * parameters, gradients, the two Adam moments, and the activations (struct ld_acts
 * and every activation / backward scratch array in one block) — and forward,
 * backward and Adam never allocate. The activations are sized for batch_cap.
 *
 * Determinism: nothing here depends on threads or timing; with the same weights,
 * inputs and RNG state every result is bit-identical from run to run.
 *
 * Kernels: forward and backward run on the fast kernels (kernels.h, model_fast.c:
 * SIMD picked for this CPU, optionally threads) unless ld_model_set_kernels asks for
 * the reference kernels of layers.c, which the code below calls directly and which
 * the fast ones are tested against. The fast path's buffers are part of the
 * activation block; a thread pool (ld_model_set_threads > 1) is one more allocation
 * with its threads, made by that call. Results are the
 * same for any thread count, but differ from the reference (and between instruction
 * sets) by float rounding.
 *
 * Worth knowing:
 * - the conv biases get an exactly zero gradient (the batch norm after each conv
 *   removes them; see ld_model_backward), so training never moves them;
 * - an inference forward reuses the activation buffers, so ld_model_backward is only
 *   valid right after a training forward (asserted);
 * - verified against PyTorch by tests/test_model.c with tests/golden/paper_net.bin
 *   (tools/gen_golden.py) and by finite differences. */
#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "alloc.h"
#include "kernels.h"
#include "lymphdet/layers.h"
#include "lymphdet/model.h"

/* Largest sizes ld_arch_validate accepts: far beyond any use, small enough that
 * every product of them fits comfortably in size_t and int. */
#define MAX_INPUT_SIZE 4096
#define MAX_CHANNELS 1024
#define MAX_DENSE_INPUTS (1 << 26)

typedef struct {
    int cin, f;         /* input channels, filters */
    int s;              /* input side */
    int c;              /* conv output side: s - 2 */
    int p;              /* pooled side: c / 2 (floor) */
    float *conv;        /* [N, f, c, c] conv output */
    float *xhat;        /* [N, f, c, c] BN normalised input (training) */
    float *bn;          /* [N, f, c, c] BN output */
    float *relu;        /* [N, f, c, c] */
    float *pool;        /* [N, f, p, p] */
    int *argmax;        /* [N, f, p, p] winner inside its c x c plane */
    float *mask;        /* [N, f, p, p] dropout mask: 0 or 1/(1-rate) */
    float *drop;        /* [N, f, p, p] block output in training mode */
    float *mean;        /* [f] batch mean (training) */
    float *invstd;      /* [f] batch 1/sqrt(var + eps) (training) */
} block_acts;

struct ld_acts {
    int n;              /* batch size of the last training forward, 0 if none */
    int flat;           /* D: dense inputs per sample */
    block_acts b[LD_MAX_BLOCKS];
    float *input;       /* [N, C, S, S] copy of the last training input (conv1 backward) */
    float *logits;      /* [N] training step logits */
    float *dlogits;     /* [N] */
    float *dflat;       /* [N, D] */
    float *dsmall[2];   /* [N, max f*p*p] ping-pong gradients of block outputs */
    float *dpool;       /* [N, max f*p*p] */
    float *dbig[2];     /* [N, max f*c*c] gradients at conv / BN / ReLU outputs */
    const ld_kernels *kernels;  /* fast kernels in use, NULL: the reference path */
    ld_fastnet *fast;   /* the fast path's buffers (inside this block) */
    ld_pool *pool;      /* threads for the fast path, NULL: the caller's only */
};

void ld_arch_paper(ld_arch *arch)
{
    memset(arch, 0, sizeof *arch);
    snprintf(arch->preset, sizeof arch->preset, "paper");
    arch->input_size = 100;
    arch->in_channels = 3;
    arch->n_blocks = 3;
    arch->filters[0] = 4;
    arch->filters[1] = 4;
    arch->filters[2] = 8;
    arch->dropout = 0.25f;
    arch->bn_eps = 1e-3f;
    arch->bn_momentum = 0.99f;
}

void ld_arch_detect(ld_arch *arch)
{
    memset(arch, 0, sizeof *arch);
    snprintf(arch->preset, sizeof arch->preset, "detect");
    arch->input_size = 64;
    arch->in_channels = 3;
    arch->n_blocks = 4;
    arch->filters[0] = 4;
    arch->filters[1] = 8;
    arch->filters[2] = 16;
    arch->filters[3] = 16;
    arch->dropout = 0.0f;
    arch->bn_eps = 1e-3f;
    arch->bn_momentum = 0.99f;
    arch->box_head = 4;
}

void ld_adam_default(ld_adam_config *cfg)
{
    cfg->lr = 1e-4f;
    cfg->beta1 = 0.9f;
    cfg->beta2 = 0.999f;
    cfg->eps = 1e-7f;
}

int ld_arch_block_out(const ld_arch *arch, int k)
{
    int s = arch->input_size;
    for (int i = 0; i <= k; i++) {
        if (s < 4) return 0;   /* conv would leave less than 2x2 to pool */
        s = (s - 2) / 2;
    }
    return s;
}

ld_status ld_arch_validate(const ld_arch *arch, ld_error *err)
{
    if (!memchr(arch->preset, '\0', sizeof arch->preset))
        return ld_fail(err, LD_ERR_INPUT, "architecture: preset name is not terminated");
    if (arch->input_size < 4 || arch->input_size > MAX_INPUT_SIZE)
        return ld_fail(err, LD_ERR_INPUT, "architecture: input size %d outside 4..%d",
                       arch->input_size, MAX_INPUT_SIZE);
    if (arch->in_channels < 1 || arch->in_channels > MAX_CHANNELS)
        return ld_fail(err, LD_ERR_INPUT, "architecture: %d input channels outside 1..%d",
                       arch->in_channels, MAX_CHANNELS);
    if (arch->n_blocks < 1 || arch->n_blocks > LD_MAX_BLOCKS)
        return ld_fail(err, LD_ERR_INPUT, "architecture: %d blocks outside 1..%d",
                       arch->n_blocks, LD_MAX_BLOCKS);
    for (int k = 0; k < arch->n_blocks; k++) {
        if (arch->filters[k] < 1 || arch->filters[k] > MAX_CHANNELS)
            return ld_fail(err, LD_ERR_INPUT, "architecture: block %d has %d filters, outside 1..%d",
                           k + 1, arch->filters[k], MAX_CHANNELS);
        if (ld_arch_block_out(arch, k) < 1)
            return ld_fail(err, LD_ERR_INPUT,
                           "architecture: input size %d is too small for %d blocks "
                           "(block %d output would be empty)",
                           arch->input_size, arch->n_blocks, k + 1);
    }
    int s = ld_arch_block_out(arch, arch->n_blocks - 1);
    long long flat = (long long)arch->filters[arch->n_blocks - 1] * s * s;
    if (flat > MAX_DENSE_INPUTS)
        return ld_fail(err, LD_ERR_INPUT, "architecture: %lld dense inputs exceed %d",
                       flat, MAX_DENSE_INPUTS);
    /* written as negated ranges so that NaN fails too */
    if (!(arch->dropout >= 0.0f && arch->dropout < 1.0f))
        return ld_fail(err, LD_ERR_INPUT, "architecture: dropout rate %g outside [0, 1)",
                       (double)arch->dropout);
    if (!(arch->bn_eps > 0.0f && arch->bn_eps < 1.0f))
        return ld_fail(err, LD_ERR_INPUT, "architecture: batch-norm epsilon %g outside (0, 1)",
                       (double)arch->bn_eps);
    if (!(arch->bn_momentum >= 0.0f && arch->bn_momentum <= 1.0f))
        return ld_fail(err, LD_ERR_INPUT, "architecture: batch-norm momentum %g outside [0, 1]",
                       (double)arch->bn_momentum);
    if (arch->box_head != 0 && arch->box_head != 4)
        return ld_fail(err, LD_ERR_INPUT, "architecture: box head of %d outputs (0 or 4)",
                       arch->box_head);
    if (arch->anchor < 0 || arch->anchor > 4 * arch->input_size || (arch->anchor && !arch->box_head))
        return ld_fail(err, LD_ERR_INPUT, "architecture: anchor %d (0, or 1..%d with a box head)",
                       arch->anchor, 4 * arch->input_size);
    return LD_OK;
}

static void add_tensor(ld_model *m, const char *name, int ndim, const int *shape, int trainable)
{
    ld_tensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < 4; i++) {
        t->shape[i] = i < ndim ? shape[i] : 0;
        if (i < ndim) t->numel *= (size_t)shape[i];
    }
    t->offset = m->n_params;
    t->trainable = trainable;
    m->n_params += t->numel;
    if (trainable) m->n_trainable += t->numel;
}

/* The state-dict table, in PyTorch's order (SPEC §5); sizes are bounded by
 * ld_arch_validate, so none of these products can overflow. */
static void build_tensor_table(ld_model *m)
{
    const ld_arch *a = &m->arch;
    char name[32];
    int cin = a->in_channels;
    for (int k = 0; k < a->n_blocks; k++) {
        int f = a->filters[k];
        int wshape[4] = {f, cin, 3, 3}, vshape[1] = {f};
        snprintf(name, sizeof name, "conv%d.weight", k + 1); add_tensor(m, name, 4, wshape, 1);
        snprintf(name, sizeof name, "conv%d.bias", k + 1);   add_tensor(m, name, 1, vshape, 1);
        snprintf(name, sizeof name, "bn%d.weight", k + 1);   add_tensor(m, name, 1, vshape, 1);
        snprintf(name, sizeof name, "bn%d.bias", k + 1);     add_tensor(m, name, 1, vshape, 1);
        snprintf(name, sizeof name, "bn%d.running_mean", k + 1); add_tensor(m, name, 1, vshape, 0);
        snprintf(name, sizeof name, "bn%d.running_var", k + 1);  add_tensor(m, name, 1, vshape, 0);
        cin = f;
    }
    int s = ld_arch_block_out(a, a->n_blocks - 1);
    int dshape[2] = {1, cin * s * s}, bshape[1] = {1};
    add_tensor(m, "dense.weight", 2, dshape, 1);
    add_tensor(m, "dense.bias", 1, bshape, 1);
    if (a->box_head) {
        int hshape[2] = {a->box_head, cin * s * s}, hbshape[1] = {a->box_head};
        add_tensor(m, "box.weight", 2, hshape, 1);
        add_tensor(m, "box.bias", 1, hbshape, 1);
    }
}

/* Points the named views p[]/g[]/dense_* into params and grads. */
static void bind_views(ld_model *m)
{
    for (int k = 0; k < m->arch.n_blocks; k++) {
        const ld_tensor *t = &m->tensors[6 * k];
        float **pv[6] = {&m->p[k].conv_w, &m->p[k].conv_b, &m->p[k].bn_gamma,
                         &m->p[k].bn_beta, &m->p[k].bn_mean, &m->p[k].bn_var};
        float **gv[6] = {&m->g[k].conv_w, &m->g[k].conv_b, &m->g[k].bn_gamma,
                         &m->g[k].bn_beta, &m->g[k].bn_mean, &m->g[k].bn_var};
        for (int i = 0; i < 6; i++) {
            *pv[i] = m->params + t[i].offset;
            *gv[i] = m->grads + t[i].offset;
        }
    }
    const ld_tensor *dw = &m->tensors[6 * m->arch.n_blocks], *db = dw + 1;
    m->dense_w = m->params + dw->offset;
    m->dense_b = m->params + db->offset;
    m->ddense_w = m->grads + dw->offset;
    m->ddense_b = m->grads + db->offset;
    if (m->arch.box_head) {
        const ld_tensor *bw = db + 1, *bb = db + 2;
        m->box_w = m->params + bw->offset;
        m->box_b = m->params + bb->offset;
        m->dbox_w = m->grads + bw->offset;
        m->dbox_b = m->grads + bb->offset;
    }
}

/* Lays out (when base is non-NULL) or measures (base NULL) the activation block:
 * the struct, then every array at a 64-byte-aligned offset. Returns the total
 * bytes, or 0 if a size would overflow. Called twice with the same arguments:
 * once to size the allocation, once to carve it. */
static size_t acts_layout(char *base, const ld_arch *a, int batch_cap)
{
    struct ld_acts measure, *A = base ? (struct ld_acts *)base : &measure;
    size_t off = sizeof(struct ld_acts);
    int of = 0;
    /* in the measuring pass the pointers land in `measure` with base NULL: never used */
#define CARVE(ptr, type, count)                                              \
    do {                                                                     \
        size_t bytes_ = ld_mul2((count), sizeof(type), &of);                 \
        off = (off + 63) & ~(size_t)63;                                      \
        (ptr) = base ? (type *)(base + off) : NULL;                          \
        off += bytes_;                                                       \
        if (of || off < bytes_) return 0;                                    \
    } while (0)
    size_t N = (size_t)batch_cap, max_big = 0, max_small = 0;
    int cin = a->in_channels, s = a->input_size;
    for (int k = 0; k < a->n_blocks; k++) {
        block_acts *b = &A->b[k];
        b->cin = cin;
        b->f = a->filters[k];
        b->s = s;
        b->c = s - 2;
        b->p = b->c / 2;
        size_t big = ld_mul3(N, (size_t)b->f, (size_t)b->c * b->c, &of);
        size_t small = ld_mul3(N, (size_t)b->f, (size_t)b->p * b->p, &of);
        /* the kernels take n * f (max-pool planes) as an int */
        if (of || N * (size_t)b->f > INT_MAX) return 0;
        if (big > max_big) max_big = big;
        if (small > max_small) max_small = small;
        CARVE(b->conv, float, big);
        CARVE(b->xhat, float, big);
        CARVE(b->bn, float, big);
        CARVE(b->relu, float, big);
        CARVE(b->pool, float, small);
        CARVE(b->argmax, int, small);
        CARVE(b->mask, float, small);
        CARVE(b->drop, float, small);
        CARVE(b->mean, float, (size_t)b->f);
        CARVE(b->invstd, float, (size_t)b->f);
        cin = b->f;
        s = b->p;
    }
    A->n = 0;
    A->flat = cin * s * s;
    CARVE(A->input, float, ld_mul3(N, (size_t)a->in_channels,
                                   (size_t)a->input_size * a->input_size, &of));
    CARVE(A->logits, float, N);
    CARVE(A->dlogits, float, N);
    CARVE(A->dflat, float, ld_mul2(N, (size_t)A->flat, &of));
    CARVE(A->dsmall[0], float, max_small);
    CARVE(A->dsmall[1], float, max_small);
    CARVE(A->dpool, float, max_small);
    CARVE(A->dbig[0], float, max_big);
    CARVE(A->dbig[1], float, max_big);
#undef CARVE
    /* the fast path's buffers, in the same block */
    off = (off + 63) & ~(size_t)63;
    size_t fast = ld_fastnet_layout(base ? base + off : NULL, a, batch_cap);
    A->fast = base ? (ld_fastnet *)(void *)(base + off) : NULL;
    if (fast == 0 || off + fast < fast) return 0;
    return off + fast;
}

ld_status ld_model_init(ld_model *m, const ld_arch *arch, int batch_cap, ld_error *err)
{
    memset(m, 0, sizeof *m);
    ld_status st = ld_arch_validate(arch, err);
    if (st != LD_OK) return st;
    if (batch_cap < 1)
        return ld_fail(err, LD_ERR_USAGE, "model: batch capacity %d must be at least 1", batch_cap);
    m->arch = *arch;
    m->batch_cap = batch_cap;
    build_tensor_table(m);
    size_t acts_bytes = acts_layout(NULL, arch, batch_cap);
    if (acts_bytes == 0) {
        ld_fail(err, LD_ERR_NOMEM, "model: activations for a batch of %d would overflow", batch_cap);
        memset(m, 0, sizeof *m);
        return LD_ERR_NOMEM;
    }
    m->params = ld_zalloc(m->n_params, sizeof(float), "model parameters", err);
    m->grads = m->params ? ld_zalloc(m->n_params, sizeof(float), "model gradients", err) : NULL;
    m->adam_m = m->grads ? ld_zalloc(m->n_params, sizeof(float), "Adam first moments", err) : NULL;
    m->adam_v = m->adam_m ? ld_zalloc(m->n_params, sizeof(float), "Adam second moments", err) : NULL;
    /* max_align_t alignment from malloc; 64-byte alignment inside is relative, which is fine */
    char *block = m->adam_v ? ld_zalloc(acts_bytes, 1, "model activations", err) : NULL;
    if (!block) {
        ld_model_free(m);
        return LD_ERR_NOMEM;
    }
    acts_layout(block, arch, batch_cap);
    m->acts = (ld_acts *)block;
    m->acts->kernels = ld_kernels_best();
    bind_views(m);
    /* until a mask is drawn or injected, dropout is the identity */
    for (int k = 0; k < arch->n_blocks; k++) {
        block_acts *b = &m->acts->b[k];
        size_t count = (size_t)batch_cap * b->f * b->p * b->p;
        for (size_t i = 0; i < count; i++) b->mask[i] = 1.0f;
    }
    return LD_OK;
}

void ld_model_free(ld_model *m)
{
    ld_free(m->params);
    ld_free(m->grads);
    ld_free(m->adam_m);
    ld_free(m->adam_v);
    if (m->acts) ld_pool_free(m->acts->pool);
    ld_free(m->acts);
    for (int i = 0; i < m->n_meta; i++) {
        ld_free(m->meta_key[i]);
        ld_free(m->meta_value[i]);
    }
    memset(m, 0, sizeof *m);
}

/* Draws come from one ld_rng seeded with `seed`, tensor by tensor in state-dict
 * order, element by element: the same seed gives the same weights everywhere. */
void ld_model_init_weights(ld_model *m, uint64_t seed)
{
    ld_rng rng;
    ld_rng_seed(&rng, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        const ld_tensor *t = &m->tensors[i];
        float *w = m->params + t->offset;
        const char *dot = strrchr(t->name, '.');
        int is_bn = strncmp(t->name, "bn", 2) == 0;
        float fill = 0.0f;
        if (!is_bn && strcmp(dot, ".weight") == 0) {
            /* Keras glorot_uniform: conv fan_in = cin*3*3, fan_out = f*3*3 (receptive
             * field times channels); dense fan_in = D, fan_out = 1 */
            double fan_in, fan_out;
            if (t->ndim == 4) {
                fan_in = (double)t->shape[1] * t->shape[2] * t->shape[3];
                fan_out = (double)t->shape[0] * t->shape[2] * t->shape[3];
            } else {
                fan_in = t->shape[1];
                fan_out = t->shape[0];
            }
            float limit = (float)sqrt(6.0 / (fan_in + fan_out));
            for (size_t j = 0; j < t->numel; j++) w[j] = limit * (2.0f * ld_rng_float(&rng) - 1.0f);
            continue;
        }
        if (is_bn && (strcmp(dot, ".weight") == 0 || strcmp(dot, ".running_var") == 0)) fill = 1.0f;
        for (size_t j = 0; j < t->numel; j++) w[j] = fill;
    }
    memset(m->grads, 0, m->n_params * sizeof *m->grads);
    memset(m->adam_m, 0, m->n_params * sizeof *m->adam_m);
    memset(m->adam_v, 0, m->n_params * sizeof *m->adam_v);
    m->adam_t = 0;
}

const ld_tensor *ld_model_tensor(const ld_model *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

ld_status ld_model_meta_set(ld_model *m, const char *key, const char *value, ld_error *err)
{
    int i = 0;
    while (i < m->n_meta && strcmp(m->meta_key[i], key) != 0) i++;
    if (i == LD_MAX_META)
        return ld_fail(err, LD_ERR_USAGE, "model metadata: more than %d keys (adding \"%s\")",
                       LD_MAX_META, key);
    char *v = ld_strdup(value, err);
    if (!v) return LD_ERR_NOMEM;
    if (i < m->n_meta) {
        ld_free(m->meta_value[i]);
        m->meta_value[i] = v;
        return LD_OK;
    }
    char *k = ld_strdup(key, err);
    if (!k) { ld_free(v); return LD_ERR_NOMEM; }
    m->meta_key[i] = k;
    m->meta_value[i] = v;
    m->n_meta++;
    return LD_OK;
}

const char *ld_model_meta_get(const ld_model *m, const char *key)
{
    for (int i = 0; i < m->n_meta; i++)
        if (strcmp(m->meta_key[i], key) == 0) return m->meta_value[i];
    return NULL;
}

float *ld_model_dropout_mask(ld_model *m, int k)
{
    return k >= 0 && k < m->arch.n_blocks ? m->acts->b[k].mask : NULL;
}

void ld_model_forward(ld_model *m, const float *x, int n, int training, ld_rng *rng,
                      float *logits)
{
    assert(n >= 1 && n <= m->batch_cap);
    struct ld_acts *A = m->acts;
    const ld_arch *a = &m->arch;
    if (A->kernels) {
        float *masks[LD_MAX_BLOCKS];
        for (int k = 0; k < a->n_blocks; k++) masks[k] = A->b[k].mask;
        A->n = training ? n : 0;
        ld_fastnet_forward(A->fast, A->kernels, A->pool, m, masks, x, n, training, rng, logits);
        return;
    }
    const float *in = x;   /* [n, cin, s, s] input of the current block */
    if (training) {
        /* backward needs conv1's input after the caller's buffer may be gone */
        memcpy(A->input, x, (size_t)n * a->in_channels * a->input_size * a->input_size * sizeof *x);
        in = A->input;
    }
    A->n = training ? n : 0;   /* an inference pass reuses the buffers backward needs */
    for (int k = 0; k < a->n_blocks; k++) {
        block_acts *b = &A->b[k];
        const ld_block_params *p = &m->p[k];
        int hw = b->c * b->c;
        long big = (long)n * b->f * hw, small = (long)n * b->f * b->p * b->p;
        ld_conv3x3_forward(b->conv, in, p->conv_w, p->conv_b, n, b->cin, b->f, b->s, b->s);
        if (training)
            ld_batchnorm_train_forward(b->bn, b->xhat, b->mean, b->invstd, p->bn_mean, p->bn_var,
                                       b->conv, p->bn_gamma, p->bn_beta, a->bn_eps,
                                       a->bn_momentum, n, b->f, hw);
        else
            ld_batchnorm_infer_forward(b->bn, b->conv, p->bn_gamma, p->bn_beta, p->bn_mean,
                                       p->bn_var, a->bn_eps, n, b->f, hw);
        ld_relu_forward(b->relu, b->bn, big);
        ld_maxpool2_forward(b->pool, b->argmax, b->relu, n * b->f, b->c, b->c);
        if (training) {
            if (rng) ld_dropout_mask(b->mask, rng, a->dropout, small);
            ld_dropout_apply(b->drop, b->pool, b->mask, small);
            in = b->drop;
        } else {
            in = b->pool;   /* dropout is the identity at inference */
        }
    }
    ld_dense_forward(logits, in, m->dense_w, m->dense_b, n, A->flat, 1);
}

void ld_model_backward(ld_model *m, const float *dlogits, int n)
{
    struct ld_acts *A = m->acts;
    assert(n >= 1 && n == A->n);   /* the backward of the last TRAINING forward */
    const ld_arch *a = &m->arch;
    memset(m->grads, 0, m->n_params * sizeof *m->grads);   /* moving stats: gradient 0 */
    if (A->kernels) {
        float *masks[LD_MAX_BLOCKS];
        for (int k = 0; k < a->n_blocks; k++) masks[k] = A->b[k].mask;
        ld_fastnet_backward(A->fast, A->kernels, A->pool, m, masks, dlogits, n);
        return;
    }
    const block_acts *last = &A->b[a->n_blocks - 1];
    ld_dense_backward(A->dflat, m->ddense_w, m->ddense_b, dlogits, last->drop, m->dense_w,
                      n, A->flat, 1);
    const float *dout = A->dflat;   /* [n, f, p, p] gradient of the block's output */
    for (int k = a->n_blocks - 1; k >= 0; k--) {
        const block_acts *b = &A->b[k];
        const ld_block_params *p = &m->p[k];
        ld_block_params *g = &m->g[k];
        int hw = b->c * b->c;
        long big = (long)n * b->f * hw, small = (long)n * b->f * b->p * b->p;
        ld_dropout_apply(A->dpool, dout, b->mask, small);
        ld_maxpool2_backward(A->dbig[0], A->dpool, b->argmax, n * b->f, b->c, b->c);
        ld_relu_backward(A->dbig[0], A->dbig[0], b->relu, big);
        ld_batchnorm_backward(A->dbig[1], g->bn_gamma, g->bn_beta, A->dbig[0], b->xhat,
                              p->bn_gamma, b->invstd, n, b->f, hw);
        const float *in = k > 0 ? A->b[k - 1].drop : A->input;
        float *dinp = k > 0 ? A->dsmall[k % 2] : NULL;   /* never the buffer dout is in */
        /* The conv bias gets no gradient: training-mode BN subtracts the batch mean,
         * so the loss does not depend on it and its exact gradient is 0. Computed in
         * float it is rounding noise (~1e-7..1e-6), which Adam divides by its own
         * size and turns into lr-sized random steps; frameworks then wander on noise
         * that no other implementation (or summation order) can reproduce. Using the
         * exact 0 keeps training deterministic across kernels and equal to the exact
         * (float64) PyTorch trajectory. The bias is still a trainable tensor, as in
         * Keras's count; it just never moves. */
        ld_conv3x3_backward(dinp, g->conv_w, NULL, A->dbig[1], in, p->conv_w,
                            n, b->cin, b->f, b->s, b->s);
        dout = dinp;
    }
}

ld_status ld_model_set_kernels(ld_model *m, const char *name, ld_error *err)
{
    if (name && strcmp(name, "reference") == 0) {
        m->acts->kernels = NULL;
        return LD_OK;
    }
    const ld_kernels *k = ld_kernels_get(name);
    if (!k)
        return ld_fail(err, LD_ERR_USAGE,
                       "kernels \"%s\": not built in or not supported by this CPU "
                       "(auto, reference, generic, avx2, avx512)", name);
    m->acts->kernels = k;
    return LD_OK;
}

const char *ld_model_kernels(const ld_model *m)
{
    return m->acts->kernels ? m->acts->kernels->name : "reference";
}

ld_status ld_model_set_threads(ld_model *m, int threads, ld_error *err)
{
    if (threads == ld_pool_threads(m->acts->pool)) return LD_OK;
    ld_pool *pool = NULL;
    if (threads != 1 && ld_pool_init(&pool, threads, err) != LD_OK) return err->status;
    ld_pool_free(m->acts->pool);
    m->acts->pool = pool;
    return LD_OK;
}

int ld_model_threads(const ld_model *m) { return ld_pool_threads(m->acts->pool); }

void ld_model_adam(ld_model *m, const ld_adam_config *cfg)
{
    long t = ++m->adam_t;
    /* Keras: the bias corrections fold into the step size, eps stays outside them */
    double a = cfg->lr * sqrt(1.0 - pow(cfg->beta2, (double)t)) / (1.0 - pow(cfg->beta1, (double)t));
    float af = (float)a, b1 = cfg->beta1, b2 = cfg->beta2, eps = cfg->eps;
    for (int i = 0; i < m->n_tensors; i++) {
        const ld_tensor *tt = &m->tensors[i];
        if (!tt->trainable) continue;
        float *w = m->params + tt->offset, *g = m->grads + tt->offset;
        float *mm = m->adam_m + tt->offset, *vv = m->adam_v + tt->offset;
        for (size_t j = 0; j < tt->numel; j++) {
            mm[j] = b1 * mm[j] + (1.0f - b1) * g[j];
            vv[j] = b2 * vv[j] + (1.0f - b2) * g[j] * g[j];
            w[j] -= af * mm[j] / (sqrtf(vv[j]) + eps);
        }
    }
}

float ld_model_train_step(ld_model *m, const float *x, const float *y, int n,
                          const ld_adam_config *cfg, ld_rng *rng, float *logits)
{
    struct ld_acts *A = m->acts;
    ld_model_forward(m, x, n, 1, rng, A->logits);
    float loss = ld_bce_logits(A->dlogits, A->logits, y, n);
    ld_model_backward(m, A->dlogits, n);
    ld_model_adam(m, cfg);
    if (logits) memcpy(logits, A->logits, (size_t)n * sizeof *logits);
    return loss;
}

void ld_model_predict(ld_model *m, const float *x, int n, float *probs)
{
    size_t per = (size_t)m->arch.in_channels * m->arch.input_size * m->arch.input_size;
    for (int i = 0; i < n; i += m->batch_cap) {
        int chunk = n - i < m->batch_cap ? n - i : m->batch_cap;
        ld_model_forward(m, x + (size_t)i * per, chunk, 0, NULL, probs + i);
        for (int j = 0; j < chunk; j++) probs[i + j] = ld_sigmoid(probs[i + j]);
    }
}
