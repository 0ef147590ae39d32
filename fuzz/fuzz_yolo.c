/* fuzz_yolo.c — libFuzzer target for the YOLO txt label reader (labels_yolo.c).
 *
 * Input: up to three parts cut at FUZZ_SEP (fuzz_util.h): the class names, then the
 * label files a.txt and c.txt of the images a.png and c.png (fuzz_labels.h). The class
 * names are written as data.yaml when the first part holds a ':' (the YAML reader:
 * "names: [a, b]", "names:\n  0: a", "nc: 2"), else as classes.txt (one name a line);
 * an empty first part writes neither, so classes default to "0", "1", ... Accepted
 * label sets must pass fuzz_check_labels. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "fuzz_labels.h"

static char yolo_dir[300];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_make_dir("yolo");
    fuzz_make_images();
    snprintf(yolo_dir, sizeof yolo_dir, "%s/yolo", fuzz_dir);
    if (mkdir(yolo_dir, 0700) != 0) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[3];
    size_t len[3];
    int n = fuzz_split(data, size, part, len, 3);
    char path[512];
    fuzz_unlink("yolo/classes.txt");
    fuzz_unlink("yolo/data.yaml");
    if (len[0] > 0)
        fuzz_write(path, sizeof path, memchr(part[0], ':', len[0]) ? "yolo/data.yaml"
                                                                    : "yolo/classes.txt",
                   part[0], len[0]);
    static const char *const names[2] = {"yolo/a.txt", "yolo/c.txt"};
    for (int k = 0; k < 2; k++) {
        if (k + 1 < n) fuzz_write(path, sizeof path, names[k], part[k + 1], len[k + 1]);
        else fuzz_unlink(names[k]);
    }
    ld_labels l;
    ld_label_options opt;
    ld_error err = {0};
    ld_label_options_default(&opt);
    opt.format = LD_LABELS_YOLO;
    opt.images_dir = fuzz_images;
    if (ld_labels_load(&l, yolo_dir, &opt, &err) != LD_OK) {
        if (l.images || l.n_images || !err.msg[0]) abort();
        return 0;
    }
    fuzz_check_labels(&l);
    ld_labels_free(&l);
    return 0;
}
