/* test_model.c — the paper's CNN against PyTorch (tests/golden/paper_net.bin, made by
 * tools/gen_golden.py), plus the structural facts of Table 1 and the model API.
 *
 * The golden test injects the reference's weights, inputs and dropout masks, then
 * compares every tensor — inference and training logits and probabilities, the loss,
 * every parameter gradient, the BN moving statistics, and all weights after each of 10
 * Keras-Adam steps — with |c - ref| <= 1e-5 + 1e-4 |ref|, printing the largest
 * difference of each tensor to stderr. The reference values are PyTorch computed in
 * float64 from the same float32 inputs (gen_golden.py explains why not float32). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "lymphdet/layers.h"
#include "lymphdet/model.h"
#include "test.h"

#define GOLDEN_PATH "tests/golden/paper_net.bin"
#define ABS_TOL 1e-5
#define REL_TOL 1e-4

/* ---- golden file reader (format: tools/gen_golden.py and tests/golden/README.md) ---- */

enum { DT_F32 = 0, DT_U8 = 1, DT_BITS = 2 };

typedef struct {
    char name[64];
    int dtype, ndim;
    int shape[4];
    size_t numel;
    const unsigned char *data;
} golden_rec;

typedef struct {
    unsigned char *buf;
    size_t size;
    int n;
    golden_rec *recs;
    char err[256];
} golden;

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void golden_free(golden *g)
{
    free(g->buf);
    free(g->recs);
    memset(g, 0, sizeof *g);
}

/* 0 on success; on failure g->err says why. Every length is checked against the
 * bytes that remain, so a truncated or corrupt file is reported, not trusted. */
static int golden_load(golden *g, const char *path)
{
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(g->err, sizeof g->err, "%s: cannot open (run `make golden` to regenerate it)", path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len < 12 || len > (64L << 20)) {
        fclose(f);
        snprintf(g->err, sizeof g->err, "%s: implausible size %ld", path, len);
        return -1;
    }
    g->size = (size_t)len;
    g->buf = malloc(g->size);
    size_t got = g->buf ? fread(g->buf, 1, g->size, f) : 0;
    fclose(f);
    if (got != g->size) {
        snprintf(g->err, sizeof g->err, "%s: read failed", path);
        return -1;
    }
    if (memcmp(g->buf, "LDGOLD01", 8) != 0) {
        snprintf(g->err, sizeof g->err, "%s: bad magic (not a golden file)", path);
        return -1;
    }
    uint32_t count = rd32(g->buf + 8);
    if (count == 0 || count > 100000) {
        snprintf(g->err, sizeof g->err, "%s: implausible record count %u", path, count);
        return -1;
    }
    g->recs = calloc(count, sizeof *g->recs);
    if (!g->recs) { snprintf(g->err, sizeof g->err, "%s: out of memory", path); return -1; }
    size_t off = 12;
    for (uint32_t i = 0; i < count; i++) {
        golden_rec *r = &g->recs[i];
        if (g->size - off < 4) goto truncated;
        uint32_t nl = rd32(g->buf + off);
        off += 4;
        if (nl == 0 || nl >= sizeof r->name || g->size - off < nl + 2) goto truncated;
        memcpy(r->name, g->buf + off, nl);
        off += nl;
        r->dtype = g->buf[off];
        r->ndim = g->buf[off + 1];
        off += 2;
        if (r->dtype > DT_BITS || r->ndim > 4 || g->size - off < 4u * (size_t)r->ndim) {
            snprintf(g->err, sizeof g->err, "%s: record %u (%s): bad dtype/ndim", path, i, r->name);
            return -1;
        }
        r->numel = 1;
        for (int d = 0; d < r->ndim; d++) {
            uint32_t s = rd32(g->buf + off);
            off += 4;
            if (s == 0 || s > (1u << 24)) {
                snprintf(g->err, sizeof g->err, "%s: record %s: bad dimension %u", path, r->name, s);
                return -1;
            }
            r->shape[d] = (int)s;
            r->numel *= s;
            if (r->numel > (1u << 26)) goto truncated;
        }
        size_t bytes = r->dtype == DT_F32 ? 4 * r->numel
                     : r->dtype == DT_U8 ? r->numel : (r->numel + 7) / 8;
        if (g->size - off < bytes) goto truncated;
        r->data = g->buf + off;
        off += bytes;
    }
    if (off != g->size) {
        snprintf(g->err, sizeof g->err, "%s: %zu trailing bytes", path, g->size - off);
        return -1;
    }
    g->n = (int)count;
    return 0;
truncated:
    snprintf(g->err, sizeof g->err, "%s: truncated at byte %zu", path, off);
    return -1;
}

static const golden_rec *golden_find(const golden *g, const char *name)
{
    for (int i = 0; i < g->n; i++)
        if (strcmp(g->recs[i].name, name) == 0) return &g->recs[i];
    return NULL;
}

/* Reads a float32 record into out (count values expected); 0 if absent or mis-sized. */
static int golden_f32(const golden *g, const char *name, float *out, size_t count)
{
    const golden_rec *r = golden_find(g, name);
    if (!r || r->dtype != DT_F32 || r->numel != count) {
        test_record(0, __FILE__, __LINE__, "golden record %s missing or not %zu floats", name, count);
        return 0;
    }
    memcpy(out, r->data, count * sizeof *out);   /* little-endian host (x86-64, aarch64) */
    return 1;
}

static float golden_scalar(const golden *g, const char *name)
{
    float v = NAN;
    golden_f32(g, name, &v, 1);
    return v;
}

/* Compares got[count] with the golden tensor; prints the max difference; returns it. */
static double compare(const golden *g, const char *name, const float *got, size_t count,
                      int quiet)
{
    float *ref = malloc(count * sizeof *ref);
    if (!ref || !golden_f32(g, name, ref, count)) { free(ref); return INFINITY; }
    double worst = 0.0, worst_excess = -1.0;
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
        double d = fabs((double)got[i] - ref[i]);
        double excess = d - (ABS_TOL + REL_TOL * fabs((double)ref[i]));
        if (!(d <= worst)) worst = d;   /* NaN propagates as a failure */
        if (!(excess <= worst_excess)) { worst_excess = excess; at = i; }
    }
    if (!quiet) fprintf(stderr, "  golden %-28s max |diff| %.3g  (%zu values)\n", name, worst, count);
    CHECK_MSG(worst_excess <= 0.0, "%s[%zu]: C %.9g vs PyTorch %.9g (tolerance %g + %g rel)",
              name, at, (double)got[at], (double)ref[at], ABS_TOL, REL_TOL);
    free(ref);
    return worst;
}

/* Sets block masks from the golden keep bits of step t: kept -> 1/(1-rate), else 0. */
static int inject_masks(ld_model *m, const golden *g, int t)
{
    float scale = 1.0f / (1.0f - m->arch.dropout);
    for (int k = 0; k < m->arch.n_blocks; k++) {
        char name[64];
        snprintf(name, sizeof name, "step%d.keep%d", t, k + 1);
        const golden_rec *r = golden_find(g, name);
        int s = ld_arch_block_out(&m->arch, k);
        size_t count = (size_t)5 * m->arch.filters[k] * s * s;
        if (!r || r->dtype != DT_BITS || r->numel != count) {
            CHECK_MSG(0, "golden record %s missing or not %zu bits", name, count);
            return 0;
        }
        float *mask = ld_model_dropout_mask(m, k);
        for (size_t i = 0; i < count; i++) mask[i] = (r->data[i / 8] >> (i % 8)) & 1 ? scale : 0.0f;
    }
    return 1;
}

TEST_SUITE(model_golden)
{
    golden g;
    if (golden_load(&g, GOLDEN_PATH) != 0) {
        CHECK_MSG(0, "%s", g.err);
        golden_free(&g);
        return;
    }
    enum { N = 5 };
    ld_arch arch;
    ld_arch_paper(&arch);
    arch.dropout = golden_scalar(&g, "arch.dropout");
    CHECK_NEAR(golden_scalar(&g, "arch.bn_eps"), arch.bn_eps, 0);
    CHECK_NEAR(golden_scalar(&g, "arch.bn_momentum"), arch.bn_momentum, 0);
    ld_adam_config cfg;
    ld_adam_default(&cfg);
    cfg.lr = golden_scalar(&g, "adam.lr");
    cfg.beta1 = golden_scalar(&g, "adam.beta1");
    cfg.beta2 = golden_scalar(&g, "adam.beta2");
    cfg.eps = golden_scalar(&g, "adam.eps");
    CHECK_NEAR(cfg.eps, 1e-7, 1e-12);

    ld_model m;
    ld_error err = {0};
    if (ld_model_init(&m, &arch, N, &err) != LD_OK) {
        CHECK_MSG(0, "ld_model_init: %s", err.msg);
        golden_free(&g);
        return;
    }
    char name[96];
    for (int i = 0; i < m.n_tensors; i++) {
        const ld_tensor *t = &m.tensors[i];
        snprintf(name, sizeof name, "init.%s", t->name);
        const golden_rec *r = golden_find(&g, name);
        int same_shape = r && r->ndim == t->ndim;
        for (int d = 0; same_shape && d < t->ndim; d++) same_shape = r->shape[d] == t->shape[d];
        CHECK_MSG(same_shape, "%s: golden shape differs from the tensor table", name);
        golden_f32(&g, name, m.params + t->offset, t->numel);
    }
    const golden_rec *px = golden_find(&g, "x.pixels");
    size_t xcount = (size_t)N * 3 * 100 * 100;
    float *x = malloc(xcount * sizeof *x);   /* [N, 3, 100, 100] */
    float y[N], logits[N], probs[N], dlogits[N];
    int have_x = px && px->dtype == DT_U8 && px->numel == xcount;
    CHECK_MSG(have_x, "golden x.pixels missing or mis-sized");
    if (!x || !have_x || !golden_f32(&g, "y", y, N)) {
        free(x);
        ld_model_free(&m);
        golden_free(&g);
        return;
    }
    for (size_t i = 0; i < xcount; i++) x[i] = (float)px->data[i] / 255.0f;   /* as images load */

    fprintf(stderr, "model_golden: C vs PyTorch, tolerance %g + %g * |ref|\n", ABS_TOL, REL_TOL);
    /* inference with the reference's (non-trivial) moving statistics */
    ld_model_forward(&m, x, N, 0, NULL, logits);
    compare(&g, "infer.logits", logits, N, 0);
    ld_model_predict(&m, x, N, probs);
    compare(&g, "infer.probs", probs, N, 0);
    int same = 1;
    for (int i = 0; i < N; i++) same &= probs[i] == ld_sigmoid(logits[i]);
    CHECK_MSG(same, "predict is exactly sigmoid(forward inference)");

    /* the first training step, piece by piece */
    inject_masks(&m, &g, 1);
    ld_model_forward(&m, x, N, 1, NULL, logits);
    compare(&g, "train.logits", logits, N, 0);
    for (int i = 0; i < N; i++) probs[i] = ld_sigmoid(logits[i]);
    compare(&g, "train.probs", probs, N, 0);
    float loss = ld_bce_logits(dlogits, logits, y, N);
    compare(&g, "train.loss", &loss, 1, 0);
    for (int k = 0; k < arch.n_blocks; k++) {
        snprintf(name, sizeof name, "train.bn%d.running_mean", k + 1);
        compare(&g, name, m.p[k].bn_mean, (size_t)arch.filters[k], 0);
        snprintf(name, sizeof name, "train.bn%d.running_var", k + 1);
        compare(&g, name, m.p[k].bn_var, (size_t)arch.filters[k], 0);
    }
    ld_model_backward(&m, dlogits, N);
    int zero_stats = 1;
    for (int i = 0; i < m.n_tensors; i++) {
        const ld_tensor *t = &m.tensors[i];
        if (!t->trainable) {
            for (size_t j = 0; j < t->numel; j++) zero_stats &= m.grads[t->offset + j] == 0.0f;
            continue;
        }
        snprintf(name, sizeof name, "grad.%s", t->name);
        compare(&g, name, m.grads + t->offset, t->numel, 0);
    }
    CHECK_MSG(zero_stats, "moving statistics get a zero gradient");
    ld_model_adam(&m, &cfg);
    CHECK_INT(m.adam_t, 1);

    /* steps 2..10 through ld_model_train_step; one line per step */
    for (int t = 1; t <= 10; t++) {
        if (t > 1) {
            inject_masks(&m, &g, t);
            loss = ld_model_train_step(&m, x, y, N, &cfg, NULL, logits);
        }
        char line[2048];
        int len = snprintf(line, sizeof line, "  step %2d max |diff|:", t);
        snprintf(name, sizeof name, "step%d.loss", t);
        double d = compare(&g, name, &loss, 1, 1);
        len += snprintf(line + len, sizeof line - len, " loss %.2g", d);
        for (int i = 0; i < m.n_tensors; i++) {
            const ld_tensor *tt = &m.tensors[i];
            snprintf(name, sizeof name, "step%d.%s", t, tt->name);
            d = compare(&g, name, m.params + tt->offset, tt->numel, 1);
            if (len < (int)sizeof line - 64)
                len += snprintf(line + len, sizeof line - len, "%s %s %.2g", i % 6 == 0 ? "\n   " : "",
                                tt->name, d);
        }
        fprintf(stderr, "%s\n", line);
    }
    CHECK_INT(m.adam_t, 10);
    free(x);
    ld_model_free(&m);
    golden_free(&g);
}

/* ---- structure, initialisation and API ---- */

TEST_SUITE(model_structure)
{
    ld_arch arch;
    ld_arch_paper(&arch);
    ld_error err = {0};
    CHECK_INT(ld_arch_validate(&arch, &err), LD_OK);
    CHECK_STR(arch.preset, "paper");
    /* 100 -> 98 -> 49 -> 47 -> 23 -> 21 -> 10 */
    CHECK_INT(ld_arch_block_out(&arch, 0), 49);
    CHECK_INT(ld_arch_block_out(&arch, 1), 23);
    CHECK_INT(ld_arch_block_out(&arch, 2), 10);
    ld_model m;
    if (ld_model_init(&m, &arch, 5, &err) != LD_OK) { CHECK_MSG(0, "init: %s", err.msg); return; }
    CHECK_INT(m.n_params, 1421);
    CHECK_INT(m.n_trainable, 1389);
    CHECK_INT(m.n_tensors, 20);
    /* Table 1, layer by layer: conv (weight + bias), then the BN's four vectors */
    static const char *names[20] = {
        "conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
        "conv2.weight", "conv2.bias", "bn2.weight", "bn2.bias", "bn2.running_mean", "bn2.running_var",
        "conv3.weight", "conv3.bias", "bn3.weight", "bn3.bias", "bn3.running_mean", "bn3.running_var",
        "dense.weight", "dense.bias"};
    static const int table1[7] = {112, 16, 148, 16, 296, 32, 801};
    int layer_params[7] = {0};
    size_t expect_off = 0;
    int names_ok = 1, offsets_ok = 1, train_ok = 1;
    for (int i = 0; i < m.n_tensors && i < 20; i++) {
        const ld_tensor *t = &m.tensors[i];
        names_ok &= strcmp(t->name, names[i]) == 0;
        offsets_ok &= t->offset == expect_off;
        expect_off += t->numel;
        int is_stat = strstr(t->name, "running_") != NULL;
        train_ok &= t->trainable == !is_stat;
        int layer = i < 18 ? (i / 6) * 2 + ((i % 6) >= 2) : 6;
        layer_params[layer] += (int)t->numel;
    }
    CHECK(names_ok);
    CHECK(offsets_ok);
    CHECK(train_ok);
    CHECK_INT(expect_off, 1421);
    for (int l = 0; l < 7; l++) CHECK_INT(layer_params[l], table1[l]);
    const ld_tensor *t = ld_model_tensor(&m, "conv2.weight");
    CHECK(t && t->ndim == 4 && t->shape[0] == 4 && t->shape[1] == 4 && t->shape[2] == 3 && t->shape[3] == 3);
    t = ld_model_tensor(&m, "conv3.weight");
    CHECK(t && t->shape[0] == 8 && t->shape[1] == 4);
    t = ld_model_tensor(&m, "dense.weight");
    CHECK(t && t->ndim == 2 && t->shape[0] == 1 && t->shape[1] == 800);
    t = ld_model_tensor(&m, "bn3.running_var");
    CHECK(t && t->ndim == 1 && t->shape[0] == 8 && !t->trainable);
    CHECK(ld_model_tensor(&m, "conv4.weight") == NULL);
    CHECK(ld_model_tensor(&m, "") == NULL);
    /* the named views point into the one parameter / gradient buffer */
    CHECK(m.p[1].bn_var == m.params + ld_model_tensor(&m, "bn2.running_var")->offset);
    CHECK(m.g[2].conv_w == m.grads + ld_model_tensor(&m, "conv3.weight")->offset);
    CHECK(m.dense_w == m.params + 1420 - 800 && m.dense_b == m.params + 1420);
    CHECK(m.ddense_b == m.grads + 1420);
    CHECK(ld_model_dropout_mask(&m, 0) != NULL && ld_model_dropout_mask(&m, 3) == NULL);
    ld_adam_config cfg;
    ld_adam_default(&cfg);
    CHECK_NEAR(cfg.lr, 1e-4, 1e-10);
    CHECK_NEAR(cfg.beta1, 0.9, 1e-7);
    CHECK_NEAR(cfg.beta2, 0.999, 1e-7);
    CHECK_NEAR(cfg.eps, 1e-7, 1e-14);
    ld_model_free(&m);
    CHECK(m.params == NULL && m.acts == NULL && m.n_tensors == 0);
    ld_model_free(&m);   /* freeing twice is harmless */
}

TEST_SUITE(model_init_weights)
{
    ld_arch arch;
    ld_arch_paper(&arch);
    ld_model a, b, c;
    ld_error err = {0};
    if (ld_model_init(&a, &arch, 1, &err) != LD_OK || ld_model_init(&b, &arch, 1, &err) != LD_OK ||
        ld_model_init(&c, &arch, 1, &err) != LD_OK) {
        CHECK_MSG(0, "init: %s", err.msg);
        return;
    }
    ld_model_init_weights(&a, 42);
    ld_model_init_weights(&b, 42);
    ld_model_init_weights(&c, 43);
    CHECK(memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0);
    CHECK(memcmp(a.params, c.params, a.n_params * sizeof(float)) != 0);
    /* Glorot-uniform limits: sqrt(6 / (fan_in + fan_out)), conv fan = channels * 9 */
    const struct { const char *name; double limit; } glorot[4] = {
        {"conv1.weight", sqrt(6.0 / (27 + 36))}, {"conv2.weight", sqrt(6.0 / (36 + 36))},
        {"conv3.weight", sqrt(6.0 / (36 + 72))}, {"dense.weight", sqrt(6.0 / 801)}};
    for (int i = 0; i < 4; i++) {
        const ld_tensor *t = ld_model_tensor(&a, glorot[i].name);
        double maxabs = 0, mean = 0;
        for (size_t j = 0; j < t->numel; j++) {
            double w = a.params[t->offset + j];
            if (fabs(w) > maxabs) maxabs = fabs(w);
            mean += w / t->numel;
        }
        CHECK_MSG(maxabs <= glorot[i].limit, "%s: max |w| %g exceeds the Glorot limit %g",
                  glorot[i].name, maxabs, glorot[i].limit);
        /* uniform over the whole range: with >= 108 draws the largest is near the limit */
        CHECK_MSG(maxabs > 0.8 * glorot[i].limit, "%s: max |w| %g, limit %g", glorot[i].name,
                  maxabs, glorot[i].limit);
        CHECK_MSG(fabs(mean) < 0.25 * glorot[i].limit, "%s: mean %g", glorot[i].name, mean);
    }
    /* biases 0, gamma 1, beta 0, moving mean 0, moving variance 1 */
    int exact = 1;
    for (int i = 0; i < a.n_tensors; i++) {
        const ld_tensor *t = &a.tensors[i];
        float want = -1;
        if (strstr(t->name, ".bias") || strstr(t->name, "running_mean")) want = 0.0f;
        if (strstr(t->name, "running_var") || (strncmp(t->name, "bn", 2) == 0 && strstr(t->name, ".weight")))
            want = 1.0f;
        for (size_t j = 0; want >= 0 && j < t->numel; j++) exact &= a.params[t->offset + j] == want;
    }
    CHECK(exact);
    /* Adam state is reset */
    a.adam_t = 7;
    a.adam_m[3] = 1.0f;
    ld_model_init_weights(&a, 42);
    CHECK_INT(a.adam_t, 0);
    CHECK(a.adam_m[3] == 0.0f);
    ld_model_free(&a);
    ld_model_free(&b);
    ld_model_free(&c);
}

TEST_SUITE(model_validate)
{
    ld_arch base, a;
    ld_arch_paper(&base);
    ld_error err = {0};
    a = base; a.input_size = 22;   /* 20 -> 10 -> 8 -> 4 -> 2 -> 1: the smallest that works */
    CHECK_INT(ld_arch_validate(&a, &err), LD_OK);
    CHECK_INT(ld_arch_block_out(&a, 2), 1);
    a = base; a.input_size = 21;   /* 19 -> 9 -> 7 -> 3 -> 1 -> 0 */
    CHECK_INT(ld_arch_validate(&a, &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, "too small") != NULL);
    CHECK_INT(ld_arch_block_out(&a, 2), 0);
    a = base; a.n_blocks = 0;
    CHECK_INT(ld_arch_validate(&a, &err), LD_ERR_INPUT);
    a = base; a.n_blocks = LD_MAX_BLOCKS + 1;
    CHECK_INT(ld_arch_validate(&a, &err), LD_ERR_INPUT);
    a = base; a.filters[1] = 0;
    CHECK_INT(ld_arch_validate(&a, &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, "block 2") != NULL);
    a = base; a.in_channels = 0;
    CHECK_INT(ld_arch_validate(&a, &err), LD_ERR_INPUT);
    a = base; a.dropout = 1.0f;
    CHECK_INT(ld_arch_validate(&a, &err), LD_ERR_INPUT);
    a = base; a.dropout = NAN;
    CHECK_INT(ld_arch_validate(&a, &err), LD_ERR_INPUT);
    a = base; a.bn_eps = 0.0f;
    CHECK_INT(ld_arch_validate(&a, &err), LD_ERR_INPUT);
    a = base; a.bn_momentum = 1.5f;
    CHECK_INT(ld_arch_validate(&a, &err), LD_ERR_INPUT);
    a = base; a.input_size = 1 << 20;
    CHECK_INT(ld_arch_validate(&a, &err), LD_ERR_INPUT);
    a = base; memset(a.preset, 'x', sizeof a.preset);
    CHECK_INT(ld_arch_validate(&a, &err), LD_ERR_INPUT);
    /* init refuses a bad architecture or batch capacity and leaves nothing behind */
    ld_model m;
    a = base; a.filters[2] = -8;
    CHECK_INT(ld_model_init(&m, &a, 5, &err), LD_ERR_INPUT);
    CHECK(m.params == NULL && m.acts == NULL);
    CHECK_INT(ld_model_init(&m, &base, 0, &err), LD_ERR_USAGE);
    CHECK(m.params == NULL && m.acts == NULL);
    /* a batch capacity whose activations cannot be indexed is refused before any
     * allocation is attempted, not a crash */
    CHECK_INT(ld_model_init(&m, &base, INT32_MAX, &err), LD_ERR_NOMEM);
    CHECK(m.params == NULL && m.acts == NULL);
    CHECK(strstr(err.msg, "overflow") != NULL);
    /* a dense layer too large to index: 1024 * 2047 * 2047 inputs */
    a = base; a.input_size = 4096; a.n_blocks = 1; a.filters[0] = 1024;
    CHECK_INT(ld_arch_validate(&a, &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, "dense inputs") != NULL);
}

TEST_SUITE(model_alloc_failure)
{
    ld_arch arch;
    ld_arch_paper(&arch);
    ld_error err = {0};
    ld_model m;
    int failures = 0, clean = 1;
    for (long k = 1; k < 20; k++) {
        ld_alloc_fail_after(k);
        ld_status st = ld_model_init(&m, &arch, 2, &err);
        ld_alloc_fail_after(0);
        if (st == LD_OK) {
            /* also the metadata: a failed set leaves the table as it was */
            CHECK_INT(ld_model_meta_set(&m, "a", "1", &err), LD_OK);
            ld_alloc_fail_after(1);
            CHECK_INT(ld_model_meta_set(&m, "b", "2", &err), LD_ERR_NOMEM);
            ld_alloc_fail_after(2);
            CHECK_INT(ld_model_meta_set(&m, "b", "2", &err), LD_ERR_NOMEM);
            ld_alloc_fail_after(0);
            CHECK_INT(m.n_meta, 1);
            CHECK(ld_model_meta_get(&m, "b") == NULL);
            ld_model_free(&m);
            break;
        }
        failures++;
        clean &= st == LD_ERR_NOMEM && m.params == NULL && m.grads == NULL && m.adam_m == NULL &&
                 m.adam_v == NULL && m.acts == NULL && strstr(err.msg, "out of memory") != NULL;
    }
    CHECK_INT(failures, 5);   /* params, grads, two Adam moments, activations */
    CHECK(clean);             /* and ASan's leak check confirms nothing is left allocated */
}

TEST_SUITE(model_meta)
{
    ld_arch arch;
    ld_arch_paper(&arch);
    ld_error err = {0};
    ld_model m;
    if (ld_model_init(&m, &arch, 1, &err) != LD_OK) { CHECK_MSG(0, "init: %s", err.msg); return; }
    CHECK(ld_model_meta_get(&m, "seed") == NULL);
    CHECK_INT(ld_model_meta_set(&m, "seed", "42", &err), LD_OK);
    CHECK_INT(ld_model_meta_set(&m, "preset", "paper", &err), LD_OK);
    CHECK_STR(ld_model_meta_get(&m, "seed"), "42");
    CHECK_INT(ld_model_meta_set(&m, "seed", "7", &err), LD_OK);   /* replaces */
    CHECK_STR(ld_model_meta_get(&m, "seed"), "7");
    CHECK_STR(ld_model_meta_get(&m, "preset"), "paper");
    CHECK_INT(m.n_meta, 2);
    char key[16];
    for (int i = 2; i < LD_MAX_META; i++) {
        snprintf(key, sizeof key, "k%d", i);
        ld_model_meta_set(&m, key, "v", &err);
    }
    CHECK_INT(m.n_meta, LD_MAX_META);
    CHECK_INT(ld_model_meta_set(&m, "one-too-many", "v", &err), LD_ERR_USAGE);
    CHECK(strstr(err.msg, "one-too-many") != NULL);
    CHECK_INT(ld_model_meta_set(&m, "k5", "replaced", &err), LD_OK);   /* replacing still works */
    CHECK_STR(ld_model_meta_get(&m, "k5"), "replaced");
    ld_model_free(&m);   /* frees every string: ASan would report a leak otherwise */
    CHECK_INT(m.n_meta, 0);
}

/* Random 8-bit-like inputs [n, 3, 100, 100] in [0, 1]. */
static void random_input(float *x, int n, uint64_t seed)
{
    ld_rng rng;
    ld_rng_seed(&rng, seed);
    for (size_t i = 0; i < (size_t)n * 3 * 100 * 100; i++) x[i] = (float)ld_rng_below(&rng, 256) / 255.0f;
}

TEST_SUITE(model_predict)
{
    enum { N = 7 };
    ld_arch arch;
    ld_arch_paper(&arch);
    ld_error err = {0};
    ld_model small, big;
    if (ld_model_init(&small, &arch, 3, &err) != LD_OK || ld_model_init(&big, &arch, N, &err) != LD_OK) {
        CHECK_MSG(0, "init: %s", err.msg);
        return;
    }
    ld_model_init_weights(&small, 5);
    /* non-trivial moving statistics, so inference BN is exercised */
    for (int k = 0; k < 3; k++)
        for (int f = 0; f < arch.filters[k]; f++) {
            small.p[k].bn_mean[f] = 0.05f * (f + 1);
            small.p[k].bn_var[f] = 0.5f + 0.25f * f;
        }
    memcpy(big.params, small.params, small.n_params * sizeof(float));
    float *x = malloc((size_t)N * 30000 * sizeof *x);
    float p_small[N], p_big[N], logits[N];
    random_input(x, N, 11);
    ld_model_predict(&small, x, N, p_small);   /* chunks of 3, 3, 1 */
    ld_model_predict(&big, x, N, p_big);       /* one chunk */
    CHECK(memcmp(p_small, p_big, sizeof p_small) == 0);
    ld_model_forward(&big, x, N, 0, NULL, logits);
    int same = 1, in_range = 1;
    for (int i = 0; i < N; i++) {
        same &= p_big[i] == ld_sigmoid(logits[i]);
        in_range &= p_big[i] > 0.0f && p_big[i] < 1.0f;
    }
    CHECK_MSG(same, "predict == sigmoid(forward(inference)), bit for bit");
    CHECK(in_range);
    /* a sample's probability does not depend on its batch-mates at inference */
    float one;
    ld_model_predict(&small, x + 4 * 30000, 1, &one);
    CHECK(one == p_big[4]);
    free(x);
    ld_model_free(&small);
    ld_model_free(&big);
}

TEST_SUITE(model_receptive_field)
{
    /* Every pool rounds down, so rows/columns 94..99 of a 100x100 patch never reach
     * the dense layer (SPEC §2.7): 10 pooled <- 20 conv3 <- 22 <- 44 conv2 <- 46 <- 92 conv1 <- 94. */
    enum { N = 3 };
    ld_arch arch;
    ld_arch_paper(&arch);
    ld_error err = {0};
    ld_model m;
    if (ld_model_init(&m, &arch, N, &err) != LD_OK) { CHECK_MSG(0, "init: %s", err.msg); return; }
    ld_model_init_weights(&m, 9);
    float *x = malloc((size_t)N * 30000 * sizeof *x);
    float before[N], after[N];
    random_input(x, N, 3);
    ld_model_forward(&m, x, N, 0, NULL, before);
    for (int b = 0; b < N * 3; b++)
        for (int i = 0; i < 100; i++)
            for (int j = 0; j < 100; j++)
                if (i >= 94 || j >= 94) x[(size_t)b * 10000 + i * 100 + j] = (float)((i * 7 + j * 13) % 17) / 16.0f;
    ld_model_forward(&m, x, N, 0, NULL, after);
    CHECK_MSG(memcmp(before, after, sizeof before) == 0, "rows/cols 94-99 change the output");
    /* ...while row 93 does reach it (so the test above can fail) */
    for (int b = 0; b < N * 3; b++)
        for (int j = 0; j < 94; j++) x[(size_t)b * 10000 + 93 * 100 + j] = 1.0f - x[(size_t)b * 10000 + 93 * 100 + j];
    ld_model_forward(&m, x, N, 0, NULL, after);
    int changed = 0;
    for (int i = 0; i < N; i++) changed += after[i] != before[i];
    CHECK_INT(changed, N);
    free(x);
    ld_model_free(&m);
}

TEST_SUITE(model_determinism)
{
    enum { N = 5 };
    ld_arch arch;
    ld_arch_paper(&arch);
    ld_error err = {0};
    ld_model a, b;
    if (ld_model_init(&a, &arch, N, &err) != LD_OK || ld_model_init(&b, &arch, N, &err) != LD_OK) {
        CHECK_MSG(0, "init: %s", err.msg);
        return;
    }
    float *x = malloc((size_t)N * 30000 * sizeof *x);
    float y[N] = {1, 0, 1, 1, 0}, la[N], lb[N];
    random_input(x, N, 21);
    ld_adam_config cfg;
    ld_adam_default(&cfg);
    ld_rng ra, rb;
    ld_model_init_weights(&a, 1);
    ld_model_init_weights(&b, 1);
    ld_rng_seed(&ra, 99);
    ld_rng_seed(&rb, 99);
    float loss_a = 0, loss_b = 0;
    for (int s = 0; s < 3; s++) {
        loss_a = ld_model_train_step(&a, x, y, N, &cfg, &ra, la);
        loss_b = ld_model_train_step(&b, x, y, N, &cfg, &rb, lb);
    }
    CHECK(loss_a == loss_b);
    CHECK(memcmp(la, lb, sizeof la) == 0);
    CHECK(memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0);
    CHECK(memcmp(a.adam_v, b.adam_v, a.n_params * sizeof(float)) == 0);
    /* the masks drawn are inverted dropout: 0 or 1/(1-0.25), about 75% kept */
    const float *mask = ld_model_dropout_mask(&a, 0);
    size_t count = (size_t)N * 4 * 49 * 49, kept = 0;
    int values_ok = 1;
    for (size_t i = 0; i < count; i++) {
        values_ok &= mask[i] == 0.0f || mask[i] == 1.0f / 0.75f;
        kept += mask[i] != 0.0f;
    }
    CHECK(values_ok);
    CHECK_NEAR((double)kept / count, 0.75, 0.01);
    /* another dropout seed: another trajectory */
    ld_model_init_weights(&b, 1);
    ld_rng_seed(&rb, 100);
    for (int s = 0; s < 3; s++) ld_model_train_step(&b, x, y, N, &cfg, &rb, lb);
    CHECK(memcmp(a.params, b.params, a.n_params * sizeof(float)) != 0);
    free(x);
    ld_model_free(&a);
    ld_model_free(&b);
}

TEST_SUITE(model_learns)
{
    /* Behavioural check of the whole step: on a fixed batch, 30 Adam steps at lr 1e-2
     * must drive the loss well below its starting value, and the BN moving statistics
     * must move toward the batch statistics. */
    enum { N = 4 };
    ld_arch arch;
    ld_arch_paper(&arch);
    arch.dropout = 0.0f;
    ld_error err = {0};
    ld_model m;
    if (ld_model_init(&m, &arch, N, &err) != LD_OK) { CHECK_MSG(0, "init: %s", err.msg); return; }
    ld_model_init_weights(&m, 3);
    float *x = malloc((size_t)N * 30000 * sizeof *x);
    float y[N] = {1, 0, 0, 1};
    random_input(x, N, 8);
    ld_adam_config cfg;
    ld_adam_default(&cfg);
    cfg.lr = 1e-2f;
    ld_rng rng;
    ld_rng_seed(&rng, 1);
    float first = ld_model_train_step(&m, x, y, N, &cfg, &rng, NULL), last = first;
    for (int s = 1; s < 30; s++) last = ld_model_train_step(&m, x, y, N, &cfg, &rng, NULL);
    CHECK_MSG(last < 0.5f * first, "loss %g -> %g", (double)first, (double)last);
    CHECK_INT(m.adam_t, 30);
    /* inputs are ~U[0,1] so conv1's batch means are far from the initial moving mean 0 */
    int moved = 1;
    for (int f = 0; f < 4; f++) moved &= m.p[0].bn_mean[f] != 0.0f && m.p[0].bn_var[f] != 1.0f;
    CHECK(moved);
    /* dropout 0 draws nothing: the masks are all ones */
    const float *mask = ld_model_dropout_mask(&m, 2);
    int ones = 1;
    for (int i = 0; i < N * 8 * 10 * 10; i++) ones &= mask[i] == 1.0f;
    CHECK(ones);
    free(x);
    ld_model_free(&m);
}

/* Whole-model finite-difference check on a tiny architecture (input 14, 2 channels,
 * filters 2 and 3: 14 -> 12 -> 6 -> 4 -> 2, 12 dense inputs), independent of PyTorch:
 * the analytic gradient of the mean BCE must match central differences for every
 * trainable parameter. Masks are injected (fixed) so the loss is a deterministic
 * function of the parameters. */
static double tiny_loss(ld_model *m, const float *x, const float *y, int n)
{
    float logits[3];
    ld_model_forward(m, x, n, 1, NULL, logits);
    double s = 0;
    for (int i = 0; i < n; i++) {
        double z = logits[i];
        s += (z > 0 ? z : 0) - z * y[i] + log1p(exp(-fabs(z)));
    }
    return s / n;
}

TEST_SUITE(model_gradcheck)
{
    enum { N = 3 };
    ld_arch arch;
    ld_arch_paper(&arch);
    arch.input_size = 14;
    arch.in_channels = 2;
    arch.n_blocks = 2;
    arch.filters[0] = 2;
    arch.filters[1] = 3;
    arch.dropout = 0.5f;
    ld_error err = {0};
    ld_model m;
    if (ld_model_init(&m, &arch, N, &err) != LD_OK) { CHECK_MSG(0, "init: %s", err.msg); return; }
    CHECK_INT(m.n_params, (2 * 2 * 9 + 2 + 4 * 2) + (3 * 2 * 9 + 3 + 4 * 3) + 12 + 1);
    ld_model_init_weights(&m, 17);
    ld_rng rng;
    ld_rng_seed(&rng, 5);
    for (int i = 0; i < m.n_tensors; i++) {   /* move gamma/beta/biases off 1 and 0 */
        const ld_tensor *t = &m.tensors[i];
        if (t->trainable && t->ndim == 1)
            for (size_t j = 0; j < t->numel; j++) m.params[t->offset + j] += 0.3f * (ld_rng_float(&rng) - 0.5f);
    }
    float x[N * 2 * 14 * 14], y[N] = {1, 0, 1};
    for (int i = 0; i < N * 2 * 14 * 14; i++) x[i] = ld_rng_float(&rng);
    for (int k = 0; k < 2; k++) {
        int s = ld_arch_block_out(&arch, k);
        float *mask = ld_model_dropout_mask(&m, k);
        for (int i = 0; i < N * arch.filters[k] * s * s; i++) mask[i] = (i % 3) ? 2.0f : 0.0f;
    }
    float logits[N], dlogits[N];
    ld_model_forward(&m, x, N, 1, NULL, logits);
    ld_bce_logits(dlogits, logits, y, N);
    ld_model_backward(&m, dlogits, N);
    float *analytic = malloc(m.n_params * sizeof *analytic);
    memcpy(analytic, m.grads, m.n_params * sizeof *analytic);
    double worst = 0;
    int checked = 0, bad = 0, skipped = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        const ld_tensor *t = &m.tensors[i];
        if (!t->trainable) continue;
        for (size_t j = 0; j < t->numel; j++) {
            float *w = &m.params[t->offset + j], w0 = *w;
            const float h = 1e-3f;
            *w = w0 + h;
            double lp = tiny_loss(&m, x, y, N);
            float wp = *w;
            *w = w0 - h;
            double lm = tiny_loss(&m, x, y, N);
            float wm = *w;
            *w = w0;
            double l0 = tiny_loss(&m, x, y, N);
            double num = (lp - lm) / ((double)wp - wm);
            double fwd = (lp - l0) / ((double)wp - w0), bwd = (l0 - lm) / ((double)w0 - wm);
            double a = analytic[t->offset + j], d = fabs(a - num);
            /* Off the kinks the central difference must match (float32 forward:
             * ~1% is the resolution at h = 1e-3). A relu or max-pool kink inside
             * [w-h, w+h] spoils the central difference; there the analytic gradient
             * must match the one-sided slope of the kink-free side instead (those
             * carry an O(h) curvature error, hence 2%). A wrong gradient matches none. */
            int central = d <= 2e-4 + 1e-2 * fabs(num);
            int one_sided = fabs(a - fwd) <= 2e-4 + 2e-2 * fabs(fwd) ||
                            fabs(a - bwd) <= 2e-4 + 2e-2 * fabs(bwd);
            if (central) {
                if (d > worst) worst = d;
            } else if (one_sided) {
                fprintf(stderr, "  gradcheck %s[%zu]: kink nearby (slopes %.6g / %.6g), "
                        "analytic %.6g\n", t->name, j, fwd, bwd, a);
                skipped++;
            } else {
                bad++;
                fprintf(stderr, "  gradcheck %s[%zu]: analytic %.6g numeric %.6g (slopes %.6g / %.6g)\n",
                        t->name, j, a, num, fwd, bwd);
            }
            checked++;
        }
    }
    fprintf(stderr, "model_gradcheck: %d parameters, %d matched one-sided (kink nearby), "
            "max |analytic - central| elsewhere %.3g\n", checked, skipped, worst);
    CHECK_INT(bad, 0);
    CHECK_MSG(skipped <= checked / 10, "%d of %d parameters needed one-sided slopes", skipped, checked);
    CHECK_INT(checked, (int)m.n_trainable);
    free(analytic);
    ld_model_free(&m);
}
