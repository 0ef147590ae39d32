/* checkpoint.h — crash-safe training: everything a run needs to continue after a
 * crash or a kill, in one file rewritten atomically after every epoch.
 *
 * A checkpoint holds the weights (BN moving statistics included), the Adam moments m
 * and v and the step count t, the random stream (shuffles and dropout masks), the
 * training order, the number of epochs done and their history, plus what identifies
 * the run: the architecture, batch size, Adam settings, seed, and a fingerprint of the
 * training and validation patches. Training resumed from it gives a model identical
 * bit for bit to an uninterrupted run with the same seed (tests/test_hostile.c kills
 * a run with SIGKILL in the middle of an epoch to check it).
 *
 * File layout (all little-endian):
 *   8 bytes   "LDCKPT1\n"
 *   8 bytes   N, the length of the JSON header (at most 64 MiB)
 *   N bytes   JSON header: format, version, arch, n_params, train settings, data
 *             (n_train, n_val, fingerprint), epochs_done, adam_t, rng (4 hex words),
 *             history (one object per epoch; a non-finite figure written as null)
 *   data      params, adam_m, adam_v: float32 [n_params] each (state-dict order, as
 *             in ld_model); order: int32 [n_train]
 *   8 bytes   FNV-1a 64 of every byte before it
 * The file ends exactly there. The checksum makes a checkpoint damaged after it was
 * written refused, not half-trusted.
 *
 * The detection preset's training (dettrain.h) has checkpoints of the same layout,
 * with "kind": "detect" in the header (a paper checkpoint has no kind, or "paper"),
 * its settings as one string (what the run was asked to do, compared whole on
 * resuming), a fingerprint of its frames, the best epoch so far and its tuning
 * scores, the detection history; and after the order, the best epoch's weights:
 * float32 [n_params]. Each loader refuses the other kind's files.
 * Writing goes through a temporary file and rename (outfile.h): a kill while writing
 * leaves the previous checkpoint whole. */
#ifndef LYMPHDET_CHECKPOINT_H
#define LYMPHDET_CHECKPOINT_H

#include <stdint.h>
#include "lymphdet/error.h"
#include "lymphdet/model.h"
#include "lymphdet/patches.h"
#include "lymphdet/dettrain.h"
#include "lymphdet/train.h"

typedef struct {
    ld_train_state state;       /* epochs_done, rng, order[n_train] (owned) */
    ld_epoch_stats *history;    /* [state.epochs_done] (owned) */
    ld_train_config cfg;        /* the run's settings; cfg.epochs is what it planned,
                                   cfg.checkpoint is NULL */
    int n_train, n_val;
    uint64_t fingerprint;       /* ld_patches_fingerprint of the run's patches */
} ld_checkpoint;

/* FNV-1a 64 over the patch side, the counts, and every patch's label and pixels of
 * train then val (val may be NULL): a different dataset gives a different value. */
uint64_t ld_patches_fingerprint(const ld_patchset *train, const ld_patchset *val);

/* Writes a checkpoint of m after st->epochs_done epochs of the run cfg on patches
 * with the given fingerprint and n_val validation patches; history[0..epochs_done). */
ld_status ld_checkpoint_save(const char *path, const ld_model *m, const ld_train_config *cfg,
                             const ld_train_state *st, const ld_epoch_stats *history,
                             uint64_t fingerprint, int n_val, ld_error *err);

/* Reads a checkpoint into ck and into m, which the caller has ld_model_init'ed for
 * the run's architecture: the file must be for exactly that architecture (a mismatch
 * names the field), so no size in the file decides an allocation before the file's
 * length confirms it. Everything is validated (magic, header bounds, JSON, every value,
 * finite weights and moments, the order a permutation, the rng state non-zero, sizes
 * against the file's length, the checksum) before m is touched; on failure m is unchanged and ck empty. On
 * success m's parameters, Adam moments and step count are the checkpoint's. */
ld_status ld_checkpoint_load(ld_checkpoint *ck, ld_model *m, const char *path, ld_error *err);
void      ld_checkpoint_free(ld_checkpoint *ck);

/* Whether ck can continue the run cfg on these patches: same batch, Adam settings,
 * seed and patches (count and fingerprint), and cfg->epochs >= the epochs done.
 * (cfg->epochs may differ from the planned count: training on is well defined.)
 * `path` names the checkpoint in messages. */
ld_status ld_checkpoint_check(const ld_checkpoint *ck, const ld_train_config *cfg,
                              const ld_patchset *train, const ld_patchset *val,
                              const char *path, ld_error *err);

/* ---- the detection preset ---------------------------------------------------- */

typedef struct {
    ld_dettrain_state state;    /* epochs_done, rng, order, best (all owned) */
    ld_det_epoch *history;      /* [state.epochs_done] (owned) */
    int epochs;                 /* the epochs the run planned */
    char *settings;             /* the run's settings string (owned) */
    uint64_t fingerprint;       /* ld_frames_fingerprint of the run's frames */
} ld_detcheckpoint;

/* FNV-1a 64 over the training then the tuning frames (tune may be NULL): every
 * frame's size, pixels and boxes. */
uint64_t ld_frames_fingerprint(const ld_frameset *train, const ld_frameset *tune);

/* Writes a checkpoint of m after st->epochs_done of `epochs` epochs; settings is any
 * string (at most 64 KiB) that identifies what the run was asked to do. */
ld_status ld_detcheckpoint_save(const char *path, const ld_model *m, int epochs,
                                const char *settings, uint64_t fingerprint,
                                const ld_dettrain_state *st, const ld_det_epoch *history,
                                ld_error *err);
/* Reads a detection checkpoint into ck and m, validated as ld_checkpoint_load does
 * (and the best weights finite); on failure m is unchanged and ck empty. */
ld_status ld_detcheckpoint_load(ld_detcheckpoint *ck, ld_model *m, const char *path,
                                ld_error *err);
void      ld_detcheckpoint_free(ld_detcheckpoint *ck);
/* Whether ck continues a run with these settings on these frames for `epochs`
 * epochs (at least those done). `path` names the checkpoint in messages. */
ld_status ld_detcheckpoint_check(const ld_detcheckpoint *ck, int epochs, const char *settings,
                                 uint64_t fingerprint, const char *path, ld_error *err);

#endif
