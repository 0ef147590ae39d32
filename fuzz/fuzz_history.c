/* fuzz_history.c — libFuzzer target for the training-history CSV reader (plot.c), the
 * MODEL.history.csv file `evaluate` reads back to draw the training curves.
 *
 * Input: the bytes of a history file. Properties beyond "no crash":
 *   - a refused file gives no history and a message;
 *   - an accepted one has epochs 1, 2, ..., n in order, and the chart drawn from it
 *     (ld_plot_history, both the paper's two panels and the detection preset's one)
 *     renders at the size asked. */
#include <stdint.h>
#include <stdlib.h>
#include "lymphdet/image.h"
#include "lymphdet/plot.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_make_dir("history");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    ld_epoch_stats *h = NULL;
    int n = -1;
    ld_error err = {0};
    fuzz_write(path, sizeof path, "history.csv", data, size);
    if (ld_history_load(&h, &n, path, &err) != LD_OK) {
        if (h || !err.msg[0]) abort();
        return 0;
    }
    if (!h || n < 1) abort();
    for (int e = 0; e < n; e++)
        if (h[e].epoch != e + 1) abort();
    ld_image img = {0};
    if (n <= 2000) {   /* drawing a million epochs is slow, not wrong */
        if (ld_plot_history(&img, h, n, NULL, 320, 160, &err) != LD_OK) abort();
        if (img.w != 320 || img.h != 160) abort();
        ld_image_free(&img);
    }
    ld_history_free(h);
    return 0;
}
