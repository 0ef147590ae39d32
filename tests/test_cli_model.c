/* test_cli_model.c — `lymphdet classify` and `lymphdet info` end to end: the printed
 * probabilities are the library's (ld_model_predict on the same input, to the printed
 * digit), resizing is announced, bad files give one line and exit 1, usage errors 2. */
#include <stdlib.h>
#include <string.h>
#include "lymphdet/image.h"
#include "lymphdet/model.h"
#include "test.h"

#define MODEL "tests/fixtures/models/paper_torch.safetensors"

/* w x h image with c channels and a texture that depends on seed */
static int write_patch(const char *path, int w, int h, int c, int seed)
{
    ld_image img;
    ld_error err = {0};
    if (ld_image_alloc(&img, w, h, c, &err)) return -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                img.px[(y * w + x) * c + k] =
                    (uint8_t)((x * (3 + seed) + y * y * (1 + k) + 17 * seed * (x / 9)) % 256);
    ld_status st = ld_image_save_png(&img, path, &err);
    ld_image_free(&img);
    return st ? -1 : 0;
}

/* "path\t%.7f\n" of the library's probability for the image at path, as classify
 * must compute it: resized to the input size when needed, grey, / 255 */
static void expected_line(char *out, size_t size, ld_model *m, const char *path)
{
    ld_image img, sized;
    ld_error err = {0};
    static float x[3 * 100 * 100];
    out[0] = '\0';
    if (ld_image_load(&img, path, 0, &err)) return;
    if (img.w != 100 || img.h != 100) {
        if (ld_image_resize(&sized, &img, 100, 100, &err)) { ld_image_free(&img); return; }
        ld_image_free(&img);
        img = sized;
    }
    ld_image_to_input(x, &img);
    ld_image_free(&img);
    float p;
    ld_model_predict(m, x, 1, &p);
    snprintf(out, size, "%s\t%.7f\n", path, (double)p);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

TEST_SUITE(cli_classify)
{
    const char *dir = test_tmpdir("classify");
    char grey[512], rgb[512], odd[512], text[512], missing[512], args[4096];
    snprintf(grey, sizeof grey, "%s/grey.png", dir);
    snprintf(rgb, sizeof rgb, "%s/rgb.png", dir);
    snprintf(odd, sizeof odd, "%s/odd.png", dir);
    snprintf(text, sizeof text, "%s/notes.png", dir);
    snprintf(missing, sizeof missing, "%s/missing.png", dir);
    CHECK_INT(write_patch(grey, 100, 100, 1, 1), 0);
    CHECK_INT(write_patch(rgb, 100, 100, 3, 2), 0);
    CHECK_INT(write_patch(odd, 120, 80, 1, 3), 0);
    FILE *f = fopen(text, "w");
    if (f) { fputs("not an image\n", f); fclose(f); }

    ld_model m;
    ld_error err = {0};
    CHECK_INT(ld_model_load(&m, MODEL, 1, &err), LD_OK);
    if (err.status) return;
    char want[3][600], expect[2000];
    expected_line(want[0], sizeof want[0], &m, grey);
    expected_line(want[1], sizeof want[1], &m, rgb);
    expected_line(want[2], sizeof want[2], &m, odd);
    ld_model_free(&m);
    snprintf(expect, sizeof expect, "%s%s%s", want[0], want[1], want[2]);
    /* the three probabilities differ: the test would notice lines swapped or repeated */
    CHECK(strcmp(want[0] + strlen(grey), want[1] + strlen(rgb)) != 0);
    CHECK(strcmp(want[0] + strlen(grey), want[2] + strlen(odd)) != 0);

    static char out[8192], errout[8192];
    snprintf(args, sizeof args, "classify --model %s %s %s %s", MODEL, grey, rgb, odd);
    CHECK_INT(test_run_cli(args, out, sizeof out, errout, sizeof errout), 0);
    CHECK_STR(out, expect);
    char note[600];
    snprintf(note, sizeof note, "%s: 120x80 resized to 100x100\n", odd);
    CHECK_STR(errout, note);
    /* 7 decimals exactly: "0." then 7 digits, then the newline */
    const char *tab = strchr(out, '\t');
    CHECK(tab && strncmp(tab + 1, "0.", 2) == 0 && strspn(tab + 3, "0123456789") == 7 &&
          tab[10] == '\n');

    snprintf(args, sizeof args, "classify --quiet --model %s %s", MODEL, odd);
    CHECK_INT(test_run_cli(args, out, sizeof out, errout, sizeof errout), 0);
    CHECK_STR(out, want[2]);
    CHECK_STR(errout, "");

    /* unreadable images are reported, the rest still classified, exit 1 at the end */
    snprintf(args, sizeof args, "classify --model %s %s %s %s", MODEL, missing, grey, text);
    CHECK_INT(test_run_cli(args, out, sizeof out, errout, sizeof errout), 1);
    CHECK_STR(out, want[0]);
    CHECK_INT(count_lines(errout), 2);
    CHECK(strstr(errout, missing) != NULL);
    CHECK(strstr(errout, text) != NULL);

    /* a bad model file: one line naming it, exit 1, nothing on stdout */
    char bad[512];
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    f = fopen(bad, "wb");
    if (f) { fputs("\x10\0\0\0", f); fclose(f); }
    snprintf(args, sizeof args, "classify --model %s %s", bad, grey);
    CHECK_INT(test_run_cli(args, out, sizeof out, errout, sizeof errout), 1);
    CHECK_STR(out, "");
    CHECK_INT(count_lines(errout), 1);
    CHECK(strstr(errout, bad) && strstr(errout, "truncated"));

    /* a one-channel model reads the grey plane alone */
    char one[512], line[600];
    snprintf(one, sizeof one, "%s/grey_model.safetensors", dir);
    ld_arch a;
    ld_arch_paper(&a);
    a.in_channels = 1;
    CHECK_INT(ld_model_init(&m, &a, 1, &err), LD_OK);
    ld_model_init_weights(&m, 5);
    CHECK_INT(ld_model_save(&m, one, &err), LD_OK);
    expected_line(line, sizeof line, &m, odd);   /* predict reads x[0: 100*100] only */
    ld_model_free(&m);
    snprintf(args, sizeof args, "classify --quiet --model %s %s", one, odd);
    CHECK_INT(test_run_cli(args, out, sizeof out, errout, sizeof errout), 0);
    CHECK_STR(out, line);
    CHECK(strcmp(line + strlen(odd), want[2] + strlen(odd)) != 0);

    /* usage errors */
    CHECK_INT(test_run_cli("classify", out, sizeof out, errout, sizeof errout), 2);
    CHECK(strstr(errout, "--model is required") != NULL);
    snprintf(args, sizeof args, "classify --model %s", MODEL);
    CHECK_INT(test_run_cli(args, out, sizeof out, errout, sizeof errout), 2);
    CHECK(strstr(errout, "no patch images") != NULL);
    CHECK_INT(test_run_cli("classify --help", out, sizeof out, errout, sizeof errout), 0);
    CHECK(strstr(out, "usage: lymphdet classify") && strstr(out, "--quiet"));
}

TEST_SUITE(cli_info)
{
    static char out[16384], errout[8192];
    CHECK_INT(test_run_cli("info " MODEL, out, sizeof out, errout, sizeof errout), 0);
    CHECK_STR(errout, "");
    /* Table 1, with the third BN's 32 parameters the paper's table misprints as 0 */
    const char *expect[] = {
        "preset             paper\n",
        "input              100 x 100 x 3\n",
        "filters            4, 4, 8\n",
        "dropout            0.25\n",
        "batch norm         epsilon 0.001, momentum 0.99\n",
        "  conv1: Conv2D 4, 3x3 valid         98x98x4          112\n",
        "  bn1: BatchNorm                     98x98x4           16\n",
        "  ReLU, MaxPool 2x2, Dropout         49x49x4            0\n",
        "  conv2: Conv2D 4, 3x3 valid         47x47x4          148\n",
        "  ReLU, MaxPool 2x2, Dropout         23x23x4            0\n",
        "  conv3: Conv2D 8, 3x3 valid         21x21x8          296\n",
        "  bn3: BatchNorm                     21x21x8           32\n",
        "  Flatten                            800                0\n",
        "  dense: Dense 1, sigmoid            1                801\n",
        "total parameters   1421\n",
        "trainable          1389\n",
        "non-trainable      32\n",
        "  lymphdet_version         0.1.0\n",
        "  seed                     1\n",
        "  torch_prob_ramp          0.942921937\n",
    };
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        CHECK_MSG(strstr(out, expect[i]) != NULL, "info output lacks '%s'", expect[i]);

    CHECK_INT(test_run_cli("info tests/fixtures/models/missing.safetensors", out, sizeof out,
                           errout, sizeof errout), 1);
    CHECK_STR(out, "");
    CHECK_INT(count_lines(errout), 1);
    CHECK(strstr(errout, "lymphdet info: tests/fixtures/models/missing.safetensors: cannot open"));
    CHECK_INT(test_run_cli("info tests/fixtures/models/README.md", out, sizeof out, errout,
                           sizeof errout), 1);
    CHECK_INT(count_lines(errout), 1);
    CHECK(strstr(errout, "tests/fixtures/models/README.md: ") != NULL);
    CHECK_INT(test_run_cli("info", out, sizeof out, errout, sizeof errout), 2);
    CHECK_INT(test_run_cli("info " MODEL " " MODEL, out, sizeof out, errout, sizeof errout), 2);
}
