/* test_model_file.c — the safetensors model file: exact layout, round trips, the committed
 * fixtures (format drift; a file written by PyTorch-side code), every kind of malformed
 * file, and allocation failures. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "alloc.h"
#include "lymphdet/model.h"
#include "test.h"

#define FIXTURE_SEED1 "tests/fixtures/models/paper_seed1.safetensors"
#define FIXTURE_TORCH "tests/fixtures/models/paper_torch.safetensors"

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

static void write_all(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(buf, 1, len, f);
    fclose(f);
}

/* A safetensors file from a header text (padded here) and a data section. */
static void write_file(const char *path, const char *header, const unsigned char *data,
                       size_t data_len)
{
    size_t hlen = strlen(header), padded = (hlen + 7) / 8 * 8;
    unsigned char *buf = malloc(8 + padded + data_len);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, header, hlen);
    memset(buf + 8 + hlen, ' ', padded - hlen);
    memcpy(buf + 8 + padded, data, data_len);
    write_all(path, buf, 8 + padded + data_len);
    free(buf);
}

static uint64_t le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)b[i] << (8 * i);
    return v;
}

/* The header text of a file without its padding (malloc'd), and where the data starts. */
static char *header_of(const unsigned char *file, size_t len, size_t *data_at)
{
    if (len < 8) return NULL;
    size_t n = (size_t)le64(file);
    if (n > len - 8) return NULL;
    char *h = malloc(n + 1);
    memcpy(h, file + 8, n);
    while (n > 0 && h[n - 1] == ' ') n--;
    h[n] = '\0';
    *data_at = 8 + (size_t)le64(file);
    return h;
}

/* s with the first occurrence of old replaced (malloc'd); NULL if old is absent */
static char *replace(const char *s, const char *old, const char *new_text)
{
    const char *at = strstr(s, old);
    if (!at) return NULL;
    size_t pre = (size_t)(at - s), ol = strlen(old), nl = strlen(new_text);
    char *r = malloc(strlen(s) - ol + nl + 1);
    memcpy(r, s, pre);
    memcpy(r + pre, new_text, nl);
    strcpy(r + pre + nl, at + ol);
    return r;
}

static int bits_equal(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* The paper's network with seed-1 Keras weights and BN statistics that are not the
 * defaults (so a swapped or dropped tensor shows). */
static ld_status make_model(ld_model *m, int perturb_bn)
{
    ld_arch a;
    ld_error err = {0};
    ld_arch_paper(&a);
    ld_status st = ld_model_init(m, &a, 4, &err);
    if (st) return st;
    ld_model_init_weights(m, 1);
    if (perturb_bn)
        for (int k = 0; k < 3; k++)
            for (int f = 0; f < a.filters[k]; f++) {
                m->p[k].bn_gamma[f] = 1.0f + 0.125f * (float)f;
                m->p[k].bn_beta[f] = -0.0625f * (float)(f + k);
                m->p[k].bn_mean[f] = 0.01f * (float)(f + 1) * (float)(k + 1);
                m->p[k].bn_var[f] = 0.5f + 0.25f * (float)f;
            }
    return ld_model_meta_set(m, "seed", "1", &err);
}

TEST_SUITE(model_file_roundtrip)
{
    const char *dir = test_tmpdir("modelfile");
    char a_path[512], b_path[512], c_path[512];
    snprintf(a_path, sizeof a_path, "%s/a.safetensors", dir);
    snprintf(b_path, sizeof b_path, "%s/b.safetensors", dir);
    snprintf(c_path, sizeof c_path, "%s/c.safetensors", dir);
    ld_model m, m2;
    ld_error err = {0};
    CHECK_INT(make_model(&m, 1), LD_OK);
    CHECK_INT(ld_model_meta_set(&m, "note", "caf\xc3\xa9, 20 epochs", &err), LD_OK);
    CHECK_INT(ld_model_save(&m, a_path, &err), LD_OK);
    CHECK_INT(ld_model_save(&m, b_path, &err), LD_OK);

    /* the exact layout, checked by hand against SPEC §5: 1421 floats after the header */
    size_t alen = 0, blen = 0, data_at = 0;
    unsigned char *a = read_all(a_path, &alen), *b = read_all(b_path, &blen);
    CHECK(a && b && alen == blen && memcmp(a, b, alen) == 0);   /* same model, same bytes */
    char *h = header_of(a, alen, &data_at);
    CHECK(h != NULL);
    if (!h) return;
    CHECK_INT(le64(a) % 8, 0);
    CHECK_INT(alen, data_at + 1421 * 4);
    const char *head = "{\"__metadata__\":{\"format\":\"pt\",\"preset\":\"paper\","
                       "\"input_size\":\"100\",\"in_channels\":\"3\",\"filters\":\"4,4,8\","
                       "\"dropout\":\"0.25\",\"bn_epsilon\":\"0.001\",\"bn_momentum\":\"0.99\","
                       "\"lymphdet_version\":\"" LD_VERSION "\",\"seed\":\"1\","
                       "\"note\":\"caf\xc3\xa9, 20 epochs\"},"
                       "\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[4,3,3,3],"
                       "\"data_offsets\":[0,432]},"
                       "\"conv1.bias\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[432,448]},";
    CHECK_MSG(strncmp(h, head, strlen(head)) == 0, "header starts %.300s", h);
    /* conv + bn blocks: (112+16) + (148+16) + (296+32) = 620 floats = 2480 bytes */
    CHECK(strstr(h, "\"bn3.running_var\":{\"dtype\":\"F32\",\"shape\":[8],"
                    "\"data_offsets\":[2448,2480]}") != NULL);
    const char *tail = "\"dense.weight\":{\"dtype\":\"F32\",\"shape\":[1,800],"
                       "\"data_offsets\":[2480,5680]},"
                       "\"dense.bias\":{\"dtype\":\"F32\",\"shape\":[1],"
                       "\"data_offsets\":[5680,5684]}}";
    CHECK(strlen(h) > strlen(tail) && strcmp(h + strlen(h) - strlen(tail), tail) == 0);
    /* the data section is little-endian float32 in state-dict order */
    uint32_t u0, u1;
    memcpy(&u0, &m.params[0], 4);
    u1 = (uint32_t)a[data_at] | (uint32_t)a[data_at + 1] << 8 |
         (uint32_t)a[data_at + 2] << 16 | (uint32_t)a[data_at + 3] << 24;
    CHECK(u0 == u1);
    const ld_tensor *var2 = ld_model_tensor(&m, "bn2.running_var");
    memcpy(&u0, &m.p[1].bn_var[3], 4);
    size_t at = data_at + 4 * (var2->offset + 3);
    u1 = (uint32_t)a[at] | (uint32_t)a[at + 1] << 8 | (uint32_t)a[at + 2] << 16 |
         (uint32_t)a[at + 3] << 24;
    CHECK(u0 == u1);
    free(h);

    /* load: the same architecture, bit-identical parameters, the meta plus the version */
    CHECK_INT(ld_model_load(&m2, a_path, 2, &err), LD_OK);
    CHECK_STR(m2.arch.preset, "paper");
    CHECK_INT(m2.arch.input_size, 100);
    CHECK_INT(m2.arch.in_channels, 3);
    CHECK_INT(m2.arch.n_blocks, 3);
    CHECK_INT(m2.arch.filters[2], 8);
    CHECK(m2.arch.dropout == 0.25f && m2.arch.bn_eps == 1e-3f && m2.arch.bn_momentum == 0.99f);
    CHECK_INT(m2.batch_cap, 2);
    CHECK_INT(m2.n_params, 1421);
    CHECK(bits_equal(m.params, m2.params, 1421));
    CHECK_INT(m2.n_meta, 3);
    CHECK_STR(ld_model_meta_get(&m2, "lymphdet_version"), LD_VERSION);
    CHECK_STR(ld_model_meta_get(&m2, "seed"), "1");
    CHECK_STR(ld_model_meta_get(&m2, "note"), "caf\xc3\xa9, 20 epochs");
    /* the loaded network computes exactly what the saved one did */
    float x[2 * 3 * 100 * 100], p1[2], p2[2];
    for (int i = 0; i < 2 * 3 * 100 * 100; i++) x[i] = (float)((i * 37) % 256) / 255.0f;
    ld_model_predict(&m, x, 2, p1);
    ld_model_predict(&m2, x, 2, p2);
    CHECK(bits_equal(p1, p2, 2));
    /* load -> save is a fixed point: the same bytes again */
    CHECK_INT(ld_model_save(&m2, c_path, &err), LD_OK);
    size_t clen = 0;
    unsigned char *c = read_all(c_path, &clen);
    CHECK(c && clen == alen && memcmp(a, c, alen) == 0);
    free(c);
    ld_model_free(&m2);

    /* a meta pair named like an architecture key cannot override the architecture */
    CHECK_INT(ld_model_meta_set(&m, "preset", "detect", &err), LD_OK);
    CHECK_INT(ld_model_save(&m, c_path, &err), LD_OK);
    CHECK_INT(ld_model_load(&m2, c_path, 1, &err), LD_OK);
    CHECK_STR(m2.arch.preset, "paper");
    CHECK(ld_model_meta_get(&m2, "preset") == NULL);
    ld_model_free(&m2);
    /* text that is not UTF-8 cannot go into a JSON header: refused, nothing written */
    CHECK_INT(ld_model_meta_set(&m, "note", "caf\xe9", &err), LD_OK);
    remove(c_path);
    CHECK_INT(ld_model_save(&m, c_path, &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, "'note' is not valid UTF-8") != NULL);
    struct stat st;
    CHECK(stat(c_path, &st) != 0);
    /* an unwritable place is an I/O error naming the path */
    CHECK_INT(ld_model_meta_set(&m, "note", "ok", &err), LD_OK);
    snprintf(c_path, sizeof c_path, "%s/no/such/dir/m.safetensors", dir);
    CHECK_INT(ld_model_save(&m, c_path, &err), LD_ERR_IO);
    CHECK(strstr(err.msg, c_path) != NULL);
    ld_model_free(&m);
    free(a);
    free(b);
}

/* The committed seed-1 file must equal what this build writes for the same model,
 * byte for byte except the version string (a release changes that, not the format).
 * When the format changes on purpose, the test writes the new file for review. */
TEST_SUITE(model_file_fixture)
{
    const char *dir = test_tmpdir("modelfix");
    char path[512];
    snprintf(path, sizeof path, "%s/paper_seed1.safetensors", dir);
    ld_model m, f;
    ld_error err = {0};
    CHECK_INT(make_model(&m, 0), LD_OK);
    CHECK_INT(ld_model_save(&m, path, &err), LD_OK);
    size_t fresh_len = 0, fix_len = 0, fresh_at = 0, fix_at = 0;
    unsigned char *fresh = read_all(path, &fresh_len), *fix = read_all(FIXTURE_SEED1, &fix_len);
    CHECK_MSG(fix != NULL, "cannot read %s (this build's file is %s)", FIXTURE_SEED1, path);
    char *hf = fresh ? header_of(fresh, fresh_len, &fresh_at) : NULL;
    char *hx = fix ? header_of(fix, fix_len, &fix_at) : NULL;
    CHECK(hf && hx);
    if (hf && hx) {
        /* put this build's version into the fixture's header, then compare everything */
        const char *key = "\"lymphdet_version\":\"";
        char *v = strstr(hx, key), *norm = NULL;
        CHECK(v != NULL);
        if (v) {
            char old[64], now[64];
            const char *vend = strchr(v + strlen(key), '"');
            snprintf(old, sizeof old, "%.*s", (int)(vend - v + 1), v);
            snprintf(now, sizeof now, "%s%s\"", key, LD_VERSION);
            norm = replace(hx, old, now);
        }
        int same = norm && strcmp(norm, hf) == 0 && fresh_len - fresh_at == fix_len - fix_at &&
                   memcmp(fresh + fresh_at, fix + fix_at, fresh_len - fresh_at) == 0;
        CHECK_MSG(same, "this build writes the seed-1 model differently from %s; "
                  "the new file is %s (copy it over if the change is intended)",
                  FIXTURE_SEED1, path);
        free(norm);
    }
    /* and the fixture loads into the same parameters and meta */
    CHECK_INT(ld_model_load(&f, FIXTURE_SEED1, 1, &err), LD_OK);
    CHECK_INT(f.n_params, 1421);
    CHECK(f.params && bits_equal(f.params, m.params, 1421));
    CHECK_STR(ld_model_meta_get(&f, "seed"), "1");
    ld_model_free(&f);
    ld_model_free(&m);
    free(hf);
    free(hx);
    free(fresh);
    free(fix);
}

/* A file written by tools/check_interop.py from a PyTorch module (tensors in name order,
 * as the safetensors library writes them, not in state-dict order), carrying in its
 * metadata the probability PyTorch computed for a fixed input: this build must agree. */
TEST_SUITE(model_file_torch)
{
    ld_model m;
    ld_error err = {0};
    CHECK_INT(ld_model_load(&m, FIXTURE_TORCH, 2, &err), LD_OK);
    if (err.status) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    const char *p0 = ld_model_meta_get(&m, "torch_prob_ramp"),
               *p1 = ld_model_meta_get(&m, "torch_prob_checker");
    CHECK(p0 && p1);
    if (!p0 || !p1) { ld_model_free(&m); return; }
    /* the inputs check_interop.py builds (documented in the fixture README):
     * ramp x[c,i,j] = ((7i + 3j + 11c) mod 256) / 255; checker = 1 where (i/10 + j/10)
     * is odd, else 0.2 */
    static float x[2 * 3 * 100 * 100];
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 100; i++)
            for (int j = 0; j < 100; j++) {
                x[(c * 100 + i) * 100 + j] = (float)((7 * i + 3 * j + 11 * c) % 256) / 255.0f;
                x[30000 + (c * 100 + i) * 100 + j] = ((i / 10 + j / 10) % 2) ? 1.0f : 0.2f;
            }
    float p[2];
    ld_model_predict(&m, x, 2, p);
    CHECK_NEAR(p[0], atof(p0), 1e-6);
    CHECK_NEAR(p[1], atof(p1), 1e-6);
    /* the BN statistics are not the defaults (PyTorch trained them a little) */
    CHECK(m.p[0].bn_var[0] != 1.0f && m.p[2].bn_mean[0] != 0.0f);
    ld_model_free(&m);
}

typedef struct {
    const char *what;       /* the case, and the file's name */
    const char *old, *new_text;   /* header edit (NULL: none) */
    long data_delta;        /* bytes added (+) or cut (-) at the end of the data */
    long poke;              /* >= 0: data byte offset where `value` is written */
    float value;
    const char *cause;      /* expected in the message */
} bad_case;

TEST_SUITE(model_file_malformed)
{
    const char *dir = test_tmpdir("modelbad");
    char good[512], path[600];
    snprintf(good, sizeof good, "%s/good.safetensors", dir);
    ld_model m;
    ld_error err = {0};
    CHECK_INT(make_model(&m, 1), LD_OK);
    CHECK_INT(ld_model_save(&m, good, &err), LD_OK);
    size_t len = 0, data_at = 0;
    unsigned char *file = read_all(good, &len);
    char *header = file ? header_of(file, len, &data_at) : NULL;
    CHECK(header != NULL);
    if (!header) return;
    const unsigned char *data = file + data_at;
    size_t data_len = len - data_at;
    size_t var2 = 4 * (ld_model_tensor(&m, "bn2.running_var")->offset + 1);
    size_t dense_b = 4 * ld_model_tensor(&m, "dense.bias")->offset;
    ld_model_free(&m);

    const bad_case cases[] = {
        {"wrong_dtype", "\"dtype\":\"F32\"", "\"dtype\":\"F16\"", 0, -1, 0,
         "tensor conv1.weight: dtype F16 is not supported"},
        {"no_dtype", "\"dtype\":\"F32\",", "", 0, -1, 0, "conv1.weight: dtype is missing"},
        {"wrong_shape", "\"shape\":[1,800]", "\"shape\":[800,1]", 0, -1, 0,
         "tensor dense.weight has shape [800,1], expected [1,800]"},
        {"shape_5d", "\"shape\":[4,3,3,3]", "\"shape\":[4,3,3,3,1]", 0, -1, 0,
         "conv1.weight: shape is not a list of at most 4 sizes"},
        {"shape_huge", "\"shape\":[4,3,3,3]", "\"shape\":[4,3,3,3000000000]", 0, -1, 0,
         "conv1.weight: shape has an invalid size"},
        {"shape_overflow", "\"shape\":[4,3,3,3]", "\"shape\":[2147483648,2147483648,2147483648,8]",
         0, -1, 0, "conv1.weight: shape is impossibly large"},
        {"span_mismatch", "\"data_offsets\":[432,448]", "\"data_offsets\":[432,452]", 0, -1, 0,
         "conv1.bias: data_offsets span 20 bytes but its shape needs 16"},
        {"offsets_reversed", "\"data_offsets\":[432,448]", "\"data_offsets\":[448,432]", 0, -1, 0,
         "conv1.bias: data_offsets is not [begin, end]"},
        {"offsets_negative", "\"data_offsets\":[0,432]", "\"data_offsets\":[-4,428]", 0, -1, 0,
         "conv1.weight: data_offsets is not [begin, end]"},
        {"overlap", "\"data_offsets\":[432,448]", "\"data_offsets\":[428,444]", 0, -1, 0,
         "tensor conv1.bias overlaps tensor conv1.weight"},
        {"gap", "\"data_offsets\":[5680,5684]", "\"data_offsets\":[5684,5688]", 4, -1, 0,
         "tensor dense.bias: data_offsets leave a gap at byte 5680"},
        {"missing_tensor", ",\"dense.bias\":{\"dtype\":\"F32\",\"shape\":[1],"
                           "\"data_offsets\":[5680,5684]}", "", -4, -1, 0,
         "tensor dense.bias is missing"},
        {"extra_tensor", "[5680,5684]}}",
         "[5680,5684]},\"extra.weight\":{\"dtype\":\"F32\",\"shape\":[1],"
         "\"data_offsets\":[5684,5688]}}", 4, -1, 0,
         "unknown tensor 'extra.weight' for the paper architecture"},
        {"duplicate_tensor", "{\"__metadata__\"",
         "{\"dense.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[5680,5684]},"
         "\"__metadata__\"", 0, -1, 0, "duplicate object key"},
        {"trailing_bytes", NULL, NULL, 4, -1, 0, "4 trailing bytes after the last tensor"},
        {"truncated_data", NULL, NULL, -4, -1, 0,
         "truncated: tensors need 5684 data bytes, the file has 5680"},
        {"nan_weight", NULL, NULL, 0, 0, NAN, "tensor conv1.weight: element 0 is NaN"},
        {"inf_bias", NULL, NULL, 0, (long)dense_b, -INFINITY,
         "tensor dense.bias: element 0 is infinite"},
        {"negative_var", NULL, NULL, 0, (long)var2, -1.0f,
         "tensor bn2.running_var: element 1 is negative"},
        {"no_metadata", "\"__metadata__\":{", "\"__metadatx__\":{", 0, -1, 0,
         "__metadata__ is missing"},
        {"metadata_not_object", "{\"__metadata__\":{\"format\":\"pt\",",
         "{\"__metadata__\":\"pt\",\"x\":{", 0, -1, 0, "__metadata__ is not an object"},
        {"metadata_number", "\"input_size\":\"100\"", "\"input_size\":100", 0, -1, 0,
         "metadata 'input_size' is not a string"},
        {"no_filters", "\"filters\":\"4,4,8\",", "", 0, -1, 0, "metadata 'filters' is missing"},
        {"bad_input_size", "\"input_size\":\"100\"", "\"input_size\":\"1e2\"", 0, -1, 0,
         "metadata input_size '1e2' is not an integer"},
        {"input_too_small", "\"input_size\":\"100\"", "\"input_size\":\"20\"", 0, -1, 0,
         "too small for 3 blocks"},
        {"arch_too_large", "\"input_size\":\"100\"", "\"input_size\":\"4096\"", 0, -1, 0,
         "architecture too large"},
        {"bad_filters", "\"filters\":\"4,4,8\"", "\"filters\":\"4,,8\"", 0, -1, 0,
         "metadata filters '4,,8' is not a list"},
        {"other_filters", "\"filters\":\"4,4,8\"", "\"filters\":\"4,4,9\"", 0, -1, 0,
         "tensor conv3.weight has shape [8,4,3,3], expected [9,4,3,3]"},
        {"bad_dropout", "\"dropout\":\"0.25\"", "\"dropout\":\"1.5\"", 0, -1, 0,
         "metadata dropout '1.5' is not a rate in [0, 1)"},
        {"nan_epsilon", "\"bn_epsilon\":\"0.001\"", "\"bn_epsilon\":\"nan\"", 0, -1, 0,
         "metadata bn_epsilon 'nan' is not a number"},
        {"bad_preset", "\"preset\":\"paper\"", "\"preset\":\"../../etc\"", 0, -1, 0,
         "metadata preset '../../etc' is not"},
        {"format_tf", "\"format\":\"pt\"", "\"format\":\"tf\"", 0, -1, 0,
         "metadata format 'tf' is not 'pt'"},
        {"not_json", "{\"__metadata__\"", "{__metadata__", 0, -1, 0,
         "header is not valid JSON (line 1, column 2"},
        {"not_utf8", "\"seed\":\"1\"", "\"seed\":\"\xff\"", 0, -1, 0, "header is not valid JSON"},
        {"not_object", "{\"__metadata__\"", "[{\"__metadata__\"", 0, -1, 0, "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, c->what);
        char *h = c->old ? replace(header, c->old, c->new_text) : strdup(header);
        CHECK_MSG(h != NULL, "%s: the edit does not apply", c->what);
        if (!h) continue;
        size_t n = (size_t)((long)data_len + c->data_delta);
        unsigned char *d = calloc(n + 8, 1);
        memcpy(d, data, n < data_len ? n : data_len);
        if (c->poke >= 0) memcpy(d + c->poke, &c->value, 4);   /* this host is little-endian */
        write_file(path, h, d, n);
        ld_model bad;
        ld_error e = {0};
        ld_status st = ld_model_load(&bad, path, 1, &e);
        CHECK_MSG(st == LD_ERR_INPUT, "%s: status %d (%s)", c->what, st, e.msg);
        CHECK_MSG(strstr(e.msg, path) && strstr(e.msg, c->cause),
                  "%s: message '%s' lacks '%s'", c->what, e.msg, c->cause);
        CHECK_MSG(bad.params == NULL && bad.n_meta == 0, "%s: model left allocated", c->what);
        if (st == LD_OK) ld_model_free(&bad);
        free(d);
        free(h);
    }

    /* a header that is valid JSON but an array, not an object */
    snprintf(path, sizeof path, "%s/array.safetensors", dir);
    write_file(path, "[1,2,3]", data, 0);
    ld_model bad;
    CHECK_INT(ld_model_load(&bad, path, 1, &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, path) && strstr(err.msg, "header is not a JSON object"));

    /* broken framing: the 8-byte length and the file size */
    struct { const char *what; size_t keep; uint64_t hlen; const char *cause; } frames[] = {
        {"empty", 0, 0, "truncated: 0 bytes, less than the 8-byte header length"},
        {"five_bytes", 5, 0, "truncated: 5 bytes"},
        {"hlen_zero", len, 0, "header length is 0"},
        {"hlen_huge", len, (uint64_t)1 << 40, "header length 1099511627776 exceeds"},
        {"hlen_max", len, UINT64_MAX, "exceeds the 104857600-byte limit"},
        {"hlen_past_eof", len, (uint64_t)len - 7, "runs past the end of the file"},
        {"header_cut", data_at - 9, 0, "runs past the end of the file"},
    };
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, frames[i].what);
        unsigned char *copy = malloc(len);
        memcpy(copy, file, len);
        if (frames[i].keep >= 8 && (frames[i].hlen || strcmp(frames[i].what, "hlen_zero") == 0))
            for (int k = 0; k < 8; k++) copy[k] = (unsigned char)(frames[i].hlen >> (8 * k));
        write_all(path, copy, frames[i].keep);
        ld_error e = {0};
        ld_status st = ld_model_load(&bad, path, 1, &e);
        CHECK_MSG(st == LD_ERR_INPUT && strstr(e.msg, path) && strstr(e.msg, frames[i].cause),
                  "%s: status %d, message '%s'", frames[i].what, st, e.msg);
        CHECK(bad.params == NULL);
        free(copy);
    }
    /* not a file at all */
    CHECK_INT(ld_model_load(&bad, dir, 1, &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, "not a regular file") != NULL);
    snprintf(path, sizeof path, "%s/absent.safetensors", dir);
    CHECK_INT(ld_model_load(&bad, path, 1, &err), LD_ERR_IO);
    CHECK(strstr(err.msg, path) && strstr(err.msg, "No such file"));
    /* a NULL error struct is allowed: only the status then */
    CHECK_INT(ld_model_load(&bad, path, 1, NULL), LD_ERR_IO);
    snprintf(path, sizeof path, "%s/hlen_zero.safetensors", dir);
    CHECK_INT(ld_model_load(&bad, path, 1, NULL), LD_ERR_INPUT);
    free(header);
    free(file);
}

/* SQLite's habit: make the k-th allocation fail for every k; each attempt must fail
 * cleanly (the sanitizer build checks for leaks) and leave no file behind. */
TEST_SUITE(model_file_nomem)
{
    const char *dir = test_tmpdir("modelnomem");
    char path[512];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    ld_model m, l;
    ld_error err = {0};
    CHECK_INT(make_model(&m, 1), LD_OK);
    CHECK_INT(ld_model_meta_set(&m, "epochs", "20", &err), LD_OK);
    CHECK_INT(ld_model_save(&m, path, &err), LD_OK);
    int failures = 0, loaded = 0;
    for (long k = 1; k < 100 && !loaded; k++) {
        ld_alloc_fail_after(k);
        ld_status st = ld_model_load(&l, path, 1, &err);
        ld_alloc_fail_after(0);
        if (st == LD_OK) {
            loaded = 1;
            CHECK(bits_equal(l.params, m.params, m.n_params));
            ld_model_free(&l);
        } else {
            failures++;
            CHECK_MSG(st == LD_ERR_NOMEM && l.params == NULL, "k=%ld: status %d", k, st);
            CHECK_MSG(strstr(err.msg, path) != NULL, "k=%ld: '%s'", k, err.msg);
        }
    }
    CHECK(loaded);
    /* header, five model blocks, two strings for each of three meta pairs */
    CHECK_INT(failures, 12);

    char out[512];
    snprintf(out, sizeof out, "%s/saved.safetensors", dir);
    ld_alloc_fail_after(1);
    CHECK_INT(ld_model_save(&m, out, &err), LD_ERR_NOMEM);
    ld_alloc_fail_after(0);
    CHECK(strstr(err.msg, out) != NULL);
    int entries = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) entries += e->d_name[0] != '.';
    if (d) closedir(d);
    CHECK_INT(entries, 1);   /* only m.safetensors: no partial or temporary file */
    ld_model_free(&m);
}
