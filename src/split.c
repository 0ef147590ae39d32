/* split.c — training/validation splits (see patches.h).
 *
 * The paper protocol reproduces Keras' validation_split on shuffled patches. The
 * image protocol splits source images, never patches, keeping every group of
 * related images (same near-duplicate group, same patient, ...) on one side:
 * groups are the connected components of "shares a value of a group field",
 * found with union-find. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "lymphdet/patches.h"
#include "lymphdet/rng.h"

int ld_split_paper(int *perm, int n, double val_fraction, uint64_t seed)
{
    ld_rng rng;
    ld_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) perm[i] = i;
    ld_rng_shuffle(&rng, perm, n);
    /* keras: split_at = int(num_samples * (1.0 - validation_split)) */
    return (int)floor((double)n * (1.0 - val_fraction));
}

static int find(int *parent, int i)
{
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

static void unite(int *parent, int a, int b)
{
    a = find(parent, a);
    b = find(parent, b);
    if (a != b) parent[a > b ? a : b] = a < b ? a : b;   /* smallest index is the root */
}

typedef struct { const char *value; int image; } keyed;

static int by_value(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    int c = strcmp(x->value, y->value);
    return c ? c : x->image - y->image;
}

/* joins the images that share a value of `field`; returns how many images have it */
static ld_status join_on_field(int *parent, const ld_labels *labels, const char *field,
                               int *n_with, ld_error *err)
{
    keyed *k = ld_alloc((size_t)labels->n_images, sizeof *k, "group keys", err);
    if (!k) return LD_ERR_NOMEM;
    int n = 0;
    for (int i = 0; i < labels->n_images; i++) {
        const char *v = ld_label_field(&labels->images[i], field);
        if (v && strcmp(v, "null") != 0) k[n++] = (keyed){v, i};
    }
    qsort(k, (size_t)n, sizeof *k, by_value);
    for (int i = 1; i < n; i++)
        if (strcmp(k[i].value, k[i - 1].value) == 0) unite(parent, k[i].image, k[i - 1].image);
    ld_free(k);
    *n_with = n;
    return LD_OK;
}

ld_status ld_split_images(uint8_t *is_val, int *group_of, const ld_labels *labels,
                          const char *group_fields, double val_fraction, uint64_t seed,
                          int *n_groups, char *fields_used, int fields_size, ld_error *err)
{
    static const char *const auto_fields = "near_dup_group,patient,ddti_case";
    int auto_mode = !group_fields || !*group_fields || strcmp(group_fields, "auto") == 0;
    const char *list = auto_mode ? auto_fields : group_fields;
    int n = labels->n_images;
    if (n_groups) *n_groups = 0;
    if (n < 1) return LD_OK;
    if (!(val_fraction >= 0 && val_fraction < 1))
        return ld_fail(err, LD_ERR_USAGE, "validation fraction %g is not in [0, 1)", val_fraction);

    int *parent = ld_alloc((size_t)n, sizeof *parent, "split groups", err);
    int *order = ld_alloc((size_t)n, sizeof *order, "split groups", err);
    int *size = ld_zalloc((size_t)n, sizeof *size, "split groups", err);
    ld_status st = parent && order && size ? LD_OK : LD_ERR_NOMEM;
    if (fields_used && fields_size > 0) fields_used[0] = '\0';
    for (int i = 0; !st && i < n; i++) parent[i] = i;

    char field[128];
    for (const char *p = list; !st && *p;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof field) {
            st = ld_fail(err, LD_ERR_USAGE, "bad group field list '%s'", list);
            break;
        }
        memcpy(field, p, len);
        field[len] = '\0';
        p += len + (p[len] == ',');
        int n_with = 0;
        st = join_on_field(parent, labels, field, &n_with, err);
        if (st) break;
        if (n_with == 0 && !auto_mode)
            st = ld_fail(err, LD_ERR_INPUT, "no image has the group field '%s'", field);
        else if (n_with > 0 && fields_used) {
            size_t used = strlen(fields_used);
            snprintf(fields_used + used, (size_t)fields_size - used, "%s%s", used ? "," : "", field);
        }
    }

    if (!st) {
        int g = 0;
        for (int i = 0; i < n; i++) {
            int r = find(parent, i);
            if (size[r]++ == 0) order[g++] = r;   /* roots in first-appearance order */
        }
        ld_rng rng;
        ld_rng_seed(&rng, seed);
        ld_rng_shuffle(&rng, order, g);
        long target = lround(val_fraction * n), taken = 0;
        memset(is_val, 0, (size_t)n);
        /* a root's is_val marks the whole group; copied to members below */
        for (int k = 0; k < g && taken < target; k++) {
            is_val[order[k]] = 1;
            taken += size[order[k]];
        }
        for (int i = 0; i < n; i++) {
            int r = find(parent, i);
            is_val[i] = is_val[r];
            if (group_of) group_of[i] = r;
        }
        if (n_groups) *n_groups = g;
    }
    ld_free(parent);
    ld_free(order);
    ld_free(size);
    return st;
}

ld_status ld_split_kfold(int *fold, const ld_labels *labels, const char *group_fields, int k,
                         uint64_t seed, int *n_groups, char *fields_used, int fields_size,
                         ld_error *err)
{
    int n = labels->n_images, g = 0;
    if (n_groups) *n_groups = 0;
    if (k < 2) return ld_fail(err, LD_ERR_USAGE, "%d folds: cross-validation needs at least 2", k);
    uint8_t *is_val = ld_alloc((size_t)n, 1, "k-fold split", err);
    int *group_of = ld_alloc((size_t)n, sizeof *group_of, "k-fold split", err);
    int *roots = ld_alloc((size_t)n, sizeof *roots, "k-fold split", err);
    int *size = ld_zalloc((size_t)n, sizeof *size, "k-fold split", err);
    long *filled = ld_zalloc((size_t)k, sizeof *filled, "k-fold split", err);
    ld_status st = is_val && group_of && roots && size && filled ? LD_OK : LD_ERR_NOMEM;
    /* the groups exactly as the image protocol forms them (no image held out) */
    if (!st)
        st = ld_split_images(is_val, group_of, labels, group_fields, 0.0, seed, &g, fields_used,
                             fields_size, err);
    if (!st && g < k)
        st = ld_fail(err, LD_ERR_INPUT, "%d folds need at least %d groups of images; the labels "
                     "have %d", k, k, g);
    if (!st) {
        /* a group's root is its first image, so roots in index order are its groups */
        int m = 0;
        for (int i = 0; i < n; i++) {
            size[group_of[i]]++;
            if (group_of[i] == i) roots[m++] = i;
        }
        ld_rng rng;
        ld_rng_seed(&rng, seed);
        ld_rng_shuffle(&rng, roots, m);
        for (int j = 0; j < m; j++) {
            int best = 0;
            for (int f = 1; f < k; f++)
                if (filled[f] < filled[best]) best = f;
            filled[best] += size[roots[j]];
            fold[roots[j]] = best;   /* the root carries its group's fold */
        }
        for (int i = 0; i < n; i++) fold[i] = fold[group_of[i]];
        if (n_groups) *n_groups = g;
    }
    ld_free(is_val);
    ld_free(group_of);
    ld_free(roots);
    ld_free(size);
    ld_free(filled);
    return st;
}
