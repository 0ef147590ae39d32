/* fuzz_labels.h — what the three label targets (fuzz_coco.c, fuzz_voc.c, fuzz_yolo.c)
 * check on every label set the reader accepts, beyond "no crash":
 *   - every image has a non-empty file name and a positive size;
 *   - every box is finite, has w, h > 0 and lies inside its image (boxes up to the
 *     tolerance outside are clipped, never kept outside);
 *   - every category index is in range and every category name is non-empty and
 *     lower-case;
 *   - image ids and file names are unique;
 *   - an image's path, when ld_label_image_path finds one, lies inside the images
 *     folder (no absolute path, no ".." component).
 * And a fixed images folder every label target uses: fuzz_dir/images with a.png
 * (40x30) and c.png (50x20), grey ramps made with the library's own PNG writer. */
#ifndef LYMPHDET_FUZZ_LABELS_H
#define LYMPHDET_FUZZ_LABELS_H

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "lymphdet/image.h"
#include "lymphdet/labels.h"
#include "fuzz_util.h"

static char fuzz_images[300];

static inline void fuzz_make_images(void)
{
    static const struct { const char *name; int w, h; } files[2] = {{"a.png", 40, 30},
                                                                    {"c.png", 50, 20}};
    snprintf(fuzz_images, sizeof fuzz_images, "%s/images", fuzz_dir);
    if (mkdir(fuzz_images, 0700) != 0) abort();
    for (int f = 0; f < 2; f++) {
        ld_image img;
        ld_error err = {0};
        char path[512];
        if (ld_image_alloc(&img, files[f].w, files[f].h, 1, &err) != LD_OK) abort();
        for (int i = 0; i < files[f].w * files[f].h; i++) img.px[i] = (uint8_t)(i * 7);
        snprintf(path, sizeof path, "%s/%s", fuzz_images, files[f].name);
        if (ld_image_save_png(&img, path, &err) != LD_OK) abort();
        ld_image_free(&img);
    }
}

static inline int fuzz_has_dotdot(const char *p)
{
    for (;;) {
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.') return 1;
        if (!p[len]) return 0;
        p += len + 1;
    }
}

static inline void fuzz_check_labels(const ld_labels *l)
{
    for (int c = 0; c < l->n_categories; c++) {
        const char *name = l->categories[c];
        if (!name || !*name) abort();
        for (const char *p = name; *p; p++)
            if (*p >= 'A' && *p <= 'Z') abort();
    }
    for (int i = 0; i < l->n_images; i++) {
        const ld_label_image *im = &l->images[i];
        if (!im->file_name || !*im->file_name || im->width <= 0 || im->height <= 0) abort();
        for (int b = 0; b < im->n_boxes; b++) {
            const ld_box *bx = &im->boxes[b];
            double slack = 1e-9 * (im->width + im->height);
            if (!(bx->w > 0) || !(bx->h > 0) || !(bx->x >= 0) || !(bx->y >= 0) ||
                !(bx->x + bx->w <= im->width + slack) || !(bx->y + bx->h <= im->height + slack) ||
                bx->category < 0 || bx->category >= l->n_categories)
                abort();
        }
        for (int j = 0; j < i; j++)
            if (l->images[j].id == im->id || strcmp(l->images[j].file_name, im->file_name) == 0)
                abort();
        char path[4096];
        ld_error err = {0};
        if (ld_label_image_path(path, sizeof path, fuzz_images, im->file_name, &err) == LD_OK) {
            size_t n = strlen(fuzz_images);
            if (strncmp(path, fuzz_images, n) != 0 || path[n] != '/' || fuzz_has_dotdot(path + n))
                abort();
        }
    }
}

#endif
