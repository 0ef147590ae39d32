/* test_patches.c — the patch builder and the split protocols. */
#include <stdlib.h>
#include <string.h>
#include "lymphdet/image.h"
#include "lymphdet/labels.h"
#include "lymphdet/patches.h"
#include "synth.h"
#include "test.h"

TEST_SUITE(split_paper_keras_counts)
{
    /* Keras validation_split=0.1 on the paper's 1736 patches: 1562 / 174 */
    int *perm = malloc(1736 * sizeof *perm), *seen = calloc(1736, sizeof *seen);
    CHECK_INT(ld_split_paper(perm, 1736, 0.1, 7), 1562);
    int ok = 1;
    for (int i = 0; i < 1736; i++) seen[perm[i]]++;
    for (int i = 0; i < 1736; i++) ok &= seen[i] == 1;
    CHECK(ok);                              /* a permutation */
    int *again = malloc(1736 * sizeof *again);
    ld_split_paper(again, 1736, 0.1, 7);
    CHECK(memcmp(perm, again, 1736 * sizeof *perm) == 0);   /* seeded */
    ld_split_paper(again, 1736, 0.1, 8);
    CHECK(memcmp(perm, again, 1736 * sizeof *perm) != 0);
    /* floor, as int() in Keras: 10 -> 9/1, 15 -> 13/2, 19 -> 17/2 */
    CHECK_INT(ld_split_paper(again, 10, 0.1, 1), 9);
    CHECK_INT(ld_split_paper(again, 15, 0.1, 1), 13);
    CHECK_INT(ld_split_paper(again, 19, 0.1, 1), 17);
    CHECK_INT(ld_split_paper(again, 1, 0.1, 1), 0);
    free(perm); free(seen); free(again);
}

/* labels built by hand: image i has fields "near_dup_group" = near[i] and
 * "patient" = patient[i] (NULL: absent) */
static void hand_labels(ld_labels *l, int n, const char *const *near, const char *const *patient)
{
    memset(l, 0, sizeof *l);
    l->images = calloc((size_t)n, sizeof *l->images);
    l->n_images = n;
    for (int i = 0; i < n; i++) {
        ld_label_image *li = &l->images[i];
        char name[32];
        snprintf(name, sizeof name, "im%02d.png", i);
        li->id = i + 1;
        li->file_name = strdup(name);
        li->width = li->height = 200;
        li->fields = calloc(2, sizeof *li->fields);
        if (near && near[i]) {
            li->fields[li->n_fields].key = strdup("near_dup_group");
            li->fields[li->n_fields++].value = strdup(near[i]);
        }
        if (patient && patient[i]) {
            li->fields[li->n_fields].key = strdup("patient");
            li->fields[li->n_fields++].value = strdup(patient[i]);
        }
    }
}

TEST_SUITE(split_image_groups)
{
    /* 12 images; near-duplicate groups {0,1}, {2,3,4}; patients join 4 and 5, and 9 and 10 */
    const char *near[12] = {"a", "a", "b", "b", "b", "c", "d", "e", "f", "g", "h", "i"};
    const char *patient[12] = {NULL, NULL, NULL, NULL, "p1", "p1", NULL, NULL, NULL, "p2", "p2", NULL};
    ld_labels l;
    hand_labels(&l, 12, near, patient);
    ld_error err = {0};
    uint8_t is_val[12];
    int group[12], n_groups = 0;
    char used[64];
    for (uint64_t seed = 1; seed <= 50; seed++) {
        CHECK_INT(ld_split_images(is_val, group, &l, NULL, 0.25, seed, &n_groups, used, 64, &err), LD_OK);
        CHECK_INT(n_groups, 7);            /* {0,1} {2,3,4,5} {6} {7} {8} {9,10} {11} */
        CHECK(is_val[0] == is_val[1]);
        CHECK(is_val[2] == is_val[3] && is_val[3] == is_val[4] && is_val[4] == is_val[5]);
        CHECK(is_val[9] == is_val[10]);
        int nv = 0;
        for (int i = 0; i < 12; i++) nv += is_val[i];
        CHECK(nv >= 3 && nv <= 6);         /* target round(0.25 * 12) = 3, one group may overshoot */
        CHECK_INT(group[5], 2);
        CHECK_INT(group[10], 9);
    }
    CHECK_STR(used, "near_dup_group,patient");
    /* only the near-duplicate field: 4 and 5 are no longer tied */
    CHECK_INT(ld_split_images(is_val, group, &l, "near_dup_group", 0.25, 3, &n_groups, NULL, 0, &err), LD_OK);
    CHECK_INT(n_groups, 9);
    /* a field no image has is an error when asked for by name */
    CHECK_INT(ld_split_images(is_val, group, &l, "hospital", 0.25, 3, &n_groups, NULL, 0, &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, "hospital") != NULL);
    /* fraction 0: nothing held out */
    CHECK_INT(ld_split_images(is_val, group, &l, NULL, 0, 3, &n_groups, NULL, 0, &err), LD_OK);
    int nv = 0;
    for (int i = 0; i < 12; i++) nv += is_val[i];
    CHECK_INT(nv, 0);
    ld_labels_free(&l);
}

static int synth_dir(const char *tag, int n_images, uint64_t seed, const char **dir_out)
{
    const char *dir = test_tmpdir(tag);
    synth_config sc = {n_images, 160, 2, 12, 28, seed};
    *dir_out = dir;
    return synth_write(dir, &sc);
}

TEST_SUITE(patches_build)
{
    const char *dir;
    int n_boxes = synth_dir("patches", 6, 11, &dir);
    CHECK(n_boxes > 0);
    char path[512];
    snprintf(path, sizeof path, "%s/labels.json", dir);
    ld_labels l;
    ld_label_options lo;
    ld_label_options_default(&lo);
    ld_error err = {0};
    if (ld_labels_load(&l, path, &lo, &err)) {
        CHECK_MSG(0, "labels: %s", err.msg);
        return;
    }
    ld_patch_config pc;
    ld_patch_config_default(&pc);
    pc.size = 40;
    pc.margin = 5;
    ld_patchset ps;
    CHECK_INT(ld_patches_build(&ps, &l, dir, NULL, 0, &pc, &err), LD_OK);
    int pos = 0, neg = 0;
    for (int i = 0; i < ps.n; i++) {
        if (ps.label[i]) pos++;
        else neg++;
    }
    CHECK_INT(pos, 4 * n_boxes);
    CHECK_INT(neg, (int)lround(pos * 740.0 / 992.0));
    /* the first positive is the margin crop of the first box, resized; the next
     * three are its left-right mirror, top-bottom mirror and 180-degree turn */
    int first = 0;
    while (!ps.label[first]) first++;
    const ld_label_image *li = &l.images[ps.image[first]];
    const ld_box *b = &li->boxes[ps.box[first]];
    int x0 = (int)floor(b->x) - 5, y0 = (int)floor(b->y) - 5;
    int x1 = (int)ceil(b->x + b->w) + 5, y1 = (int)ceil(b->y + b->h) + 5;
    x0 = x0 < 0 ? 0 : x0; y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > 160 ? 160 : x1; y1 = y1 > 160 ? 160 : y1;
    CHECK_INT(ps.x[first], x0);
    CHECK_INT(ps.y[first], y0);
    ld_image src = {0}, crop = {0}, want = {0};
    snprintf(path, sizeof path, "%s/%s", dir, li->file_name);
    CHECK_INT(ld_image_load(&src, path, 0, &err), LD_OK);
    CHECK_INT(ld_image_crop(&crop, &src, x0, y0, x1 - x0, y1 - y0, &err), LD_OK);
    CHECK_INT(ld_image_resize(&want, &crop, 40, 40, &err), LD_OK);
    const uint8_t *p0 = ps.px + (size_t)first * 1600, *p1 = p0 + 1600, *p2 = p1 + 1600, *p3 = p2 + 1600;
    CHECK(memcmp(p0, want.px, 1600) == 0);
    int mirrored = 1;
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 40; x++) {
            mirrored &= p1[y * 40 + x] == p0[y * 40 + 39 - x];
            mirrored &= p2[y * 40 + x] == p0[(39 - y) * 40 + x];
            mirrored &= p3[y * 40 + x] == p0[(39 - y) * 40 + 39 - x];
        }
    CHECK(mirrored);
    CHECK_INT(ps.aug[first + 1], LD_AUG_FLIP_H);
    CHECK_INT(ps.aug[first + 3], LD_AUG_ROT180);
    /* every negative window is clear of every box and matches the image there */
    int clear = 1, same = 1;
    for (int i = 0; i < ps.n; i++) {
        if (ps.label[i]) continue;
        const ld_label_image *im = &l.images[ps.image[i]];
        for (int k = 0; k < im->n_boxes; k++) {
            const ld_box *bx = &im->boxes[k];
            double iw = fmin(ps.x[i] + 40, bx->x + bx->w) - fmax(ps.x[i], bx->x);
            double ih = fmin(ps.y[i] + 40, bx->y + bx->h) - fmax(ps.y[i], bx->y);
            clear &= !(iw > 0 && ih > 0);
        }
        if (ps.image[i] == ps.image[first])
            for (int y = 0; y < 40; y++)
                same &= memcmp(ps.px + (size_t)i * 1600 + y * 40,
                               src.px + (size_t)(ps.y[i] + y) * 160 + ps.x[i], 40) == 0;
    }
    CHECK(clear);
    CHECK(same);
    /* the same seed gives the same bytes; another seed other negatives */
    ld_patchset again;
    CHECK_INT(ld_patches_build(&again, &l, dir, NULL, 0, &pc, &err), LD_OK);
    CHECK(again.n == ps.n && memcmp(again.px, ps.px, (size_t)ps.n * 1600) == 0);
    ld_patchset_free(&again);
    pc.seed = 2;
    CHECK_INT(ld_patches_build(&again, &l, dir, NULL, 0, &pc, &err), LD_OK);
    CHECK(again.n == ps.n && memcmp(again.px, ps.px, (size_t)ps.n * 1600) != 0);
    ld_patchset_free(&again);
    /* batches: 3 equal channels of grey / 255 and 0/1 labels */
    float x[3 * 1600], y;
    int idx = first;
    ld_patches_batch(x, &y, &ps, &idx, 1);
    CHECK(y == 1.0f);
    CHECK(x[17] == p0[17] / 255.0f && x[1600 + 17] == x[17] && x[3200 + 17] == x[17]);
    /* windows that cannot avoid the boxes: a 150-px window in a 160-px image
     * always meets a box of 24+ px, so only images without boxes could give one;
     * without them the builder fails with a message instead of looping */
    int with_boxes[6], n_with = 0;
    for (int i = 0; i < l.n_images; i++)
        if (l.images[i].n_boxes) with_boxes[n_with++] = i;
    pc.size = 150;
    pc.n_negatives = 5;
    CHECK_INT(ld_patches_build(&again, &l, dir, with_boxes, n_with, &pc, &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, "negative") != NULL);
    ld_image_free(&src); ld_image_free(&crop); ld_image_free(&want);
    ld_patchset_free(&ps);
    ld_labels_free(&l);
}
