/* fuzz_voc.c — libFuzzer target for the Pascal VOC XML label reader (labels_voc.c,
 * libxml2 with entities and network access off).
 *
 * Input: up to two XML files, a.xml and b.xml, cut at FUZZ_SEP (fuzz_util.h), read as a
 * VOC folder with the images folder of fuzz_labels.h (a <size> of 0x0 is probed from the
 * image). Odd first bytes pick the official 1-based convention, even ones the
 * continuous one, so both coordinate paths run. Accepted label sets must pass
 * fuzz_check_labels. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include "fuzz_labels.h"

static char voc_dir[300];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_make_dir("voc");
    fuzz_make_images();
    snprintf(voc_dir, sizeof voc_dir, "%s/voc", fuzz_dir);
    if (mkdir(voc_dir, 0700) != 0) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[2] = {"voc/a.xml", "voc/b.xml"};
    const uint8_t *part[2];
    size_t len[2];
    int n = fuzz_split(data, size, part, len, 2);
    char path[512];
    for (int k = 0; k < 2; k++) {
        if (k < n) fuzz_write(path, sizeof path, names[k], part[k], len[k]);
        else fuzz_unlink(names[k]);
    }
    ld_labels l;
    ld_label_options opt;
    ld_error err = {0};
    ld_label_options_default(&opt);
    opt.format = LD_LABELS_VOC;
    opt.voc_one_based = size > 0 && (data[0] & 1);
    opt.images_dir = fuzz_images;
    if (ld_labels_load(&l, voc_dir, &opt, &err) != LD_OK) {
        if (l.images || l.n_images || !err.msg[0]) abort();
        return 0;
    }
    fuzz_check_labels(&l);
    ld_labels_free(&l);
    return 0;
}
