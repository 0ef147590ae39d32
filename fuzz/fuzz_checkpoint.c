/* fuzz_checkpoint.c — libFuzzer target for the training checkpoint reader
 * (checkpoint.c), the file `train --resume` reads.
 *
 * Input: the bytes of a checkpoint. It is read as the paper preset's checkpoint into
 * a model of a fixed small architecture (one block of 2 filters on 3 x 8 x 8 inputs:
 * 83 parameters), and as the detection preset's into the same block with a box head
 * (159 parameters), as the CLI reads it into the network its options describe.
 * Properties beyond "no crash", for both readers:
 *   - a refused file leaves the model exactly as it was and the checkpoint empty;
 *   - an accepted one round-trips: saving what was read and reading that back gives
 *     the same parameters, Adam state, position, order and history (and best
 *     weights), and saving again gives the same bytes. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "lymphdet/checkpoint.h"
#include "fuzz_util.h"

/* the models every input is read into, and copies of their initial values */
static ld_model model, detmodel;
static float *initial, *det_initial;   /* [n_params] each */

/* Makes *m of arch with seeded weights and keeps a copy of them in *initial. */
static void make_model(ld_model *m, float **initial_out, const ld_arch *arch, uint64_t seed)
{
    ld_error err = {0};
    if (ld_model_init(m, arch, 1, &err) != LD_OK) {
        fprintf(stderr, "fuzz_checkpoint: %s\n", err.msg);
        abort();
    }
    ld_model_init_weights(m, seed);
    *initial_out = malloc(m->n_params * sizeof **initial_out);
    if (!*initial_out) abort();
    memcpy(*initial_out, m->params, m->n_params * sizeof **initial_out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ld_arch arch;
    fuzz_make_dir("checkpoint");
    ld_arch_paper(&arch);
    snprintf(arch.preset, sizeof arch.preset, "tiny");
    arch.input_size = 8;
    arch.n_blocks = 1;
    arch.filters[0] = 2;
    make_model(&model, &initial, &arch, 1);
    snprintf(arch.preset, sizeof arch.preset, "tinydet");
    arch.box_head = 4;
    make_model(&detmodel, &det_initial, &arch, 2);
    return 0;
}

static int same_history(const ld_epoch_stats *a, const ld_epoch_stats *b, int n)
{
    for (int e = 0; e < n; e++) {
        const double x[5] = {a[e].train_loss, a[e].train_acc, a[e].val_loss, a[e].val_acc,
                             a[e].seconds};
        const double y[5] = {b[e].train_loss, b[e].train_acc, b[e].val_loss, b[e].val_acc,
                             b[e].seconds};
        if (a[e].epoch != b[e].epoch) return 0;
        for (int k = 0; k < 5; k++)
            if (!(x[k] == y[k] || (isnan(x[k]) && isnan(y[k])))) return 0;
    }
    return 1;
}

static long file_bytes(const char *path, uint8_t **data)
{
    FILE *f = fopen(path, "rb");
    if (!f) abort();
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    *data = malloc((size_t)n);
    if (!*data || fread(*data, 1, (size_t)n, f) != (size_t)n) abort();
    fclose(f);
    return n;
}

static void roundtrip(const ld_checkpoint *ck)
{
    char a[512], b[512];
    ld_error err = {0};
    ld_checkpoint back;
    snprintf(a, sizeof a, "%s/a.ckpt", fuzz_dir);
    snprintf(b, sizeof b, "%s/b.ckpt", fuzz_dir);
    size_t np = model.n_params;
    float *saved = malloc(3 * np * sizeof *saved);   /* [3, np] params, m, v */
    if (!saved) abort();
    memcpy(saved, model.params, np * sizeof *saved);
    memcpy(saved + np, model.adam_m, np * sizeof *saved);
    memcpy(saved + 2 * np, model.adam_v, np * sizeof *saved);
    long t = model.adam_t;
    if (ld_checkpoint_save(a, &model, &ck->cfg, &ck->state, ck->history, ck->fingerprint,
                           ck->n_val, &err) != LD_OK ||
        ld_checkpoint_load(&back, &model, a, &err) != LD_OK)
        abort();
    if (memcmp(saved, model.params, np * sizeof *saved) != 0 ||
        memcmp(saved + np, model.adam_m, np * sizeof *saved) != 0 ||
        memcmp(saved + 2 * np, model.adam_v, np * sizeof *saved) != 0 || model.adam_t != t ||
        back.state.epochs_done != ck->state.epochs_done || back.n_train != ck->n_train ||
        back.n_val != ck->n_val || back.fingerprint != ck->fingerprint ||
        memcmp(&back.state.rng, &ck->state.rng, sizeof back.state.rng) != 0 ||
        memcmp(back.state.order, ck->state.order, (size_t)ck->n_train * sizeof(int)) != 0 ||
        !same_history(back.history, ck->history, ck->state.epochs_done))
        abort();
    if (ld_checkpoint_save(b, &model, &back.cfg, &back.state, back.history, back.fingerprint,
                           back.n_val, &err) != LD_OK)
        abort();
    uint8_t *da, *db;
    long na = file_bytes(a, &da), nb = file_bytes(b, &db);
    if (na != nb || memcmp(da, db, (size_t)na) != 0) abort();
    free(da);
    free(db);
    free(saved);
    ld_checkpoint_free(&back);
}

static int same_det_history(const ld_det_epoch *a, const ld_det_epoch *b, int n)
{
    for (int e = 0; e < n; e++) {
        const double x[7] = {a[e].loss, a[e].obj_loss, a[e].box_loss, a[e].pos_per_crop,
                             a[e].val_ap50, a[e].val_ap, a[e].seconds};
        const double y[7] = {b[e].loss, b[e].obj_loss, b[e].box_loss, b[e].pos_per_crop,
                             b[e].val_ap50, b[e].val_ap, b[e].seconds};
        if (a[e].epoch != b[e].epoch) return 0;
        for (int k = 0; k < 7; k++)
            if (!(x[k] == y[k] || (isnan(x[k]) && isnan(y[k])))) return 0;
    }
    return 1;
}

static void det_roundtrip(const ld_detcheckpoint *ck)
{
    char a[512], b[512];
    ld_error err = {0};
    ld_detcheckpoint back;
    snprintf(a, sizeof a, "%s/da.ckpt", fuzz_dir);
    snprintf(b, sizeof b, "%s/db.ckpt", fuzz_dir);
    size_t np = detmodel.n_params;
    float *saved = malloc(np * sizeof *saved);
    if (!saved) abort();
    memcpy(saved, detmodel.params, np * sizeof *saved);
    if (ld_detcheckpoint_save(a, &detmodel, ck->epochs, ck->settings, ck->fingerprint,
                              &ck->state, ck->history, &err) != LD_OK ||
        ld_detcheckpoint_load(&back, &detmodel, a, &err) != LD_OK)
        abort();
    int n = ck->state.epochs_done;
    if (memcmp(saved, detmodel.params, np * sizeof *saved) != 0 || back.epochs != ck->epochs ||
        strcmp(back.settings, ck->settings) != 0 || back.fingerprint != ck->fingerprint ||
        back.state.epochs_done != n || back.state.n_order != ck->state.n_order ||
        back.state.best_epoch != ck->state.best_epoch ||
        memcmp(&back.state.rng, &ck->state.rng, sizeof back.state.rng) != 0 ||
        memcmp(back.state.order, ck->state.order, (size_t)ck->state.n_order * sizeof(int)) != 0 ||
        (ck->state.best_epoch > 0 &&
         memcmp(back.state.best, ck->state.best, np * sizeof *saved) != 0) ||
        !same_det_history(back.history, ck->history, n))
        abort();
    if (ld_detcheckpoint_save(b, &detmodel, back.epochs, back.settings, back.fingerprint,
                              &back.state, back.history, &err) != LD_OK)
        abort();
    uint8_t *da, *db;
    long na = file_bytes(a, &da), nb = file_bytes(b, &db);
    if (na != nb || memcmp(da, db, (size_t)na) != 0) abort();
    free(da);
    free(db);
    free(saved);
    ld_detcheckpoint_free(&back);
}

/* the detection preset's reader on the same bytes */
static void detect_kind(const char *path)
{
    ld_detcheckpoint ck;
    ld_error err = {0};
    memcpy(detmodel.params, det_initial, detmodel.n_params * sizeof *det_initial);
    memset(detmodel.adam_m, 0, detmodel.n_params * sizeof *detmodel.adam_m);
    memset(detmodel.adam_v, 0, detmodel.n_params * sizeof *detmodel.adam_v);
    detmodel.adam_t = 0;
    if (ld_detcheckpoint_load(&ck, &detmodel, path, &err) != LD_OK) {
        if (!err.msg[0] || ck.history || ck.state.order || ck.state.best || ck.settings ||
            detmodel.adam_t != 0 ||
            memcmp(detmodel.params, det_initial, detmodel.n_params * sizeof *det_initial) != 0)
            abort();
        return;
    }
    det_roundtrip(&ck);
    ld_detcheckpoint_free(&ck);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    ld_checkpoint ck;
    ld_error err = {0};
    memcpy(model.params, initial, model.n_params * sizeof *initial);
    memset(model.adam_m, 0, model.n_params * sizeof *model.adam_m);
    memset(model.adam_v, 0, model.n_params * sizeof *model.adam_v);
    model.adam_t = 0;
    fuzz_write(path, sizeof path, "in.ckpt", data, size);
    detect_kind(path);
    if (ld_checkpoint_load(&ck, &model, path, &err) != LD_OK) {
        if (!err.msg[0] || ck.history || ck.state.order || model.adam_t != 0 ||
            memcmp(model.params, initial, model.n_params * sizeof *initial) != 0)
            abort();
        return 0;
    }
    roundtrip(&ck);
    ld_checkpoint_free(&ck);
    return 0;
}
