/* cmd_classify.c — `lymphdet classify --model MODEL PATCH...`: the network's
 * probability for each patch image, one line each: path<TAB>probability ("%.7f").
 *
 * A patch of the model's input size is used as it is; any other size is resized to it
 * (ld_image_resize, Pillow-like antialiased bilinear) with a note on stderr, so a user
 * never silently gets a probability for a picture the network did not see. Colour
 * images become grey (the network's 3 input channels are equal copies, SPEC §2.1).
 * An unreadable image is reported and skipped; the others are still classified, and
 * the exit code is 1 at the end. */
#include <stdlib.h>
#include "cli.h"
#include "lymphdet/image.h"
#include "lymphdet/model.h"

/* x[3, S, S] from an image of any size (w x h: its size as read): three equal grey
 * planes, so a 1-channel model reads the first and a 3-channel model all three */
static ld_status patch_input(float *x, const ld_model *m, const char *path, int *w, int *h,
                             ld_error *err)
{
    int s = m->arch.input_size;
    ld_image img = {0}, sized = {0};
    ld_status st = ld_image_load(&img, path, 0, err);
    if (st) return st;
    *w = img.w;
    *h = img.h;
    int resized = img.w != s || img.h != s;
    if (resized) {
        st = ld_image_resize(&sized, &img, s, s, err);
        if (st) ld_error_prefix(err, "%s", path);
    }
    if (!st) ld_image_to_input(x, resized ? &sized : &img);
    ld_image_free(&sized);
    ld_image_free(&img);
    return st;
}

int cmd_classify(int argc, char **argv)
{
    const char *model_path = NULL;
    int quiet = 0;
    cli_opt opts[] = {
        {"model", OPT_STRING, &model_path, "MODEL", "model file (safetensors)", 1},
        {"quiet", OPT_FLAG, &quiet, NULL, "no notes on stderr (errors are still printed)", 0},
    };
    char **patches = malloc((size_t)argc * sizeof *patches);
    if (!patches) {
        fprintf(stderr, "lymphdet classify: out of memory\n");
        return 1;
    }
    int n = 0;
    int rc = cli_parse("classify", "--model MODEL [--quiet] PATCH...",
                       "Prints one line per patch image: path<TAB>probability (7 decimals).\n"
                       "An image that is not input_size x input_size (100 x 100 for the paper)\n"
                       "is resized to it first; colour images are converted to grey.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv, patches, argc, &n);
    if (rc < 0 && n == 0) rc = cli_usage_error("classify", "no patch images given (see --help)");
    if (rc >= 0) {
        free(patches);
        return rc;
    }

    ld_error err = {0};
    ld_model m;
    if (ld_model_load(&m, model_path, 1, &err)) {
        free(patches);
        return cli_fail("classify", &err);
    }
    int s = m.arch.input_size, c = m.arch.in_channels;
    if (c != 1 && c != 3) {
        fprintf(stderr, "lymphdet classify: %s: the model takes %d input channels; images give 1 or 3\n",
                model_path, c);
        ld_model_free(&m);
        free(patches);
        return 1;
    }
    float *x = malloc(3 * (size_t)s * (size_t)s * sizeof *x);   /* [3, S, S] */
    if (!x) {
        fprintf(stderr, "lymphdet classify: out of memory\n");
        ld_model_free(&m);
        free(patches);
        return 1;
    }
    rc = 0;
    for (int i = 0; i < n; i++) {
        int w = 0, h = 0;
        if (patch_input(x, &m, patches[i], &w, &h, &err)) {
            rc = cli_fail("classify", &err);
            continue;
        }
        if ((w != s || h != s) && !quiet)
            fprintf(stderr, "%s: %dx%d resized to %dx%d\n", patches[i], w, h, s, s);
        float p;
        ld_model_predict(&m, x, 1, &p);
        printf("%s\t%.7f\n", patches[i], (double)p);
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "lymphdet classify: writing the results failed\n");
        rc = 1;
    }
    free(x);
    ld_model_free(&m);
    free(patches);
    return rc;
}
