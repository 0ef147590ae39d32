/* fuzz_coco.c — libFuzzer target for the COCO JSON label reader (labels_coco.c).
 *
 * Input: the bytes of a COCO file. It is read with the images folder of
 * fuzz_labels.h (so an image without width/height is probed from a.png or c.png, and
 * file names like "../../etc/passwd" meet the path checks), with the default
 * 2 px clip tolerance. Accepted label sets must pass fuzz_check_labels. */
#include <stdint.h>
#include <stdlib.h>
#include "fuzz_labels.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_make_dir("coco");
    fuzz_make_images();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    ld_labels l;
    ld_label_options opt;
    ld_error err = {0};
    ld_label_options_default(&opt);
    opt.format = LD_LABELS_COCO;
    opt.images_dir = fuzz_images;
    fuzz_write(path, sizeof path, "labels.json", data, size);
    if (ld_labels_load(&l, path, &opt, &err) != LD_OK) {
        if (l.images || l.n_images || !err.msg[0]) abort();
        return 0;
    }
    fuzz_check_labels(&l);
    ld_labels_free(&l);
    return 0;
}
