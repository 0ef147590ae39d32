/* synth.c — see synth.h. Nodes are dark (about 40) on speckle around 140, with a
 * soft edge; each node's box is its ellipse's exact extent. Nodes do not overlap. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lymphdet/image.h"
#include "lymphdet/rng.h"
#include "synth.h"

int synth_write(const char *dir, const synth_config *cfg)
{
    char path[512];
    snprintf(path, sizeof path, "%s/labels.json", dir);
    FILE *json = fopen(path, "w");
    if (!json) return -1;
    ld_rng rng;
    ld_rng_seed(&rng, cfg->seed);
    int s = cfg->size, n_boxes = 0, ann_id = 0;
    ld_image img = {0};
    ld_error err = {0};
    if (ld_image_alloc(&img, s, s, 1, &err)) { fclose(json); return -1; }
    fprintf(json, "{\"images\": [");
    for (int i = 0; i < cfg->n_images; i++)
        fprintf(json, "%s{\"id\": %d, \"file_name\": \"img_%03d.png\", \"width\": %d, \"height\": %d, "
                "\"patient\": %d}", i ? ", " : "", i + 1, i, s, s, i / 2);
    fprintf(json, "], \"categories\": [{\"id\": 1, \"name\": \"Node\"}], \"annotations\": [");
    for (int i = 0; i < cfg->n_images; i++) {
        double cx[8], cy[8], rx[8], ry[8];
        int n = (int)ld_rng_below(&rng, (uint64_t)cfg->max_nodes + 1), placed = 0;
        for (int t = 0; placed < n && placed < 8 && t < 100; t++) {
            double ax = cfg->min_radius + ld_rng_double(&rng) * (cfg->max_radius - cfg->min_radius);
            double ay = cfg->min_radius + ld_rng_double(&rng) * (cfg->max_radius - cfg->min_radius);
            double x = ax + 1 + ld_rng_double(&rng) * (s - 2 * ax - 2);
            double y = ay + 1 + ld_rng_double(&rng) * (s - 2 * ay - 2);
            int clear = 1;
            for (int k = 0; k < placed; k++)
                clear &= fabs(x - cx[k]) > ax + rx[k] + 4 || fabs(y - cy[k]) > ay + ry[k] + 4;
            if (!clear) continue;
            cx[placed] = x; cy[placed] = y; rx[placed] = ax; ry[placed] = ay;
            placed++;
        }
        for (int p = 0; p < s * s; p++) {
            double v = 140 + 35 * (ld_rng_double(&rng) - 0.5) + 35 * (ld_rng_double(&rng) - 0.5);
            int px = p % s, py = p / s;
            for (int k = 0; k < placed; k++) {
                double dx = (px + 0.5 - cx[k]) / rx[k], dy = (py + 0.5 - cy[k]) / ry[k];
                if (dx * dx + dy * dy < 1) v = 40 + 20 * ld_rng_double(&rng);
            }
            img.px[p] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        for (int k = 0; k < placed; k++, n_boxes++)
            fprintf(json, "%s{\"id\": %d, \"image_id\": %d, \"category_id\": 1, "
                    "\"bbox\": [%.3f, %.3f, %.3f, %.3f]}", ann_id++ ? ", " : "", k + 1, i + 1,
                    cx[k] - rx[k], cy[k] - ry[k], 2 * rx[k], 2 * ry[k]);
        snprintf(path, sizeof path, "%s/img_%03d.png", dir, i);
        if (ld_image_save_png(&img, path, &err)) { n_boxes = -1; break; }
    }
    fprintf(json, "]}\n");
    ld_image_free(&img);
    if (fclose(json) != 0) return -1;
    return n_boxes;
}
