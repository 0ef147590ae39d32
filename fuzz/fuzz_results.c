/* fuzz_results.c — libFuzzer target for the COCO results JSON reader (detections.c),
 * the file `evaluate --results` reads from any detector.
 *
 * Input: the bytes of a results file. The labels it is read against are fixed: a
 * small COCO dataset written and loaded once at start-up (images 1 "a.png", 2
 * "sub/b.jpg", 7 "c.png"; categories "node" and "other"), so entries can hit known
 * and unknown image ids, file names and categories. Properties beyond "no crash":
 *   - every accepted detection has finite coordinates, w, h >= 0, a score in [0, 1]
 *     and a category in range;
 *   - writing the accepted detections with ld_results_save and reading them back
 *     gives the same number of detections per image (the reader accepts the writer). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "lymphdet/detections.h"
#include "lymphdet/labels.h"
#include "fuzz_util.h"

static const char labels_json[] =
    "{\"images\": [{\"id\": 1, \"file_name\": \"a.png\", \"width\": 40, \"height\": 30},"
    " {\"id\": 2, \"file_name\": \"sub/b.jpg\", \"width\": 40, \"height\": 30},"
    " {\"id\": 7, \"file_name\": \"c.png\", \"width\": 50, \"height\": 20}],"
    " \"categories\": [{\"id\": 1, \"name\": \"node\"}, {\"id\": 2, \"name\": \"other\"}],"
    " \"annotations\": [{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [1, 2, 10, 8]}]}";

/* the fixed labels (see fuzz_util.h on static state in fuzz targets) */
static ld_labels labels;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char path[512];
    ld_error err = {0};
    fuzz_make_dir("results");
    fuzz_write(path, sizeof path, "labels.json", (const uint8_t *)labels_json,
               strlen(labels_json));
    if (ld_labels_load(&labels, path, NULL, &err) != LD_OK) {
        fprintf(stderr, "fuzz_results: %s\n", err.msg);
        abort();
    }
    return 0;
}

static void check_and_roundtrip(ld_dets *dets)
{
    int n = labels.n_images;
    const char *names[3];
    int64_t ids[3];
    for (int i = 0; i < n; i++) {
        names[i] = labels.images[i].file_name;
        ids[i] = labels.images[i].id;
        for (int k = 0; k < dets[i].n; k++) {
            const ld_det *d = &dets[i].d[k];
            if (!isfinite(d->x) || !isfinite(d->y) || !(d->w >= 0) || !(d->h >= 0) ||
                !isfinite(d->w) || !isfinite(d->h) || !(d->score >= 0 && d->score <= 1) ||
                d->category < 0 || d->category >= labels.n_categories)
                abort();
        }
    }
    char path[512];
    ld_error err = {0};
    ld_dets *back = NULL;
    snprintf(path, sizeof path, "%s/copy.json", fuzz_dir);
    if (ld_results_save(path, dets, names, ids, n, &err) != LD_OK) abort();
    if (ld_results_load(&back, path, &labels, &err) != LD_OK) abort();
    for (int i = 0; i < n; i++) {
        if (back[i].n != dets[i].n) abort();
        ld_dets_free(&back[i]);
    }
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    ld_dets *dets = NULL;
    ld_error err = {0};
    fuzz_write(path, sizeof path, "results.json", data, size);
    if (ld_results_load(&dets, path, &labels, &err) != LD_OK) {
        if (dets || !err.msg[0]) abort();
        return 0;
    }
    check_and_roundtrip(dets);
    for (int i = 0; i < labels.n_images; i++) ld_dets_free(&dets[i]);
    free(dets);
    return 0;
}
