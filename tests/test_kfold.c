/* test_kfold.c — the grouped k-fold split (ld_split_kfold in src/split.c).
 *
 * tests/fixtures/evaluate/groups.json has 7 images whose `patient` fields make 4
 * groups: {0, 1}, {2}, {3, 4, 5}, {6}. Whatever order the seed deals them in,
 * a group never straddles two folds and every image gets exactly one fold; with
 * 4 folds each fold holds exactly one group (each of the first 4 groups goes to
 * a still-empty fold), so the fold sizes are 2, 1, 3, 1 in some order. */
#include <stdint.h>
#include <string.h>
#include "lymphdet/labels.h"
#include "lymphdet/patches.h"
#include "test.h"

TEST_SUITE(split_kfold)
{
    ld_labels labels;
    ld_label_options lo;
    ld_label_options_default(&lo);
    ld_error err = {0};
    CHECK(ld_labels_load(&labels, "tests/fixtures/evaluate/groups.json", &lo, &err) == LD_OK);
    if (labels.n_images != 7) return;
    int fold[7], again[7], n_groups = 0;
    char used[64];
    static const int group[7] = {0, 0, 1, 2, 2, 2, 3};

    for (int k = 2; k <= 4; k++) {
        for (uint64_t seed = 1; seed <= 5; seed++) {
            CHECK(ld_split_kfold(fold, &labels, NULL, k, seed, &n_groups, used, (int)sizeof used,
                                 &err) == LD_OK);
            CHECK_INT(n_groups, 4);
            CHECK_STR(used, "patient");
            int size[4] = {0};
            for (int i = 0; i < 7; i++) {
                CHECK(fold[i] >= 0 && fold[i] < k);
                if (fold[i] >= 0 && fold[i] < k) size[fold[i]]++;
                for (int j = 0; j < 7; j++)
                    if (group[i] == group[j]) CHECK_INT(fold[i], fold[j]);
            }
            for (int f = 0; f < k; f++) CHECK(size[f] > 0);   /* no empty fold */
            /* dealing to the emptiest fold: sizes differ by at most the largest group */
            int lo_s = 7, hi_s = 0;
            for (int f = 0; f < k; f++) {
                if (size[f] < lo_s) lo_s = size[f];
                if (size[f] > hi_s) hi_s = size[f];
            }
            CHECK(hi_s - lo_s <= 3);
            if (k == 4) {
                int sorted[4];
                memcpy(sorted, size, sizeof sorted);
                for (int a = 0; a < 4; a++)
                    for (int b = a + 1; b < 4; b++)
                        if (sorted[b] < sorted[a]) { int t = sorted[a]; sorted[a] = sorted[b]; sorted[b] = t; }
                CHECK(sorted[0] == 1 && sorted[1] == 1 && sorted[2] == 2 && sorted[3] == 3);
            }
            /* the same seed, the same folds */
            CHECK(ld_split_kfold(again, &labels, "patient", k, seed, NULL, NULL, 0, &err) == LD_OK);
            CHECK(memcmp(fold, again, sizeof fold) == 0);
        }
    }
    /* different seeds deal differently (some pair of seeds among 1..5 must differ) */
    int differ = 0;
    CHECK(ld_split_kfold(again, &labels, NULL, 2, 1, NULL, NULL, 0, &err) == LD_OK);
    for (uint64_t seed = 2; seed <= 5; seed++) {
        CHECK(ld_split_kfold(fold, &labels, NULL, 2, seed, NULL, NULL, 0, &err) == LD_OK);
        differ |= memcmp(fold, again, sizeof fold) != 0;
    }
    CHECK(differ);

    /* more folds than groups, too few folds, a field nobody has */
    CHECK(ld_split_kfold(fold, &labels, NULL, 5, 1, NULL, NULL, 0, &err) == LD_ERR_INPUT);
    CHECK(strstr(err.msg, "5 folds need at least 5 groups of images; the labels have 4") != NULL);
    CHECK(ld_split_kfold(fold, &labels, NULL, 1, 1, NULL, NULL, 0, &err) == LD_ERR_USAGE);
    CHECK(ld_split_kfold(fold, &labels, "ward", 2, 1, NULL, NULL, 0, &err) == LD_ERR_INPUT);
    CHECK(strstr(err.msg, "ward") != NULL);
    /* "auto" looks for near_dup_group, patient, ddti_case: it finds patient */
    CHECK(ld_split_kfold(fold, &labels, "auto", 2, 1, &n_groups, NULL, 0, &err) == LD_OK);
    CHECK_INT(n_groups, 4);
    ld_labels_free(&labels);

    /* labels without any group field: every image is its own group */
    CHECK(ld_labels_load(&labels, "tests/fixtures/evaluate/labels.json", &lo, &err) == LD_OK);
    CHECK(ld_split_kfold(fold, &labels, NULL, 2, 3, &n_groups, used, (int)sizeof used, &err) == LD_OK);
    CHECK_INT(n_groups, 2);
    CHECK_STR(used, "");
    CHECK(fold[0] + fold[1] == 1);   /* one image in each fold */
    ld_labels_free(&labels);
}
