/* cmd_info.c — `lymphdet info MODEL`: what a model file holds.
 *
 * The architecture (preset, input, filters, dropout, batch-norm settings), a layer
 * table in the form of the paper's Table 1 (output shapes H x W x C as Keras prints
 * them; parameter counts taken from the loaded tensors, not recomputed, so the table
 * shows what the file really contains), the total and trainable counts (1421 / 1389
 * for the paper's network), and every metadata pair stored with the model (training
 * settings, seed, metrics, the version that wrote it). */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "lymphdet/model.h"

/* numel of the tensors whose name starts with prefix ("conv1.", "bn1.", "dense.") */
static size_t params_of(const ld_model *m, const char *prefix)
{
    size_t n = 0, len = strlen(prefix);
    for (int i = 0; i < m->n_tensors; i++)
        if (strncmp(m->tensors[i].name, prefix, len) == 0) n += m->tensors[i].numel;
    return n;
}

static void row(const char *layer, const char *shape, size_t params)
{
    printf("  %-34s %-12s %7zu\n", layer, shape, params);
}

static void print_layers(const ld_model *m)
{
    const ld_arch *a = &m->arch;
    char shape[48], name[64], prefix[16];
    size_t total = 0;
    printf("\n  %-34s %-12s %7s\n", "layer", "output", "params");
    snprintf(shape, sizeof shape, "%dx%dx%d", a->input_size, a->input_size, a->in_channels);
    row("input", shape, 0);
    int side = a->input_size;
    for (int k = 0; k < a->n_blocks; k++) {
        int f = a->filters[k], pooled = ld_arch_block_out(a, k);
        size_t n;
        snprintf(shape, sizeof shape, "%dx%dx%d", side - 2, side - 2, f);
        snprintf(prefix, sizeof prefix, "conv%d.", k + 1);
        snprintf(name, sizeof name, "conv%d: Conv2D %d, 3x3 valid", k + 1, f);
        n = params_of(m, prefix);
        row(name, shape, n);
        total += n;
        snprintf(prefix, sizeof prefix, "bn%d.", k + 1);
        snprintf(name, sizeof name, "bn%d: BatchNorm", k + 1);
        n = params_of(m, prefix);
        row(name, shape, n);
        total += n;
        snprintf(shape, sizeof shape, "%dx%dx%d", pooled, pooled, f);
        row("ReLU, MaxPool 2x2, Dropout", shape, 0);
        side = pooled;
    }
    int d = side * side * a->filters[a->n_blocks - 1];
    snprintf(shape, sizeof shape, "%d", d);
    row("Flatten", shape, 0);
    size_t n = params_of(m, "dense.");
    row("dense: Dense 1, sigmoid", "1", n);
    total += n;
    if (a->box_head) {   /* the detection preset's second head (dettrain.h) */
        n = params_of(m, "box.");
        snprintf(name, sizeof name, "box: Dense %d, box offsets", a->box_head);
        snprintf(shape, sizeof shape, "%d", a->box_head);
        row(name, shape, n);
        total += n;
    }
    /* any further tensors (extra heads of other presets) are counted, not hidden */
    size_t all_trainable = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].trainable) all_trainable += m->tensors[i].numel;
    if (total != m->n_params) row("other tensors", "", m->n_params - total);
    printf("\ntotal parameters   %zu\n", m->n_params);
    printf("trainable          %zu\n", all_trainable);
    printf("non-trainable      %zu\n", m->n_params - all_trainable);
}

int cmd_info(int argc, char **argv)
{
    char *pos[1];
    int n_pos = 0;
    int rc = cli_parse("info", "MODEL",
                       "Prints a model file's architecture, a layer table with parameter\n"
                       "counts (as the paper's Table 1), and the metadata stored with it\n"
                       "(training settings, seed, metrics).",
                       NULL, 0, argc, argv, pos, 1, &n_pos);
    if (rc < 0 && n_pos != 1) rc = cli_usage_error("info", "expects one model file (see --help)");
    if (rc >= 0) return rc;

    ld_error err = {0};
    ld_model m;
    if (ld_model_load(&m, pos[0], 1, &err)) return cli_fail("info", &err);
    const ld_arch *a = &m.arch;
    printf("model              %s\n", pos[0]);
    printf("preset             %s\n", a->preset);
    printf("input              %d x %d x %d\n", a->input_size, a->input_size, a->in_channels);
    printf("filters           ");
    for (int k = 0; k < a->n_blocks; k++) printf(k ? ", %d" : " %d", a->filters[k]);
    printf("\ndropout            %g\n", (double)a->dropout);
    if (a->box_head)
        printf("windows            every %d px; each judges the %d x %d box centred in it\n",
               1 << a->n_blocks, a->anchor ? a->anchor : a->input_size,
               a->anchor ? a->anchor : a->input_size);
    printf("batch norm         epsilon %g, momentum %g\n", (double)a->bn_eps,
           (double)a->bn_momentum);
    print_layers(&m);
    printf("\nmetadata%s\n", m.n_meta ? "" : "           (none)");
    for (int i = 0; i < m.n_meta; i++) printf("  %-24s %s\n", m.meta_key[i], m.meta_value[i]);
    ld_model_free(&m);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "lymphdet info: writing the output failed\n");
        return 1;
    }
    return 0;
}
