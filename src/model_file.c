/* model_file.c — the model file: safetensors with PyTorch state-dict names (SPEC §5).
 *
 * Layout (the safetensors format, huggingface/safetensors):
 *   8 bytes   N, unsigned little-endian
 *   N bytes   JSON header, padded with spaces to a multiple of 8
 *   data      little-endian float32 tensors, contiguous from offset 0
 * The header maps each tensor name to {"dtype":"F32","shape":[...],"data_offsets":[b,e]}
 * (byte offsets into the data section, b inclusive, e exclusive) and "__metadata__" to
 * an object of strings. Ours holds "format":"pt" (so safetensors.torch accepts it), the
 * architecture ("preset", "input_size", "in_channels", "filters" as "4,4,8", "dropout",
 * "bn_epsilon", "bn_momentum", and "box_head" ("4") and "anchor" only for a network with
 * the box head of the detection preset), "lymphdet_version", then the model's own meta pairs.
 *
 * Saving writes the tensors in state-dict order with jansson's compact output and the
 * insertion order kept, so one model always gives the same bytes.
 *
 * Loading trusts nothing it has not checked: the header length against the file size,
 * the JSON, every metadata value (the architecture is rebuilt from it and validated with
 * sane bounds), every tensor's name, dtype, shape and byte range (contiguous from 0, no
 * overlap, no gap, ending exactly at the end of the file), and finally every value
 * (finite; moving variances not negative). Only then is the model usable. On a loaded
 * model "lymphdet_version" (the version that wrote the file) is kept in the meta for
 * `lymphdet info`; a later save replaces it with this program's version.
 *
 * Floats are converted to and from little-endian byte by byte, so a big-endian host
 * reads and writes the same files. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jansson.h>
#include "alloc.h"
#include "lymphdet/model.h"
#include "lymphdet/outfile.h"

#define HEADER_MAX (100u * 1024 * 1024)     /* larger headers are rejected unread */
/* per-sample activation bound: input_size^2 * sum(filters) floats (64 MB); the paper's
 * network needs 160 000, a 1024-pixel input with 16 filters in all fits */
#define ACTS_MAX ((uint64_t)1 << 24)

/* metadata keys the file format owns; a model meta pair with one of these names is
 * not written (the value is always derived from the architecture or the program) */
static const char *const reserved_keys[] = {
    "format", "preset", "input_size", "in_channels", "filters",
    "dropout", "bn_epsilon", "bn_momentum", "lymphdet_version", "box_head", "anchor",
};

static int is_reserved(const char *key)
{
    for (size_t i = 0; i < sizeof reserved_keys / sizeof reserved_keys[0]; i++)
        if (strcmp(key, reserved_keys[i]) == 0) return 1;
    return 0;
}

/* On load, the architecture keys become m->arch; the writer's version stays visible
 * in the meta (a later save rewrites it with this program's version). */
static int kept_in_meta(const char *key)
{
    return !is_reserved(key) || strcmp(key, "lymphdet_version") == 0;
}

/* ---- little-endian helpers ---- */

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

/* out[4 n] <- x[n] as little-endian float32 */
static void f32_to_le(uint8_t *out, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        for (int k = 0; k < 4; k++) out[4 * i + k] = (uint8_t)(u >> (8 * k));
    }
}

/* x[n] <- in[4 n] read as little-endian float32 */
static void le_to_f32(float *x, const uint8_t *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)in[4 * i] | (uint32_t)in[4 * i + 1] << 8 |
                     (uint32_t)in[4 * i + 2] << 16 | (uint32_t)in[4 * i + 3] << 24;
        memcpy(&x[i], &u, 4);
    }
}

/* ---- saving ---- */

/* Shortest "%g" text that reads back as exactly f (0.001, not 0.00100000005). */
static void format_float(char *buf, size_t size, float f)
{
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, size, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) return;
    }
}

/* RFC 3629 UTF-8 (no overlongs, no surrogates): jansson refuses anything else, and the
 * difference between "invalid text" and "out of memory" matters to the user. */
static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p++;
        int extra;
        uint32_t cp;
        if (c < 0x80) continue;
        if (c >= 0xc2 && c <= 0xdf) { extra = 1; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { extra = 2; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { extra = 3; cp = c & 0x07; }
        else return 0;
        for (int k = 0; k < extra; k++, p++) {
            if ((*p & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (*p & 0x3f);
        }
        if ((extra == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (extra == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
    }
    return 1;
}

/* obj[key] = string value; -1 when jansson cannot allocate */
static int set_string(json_t *obj, const char *key, const char *value)
{
    return json_object_set_new(obj, key, json_string(value));
}

static ld_status build_metadata(json_t *meta, const ld_model *m, const char *path, ld_error *err)
{
    const ld_arch *a = &m->arch;
    char num[32], filters[LD_MAX_BLOCKS * 12] = "";
    for (int k = 0; k < a->n_blocks; k++) {
        size_t len = strlen(filters);
        snprintf(filters + len, sizeof filters - len, k ? ",%d" : "%d", a->filters[k]);
    }
    int bad = set_string(meta, "format", "pt") | set_string(meta, "preset", a->preset);
    snprintf(num, sizeof num, "%d", a->input_size);
    bad |= set_string(meta, "input_size", num);
    snprintf(num, sizeof num, "%d", a->in_channels);
    bad |= set_string(meta, "in_channels", num);
    bad |= set_string(meta, "filters", filters);
    format_float(num, sizeof num, a->dropout);
    bad |= set_string(meta, "dropout", num);
    format_float(num, sizeof num, a->bn_eps);
    bad |= set_string(meta, "bn_epsilon", num);
    format_float(num, sizeof num, a->bn_momentum);
    bad |= set_string(meta, "bn_momentum", num);
    if (a->box_head) {   /* absent means none: paper files keep their exact bytes */
        snprintf(num, sizeof num, "%d", a->box_head);
        bad |= set_string(meta, "box_head", num);
        snprintf(num, sizeof num, "%d", a->anchor);
        bad |= set_string(meta, "anchor", num);
    }
    bad |= set_string(meta, "lymphdet_version", LD_VERSION);
    if (bad) return ld_fail(err, LD_ERR_NOMEM, "%s: out of memory building the header", path);
    for (int i = 0; i < m->n_meta; i++) {
        if (is_reserved(m->meta_key[i])) continue;
        if (!utf8_valid(m->meta_key[i]) || !utf8_valid(m->meta_value[i]))
            return ld_fail(err, LD_ERR_INPUT, "%s: metadata '%s' is not valid UTF-8", path,
                           m->meta_key[i]);
        if (set_string(meta, m->meta_key[i], m->meta_value[i]))
            return ld_fail(err, LD_ERR_NOMEM, "%s: out of memory building the header", path);
    }
    return LD_OK;
}

static ld_status build_header(json_t *root, const ld_model *m, const char *path, ld_error *err)
{
    json_t *meta = json_object();
    if (!meta || json_object_set_new(root, "__metadata__", meta))
        return ld_fail(err, LD_ERR_NOMEM, "%s: out of memory building the header", path);
    ld_status st = build_metadata(meta, m, path, err);
    if (st) return st;
    uint64_t begin = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const ld_tensor *t = &m->tensors[i];
        uint64_t end = begin + 4 * (uint64_t)t->numel;
        json_t *shape = json_array(), *offsets = json_array(), *entry = json_object();
        int bad = !shape || !offsets || !entry;
        for (int d = 0; !bad && d < t->ndim; d++)
            bad |= json_array_append_new(shape, json_integer(t->shape[d]));
        if (!bad)
            bad = json_array_append_new(offsets, json_integer((json_int_t)begin)) |
                  json_array_append_new(offsets, json_integer((json_int_t)end)) |
                  set_string(entry, "dtype", "F32") |
                  json_object_set(entry, "shape", shape) |
                  json_object_set(entry, "data_offsets", offsets) |
                  json_object_set(root, t->name, entry);
        json_decref(shape);
        json_decref(offsets);
        json_decref(entry);
        if (bad) return ld_fail(err, LD_ERR_NOMEM, "%s: out of memory building the header", path);
        begin = end;
    }
    return LD_OK;
}

ld_status ld_model_save(const ld_model *m, const char *path, ld_error *err)
{
    const size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER;
    ld_error local;
    if (!err) err = &local;   /* the messages below are built in steps */
    json_t *root = json_object();
    if (!root) return ld_fail(err, LD_ERR_NOMEM, "%s: out of memory building the header", path);
    ld_status st = build_header(root, m, path, err);
    size_t len = st ? 0 : json_dumpb(root, NULL, 0, flags);
    if (!st && len == 0)
        st = ld_fail(err, LD_ERR_NOMEM, "%s: out of memory writing the header", path);
    size_t padded = (len + 7) / 8 * 8;
    char *header = st ? NULL : ld_alloc(padded, 1, "the model file header", err);
    if (!st && !header) st = ld_error_prefix(err, "%s", path);
    if (!st && json_dumpb(root, header, len, flags) != len)
        st = ld_fail(err, LD_ERR_NOMEM, "%s: out of memory writing the header", path);
    json_decref(root);
    if (st) {
        ld_free(header);
        return st;
    }
    memset(header + len, ' ', padded - len);

    ld_outfile out;
    st = ld_out_open(&out, path, err);
    if (st) {
        ld_free(header);
        return st;
    }
    uint8_t len8[8], buf[4 * 1024];
    put_u64le(len8, padded);
    fwrite(len8, 1, 8, out.fp);
    fwrite(header, 1, padded, out.fp);
    ld_free(header);
    for (int i = 0; i < m->n_tensors; i++) {
        const ld_tensor *t = &m->tensors[i];
        for (size_t done = 0; done < t->numel;) {
            size_t n = t->numel - done < sizeof buf / 4 ? t->numel - done : sizeof buf / 4;
            f32_to_le(buf, m->params + t->offset + done, n);
            fwrite(buf, 4, n, out.fp);
            done += n;
        }
    }
    return ld_out_commit(&out, err);   /* checks every fwrite above through ferror */
}

/* ---- loading ---- */

typedef struct {
    const char *name;       /* points into the parsed JSON */
    int ndim;
    long long shape[4];
    uint64_t begin, end;    /* byte range in the data section */
    const ld_tensor *t;     /* the model's tensor of that name, once matched */
} file_tensor;

static const char *metadata_string(const json_t *meta, const char *key)
{
    return json_string_value(json_object_get(meta, key));
}

/* Decimal text only: strtol alone would also take " 4" and "+4". */
static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    if (*s < '0' || *s > '9') return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_float(const char *s, float *out)
{
    char *end;
    if ((*s < '0' || *s > '9') && *s != '.') return -1;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* "4,4,8" -> filters, n_blocks */
static int parse_filters(const char *s, ld_arch *a)
{
    a->n_blocks = 0;
    for (;;) {
        char *end;
        if (*s < '0' || *s > '9') return -1;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || end == s || v < 1 || v > 1024 || a->n_blocks == LD_MAX_BLOCKS) return -1;
        a->filters[a->n_blocks++] = (int)v;
        if (*end == '\0') return 0;
        if (*end != ',') return -1;
        s = end + 1;
    }
}

/* The architecture from __metadata__, every number inside sane bounds. */
static ld_status arch_from_metadata(ld_arch *a, const json_t *meta, const char *path,
                                    ld_error *err)
{
    const char *key, *s;
    const json_t *value;
    json_object_foreach((json_t *)meta, key, value)
        if (!json_is_string(value))
            return ld_fail(err, LD_ERR_INPUT, "%s: metadata '%s' is not a string", path, key);
    s = metadata_string(meta, "format");
    if (s && strcmp(s, "pt") != 0)
        return ld_fail(err, LD_ERR_INPUT,
                       "%s: metadata format '%s' is not 'pt' (PyTorch layout expected)", path, s);
    static const char *const needed[] = {"preset", "input_size", "in_channels", "filters",
                                         "dropout", "bn_epsilon", "bn_momentum"};
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
        if (!metadata_string(meta, needed[i]))
            return ld_fail(err, LD_ERR_INPUT, "%s: metadata '%s' is missing", path, needed[i]);

    memset(a, 0, sizeof *a);
    s = metadata_string(meta, "preset");
    size_t n = strlen(s);
    int ok = n > 0 && n < sizeof a->preset;
    for (size_t i = 0; ok && i < n; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
             s[i] == '-';
    if (!ok)
        return ld_fail(err, LD_ERR_INPUT,
                       "%s: metadata preset '%.40s' is not 1-15 characters of a-z 0-9 _ -",
                       path, s);
    memcpy(a->preset, s, n + 1);
#define BAD(key, what) ld_fail(err, LD_ERR_INPUT, "%s: metadata %s '%.40s' is not %s", path, \
                               key, metadata_string(meta, key), what)
    if (parse_int(metadata_string(meta, "input_size"), 3, 4096, &a->input_size))
        return BAD("input_size", "an integer in 3..4096");
    if (parse_int(metadata_string(meta, "in_channels"), 1, 16, &a->in_channels))
        return BAD("in_channels", "an integer in 1..16");
    if (parse_filters(metadata_string(meta, "filters"), a))
        return BAD("filters", "a list like 4,4,8 (1-6 counts in 1..1024)");
    if (parse_float(metadata_string(meta, "dropout"), &a->dropout) ||
        a->dropout < 0 || a->dropout >= 1)
        return BAD("dropout", "a rate in [0, 1)");
    if (parse_float(metadata_string(meta, "bn_epsilon"), &a->bn_eps) ||
        a->bn_eps <= 0 || a->bn_eps > 1)
        return BAD("bn_epsilon", "a number in (0, 1]");
    if (parse_float(metadata_string(meta, "bn_momentum"), &a->bn_momentum) ||
        a->bn_momentum < 0 || a->bn_momentum > 1)
        return BAD("bn_momentum", "a number in [0, 1]");
    if (metadata_string(meta, "box_head") &&
        (parse_int(metadata_string(meta, "box_head"), 0, 4, &a->box_head) ||
         (a->box_head != 0 && a->box_head != 4)))
        return BAD("box_head", "0 or 4");
    if (metadata_string(meta, "anchor") &&
        parse_int(metadata_string(meta, "anchor"), 0, 16384, &a->anchor))
        return BAD("anchor", "an integer in 0..16384");
#undef BAD
    uint64_t acts = 0;
    for (int k = 0; k < a->n_blocks; k++)
        acts += (uint64_t)a->input_size * (uint64_t)a->input_size * (uint64_t)a->filters[k];
    if (acts > ACTS_MAX)
        return ld_fail(err, LD_ERR_INPUT,
                       "%s: architecture too large (input %d with %s filters)", path,
                       a->input_size, metadata_string(meta, "filters"));
    if (ld_arch_validate(a, err)) return ld_error_prefix(err, "%s", path);
    return LD_OK;
}

/* One header entry: {"dtype":"F32","shape":[...],"data_offsets":[b,e]}. */
static ld_status parse_entry(file_tensor *ft, const char *name, const json_t *v,
                             const char *path, ld_error *err)
{
    ft->name = name;
    if (!json_is_object(v))
        return ld_fail(err, LD_ERR_INPUT, "%s: tensor %s: entry is not an object", path, name);
    const char *dtype = json_string_value(json_object_get(v, "dtype"));
    if (!dtype)
        return ld_fail(err, LD_ERR_INPUT, "%s: tensor %s: dtype is missing or not a string",
                       path, name);
    if (strcmp(dtype, "F32") != 0)
        return ld_fail(err, LD_ERR_INPUT, "%s: tensor %s: dtype %.20s is not supported (F32 only)",
                       path, name, dtype);
    const json_t *shape = json_object_get(v, "shape");
    size_t nd = json_array_size(shape);
    if (!json_is_array(shape) || nd > 4)
        return ld_fail(err, LD_ERR_INPUT,
                       "%s: tensor %s: shape is not a list of at most 4 sizes", path, name);
    ft->ndim = (int)nd;
    for (size_t d = 0; d < nd; d++) {
        const json_t *s = json_array_get(shape, d);
        if (!json_is_integer(s) || json_integer_value(s) < 0 ||
            json_integer_value(s) > (1LL << 31))
            return ld_fail(err, LD_ERR_INPUT, "%s: tensor %s: shape has an invalid size", path,
                           name);
        ft->shape[d] = json_integer_value(s);
    }
    const json_t *off = json_object_get(v, "data_offsets");
    const json_t *b = json_array_get(off, 0), *e = json_array_get(off, 1);
    if (json_array_size(off) != 2 || !json_is_integer(b) || !json_is_integer(e) ||
        json_integer_value(b) < 0 || json_integer_value(e) < json_integer_value(b))
        return ld_fail(err, LD_ERR_INPUT,
                       "%s: tensor %s: data_offsets is not [begin, end] with 0 <= begin <= end",
                       path, name);
    ft->begin = (uint64_t)json_integer_value(b);
    ft->end = (uint64_t)json_integer_value(e);
    uint64_t bytes = 4;
    for (int d = 0; d < ft->ndim; d++) {
        /* no tensor can exceed the 2^62-byte file this would take: stop before wrapping */
        if (ft->shape[d] && bytes > ((uint64_t)1 << 62) / (uint64_t)ft->shape[d])
            return ld_fail(err, LD_ERR_INPUT, "%s: tensor %s: shape is impossibly large", path,
                           name);
        bytes *= (uint64_t)ft->shape[d];
    }
    if (ft->end - ft->begin != bytes)
        return ld_fail(err, LD_ERR_INPUT,
                       "%s: tensor %s: data_offsets span %llu bytes but its shape needs %llu",
                       path, name, (unsigned long long)(ft->end - ft->begin),
                       (unsigned long long)bytes);
    return LD_OK;
}

static int by_begin(const void *pa, const void *pb)
{
    const file_tensor *a = pa, *b = pb;
    return a->begin < b->begin ? -1 : a->begin > b->begin;
}

/* The byte ranges, sorted, must tile [0, data_len) exactly. */
static ld_status check_offsets(file_tensor *ft, int n, uint64_t data_len, const char *path,
                               ld_error *err)
{
    qsort(ft, (size_t)n, sizeof *ft, by_begin);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        if (ft[i].begin < at)
            return ld_fail(err, LD_ERR_INPUT, "%s: tensor %s overlaps tensor %s in the data",
                           path, ft[i].name, ft[i - 1].name);
        if (ft[i].begin > at)
            return ld_fail(err, LD_ERR_INPUT,
                           "%s: tensor %s: data_offsets leave a gap at byte %llu", path,
                           ft[i].name, (unsigned long long)at);
        at = ft[i].end;
    }
    if (at > data_len)
        return ld_fail(err, LD_ERR_INPUT,
                       "%s: truncated: tensors need %llu data bytes, the file has %llu", path,
                       (unsigned long long)at, (unsigned long long)data_len);
    if (at < data_len)
        return ld_fail(err, LD_ERR_INPUT,
                       "%s: %llu trailing bytes after the last tensor", path,
                       (unsigned long long)(data_len - at));
    return LD_OK;
}

static void shape_text(char *buf, size_t size, int ndim, const long long *shape)
{
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && len < size; d++)
        len += (size_t)snprintf(buf + len, size - len, d ? ",%lld" : "%lld", shape[d]);
    if (len < size) snprintf(buf + len, size - len, "]");
}

/* Every file tensor is one of the model's, with its shape; none is missing. */
static ld_status match_tensors(file_tensor *ft, int n, const ld_model *m, const char *path,
                               ld_error *err)
{
    for (int i = 0; i < n; i++) {
        const ld_tensor *t = ld_model_tensor(m, ft[i].name);
        if (!t)
            return ld_fail(err, LD_ERR_INPUT, "%s: unknown tensor '%.60s' for the %s architecture",
                           path, ft[i].name, m->arch.preset);
        int same = ft[i].ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = ft[i].shape[d] == t->shape[d];
        if (!same) {
            char got[96], want[96];
            long long w[4];
            for (int d = 0; d < t->ndim; d++) w[d] = t->shape[d];
            shape_text(got, sizeof got, ft[i].ndim, ft[i].shape);
            shape_text(want, sizeof want, t->ndim, w);
            return ld_fail(err, LD_ERR_INPUT, "%s: tensor %s has shape %s, expected %s", path,
                           t->name, got, want);
        }
        ft[i].t = t;
    }
    for (int k = 0; k < m->n_tensors; k++) {
        int found = 0;
        for (int i = 0; i < n && !found; i++) found = ft[i].t == &m->tensors[k];
        if (!found)
            return ld_fail(err, LD_ERR_INPUT, "%s: tensor %s is missing", path,
                           m->tensors[k].name);
    }
    return LD_OK;
}

/* Reads the data section (ft sorted by begin, tiling it) into m->params, then checks
 * every value. */
static ld_status read_values(ld_model *m, FILE *f, const file_tensor *ft, int n,
                             const char *path, ld_error *err)
{
    uint8_t buf[4 * 1024];
    for (int i = 0; i < n; i++) {
        const ld_tensor *t = ft[i].t;
        for (size_t done = 0; done < t->numel;) {
            size_t k = t->numel - done < sizeof buf / 4 ? t->numel - done : sizeof buf / 4;
            if (fread(buf, 4, k, f) != k)
                return ld_fail(err, LD_ERR_IO, "%s: read failed: %s", path,
                               ferror(f) ? strerror(errno) : "file shrank while reading");
            le_to_f32(m->params + t->offset + done, buf, k);
            done += k;
        }
        const float *x = m->params + t->offset;
        size_t len = strlen(t->name), suffix = strlen(".running_var");
        int is_var = len > suffix && strcmp(t->name + len - suffix, ".running_var") == 0;
        for (size_t j = 0; j < t->numel; j++) {
            if (!isfinite(x[j]))
                return ld_fail(err, LD_ERR_INPUT, "%s: tensor %s: element %zu is %s", path,
                               t->name, j, isnan(x[j]) ? "NaN" : "infinite");
            if (is_var && x[j] < 0)
                return ld_fail(err, LD_ERR_INPUT,
                               "%s: tensor %s: element %zu is negative (%g): a variance", path,
                               t->name, j, (double)x[j]);
        }
    }
    return LD_OK;
}

/* Everything after the header length has been read: parse, validate, build, fill. */
static ld_status load_body(ld_model *m, FILE *f, const char *header, uint64_t hlen,
                           uint64_t data_len, int batch_cap, const char *path, ld_error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(header, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ld_fail(err, LD_ERR_INPUT, "%s: header is not valid JSON (line %d, column %d: %s)",
                       path, jerr.line, jerr.column, jerr.text);
    ld_status st = LD_OK;
    file_tensor ft[LD_MAX_TENSORS];
    int n = 0;
    const json_t *meta = json_object_get(root, "__metadata__");
    ld_arch arch;
    if (!json_is_object(root))
        st = ld_fail(err, LD_ERR_INPUT, "%s: header is not a JSON object", path);
    else if (!meta)
        st = ld_fail(err, LD_ERR_INPUT, "%s: __metadata__ is missing (no architecture)", path);
    else if (!json_is_object(meta))
        st = ld_fail(err, LD_ERR_INPUT, "%s: __metadata__ is not an object", path);
    else
        st = arch_from_metadata(&arch, meta, path, err);

    const char *key;
    json_t *value;
    if (!st) {
        json_object_foreach(root, key, value) {
            if (strcmp(key, "__metadata__") == 0) continue;
            if (n == LD_MAX_TENSORS) {
                st = ld_fail(err, LD_ERR_INPUT, "%s: more than %d tensors", path, LD_MAX_TENSORS);
                break;
            }
            memset(&ft[n], 0, sizeof ft[n]);
            if ((st = parse_entry(&ft[n++], key, value, path, err))) break;
        }
    }
    if (!st) st = check_offsets(ft, n, data_len, path, err);
    if (!st) {
        /* on failure ld_model_init leaves nothing allocated, and ld_model_free of
         * what it built is always safe */
        st = ld_model_init(m, &arch, batch_cap, err);
        if (st) ld_error_prefix(err, "%s", path);
        if (!st) st = match_tensors(ft, n, m, path, err);
        if (!st) st = read_values(m, f, ft, n, path, err);
        json_object_foreach((json_t *)meta, key, value) {
            if (st) break;
            if (!kept_in_meta(key)) continue;
            if (m->n_meta == LD_MAX_META)
                st = ld_fail(err, LD_ERR_INPUT, "%s: more than %d metadata entries", path,
                             LD_MAX_META);
            else if ((st = ld_model_meta_set(m, key, json_string_value(value), err)))
                ld_error_prefix(err, "%s", path);
        }
        if (st) ld_model_free(m);
    }
    json_decref(root);
    return st;
}

/* The 8-byte header length, checked against the file's size, and the header text
 * (*header is ld_alloc'd; *data_len is what follows the header). */
static ld_status read_header(char **header, uint64_t *hlen, uint64_t *data_len, FILE *f,
                             const char *path, ld_error *err)
{
    struct stat sb;
    uint8_t len8[8];
    if (fstat(fileno(f), &sb) != 0)
        return ld_fail(err, LD_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return ld_fail(err, LD_ERR_INPUT, "%s: not a regular file", path);
    if (sb.st_size < 8)
        return ld_fail(err, LD_ERR_INPUT,
                       "%s: truncated: %lld bytes, less than the 8-byte header length", path,
                       (long long)sb.st_size);
    if (fread(len8, 1, 8, f) != 8) return ld_fail(err, LD_ERR_IO, "%s: read failed", path);
    uint64_t size = (uint64_t)sb.st_size, n = get_u64le(len8);
    if (n == 0) return ld_fail(err, LD_ERR_INPUT, "%s: header length is 0", path);
    if (n > HEADER_MAX)
        return ld_fail(err, LD_ERR_INPUT, "%s: header length %llu exceeds the %u-byte limit",
                       path, (unsigned long long)n, HEADER_MAX);
    if (n > size - 8)
        return ld_fail(err, LD_ERR_INPUT,
                       "%s: truncated: header length %llu runs past the end of the file "
                       "(%llu bytes)", path, (unsigned long long)n, (unsigned long long)size);
    char *h = ld_alloc((size_t)n, 1, "the model file header", err);
    if (!h) return ld_error_prefix(err, "%s", path);
    if (fread(h, 1, (size_t)n, f) != n) {
        ld_free(h);
        return ld_fail(err, LD_ERR_IO, "%s: read failed", path);
    }
    *header = h;
    *hlen = n;
    *data_len = size - 8 - n;
    return LD_OK;
}

ld_status ld_model_load(ld_model *m, const char *path, int batch_cap, ld_error *err)
{
    ld_error local;
    if (!err) err = &local;   /* the messages below are built in steps */
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f) return ld_fail(err, LD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *header = NULL;
    uint64_t hlen = 0, data_len = 0;
    ld_status st = read_header(&header, &hlen, &data_len, f, path, err);
    if (!st) st = load_body(m, f, header, hlen, data_len, batch_cap, path, err);
    ld_free(header);
    fclose(f);
    return st;
}
