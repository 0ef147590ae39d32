/* synth.h — seeded synthetic ultrasound-like data for tests: speckle noise with
 * dark elliptical "nodes", written as PNG files plus a COCO labels file. */
#ifndef LYMPHDET_TEST_SYNTH_H
#define LYMPHDET_TEST_SYNTH_H

#include <stdint.h>

typedef struct {
    int n_images;        /* images written */
    int size;            /* each image is size x size */
    int max_nodes;       /* 0..max_nodes nodes per image */
    int min_radius, max_radius;
    uint64_t seed;
} synth_config;

/* Writes dir/img_NNN.png and dir/labels.json (COCO, one "node" category, a
 * "patient" field = image index / 2 so pairs of images form groups).
 * Returns the number of boxes written, or -1 on failure. */
int synth_write(const char *dir, const synth_config *cfg);

#endif
