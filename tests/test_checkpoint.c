/* test_checkpoint.c — training checkpoints (checkpoint.h): the documented layout read
 * from a file written by independent Python code, every malformation refused with its
 * own message and the model left untouched, the run checks, and the promise itself:
 * a run killed with SIGKILL in the middle of an epoch and resumed gives a model
 * identical byte for byte to an uninterrupted run (library and CLI). */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "lymphdet/checkpoint.h"
#include "lymphdet/dettrain.h"
#include "lymphdet/labels.h"
#include "lymphdet/model.h"
#include "lymphdet/patches.h"
#include "lymphdet/train.h"
#include "synth.h"
#include "test.h"

#define FIXTURE "tests/fixtures/checkpoint/python_two_epochs.ckpt"

/* ---- helpers ---------------------------------------------------------------------- */

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *d = malloc((size_t)n + 1);
    if (d && fread(d, 1, (size_t)n, f) != (size_t)n) {
        free(d);
        d = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return d;
}

static int spit(const char *path, const unsigned char *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(d, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static int same_files(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *da = slurp(a, &na), *db = slurp(b, &nb);
    int same = da && db && na == nb && memcmp(da, db, na) == 0;
    free(da);
    free(db);
    return same;
}

/* the fuzz target's and the fixture's network: one block of 2 filters, 3 x 8 x 8 */
static int tiny_model(ld_model *m)
{
    ld_arch a;
    ld_error err = {0};
    ld_arch_paper(&a);
    snprintf(a.preset, sizeof a.preset, "tiny");
    a.input_size = 8;
    a.n_blocks = 1;
    a.filters[0] = 2;
    if (ld_model_init(m, &a, 5, &err)) {
        CHECK_MSG(0, "model init: %s", err.msg);
        return -1;
    }
    ld_model_init_weights(m, 1);
    return 0;
}

static uint64_t fnv(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static void put_u64(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)b[i] << (8 * i);
    return v;
}

/* the checksum of a (modified) checkpoint, made right again */
static void reseal(unsigned char *d, size_t n)
{
    put_u64(d + n - 8, fnv(d, n - 8));
}

/* A copy of the fixture with `from` replaced by `to` in its JSON header (header length
 * and checksum fixed), so each test meets exactly one defect. */
static unsigned char *edit_header(const unsigned char *d, size_t n, const char *from,
                                  const char *to, size_t *out_n)
{
    size_t hlen = (size_t)get_u64(d + 8);
    char *h = malloc(hlen + 1);
    memcpy(h, d + 16, hlen);
    h[hlen] = '\0';
    char *at = strstr(h, from);
    if (!at) {
        free(h);
        return NULL;
    }
    size_t lf = strlen(from), lt = strlen(to), nh = hlen - lf + lt;
    *out_n = n - hlen + nh;
    unsigned char *o = malloc(*out_n);
    memcpy(o, d, 8);
    put_u64(o + 8, nh);
    size_t pre = (size_t)(at - h);
    memcpy(o + 16, h, pre);
    memcpy(o + 16 + pre, to, lt);
    memcpy(o + 16 + pre + lt, at + lf, hlen - pre - lf);
    memcpy(o + 16 + nh, d + 16 + hlen, n - 16 - hlen);
    reseal(o, *out_n);
    free(h);
    return o;
}

/* ---- the layout, from independent code ---------------------------------------------- */

TEST_SUITE(checkpoint_python_fixture)
{
    ld_model m;
    if (tiny_model(&m)) return;
    CHECK_INT(m.n_params, 83);
    ld_checkpoint ck;
    ld_error err = {0};
    ld_status st = ld_checkpoint_load(&ck, &m, FIXTURE, &err);
    CHECK_MSG(st == LD_OK, "load: %s", err.msg);
    if (st) {
        ld_model_free(&m);
        return;
    }
    CHECK_INT(ck.state.epochs_done, 2);
    CHECK_INT(ck.cfg.epochs, 3);
    CHECK_INT(ck.cfg.batch, 5);
    CHECK(ck.cfg.seed == 12345);
    CHECK(ck.cfg.adam.lr == 1e-4f && ck.cfg.adam.beta1 == 0.9f && ck.cfg.adam.beta2 == 0.999f &&
          ck.cfg.adam.eps == 1e-7f);
    CHECK_INT(ck.n_train, 7);
    CHECK_INT(ck.n_val, 2);
    CHECK(ck.fingerprint == 0xdeadbeefULL);
    CHECK_INT(m.adam_t, 4);
    for (int k = 0; k < 4; k++) CHECK(ck.state.rng.s[k] == (uint64_t)k + 1);
    int order_ok = ck.state.n_order == 7;
    for (int i = 0; order_ok && i < 7; i++) order_ok = ck.state.order[i] == 6 - i;
    CHECK(order_ok);
    int values_ok = 1;
    for (size_t i = 0; i < m.n_params; i++)
        values_ok &= m.params[i] == 0.5f && m.adam_m[i] == (float)(0.01 * (double)i) &&
                     m.adam_v[i] == 1e-4f;
    CHECK(values_ok);
    CHECK_INT(ck.history[0].epoch, 1);
    CHECK_INT(ck.history[1].epoch, 2);
    CHECK(ck.history[0].train_loss == 0.7 && ck.history[0].train_acc == 0.5);
    CHECK(isnan(ck.history[0].val_loss) && isnan(ck.history[0].val_acc));
    CHECK(ck.history[1].train_loss == 0.6 && ck.history[1].train_acc == 0.75 &&
          ck.history[1].val_loss == 0.65 && ck.history[1].val_acc == 0.5);
    CHECK(ck.history[0].seconds == 0.01 && ck.history[1].seconds == 0.02);

    /* writing it back from C gives the Python bytes except the header's formatting:
     * reading that again gives the same values */
    const char *dir = test_tmpdir("ckpt-py");
    char path[512];
    snprintf(path, sizeof path, "%s/again.ckpt", dir);
    CHECK_INT(ld_checkpoint_save(path, &m, &ck.cfg, &ck.state, ck.history, ck.fingerprint,
                                 ck.n_val, &err), LD_OK);
    ld_checkpoint back;
    CHECK_INT(ld_checkpoint_load(&back, &m, path, &err), LD_OK);
    CHECK(back.state.epochs_done == 2 && back.state.order[0] == 6 && back.history[1].val_acc == 0.5 &&
          isnan(back.history[0].val_loss) && m.adam_t == 4);
    ld_checkpoint_free(&back);
    ld_checkpoint_free(&ck);
    CHECK(ck.history == NULL && ck.state.order == NULL);
    ld_model_free(&m);
}

/* the detection preset's checkpoint, also written from the documentation alone */
TEST_SUITE(checkpoint_python_detect_fixture)
{
    ld_model m;
    ld_arch a;
    ld_error err = {0};
    ld_arch_paper(&a);
    snprintf(a.preset, sizeof a.preset, "tinydet");
    a.input_size = 8;
    a.n_blocks = 1;
    a.filters[0] = 2;
    a.box_head = 4;
    CHECK_INT(ld_model_init(&m, &a, 1, &err), LD_OK);
    CHECK_INT(m.n_params, 159);
    ld_detcheckpoint ck;
    ld_status st = ld_detcheckpoint_load(&ck, &m, "tests/fixtures/checkpoint/python_detect_two_epochs.ckpt", &err);
    CHECK_MSG(st == LD_OK, "load: %s", err.msg);
    if (st == LD_OK) {
        CHECK_STR(ck.settings, "window 8; batch 2; seed 3");
        CHECK_INT(ck.epochs, 4);
        CHECK_INT(ck.state.epochs_done, 2);
        CHECK_INT(ck.state.n_order, 5);
        CHECK(ck.fingerprint == 0xfeedf00dULL);
        CHECK_INT(m.adam_t, 6);
        for (int k = 0; k < 4; k++) CHECK(ck.state.rng.s[k] == (uint64_t)k + 7);
        CHECK(ck.state.order[0] == 4 && ck.state.order[4] == 0);
        CHECK_INT(ck.state.best_epoch, 2);
        CHECK(ck.state.best_ap50 == 0.25 && ck.state.best_ap == 0.125);
        int ok = 1;
        for (size_t i = 0; i < m.n_params; i++)
            ok &= m.params[i] == 0.5f && m.adam_m[i] == (float)(0.01 * (double)i) &&
                  m.adam_v[i] == 1e-4f && ck.state.best[i] == 0.25f;
        CHECK(ok);
        CHECK(ck.history[0].loss == 2.5 && isnan(ck.history[0].val_ap50) &&
              ck.history[1].val_ap50 == 0.25 && ck.history[1].pos_per_crop == 1.3);
        CHECK_INT(ld_detcheckpoint_check(&ck, 4, "window 8; batch 2; seed 3", 0xfeedf00dULL,
                                         "x.ckpt", &err), LD_OK);
        CHECK_INT(ld_detcheckpoint_check(&ck, 4, "window 8; batch 3; seed 3", 0xfeedf00dULL,
                                         "x.ckpt", &err), LD_ERR_INPUT);
        CHECK(strstr(err.msg, "(it has \"batch 2\", this run \"batch 3\")") != NULL);
        CHECK_INT(ld_detcheckpoint_check(&ck, 4, "window 8; batch 2; seed 3", 1, "x.ckpt", &err),
                  LD_ERR_INPUT);
        CHECK(strstr(err.msg, "made on other frames") != NULL);
        ld_detcheckpoint_free(&ck);
    }
    /* the paper preset's fixture is not a detection checkpoint, and vice versa */
    CHECK_INT(ld_detcheckpoint_load(&ck, &m, FIXTURE, &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, "a checkpoint of the paper preset's training, not the detect") != NULL);
    CHECK(ck.history == NULL && ck.state.best == NULL && ck.settings == NULL);
    ld_model_free(&m);
}

/* ---- malformed files ------------------------------------------------------------------ */

typedef struct {
    const char *what;
    const char *from, *to;      /* header edit, or NULL for a byte-level case */
    const char *expect;         /* substring of the message */
} header_case;

static void expect_refused(ld_model *m, const char *path, const char *what, const char *expect)
{
    size_t np = m->n_params;
    float *before = malloc(np * sizeof *before);
    memcpy(before, m->params, np * sizeof *before);
    long t = m->adam_t;
    ld_checkpoint ck;
    ld_error err = {0};
    ld_status st = ld_checkpoint_load(&ck, m, path, &err);
    CHECK_MSG(st != LD_OK && strstr(err.msg, expect) && strncmp(err.msg, path, strlen(path)) == 0,
              "%s: status %d, message \"%s\" (expected \"%s\")", what, (int)st, err.msg, expect);
    CHECK_MSG(memcmp(before, m->params, np * sizeof *before) == 0 && m->adam_t == t &&
              ck.history == NULL && ck.state.order == NULL,
              "%s: the model or the checkpoint was touched by a refused file", what);
    if (st == LD_OK) ld_checkpoint_free(&ck);
    free(before);
}

TEST_SUITE(checkpoint_malformed)
{
    ld_model m;
    if (tiny_model(&m)) return;
    size_t n;
    unsigned char *good = slurp(FIXTURE, &n);
    CHECK(good != NULL && n == 1795);
    if (!good) return;
    const char *dir = test_tmpdir("ckpt-bad");
    char path[512];
    static const header_case cases[] = {
        {"epochs done beyond the plan", "\"epochs_done\":2", "\"epochs_done\":4",
         "epochs_done is not 0..train.epochs"},
        {"other filters", "\"filters\":[2]", "\"filters\":[3]", "its filters differs"},
        {"other dropout", "\"dropout\":0.25", "\"dropout\":0.5", "dropout rate"},
        {"other input size", "\"input_size\":8", "\"input_size\":9", "input size (--patch)"},
        {"other preset", "\"preset\":\"tiny\"", "\"preset\":\"paper\"", "its preset differs"},
        {"n_params", "\"n_params\":83", "\"n_params\":84", "n_params is not 83"},
        {"format name", "lymphdet-checkpoint", "lymphdet-checkpoinT", "header format"},
        {"version", "\"version\":1", "\"version\":2", "version is not 1"},
        {"rng all zero", "[\"0000000000000001\",\"0000000000000002\",\"0000000000000003\","
         "\"0000000000000004\"]", "[\"0000000000000000\",\"0000000000000000\","
         "\"0000000000000000\",\"0000000000000000\"]", "rng state is all zero"},
        {"rng not hex", "\"0000000000000001\"", "\"000000000000000g\"", "rng is not 4 hex words"},
        {"history numbering", "{\"epoch\":2", "{\"epoch\":3", "history[1] is not epoch 2"},
        {"history value", "\"train_loss\":0.6", "\"train_loss\":\"x\"",
         "history[1].train_loss is not a number"},
        {"one history entry short", ",{\"epoch\":2", ",{\"epochx\":2", "history[1] is not epoch 2"},
        {"batch zero", "\"batch\":5", "\"batch\":0", "train.batch"},
        {"n_train zero", "\"n_train\":7", "\"n_train\":0", "data.n_train"},
        {"n_train larger than the order", "\"n_train\":7", "\"n_train\":8", "header says"},
        {"duplicate key", "\"version\":1", "\"version\":1,\"version\":1", "duplicate"},
        {"not an object", "{\"format\"", "[\"format\"", "header:"},
        {"adam not finite", "\"lr\":", "\"lr\":1e999,\"lrx\":", "header:"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t en;
        unsigned char *e = edit_header(good, n, cases[c].from, cases[c].to, &en);
        CHECK_MSG(e != NULL, "%s: '%s' not in the fixture header", cases[c].what, cases[c].from);
        if (!e) continue;
        snprintf(path, sizeof path, "%s/case%02zu.ckpt", dir, c);
        spit(path, e, en);
        expect_refused(&m, path, cases[c].what, cases[c].expect);
        free(e);
    }

    /* byte-level defects */
    unsigned char *d = malloc(n + 1);
    size_t hlen = (size_t)get_u64(good + 8), data = 16 + hlen, np = m.n_params;
    struct { const char *what, *expect; } bytes_cases[] = {
        {"bad magic", "no LDCKPT1 magic"},
        {"one byte short", "the file has 1794 bytes but its header says 1795"},
        {"one byte extra", "the file has 1796 bytes but its header says 1795"},
        {"a flipped data bit", "checksum mismatch"},
        {"header length past the end", "does not fit"},
        {"NaN weight", "not finite"},
        {"negative Adam v", "not finite (or v < 0)"},
        {"negative moving variance", "bn1.running_var has a negative variance"},
        {"order not a permutation", "not a permutation of 0..6"},
        {"order out of range", "not a permutation of 0..6"},
        {"empty file", "no LDCKPT1 magic"},
    };
    const ld_tensor *rv = ld_model_tensor(&m, "bn1.running_var");
    CHECK(rv != NULL);
    for (size_t c = 0; rv && c < sizeof bytes_cases / sizeof bytes_cases[0]; c++) {
        size_t dn = n;
        memcpy(d, good, n);
        unsigned char nan_bits[4] = {0x00, 0x00, 0xc0, 0x7f}, minus_one[4] = {0, 0, 0x80, 0xbf};
        switch (c) {
        case 0: d[6] = '2'; break;
        case 1: dn = n - 1; break;
        case 2: d[n] = 0; dn = n + 1; break;
        case 3: d[data + 5] ^= 0x10; break;                     /* checksum not fixed */
        case 4: put_u64(d + 8, (uint64_t)1 << 40); break;
        case 5: memcpy(d + data + 4 * 3, nan_bits, 4); reseal(d, n); break;
        case 6: memcpy(d + data + 4 * (2 * np + 1), minus_one, 4); reseal(d, n); break;
        case 7: memcpy(d + data + 4 * rv->offset, minus_one, 4); reseal(d, n); break;
        case 8: memcpy(d + data + 12 * np, d + data + 12 * np + 4, 4); reseal(d, n); break;
        case 9: d[data + 12 * np + 3] = 0x80; reseal(d, n); break;
        case 10: dn = 0; break;
        }
        snprintf(path, sizeof path, "%s/bytes%02zu.ckpt", dir, c);
        spit(path, d, dn);
        expect_refused(&m, path, bytes_cases[c].what, bytes_cases[c].expect);
    }
    snprintf(path, sizeof path, "%s/absent.ckpt", dir);
    ld_checkpoint ck;
    ld_error err = {0};
    CHECK_INT(ld_checkpoint_load(&ck, &m, path, &err), LD_ERR_IO);
    CHECK(strstr(err.msg, "cannot open") != NULL);
    CHECK_INT(ld_checkpoint_load(&ck, &m, dir, &err), LD_ERR_INPUT);   /* a folder */
    free(d);
    free(good);
    ld_model_free(&m);
}

/* ---- a real run: identity after resuming, and the run checks ------------------------- */

typedef struct {
    char dir[256];
    ld_labels labels;
    ld_dataset ds;
    ld_arch arch;
    ld_train_config tc;
} synth_run;

/* synthetic nodes, patches of 44 (as tests/test_train.c), the paper's network on them */
static int synth_setup(synth_run *r, const char *tag, int n_images)
{
    ld_error err = {0};
    snprintf(r->dir, sizeof r->dir, "%s", test_tmpdir(tag));
    synth_config sc = {n_images, 120, 2, 8, 16, 3};
    if (synth_write(r->dir, &sc) <= 0) {
        CHECK_MSG(0, "synthetic data not written in %s", r->dir);
        return -1;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/labels.json", r->dir);
    ld_label_options lo;
    ld_label_options_default(&lo);
    if (ld_labels_load(&r->labels, path, &lo, &err)) {
        CHECK_MSG(0, "labels: %s", err.msg);
        return -1;
    }
    ld_split_config spc;
    ld_patch_config pc;
    ld_split_config_default(&spc);
    ld_patch_config_default(&pc);
    spc.group_fields = "patient";
    spc.val_fraction = 0.25;
    pc.size = 44;
    pc.margin = 4;
    if (ld_dataset_build(&r->ds, &r->labels, r->dir, &spc, &pc, &err)) {
        CHECK_MSG(0, "dataset: %s", err.msg);
        ld_labels_free(&r->labels);
        return -1;
    }
    ld_arch_paper(&r->arch);
    r->arch.input_size = 44;
    ld_train_config_default(&r->tc);
    r->tc.epochs = 5;
    r->tc.adam.lr = 3e-3f;
    r->tc.seed = 77;
    return 0;
}

static void synth_free(synth_run *r)
{
    ld_dataset_free(&r->ds);
    ld_labels_free(&r->labels);
}

/* trains r's network from the seed for tc->epochs epochs (checkpointing when
 * tc->checkpoint is set); the model stays in *m */
static ld_status train_fresh(ld_model *m, const synth_run *r, const ld_train_config *tc,
                             const ld_train_hooks *hooks, ld_epoch_stats *hist, ld_error *err)
{
    if (ld_model_init(m, &r->arch, tc->batch, err)) return err->status;
    ld_model_init_weights(m, 5);
    ld_status st = ld_train(m, &r->ds.train, &r->ds.val, tc, hooks, hist, err);
    if (st) ld_model_free(m);
    return st;
}

/* continues from a checkpoint file to tc->epochs and saves the model to out */
static ld_status resume_and_save(const synth_run *r, const ld_train_config *tc, const char *ckpt,
                                 ld_epoch_stats *hist, const char *out, int *epochs_done,
                                 ld_error *err)
{
    ld_model m;
    ld_checkpoint ck = {0};
    if (ld_model_init(&m, &r->arch, tc->batch, err)) return err->status;
    ld_status st = ld_checkpoint_load(&ck, &m, ckpt, err);
    if (!st) st = ld_checkpoint_check(&ck, tc, &r->ds.train, &r->ds.val, ckpt, err);
    if (!st) {
        *epochs_done = ck.state.epochs_done;
        memcpy(hist, ck.history, (size_t)ck.state.epochs_done * sizeof *hist);
        st = ld_train_resume(&m, &r->ds.train, &r->ds.val, tc, NULL, hist, &ck.state, err);
    }
    if (!st) st = ld_model_save(&m, out, err);
    ld_checkpoint_free(&ck);
    ld_model_free(&m);
    return st;
}

/* the files of a resume test, in its run's folder */
typedef struct {
    char ckpt[512], full[512], resumed[512];
} resume_paths;

/* Names the files and trains the uninterrupted reference run (r->tc), saved as full. */
static void reference_run(const synth_run *r, resume_paths *p, ld_epoch_stats *h_full,
                          ld_error *err)
{
    snprintf(p->ckpt, sizeof p->ckpt, "%s/run.ckpt", r->dir);
    snprintf(p->full, sizeof p->full, "%s/full.safetensors", r->dir);
    snprintf(p->resumed, sizeof p->resumed, "%s/resumed.safetensors", r->dir);
    ld_model m;
    ld_status st = train_fresh(&m, r, &r->tc, NULL, h_full, err);
    CHECK_INT(st, LD_OK);
    if (st) return;
    CHECK_INT(ld_model_save(&m, p->full, err), LD_OK);
    ld_model_free(&m);
}

TEST_SUITE(checkpoint_resume_checks)
{
    synth_run r;
    if (synth_setup(&r, "ckpt-run", 12)) return;
    ld_error err = {0};
    resume_paths p;
    ld_epoch_stats h_full[5], h_res[5];
    reference_run(&r, &p, h_full, &err);   /* uninterrupted: 5 epochs */
    const char *ckpt = p.ckpt, *full = p.full, *resumed = p.resumed;
    ld_model m;

    /* a 2-epoch run with checkpoints, then resumed to 5 */
    ld_train_config tc2 = r.tc;
    tc2.epochs = 2;
    tc2.checkpoint = ckpt;
    CHECK_INT(train_fresh(&m, &r, &tc2, NULL, h_res, &err), LD_OK);
    ld_model_free(&m);
    int done = -1;
    CHECK_INT(resume_and_save(&r, &r.tc, ckpt, h_res, resumed, &done, &err), LD_OK);
    CHECK_INT(done, 2);
    CHECK_MSG(same_files(full, resumed), "resumed model differs from the uninterrupted one");
    int same_hist = 1;
    for (int e = 0; e < 5; e++)
        same_hist &= h_full[e].epoch == h_res[e].epoch && h_full[e].train_loss == h_res[e].train_loss &&
                     h_full[e].train_acc == h_res[e].train_acc && h_full[e].val_loss == h_res[e].val_loss;
    CHECK(same_hist);
    fprintf(stderr, "  resume after 2 of 5 epochs: model identical, history identical "
            "(final train loss %.6f)\n", h_res[4].train_loss);

    /* the checks: each mismatch refused with its reason */
    if (ld_model_init(&m, &r.arch, 8, &err)) return;
    ld_checkpoint ck;
    CHECK_INT(ld_checkpoint_load(&ck, &m, ckpt, &err), LD_OK);
    CHECK_INT(ld_checkpoint_check(&ck, &r.tc, &r.ds.train, &r.ds.val, ckpt, &err), LD_OK);
    struct { const char *what, *expect; } cases[] = {
        {"batch", "made with batch size 5, this run has 4"},
        {"lr", "made with Adam lr"},
        {"seed", "made with another --seed"},
        {"epochs", "2 epochs are already done, more than the 1 asked for"},
        {"no validation set", "validation patches, this run has"},
        {"one pixel", "made on other patches"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ld_train_config tc = r.tc;
        const ld_patchset *val = &r.ds.val;
        if (c == 0) tc.batch = 4;
        if (c == 1) tc.adam.lr = 1e-3f;
        if (c == 2) tc.seed = 78;
        if (c == 3) tc.epochs = 1;
        if (c == 4) val = NULL;
        if (c == 5) r.ds.train.px[100] ^= 1;
        ld_status st = ld_checkpoint_check(&ck, &tc, &r.ds.train, val, ckpt, &err);
        CHECK_MSG(st == LD_ERR_INPUT && strstr(err.msg, cases[c].expect),
                  "%s: status %d \"%s\"", cases[c].what, (int)st, err.msg);
        if (c == 5) r.ds.train.px[100] ^= 1;
    }
    /* a checkpoint of this network read into another one */
    ld_model other;
    ld_arch a2 = r.arch;
    a2.filters[2] = 6;
    if (ld_model_init(&other, &a2, 5, &err) == LD_OK) {
        ld_checkpoint ck2;
        CHECK_INT(ld_checkpoint_load(&ck2, &other, ckpt, &err), LD_ERR_INPUT);
        CHECK(strstr(err.msg, "made for another network (its filters differs") != NULL);
        ld_model_free(&other);
    }
    /* resuming with an order of the wrong length is a usage error, not a crash */
    ld_train_state bad = ck.state;
    bad.n_order = ck.state.n_order - 1;
    ld_epoch_stats h[5];
    CHECK_INT(ld_train_resume(&m, &r.ds.train, &r.ds.val, &r.tc, NULL, h, &bad, &err),
              LD_ERR_USAGE);
    ld_checkpoint_free(&ck);
    ld_model_free(&m);
    synth_free(&r);
}

/* ---- SIGKILL in the middle of an epoch ------------------------------------------------ */

typedef struct {
    int fd;             /* write end of the pipe to the parent */
    int kill_epoch;     /* stop in this epoch ... */
    int kill_step;      /* ... after this step */
} stop_at;

/* in the child: tells the parent where training is, then waits for the SIGKILL */
static void stop_here(void *user, int epoch, int step, int n_steps, double loss, double acc)
{
    const stop_at *s = user;
    if (epoch != s->kill_epoch || step != s->kill_step) return;
    char c = 'k';
    if (write(s->fd, &c, 1) != 1) _exit(3);
    for (;;) pause();
}

TEST_SUITE(checkpoint_kill_resume)
{
    synth_run r;
    if (synth_setup(&r, "ckpt-kill", 12)) return;
    ld_error err = {0};
    resume_paths p;
    ld_epoch_stats h_full[5], h_res[5];
    reference_run(&r, &p, h_full, &err);
    const char *ckpt = p.ckpt, *full = p.full, *resumed = p.resumed;

    int n_steps = (r.ds.train.n + r.tc.batch - 1) / r.tc.batch;
    int fds[2];
    if (pipe(fds) != 0) {
        CHECK_MSG(0, "pipe failed");
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        stop_at s = {fds[1], 3, n_steps / 2};
        ld_train_hooks hooks = {stop_here, NULL, &s};
        ld_train_config tc = r.tc;
        tc.checkpoint = ckpt;
        ld_epoch_stats h[5];
        ld_model cm;
        train_fresh(&cm, &r, &tc, &hooks, h, &err);
        _exit(2);   /* not reached: the parent kills us in epoch 3 */
    }
    close(fds[1]);
    char c = 0;
    CHECK(read(fds[0], &c, 1) == 1 && c == 'k');
    close(fds[0]);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    int done = -1;
    CHECK_INT(resume_and_save(&r, &r.tc, ckpt, h_res, resumed, &done, &err), LD_OK);
    CHECK_INT(done, 2);     /* killed at step n/2 of epoch 3: epochs 1-2 were checkpointed */
    CHECK_MSG(same_files(full, resumed), "model after kill + resume differs from the "
              "uninterrupted run");
    fprintf(stderr, "  library: SIGKILL at epoch 3 step %d of %d, resumed after epoch %d: model "
            "byte-identical\n", n_steps / 2, n_steps, done);
    synth_free(&r);
}

/* runs the CLI with sh -c "exec ..." in the background; stdout/stderr to /dev/null */
static pid_t spawn_cli(const char *args)
{
    const char *bin = getenv("LYMPHDET");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "exec %s %s >/dev/null 2>&1", bin ? bin : "build/lymphdet", args);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* the history CSV without its last column (seconds), which differs from run to run */
static int same_history_csv(const char *a, const char *b)
{
    size_t na, nb;
    char *da = (char *)slurp(a, &na), *db = (char *)slurp(b, &nb);
    int same = da && db;
    if (same) {
        da[na] = db[nb] = '\0';
        char *sa, *sb, *la = strtok_r(da, "\n", &sa), *lb = strtok_r(db, "\n", &sb);
        for (; same && la && lb; la = strtok_r(NULL, "\n", &sa), lb = strtok_r(NULL, "\n", &sb)) {
            char *ca = strrchr(la, ','), *cb = strrchr(lb, ',');
            same = ca && cb && ca - la == cb - lb && memcmp(la, lb, (size_t)(ca - la)) == 0;
        }
        same &= !la && !lb;
    }
    free(da);
    free(db);
    return same;
}

/* Runs `lymphdet args` and kills it with SIGKILL as soon as ckpt exists (so in the
 * middle of the epoch after the first); returns its wait status. */
static int run_until_checkpoint(const char *args, const char *ckpt)
{
    pid_t pid = spawn_cli(args);
    struct timespec nap = {0, 200000};
    int status = 0, ended = 0;
    for (int i = 0; i < 200000 && !test_exists(ckpt) && !ended; i++) {
        nanosleep(&nap, NULL);
        ended = waitpid(pid, &status, WNOHANG) == pid;
    }
    if (!ended) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    return status;
}

/* epochs done by the checkpoint at path, -1 when it does not load */
typedef int (*epochs_done_fn)(const char *path, char *why, size_t why_size);

static int paper_epochs_done(const char *path, char *why, size_t why_size)
{
    ld_model m;
    ld_arch a;
    ld_error err = {0};
    ld_arch_paper(&a);
    a.input_size = 44;
    int done = -1;
    if (ld_model_init(&m, &a, 5, &err) == LD_OK) {
        ld_checkpoint ck;
        if (ld_checkpoint_load(&ck, &m, path, &err) == LD_OK) {
            done = ck.state.epochs_done;
            ld_checkpoint_free(&ck);
        }
        ld_model_free(&m);
    }
    snprintf(why, why_size, "%s", err.msg);
    return done;
}

static int detect_epochs_done(const char *path, char *why, size_t why_size)
{
    ld_model m;
    ld_arch a;
    ld_error err = {0};
    ld_arch_detect(&a);
    int done = -1;
    if (ld_model_init(&m, &a, 1, &err) == LD_OK) {
        ld_detcheckpoint ck;
        if (ld_detcheckpoint_load(&ck, &m, path, &err) == LD_OK) {
            done = ck.state.epochs_done;
            CHECK_INT(ck.epochs, 6);
            CHECK_INT(ck.state.n_order, 14);   /* 24 images: 6 held out, 4 for tuning */
            ld_detcheckpoint_free(&ck);
        }
        /* the paper preset's reader refuses it, naming the kind */
        ld_checkpoint pk;
        CHECK_INT(ld_checkpoint_load(&pk, &m, path, &err), LD_ERR_INPUT);
        CHECK(strstr(err.msg, "a checkpoint of the detect preset's training, not the paper "
                     "preset's") != NULL);
        ld_model_free(&m);
    }
    snprintf(why, why_size, "%s", err.msg);
    return done;
}

/* The promise end to end, for the CLI command `base` (training `epochs` epochs in
 * dir, writing MODEL and MODEL<history>): one run whole, one killed with SIGKILL
 * after its first checkpoint and resumed; the two models must be the same bytes and
 * the histories the same but for the timings. Returns the checkpoint path in ckpt. */
static void kill_and_resume(const char *what, const char *dir, const char *base, int epochs,
                            const char *history, epochs_done_fn done_of, char *ckpt,
                            size_t ckpt_size)
{
    char args[2048], full[512], resumed[512], fh[600], rh[600], errbuf[2048];
    snprintf(ckpt, ckpt_size, "%s/run.ckpt", dir);
    snprintf(full, sizeof full, "%s/full.safetensors", dir);
    snprintf(resumed, sizeof resumed, "%s/resumed.safetensors", dir);
    snprintf(fh, sizeof fh, "%s%s", full, history);
    snprintf(rh, sizeof rh, "%s%s", resumed, history);
    snprintf(args, sizeof args, "%s --out %s", base, full);
    CHECK_INT(test_run_cli(args, NULL, 0, errbuf, sizeof errbuf), 0);

    /* interrupted: killed as soon as the first checkpoint exists, so during epoch 2 */
    snprintf(args, sizeof args, "%s --out %s --checkpoint %s", base, resumed, ckpt);
    int status = run_until_checkpoint(args, ckpt);
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "the training run was not killed (status %d): it ended on its own", status);
    CHECK(!test_exists(resumed));   /* the run did not get to the end */
    char why[512];
    int done = done_of(ckpt, why, sizeof why);
    CHECK_MSG(done >= 1 && done < epochs, "checkpoint after the kill: %d epochs done (%s)", done,
              why);

    char out[4096], expect[128];
    snprintf(args, sizeof args, "%s --out %s --resume %s", base, resumed, ckpt);
    CHECK_INT(test_run_cli(args, out, sizeof out, errbuf, sizeof errbuf), 0);
    snprintf(expect, sizeof expect, "resuming from %s: %d of %d epochs done", ckpt, done, epochs);
    CHECK_MSG(strstr(out, expect) != NULL, "stdout lacks \"%s\"", expect);
    CHECK_MSG(same_files(full, resumed), "%s: resumed model differs from the uninterrupted one",
              what);
    CHECK_MSG(same_history_csv(fh, rh), "%s: resumed history differs (seconds aside)", what);
    fprintf(stderr, "  %s: SIGKILL after %d of %d epochs, resumed: model byte-identical, "
            "history identical but for the timings\n", what, done, epochs);
}

TEST_SUITE(checkpoint_kill_resume_cli)
{
    const char *dir = test_tmpdir("ckpt-cli");
    synth_config sc = {40, 140, 2, 8, 18, 11};
    CHECK(synth_write(dir, &sc) > 10);
    char base[1024], args[2048], ckpt[512], errbuf[2048];
    snprintf(base, sizeof base, "train --preset paper --images %s --labels %s/labels.json "
             "--patch 44 --margin 4 --epochs 12 --lr 0.003 --seed 9 --quiet", dir, dir);
    kill_and_resume("CLI, paper preset", dir, base, 12, ".history.csv", paper_epochs_done, ckpt,
                    sizeof ckpt);

    /* resuming with other options is refused with the reason, exit 1 */
    snprintf(args, sizeof args, "%s --out %s/x.safetensors --resume %s --batch 4", base, dir, ckpt);
    CHECK_INT(test_run_cli(args, NULL, 0, errbuf, sizeof errbuf), 1);
    CHECK(strstr(errbuf, "made with batch size 5, this run has 4") != NULL);
    snprintf(args, sizeof args, "%s --out %s/x.safetensors --resume %s --dropout 0.5", base, dir,
             ckpt);
    CHECK_INT(test_run_cli(args, NULL, 0, errbuf, sizeof errbuf), 1);
    CHECK(strstr(errbuf, "dropout rate (--dropout)") != NULL);
    snprintf(args, sizeof args, "%s --out %s/x.safetensors --resume %s/none.ckpt", base, dir, dir);
    CHECK_INT(test_run_cli(args, NULL, 0, errbuf, sizeof errbuf), 1);
    CHECK(strstr(errbuf, "none.ckpt: cannot open") != NULL);
}

/* The same promise for the detection preset (the default), whose checkpoints are not
 * taken for the paper preset's. */
TEST_SUITE(checkpoint_detect_kill_resume_cli)
{
    const char *dir = test_tmpdir("ckpt-det");
    synth_config sc = {24, 192, 2, 24, 40, 5};
    CHECK(synth_write(dir, &sc) > 10);
    char base[1024], args[2048], ckpt[512], errbuf[2048];
    snprintf(base, sizeof base, "train --images %s --labels %s/labels.json --epochs 6 "
             "--eval-every 2 --bootstrap 10 --val-fraction 0.2 --seed 9 --quiet", dir, dir);
    kill_and_resume("CLI, detection preset", dir, base, 6, ".det_history.csv", detect_epochs_done,
                    ckpt, sizeof ckpt);

    snprintf(args, sizeof args, "%s --out %s/x.safetensors --resume %s --batch 4", base, dir, ckpt);
    CHECK_INT(test_run_cli(args, NULL, 0, errbuf, sizeof errbuf), 1);
    CHECK(strstr(errbuf, "made with other options (it has \"batch 8\", this run \"batch 4\")"));
    snprintf(args, sizeof args, "train --preset paper --images %s --labels %s/labels.json "
             "--out %s/x.safetensors --resume %s", dir, dir, dir, ckpt);
    CHECK_INT(test_run_cli(args, NULL, 0, errbuf, sizeof errbuf), 1);
    CHECK(strstr(errbuf, "a checkpoint of the detect preset's training") != NULL);
}
