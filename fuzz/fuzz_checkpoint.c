/* fuzz_checkpoint.c — libFuzzer target for the training checkpoint reader
 * (checkpoint.c), the file `train --resume` reads.
 *
 * Input: the bytes of a checkpoint. It is read into a model of a fixed small
 * architecture (one block of 2 filters on 3 x 8 x 8 inputs: 83 parameters), as the
 * CLI reads it into the network its options describe. Properties beyond "no crash":
 *   - a refused file leaves the model exactly as it was and the checkpoint empty;
 *   - an accepted one round-trips: saving what was read and reading that back gives
 *     the same parameters, Adam state, position, order and history, and saving again
 *     gives the same bytes. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "lymphdet/checkpoint.h"
#include "fuzz_util.h"

/* the model every input is read into, and a copy of its initial values */
static ld_model model;
static float *initial;   /* [n_params] */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ld_arch arch;
    ld_error err = {0};
    fuzz_make_dir("checkpoint");
    ld_arch_paper(&arch);
    snprintf(arch.preset, sizeof arch.preset, "tiny");
    arch.input_size = 8;
    arch.n_blocks = 1;
    arch.filters[0] = 2;
    if (ld_model_init(&model, &arch, 1, &err) != LD_OK) {
        fprintf(stderr, "fuzz_checkpoint: %s\n", err.msg);
        abort();
    }
    ld_model_init_weights(&model, 1);
    initial = malloc(model.n_params * sizeof *initial);
    if (!initial) abort();
    memcpy(initial, model.params, model.n_params * sizeof *initial);
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
