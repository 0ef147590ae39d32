/* checkpoint.c — training checkpoints: write after every epoch, validate fully on
 * reading (see lymphdet/checkpoint.h for the layout and the contract).
 *
 * Why a format of our own and not a second safetensors file: a checkpoint carries
 * integers that must survive exactly (64-bit RNG words, the training order, Adam's
 * step count) and a history table; JSON holds the small things readably, a raw
 * little-endian section the large ones bit for bit, and one checksum over all of it
 * tells a damaged file from a good one. It is not meant for other programs: the
 * model file is the interchange format.
 *
 * Reading never lets the file decide an allocation on its own word: the model's sizes
 * come from the caller's architecture (which the file must match), and the training
 * order's length is accepted only when the file's length is exactly what the header
 * says. Numbers in the JSON are checked against bounds before they are converted. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jansson.h>
#include "alloc.h"
#include "lymphdet/checkpoint.h"
#include "lymphdet/outfile.h"

#define MAGIC "LDCKPT1\n"
#define FORMAT_NAME "lymphdet-checkpoint"
#define FORMAT_VERSION 1
#define HEADER_MAX (64u * 1024 * 1024)
#define MAX_EPOCHS 1000000          /* far above the CLI's 100000 */
#define MAX_COUNT 2000000000        /* patches: below INT_MAX */

/* ---- FNV-1a 64 ------------------------------------------------------------------- */

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

static uint64_t fnv_u32(uint64_t h, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return fnv(h, b, 4);
}

static uint64_t fingerprint_set(uint64_t h, const ld_patchset *ps)
{
    size_t plane = (size_t)ps->size * (size_t)ps->size;
    for (int i = 0; i < ps->n; i++) {
        h = fnv(h, &ps->label[i], 1);
        h = fnv(h, ps->px + (size_t)i * plane, plane);
    }
    return h;
}

uint64_t ld_patches_fingerprint(const ld_patchset *train, const ld_patchset *val)
{
    int n_val = val ? val->n : 0;
    uint64_t h = fnv_u32(FNV_OFFSET, (uint32_t)train->size);
    h = fnv_u32(h, (uint32_t)train->n);
    h = fnv_u32(h, (uint32_t)n_val);
    h = fingerprint_set(h, train);
    return n_val ? fingerprint_set(h, val) : h;
}

/* ---- little-endian data section --------------------------------------------------- */

static void put_u64le(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64le(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static void put_u32le(uint8_t *b, uint32_t v)
{
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32le(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* out[4 n] <- x[n] */
static void floats_out(uint8_t *out, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        put_u32le(out + 4 * i, u);
    }
}

/* x[n] <- in[4 n] */
static void floats_in(float *x, const uint8_t *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = get_u32le(in + 4 * i);
        memcpy(&x[i], &u, 4);
    }
}

/* ---- writing ---------------------------------------------------------------------- */

static json_t *hex64(uint64_t v)
{
    char buf[17];
    snprintf(buf, sizeof buf, "%016" PRIx64, v);
    return json_string(buf);
}

/* a JSON real, or null for NaN and infinities (JSON has no such numbers) */
static json_t *real_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* set obj[key] = v, counting failures (jansson returns -1 when it cannot allocate,
 * and _new functions accept NULL values, failing then) */
static void put(json_t *obj, const char *key, json_t *v, int *bad)
{
    *bad |= json_object_set_new(obj, key, v) != 0;
}

/* obj[key] <- a new object or array (NULL, and *bad set, when out of memory) */
static json_t *put_new(json_t *obj, const char *key, json_t *v, int *bad)
{
    put(obj, key, v, bad);
    return *bad ? NULL : v;
}

/* A new header: format, version, kind (NULL: none, as the paper preset's), the
 * architecture, n_params. Every later part is attached as it is made, so one
 * json_decref of the root frees everything whatever failed. */
static json_t *header_begin(const ld_model *m, const char *kind, int *bad)
{
    json_t *root = json_object();
    if (!root) {
        *bad = 1;
        return NULL;
    }
    const ld_arch *a = &m->arch;
    put(root, "format", json_string(FORMAT_NAME), bad);
    put(root, "version", json_integer(FORMAT_VERSION), bad);
    if (kind) put(root, "kind", json_string(kind), bad);
    json_t *arch = put_new(root, "arch", json_object(), bad);
    if (arch) {
        put(arch, "preset", json_string(a->preset), bad);
        put(arch, "input_size", json_integer(a->input_size), bad);
        put(arch, "in_channels", json_integer(a->in_channels), bad);
        json_t *filters = put_new(arch, "filters", json_array(), bad);
        for (int k = 0; filters && !*bad && k < a->n_blocks; k++)
            *bad |= json_array_append_new(filters, json_integer(a->filters[k])) != 0;
        put(arch, "dropout", json_real(a->dropout), bad);
        put(arch, "bn_epsilon", json_real(a->bn_eps), bad);
        put(arch, "bn_momentum", json_real(a->bn_momentum), bad);
        if (a->box_head) {   /* the detection preset's; absent means 0 */
            put(arch, "box_head", json_integer(a->box_head), bad);
            put(arch, "anchor", json_integer(a->anchor), bad);
        }
    }
    put(root, "n_params", json_integer((json_int_t)m->n_params), bad);
    return root;
}

/* root <- epochs_done, adam_t, rng: where the run stands */
static void header_position(json_t *root, const ld_model *m, int epochs_done, const ld_rng *r,
                            int *bad)
{
    put(root, "epochs_done", json_integer(epochs_done), bad);
    put(root, "adam_t", json_integer(m->adam_t), bad);
    json_t *rng = put_new(root, "rng", json_array(), bad);
    for (int k = 0; rng && !*bad && k < 4; k++)
        *bad |= json_array_append_new(rng, hex64(r->s[k])) != 0;
}

static json_t *build_header(const ld_model *m, const ld_train_config *cfg,
                            const ld_train_state *st, const ld_epoch_stats *history,
                            uint64_t fingerprint, int n_val)
{
    int bad = 0;
    json_t *root = header_begin(m, NULL, &bad);
    json_t *train = root ? put_new(root, "train", json_object(), &bad) : NULL;
    if (train) {
        put(train, "epochs", json_integer(cfg->epochs), &bad);
        put(train, "batch", json_integer(cfg->batch), &bad);
        put(train, "lr", json_real(cfg->adam.lr), &bad);
        put(train, "beta1", json_real(cfg->adam.beta1), &bad);
        put(train, "beta2", json_real(cfg->adam.beta2), &bad);
        put(train, "eps", json_real(cfg->adam.eps), &bad);
        put(train, "seed", hex64(cfg->seed), &bad);
    }
    json_t *data = root ? put_new(root, "data", json_object(), &bad) : NULL;
    if (data) {
        put(data, "n_train", json_integer(st->n_order), &bad);
        put(data, "n_val", json_integer(n_val), &bad);
        put(data, "fingerprint", hex64(fingerprint), &bad);
    }
    if (root) header_position(root, m, st->epochs_done, &st->rng, &bad);
    json_t *hist = root ? put_new(root, "history", json_array(), &bad) : NULL;
    for (int e = 0; hist && !bad && e < st->epochs_done; e++) {
        const ld_epoch_stats *h = &history[e];
        json_t *o = json_object();
        bad |= json_array_append_new(hist, o) != 0;   /* NULL o: -1 */
        if (bad) break;
        put(o, "epoch", json_integer(h->epoch), &bad);
        put(o, "train_loss", real_or_null(h->train_loss), &bad);
        put(o, "train_acc", real_or_null(h->train_acc), &bad);
        put(o, "val_loss", real_or_null(h->val_loss), &bad);
        put(o, "val_acc", real_or_null(h->val_acc), &bad);
        put(o, "seconds", real_or_null(h->seconds), &bad);
    }
    if (bad) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* Writes [magic][N][header][params, adam_m, adam_v][order int32 [n]][extra float32
 * [n_extra]][checksum] through a temporary file; root is consumed. */
static ld_status write_checkpoint(const char *path, json_t *root, const ld_model *m,
                                  const int *order, size_t n, const float *extra,
                                  size_t n_extra, ld_error *err)
{
    char *header = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (!header) return ld_fail(err, LD_ERR_NOMEM, "%s: out of memory building the header", path);
    size_t hlen = strlen(header), np = m->n_params;
    /* the sizes are those of an allocated model, order and extra: no overflow here */
    size_t total = 16 + hlen + 12 * np + 4 * n + 4 * n_extra + 8;
    uint8_t *buf = ld_alloc(total, 1, "the checkpoint", err);
    if (!buf) {
        free(header);   /* jansson's allocation */
        return ld_error_prefix(err, "%s", path);
    }
    uint8_t *p = buf;
    memcpy(p, MAGIC, 8);
    put_u64le(p + 8, hlen);
    memcpy(p + 16, header, hlen);
    free(header);
    p += 16 + hlen;
    floats_out(p, m->params, np);
    floats_out(p + 4 * np, m->adam_m, np);
    floats_out(p + 8 * np, m->adam_v, np);
    p += 12 * np;
    for (size_t i = 0; i < n; i++) put_u32le(p + 4 * i, (uint32_t)order[i]);
    p += 4 * n;
    floats_out(p, extra, n_extra);
    p += 4 * n_extra;
    put_u64le(p, fnv(FNV_OFFSET, buf, total - 8));

    ld_outfile out;
    ld_status rc = ld_out_open(&out, path, err);
    if (!rc) {
        fwrite(buf, 1, total, out.fp);   /* ld_out_commit checks the stream's error state */
        rc = ld_out_commit(&out, err);
    }
    ld_free(buf);
    return rc;
}

ld_status ld_checkpoint_save(const char *path, const ld_model *m, const ld_train_config *cfg,
                             const ld_train_state *st, const ld_epoch_stats *history,
                             uint64_t fingerprint, int n_val, ld_error *err)
{
    json_t *root = build_header(m, cfg, st, history, fingerprint, n_val);
    return write_checkpoint(path, root, m, st->order, (size_t)st->n_order, NULL, 0, err);
}

/* ---- reading ---------------------------------------------------------------------- */

/* obj[key] as an integer in [lo, hi] */
static int get_int(const json_t *obj, const char *key, long long lo, long long hi,
                   long long *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) return -1;
    long long x = json_integer_value(v);
    if (x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

/* a number (integer or real), or NaN for null when nullable */
static int get_real(const json_t *v, int nullable, double *out)
{
    if (nullable && json_is_null(v)) {
        *out = NAN;
        return 0;
    }
    if (!json_is_number(v)) return -1;
    *out = json_number_value(v);
    return isfinite(*out) ? 0 : -1;
}

/* a float field that must equal `want` exactly (it was written from a float) */
static int same_float(const json_t *obj, const char *key, float want)
{
    double v;
    return get_real(json_object_get(obj, key), 0, &v) == 0 && v == (double)want;
}

static int get_hex64(const json_t *v, uint64_t *out)
{
    const char *s = json_string_value(v);
    if (!s || strlen(s) != 16) return -1;
    uint64_t x = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        x = x << 4 | (uint64_t)d;
    }
    *out = x;
    return 0;
}

/* The header's architecture must be m's: otherwise the data section would be read
 * with the wrong layout. */
static ld_status check_arch(const json_t *arch, const ld_model *m, const char *path,
                            ld_error *err)
{
    const ld_arch *a = &m->arch;
    if (!json_is_object(arch))
        return ld_fail(err, LD_ERR_INPUT, "%s: header: arch is missing or not an object", path);
    const char *preset = json_string_value(json_object_get(arch, "preset"));
    long long v;
    const json_t *filters = json_object_get(arch, "filters");
    int same_filters = json_is_array(filters) && json_array_size(filters) == (size_t)a->n_blocks;
    for (int k = 0; same_filters && k < a->n_blocks; k++) {
        const json_t *f = json_array_get(filters, (size_t)k);
        same_filters = json_is_integer(f) && json_integer_value(f) == a->filters[k];
    }
#define DIFFERS(what) ld_fail(err, LD_ERR_INPUT, "%s: made for another network (its %s differs " \
                              "from this run's); resume with the options it was made with", \
                              path, what)
    if (!preset || strcmp(preset, a->preset) != 0) return DIFFERS("preset");
    if (get_int(arch, "input_size", a->input_size, a->input_size, &v))
        return DIFFERS("input size (--patch)");
    if (get_int(arch, "in_channels", a->in_channels, a->in_channels, &v))
        return DIFFERS("input channels");
    if (!same_filters) return DIFFERS("filters");
    if (!same_float(arch, "dropout", a->dropout)) return DIFFERS("dropout rate (--dropout)");
    if (!same_float(arch, "bn_epsilon", a->bn_eps)) return DIFFERS("batch-norm epsilon");
    if (!same_float(arch, "bn_momentum", a->bn_momentum)) return DIFFERS("batch-norm momentum");
    /* the detection preset's fields, absent (0) for the paper's */
    const json_t *bh = json_object_get(arch, "box_head"), *an = json_object_get(arch, "anchor");
    if ((bh ? get_int(arch, "box_head", a->box_head, a->box_head, &v) : a->box_head != 0))
        return DIFFERS("box head");
    if ((an ? get_int(arch, "anchor", a->anchor, a->anchor, &v) : a->anchor != 0))
        return DIFFERS("anchor (--anchor)");
#undef DIFFERS
    return LD_OK;
}

/* What every checkpoint's header holds: format, version, kind (absent: "paper"),
 * the architecture (m's), n_params, adam_t and the rng state. */
static ld_status read_common(const json_t *root, const ld_model *m, const char *kind,
                             long *adam_t, ld_rng *rng_state, const char *path, ld_error *err)
{
    const char *format = json_string_value(json_object_get(root, "format"));
    long long v, n_params;
    if (!format || strcmp(format, FORMAT_NAME) != 0)
        return ld_fail(err, LD_ERR_INPUT, "%s: not a lymphdet checkpoint (header format)", path);
    if (get_int(root, "version", FORMAT_VERSION, FORMAT_VERSION, &v))
        return ld_fail(err, LD_ERR_INPUT, "%s: checkpoint version is not %d", path,
                       FORMAT_VERSION);
    const json_t *k = json_object_get(root, "kind");
    const char *file_kind = k ? json_string_value(k) : "paper";
    if (!file_kind || strcmp(file_kind, kind) != 0)
        return ld_fail(err, LD_ERR_INPUT, "%s: a checkpoint of the %s preset's training, not "
                       "the %s preset's", path, file_kind ? file_kind : "(unnamed)", kind);
    if (check_arch(json_object_get(root, "arch"), m, path, err)) return err->status;
    if (get_int(root, "n_params", 0, LLONG_MAX, &n_params) || (size_t)n_params != m->n_params)
        return ld_fail(err, LD_ERR_INPUT, "%s: header: n_params is not %zu", path, m->n_params);
#define BAD(what) ld_fail(err, LD_ERR_INPUT, "%s: header: %s", path, what)
    if (get_int(root, "adam_t", 0, LONG_MAX, &v)) return BAD("adam_t is not a step count");
    *adam_t = (long)v;
    const json_t *rng = json_object_get(root, "rng");
    uint64_t any = 0;
    if (!json_is_array(rng) || json_array_size(rng) != 4) return BAD("rng is not 4 hex words");
    for (size_t i = 0; i < 4; i++) {
        if (get_hex64(json_array_get(rng, i), &rng_state->s[i]))
            return BAD("rng is not 4 hex words");
        any |= rng_state->s[i];
    }
    if (!any) return BAD("rng state is all zero (xoshiro256** would only draw zeros)");
#undef BAD
    return LD_OK;
}

/* a paper run's header into ck (history allocated here): see read_fields */
static ld_status read_paper_fields(void *ctx, const json_t *root, const ld_model *m,
                                   long *adam_t, int *n_order, size_t *n_extra,
                                   const char *path, ld_error *err)
{
    ld_checkpoint *ck = ctx;
    long long v;
    *n_extra = 0;
    if (read_common(root, m, "paper", adam_t, &ck->state.rng, path, err)) return err->status;

#define BAD(what) ld_fail(err, LD_ERR_INPUT, "%s: header: %s", path, what)
    const json_t *train = json_object_get(root, "train"), *data = json_object_get(root, "data");
    ld_train_config *c = &ck->cfg;
    double r[4];
    if (!json_is_object(train) || !json_is_object(data)) return BAD("train or data is missing");
    if (get_int(train, "epochs", 1, MAX_EPOCHS, &v)) return BAD("train.epochs is not 1..1000000");
    c->epochs = (int)v;
    if (get_int(train, "batch", 1, MAX_COUNT, &v)) return BAD("train.batch is not a batch size");
    c->batch = (int)v;
    static const char *const adam_keys[4] = {"lr", "beta1", "beta2", "eps"};
    for (int k = 0; k < 4; k++)
        if (get_real(json_object_get(train, adam_keys[k]), 0, &r[k]) || fabs(r[k]) > 1e30)
            return BAD("train: an Adam setting is not a finite number");
    c->adam.lr = (float)r[0];
    c->adam.beta1 = (float)r[1];
    c->adam.beta2 = (float)r[2];
    c->adam.eps = (float)r[3];
    if (get_hex64(json_object_get(train, "seed"), &c->seed))
        return BAD("train.seed is not 16 hex digits");
    c->checkpoint = NULL;
    if (get_int(data, "n_train", 1, MAX_COUNT, &v)) return BAD("data.n_train is not a count");
    ck->n_train = (int)v;
    if (get_int(data, "n_val", 0, MAX_COUNT, &v)) return BAD("data.n_val is not a count");
    ck->n_val = (int)v;
    if (get_hex64(json_object_get(data, "fingerprint"), &ck->fingerprint))
        return BAD("data.fingerprint is not 16 hex digits");
    if (get_int(root, "epochs_done", 0, c->epochs, &v))
        return BAD("epochs_done is not 0..train.epochs");
    ck->state.epochs_done = (int)v;
    ck->state.n_order = ck->n_train;
    *n_order = ck->n_train;

    const json_t *hist = json_object_get(root, "history");
    int n = ck->state.epochs_done;
    if (!json_is_array(hist) || json_array_size(hist) != (size_t)n)
        return BAD("history does not hold one entry per epoch done");
    ck->history = ld_zalloc((size_t)n, sizeof *ck->history, "the history", err);
    if (!ck->history) return ld_error_prefix(err, "%s", path);
    static const char *const keys[5] = {"train_loss", "train_acc", "val_loss", "val_acc",
                                        "seconds"};
    for (int e = 0; e < n; e++) {
        const json_t *o = json_array_get(hist, (size_t)e);
        ld_epoch_stats *h = &ck->history[e];
        double *fields[5] = {&h->train_loss, &h->train_acc, &h->val_loss, &h->val_acc,
                             &h->seconds};
        if (!json_is_object(o) || get_int(o, "epoch", e + 1, e + 1, &v))
            return ld_fail(err, LD_ERR_INPUT, "%s: header: history[%d] is not epoch %d", path,
                           e, e + 1);
        h->epoch = e + 1;
        for (int k = 0; k < 5; k++)
            if (get_real(json_object_get(o, keys[k]), 1, fields[k]))
                return ld_fail(err, LD_ERR_INPUT, "%s: header: history[%d].%s is not a number",
                               path, e, keys[k]);
    }
#undef BAD
    return LD_OK;
}

/* The data section: finite values, non-negative second moments and moving variances,
 * the order a permutation of 0..n-1. seen[n] is scratch. */
static ld_status check_data(const ld_model *m, const float *params, const float *am,
                            const float *av, const int *order, int n, uint8_t *seen,
                            const char *path, ld_error *err)
{
    for (size_t i = 0; i < m->n_params; i++)
        if (!isfinite(params[i]) || !isfinite(am[i]) || !isfinite(av[i]) || av[i] < 0)
            return ld_fail(err, LD_ERR_INPUT, "%s: parameter %zu or its Adam moments are not "
                           "finite (or v < 0)", path, i);
    for (int t = 0; t < m->n_tensors; t++) {
        const ld_tensor *tt = &m->tensors[t];
        if (!strstr(tt->name, "running_var")) continue;
        for (size_t i = 0; i < tt->numel; i++)
            if (params[tt->offset + i] < 0)
                return ld_fail(err, LD_ERR_INPUT, "%s: %s has a negative variance", path,
                               tt->name);
    }
    memset(seen, 0, (size_t)n);
    for (int i = 0; i < n; i++) {
        if (order[i] < 0 || order[i] >= n || seen[order[i]]++)
            return ld_fail(err, LD_ERR_INPUT, "%s: the training order is not a permutation of "
                           "0..%d", path, n - 1);
    }
    return LD_OK;
}

void ld_checkpoint_free(ld_checkpoint *ck)
{
    if (!ck) return;
    ld_free(ck->state.order);
    ld_free(ck->history);
    memset(ck, 0, sizeof *ck);
}

/* A kind's header reader: fills its checkpoint (ctx) and *adam_t from the header and
 * says how the data section is laid out: *n_order int32 after the model's three
 * float arrays, then *n_extra floats. */
typedef ld_status (*read_fields)(void *ctx, const json_t *root, const ld_model *m, long *adam_t,
                                 int *n_order, size_t *n_extra, const char *path, ld_error *err);

/* Reads the file into *buf (its *size bytes), filling ctx and *adam_t from the header
 * on the way: the header is read and checked first, and the rest of the file only
 * when its length is exactly what the header and m's size say. Then the checksum. */
static ld_status read_checked(uint8_t **buf, size_t *size, read_fields fields, void *ctx,
                              long *adam_t, int *n_order, size_t *n_extra, const ld_model *m,
                              FILE *f, const char *path, ld_error *err)
{
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0)
        return ld_fail(err, LD_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return ld_fail(err, LD_ERR_INPUT, "%s: not a regular file", path);
    uint8_t head[16];
    if (fread(head, 1, 16, f) < 16 || memcmp(head, MAGIC, 8) != 0)
        return ld_fail(err, LD_ERR_INPUT, "%s: not a lymphdet checkpoint (no LDCKPT1 magic)",
                       path);
    uint64_t hlen = get_u64le(head + 8), fsize = (uint64_t)sb.st_size;
    if (hlen > HEADER_MAX || 16 + hlen + 8 > fsize)
        return ld_fail(err, LD_ERR_INPUT, "%s: header length %" PRIu64 " does not fit the "
                       "%" PRIu64 "-byte file (truncated?)", path, hlen, fsize);
    char *header = ld_alloc((size_t)hlen, 1, "the checkpoint header", err);
    if (!header) return ld_error_prefix(err, "%s", path);
    ld_status st = LD_OK;
    json_t *root = NULL;
    json_error_t jerr;
    if (fread(header, 1, (size_t)hlen, f) != hlen) {
        st = ld_fail(err, LD_ERR_IO, "%s: read failed", path);
    } else if (!(root = json_loadb(header, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr))) {
        st = json_error_code(&jerr) == json_error_out_of_memory
                 ? ld_fail(err, LD_ERR_NOMEM, "%s: out of memory reading the header", path)
                 : ld_fail(err, LD_ERR_INPUT, "%s: header: %s", path, jerr.text);
    } else if (!json_is_object(root)) {
        st = ld_fail(err, LD_ERR_INPUT, "%s: header is not a JSON object", path);
    } else {
        st = fields(ctx, root, m, adam_t, n_order, n_extra, path, err);
    }
    json_decref(root);
    /* n_params is the allocated model's, n_order at most MAX_COUNT and n_extra at most
     * n_params: no wrapping */
    uint64_t want = 16 + hlen + 12 * (uint64_t)m->n_params + 4 * (uint64_t)*n_order +
                    4 * (uint64_t)*n_extra + 8;
    if (!st && want != fsize)
        st = ld_fail(err, LD_ERR_INPUT, "%s: the file has %" PRIu64 " bytes but its header "
                     "says %" PRIu64 " (truncated or padded)", path, fsize, want);
    if (!st && !(*buf = ld_alloc((size_t)fsize, 1, "the checkpoint", err)))
        st = ld_error_prefix(err, "%s", path);
    if (!st) {
        memcpy(*buf, head, 16);
        memcpy(*buf + 16, header, (size_t)hlen);
        size_t rest = (size_t)(fsize - 16 - hlen);
        if (fread(*buf + 16 + hlen, 1, rest, f) != rest)
            st = ld_fail(err, LD_ERR_IO, "%s: read failed (the file shrank?)", path);
        else if (get_u64le(*buf + fsize - 8) != fnv(FNV_OFFSET, *buf, (size_t)fsize - 8))
            st = ld_fail(err, LD_ERR_INPUT, "%s: checksum mismatch: the file is damaged", path);
        if (st) {
            ld_free(*buf);
            *buf = NULL;
        }
    }
    ld_free(header);
    *size = (size_t)fsize;
    return st;
}

/* Reads a checkpoint of either kind: the header through `fields` into ctx, the data
 * section checked (check_data; the extra floats finite), then m's parameters, Adam
 * moments and step count. *order receives the training order (owned by the caller)
 * and extra[n_extra] the extra floats (extra allocated by the caller for at most
 * max_extra). On failure m is unchanged and *order NULL. */
static ld_status load_checkpoint(void *ctx, read_fields fields, ld_model *m, int **order,
                                 float *extra, size_t max_extra, const char *path,
                                 ld_error *err)
{
    *order = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ld_fail(err, LD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t size = 0, np = m->n_params, n_extra = 0;
    long adam_t = 0;
    int n = 0;
    ld_status st = read_checked(&buf, &size, fields, ctx, &adam_t, &n, &n_extra, m, f, path, err);
    fclose(f);
    if (!st && n_extra > max_extra)
        st = ld_fail(err, LD_ERR_INPUT, "%s: header: more extra values than expected", path);
    float *vals = NULL;     /* [3, np]: params, adam_m, adam_v */
    uint8_t *seen = NULL;
    if (!st) {
        vals = ld_alloc(np, 3 * sizeof *vals, "the checkpoint values", err);
        *order = ld_alloc((size_t)n, sizeof **order, "the training order", err);
        seen = ld_alloc((size_t)n, 1, "the training order", err);
        if (!vals || !*order || !seen) {
            st = ld_error_prefix(err, "%s", path);
        } else {
            const uint8_t *p = buf + size - 8 - 4 * n_extra - 4 * (size_t)n - 12 * np;
            floats_in(vals, p, 3 * np);
            p += 12 * np;
            for (int i = 0; i < n; i++) {   /* out of range: -1, which check_data refuses */
                uint32_t o = get_u32le(p + 4 * (size_t)i);
                (*order)[i] = o < (uint32_t)n ? (int)o : -1;
            }
            p += 4 * (size_t)n;
            floats_in(extra, p, n_extra);
            st = check_data(m, vals, vals + np, vals + 2 * np, *order, n, seen, path, err);
            for (size_t i = 0; !st && i < n_extra; i++)
                if (!isfinite(extra[i]))
                    st = ld_fail(err, LD_ERR_INPUT, "%s: the best weights are not finite", path);
        }
    }
    if (!st) {
        memcpy(m->params, vals, np * sizeof *vals);
        memcpy(m->adam_m, vals + np, np * sizeof *vals);
        memcpy(m->adam_v, vals + 2 * np, np * sizeof *vals);
        m->adam_t = adam_t;
    } else {
        ld_free(*order);
        *order = NULL;
    }
    ld_free(seen);
    ld_free(vals);
    ld_free(buf);
    return st;
}

ld_status ld_checkpoint_load(ld_checkpoint *ck, ld_model *m, const char *path, ld_error *err)
{
    memset(ck, 0, sizeof *ck);
    int *order = NULL;
    ld_status st = load_checkpoint(ck, read_paper_fields, m, &order, NULL, 0, path, err);
    if (st) {
        ld_checkpoint_free(ck);
        return st;
    }
    ck->state.order = order;
    return LD_OK;
}

ld_status ld_checkpoint_check(const ld_checkpoint *ck, const ld_train_config *cfg,
                              const ld_patchset *train, const ld_patchset *val,
                              const char *path, ld_error *err)
{
    const ld_train_config *c = &ck->cfg;
    int n_val = val ? val->n : 0;
    if (c->batch != cfg->batch)
        return ld_fail(err, LD_ERR_INPUT, "%s: made with batch size %d, this run has %d", path,
                       c->batch, cfg->batch);
    if (c->adam.lr != cfg->adam.lr || c->adam.beta1 != cfg->adam.beta1 ||
        c->adam.beta2 != cfg->adam.beta2 || c->adam.eps != cfg->adam.eps)
        return ld_fail(err, LD_ERR_INPUT, "%s: made with Adam lr %g (beta1 %g beta2 %g eps %g), "
                       "this run has lr %g (%g %g %g)", path, c->adam.lr, c->adam.beta1,
                       c->adam.beta2, c->adam.eps, cfg->adam.lr, cfg->adam.beta1, cfg->adam.beta2,
                       cfg->adam.eps);
    if (c->seed != cfg->seed)
        return ld_fail(err, LD_ERR_INPUT, "%s: made with another --seed", path);
    if (ck->n_train != train->n || ck->n_val != n_val)
        return ld_fail(err, LD_ERR_INPUT, "%s: made on %d training and %d validation patches, "
                       "this run has %d and %d", path, ck->n_train, ck->n_val, train->n, n_val);
    if (ck->fingerprint != ld_patches_fingerprint(train, val))
        return ld_fail(err, LD_ERR_INPUT, "%s: made on other patches (same counts, other "
                       "pixels or labels): the images, labels or patch options changed", path);
    if (cfg->epochs < ck->state.epochs_done)
        return ld_fail(err, LD_ERR_INPUT, "%s: %d epochs are already done, more than the %d "
                       "asked for", path, ck->state.epochs_done, cfg->epochs);
    return LD_OK;
}

/* ---- the detection preset ------------------------------------------------------- */

#define SETTINGS_MAX (64 * 1024)

static uint64_t fingerprint_frames(uint64_t h, const ld_frameset *fs)
{
    h = fnv_u32(h, (uint32_t)fs->n);
    for (int i = 0; i < fs->n; i++) {
        const ld_image *f = &fs->frames[i];
        h = fnv_u32(h, (uint32_t)f->w);
        h = fnv_u32(h, (uint32_t)f->h);
        h = fnv(h, f->px, (size_t)f->w * (size_t)f->h * (size_t)f->c);
        h = fnv_u32(h, (uint32_t)fs->n_boxes[i]);
        for (int b = 0; b < fs->n_boxes[i]; b++) {
            const ld_box *bx = &fs->boxes[i][b];
            double v[4] = {bx->x, bx->y, bx->w, bx->h};
            h = fnv(h, v, sizeof v);
        }
    }
    return h;
}

uint64_t ld_frames_fingerprint(const ld_frameset *train, const ld_frameset *tune)
{
    uint64_t h = fingerprint_frames(FNV_OFFSET, train);
    return tune ? fingerprint_frames(h, tune) : h;
}

ld_status ld_detcheckpoint_save(const char *path, const ld_model *m, int epochs,
                                const char *settings, uint64_t fingerprint,
                                const ld_dettrain_state *st, const ld_det_epoch *history,
                                ld_error *err)
{
    if (strlen(settings) > SETTINGS_MAX)
        return ld_fail(err, LD_ERR_USAGE, "%s: the settings string is too long", path);
    int bad = 0;
    json_t *root = header_begin(m, "detect", &bad);
    if (root) {
        put(root, "settings", json_string(settings), &bad);
        put(root, "epochs", json_integer(epochs), &bad);
    }
    json_t *data = root ? put_new(root, "data", json_object(), &bad) : NULL;
    if (data) {
        put(data, "n_train", json_integer(st->n_order), &bad);
        put(data, "fingerprint", hex64(fingerprint), &bad);
    }
    if (root) header_position(root, m, st->epochs_done, &st->rng, &bad);
    json_t *best = root ? put_new(root, "best", json_object(), &bad) : NULL;
    if (best) {
        put(best, "epoch", json_integer(st->best_epoch), &bad);
        put(best, "tune_ap50", real_or_null(st->best_epoch > 0 ? st->best_ap50 : NAN), &bad);
        put(best, "tune_ap", real_or_null(st->best_epoch > 0 ? st->best_ap : NAN), &bad);
    }
    json_t *hist = root ? put_new(root, "history", json_array(), &bad) : NULL;
    for (int e = 0; hist && !bad && e < st->epochs_done; e++) {
        const ld_det_epoch *h = &history[e];
        json_t *o = json_object();
        bad |= json_array_append_new(hist, o) != 0;   /* NULL o: -1 */
        if (bad) break;
        put(o, "epoch", json_integer(h->epoch), &bad);
        put(o, "loss", real_or_null(h->loss), &bad);
        put(o, "obj_loss", real_or_null(h->obj_loss), &bad);
        put(o, "box_loss", real_or_null(h->box_loss), &bad);
        put(o, "pos_per_crop", real_or_null(h->pos_per_crop), &bad);
        put(o, "tune_ap50", real_or_null(h->val_ap50), &bad);
        put(o, "tune_ap", real_or_null(h->val_ap), &bad);
        put(o, "seconds", real_or_null(h->seconds), &bad);
    }
    if (bad) {
        json_decref(root);
        return ld_fail(err, LD_ERR_NOMEM, "%s: out of memory building the header", path);
    }
    /* no best epoch yet: its weights are the current ones, never read */
    const float *bw = st->best_epoch > 0 ? st->best : m->params;
    return write_checkpoint(path, root, m, st->order, (size_t)st->n_order, bw, m->n_params, err);
}

/* a detection run's header into ck (history and settings allocated here) */
static ld_status read_detect_fields(void *ctx, const json_t *root, const ld_model *m,
                                    long *adam_t, int *n_order, size_t *n_extra,
                                    const char *path, ld_error *err)
{
    ld_detcheckpoint *ck = ctx;
    long long v;
    *n_extra = m->n_params;
    if (read_common(root, m, "detect", adam_t, &ck->state.rng, path, err)) return err->status;
#define BAD(what) ld_fail(err, LD_ERR_INPUT, "%s: header: %s", path, what)
    const char *settings = json_string_value(json_object_get(root, "settings"));
    if (!settings || strlen(settings) > SETTINGS_MAX) return BAD("settings is not a string");
    if (get_int(root, "epochs", 1, MAX_EPOCHS, &v)) return BAD("epochs is not 1..1000000");
    ck->epochs = (int)v;
    const json_t *data = json_object_get(root, "data"), *best = json_object_get(root, "best");
    if (!json_is_object(data) || !json_is_object(best)) return BAD("data or best is missing");
    if (get_int(data, "n_train", 1, MAX_COUNT, &v)) return BAD("data.n_train is not a count");
    ck->state.n_order = (int)v;
    *n_order = ck->state.n_order;
    if (get_hex64(json_object_get(data, "fingerprint"), &ck->fingerprint))
        return BAD("data.fingerprint is not 16 hex digits");
    if (get_int(root, "epochs_done", 0, ck->epochs, &v)) return BAD("epochs_done is not 0..epochs");
    ck->state.epochs_done = (int)v;
    if (get_int(best, "epoch", 0, ck->state.epochs_done, &v))
        return BAD("best.epoch is not 0..epochs_done");
    ck->state.best_epoch = (int)v;
    if (get_real(json_object_get(best, "tune_ap50"), 1, &ck->state.best_ap50) ||
        get_real(json_object_get(best, "tune_ap"), 1, &ck->state.best_ap) ||
        (ck->state.best_epoch > 0 && (isnan(ck->state.best_ap50) || isnan(ck->state.best_ap))))
        return BAD("best's tuning scores are not numbers");

    const json_t *hist = json_object_get(root, "history");
    int n = ck->state.epochs_done;
    if (!json_is_array(hist) || json_array_size(hist) != (size_t)n)
        return BAD("history does not hold one entry per epoch done");
    ck->history = ld_zalloc((size_t)n, sizeof *ck->history, "the history", err);
    size_t slen = strlen(settings);
    ck->settings = ck->history ? ld_alloc(slen + 1, 1, "the settings", err) : NULL;
    if (!ck->settings) return ld_error_prefix(err, "%s", path);
    memcpy(ck->settings, settings, slen + 1);
    static const char *const keys[7] = {"loss", "obj_loss", "box_loss", "pos_per_crop",
                                        "tune_ap50", "tune_ap", "seconds"};
    for (int e = 0; e < n; e++) {
        const json_t *o = json_array_get(hist, (size_t)e);
        ld_det_epoch *h = &ck->history[e];
        double *fields[7] = {&h->loss, &h->obj_loss, &h->box_loss, &h->pos_per_crop,
                             &h->val_ap50, &h->val_ap, &h->seconds};
        if (!json_is_object(o) || get_int(o, "epoch", e + 1, e + 1, &v))
            return ld_fail(err, LD_ERR_INPUT, "%s: header: history[%d] is not epoch %d", path,
                           e, e + 1);
        h->epoch = e + 1;
        for (int k = 0; k < 7; k++)
            if (get_real(json_object_get(o, keys[k]), 1, fields[k]))
                return ld_fail(err, LD_ERR_INPUT, "%s: header: history[%d].%s is not a number",
                               path, e, keys[k]);
    }
#undef BAD
    return LD_OK;
}

void ld_detcheckpoint_free(ld_detcheckpoint *ck)
{
    if (!ck) return;
    ld_free(ck->state.order);
    ld_free(ck->state.best);
    ld_free(ck->history);
    ld_free(ck->settings);
    memset(ck, 0, sizeof *ck);
}

ld_status ld_detcheckpoint_load(ld_detcheckpoint *ck, ld_model *m, const char *path,
                                ld_error *err)
{
    memset(ck, 0, sizeof *ck);
    float *best = ld_alloc(m->n_params, sizeof *best, "the best weights", err);
    if (!best) return ld_error_prefix(err, "%s", path);
    int *order = NULL;
    ld_status st = load_checkpoint(ck, read_detect_fields, m, &order, best, m->n_params, path,
                                   err);
    ck->state.order = order;
    ck->state.best = best;
    if (st) ld_detcheckpoint_free(ck);
    return st;
}

ld_status ld_detcheckpoint_check(const ld_detcheckpoint *ck, int epochs, const char *settings,
                                 uint64_t fingerprint, const char *path, ld_error *err)
{
    if (strcmp(ck->settings, settings) != 0) {
        /* name the first item ("; "-separated) that differs: "batch 8" against "batch 4" */
        const char *x = ck->settings, *y = settings;
        for (;;) {
            size_t nx = strcspn(x, ";"), ny = strcspn(y, ";");
            if (nx != ny || memcmp(x, y, nx) != 0 || !x[nx] || !y[ny])
                return ld_fail(err, LD_ERR_INPUT, "%s: made with other options (it has \"%.*s\", "
                               "this run \"%.*s\"): resume with the options it was made with",
                               path, (int)(nx > 80 ? 80 : nx), x, (int)(ny > 80 ? 80 : ny), y);
            x += nx + 1 + (x[nx + 1] == ' ');
            y += ny + 1 + (y[ny + 1] == ' ');
        }
    }
    if (ck->fingerprint != fingerprint)
        return ld_fail(err, LD_ERR_INPUT, "%s: made on other frames: the images, labels or "
                       "split changed", path);
    if (epochs < ck->state.epochs_done)
        return ld_fail(err, LD_ERR_INPUT, "%s: %d epochs are already done, more than the %d "
                       "asked for", path, ck->state.epochs_done, epochs);
    return LD_OK;
}
