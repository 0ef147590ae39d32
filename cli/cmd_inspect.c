/* cmd_inspect.c — `lymphdet inspect --images DIR --labels FILE`: what a researcher checks
 * before training.
 *
 * Reads the labels (any format), then decodes every labelled image (ld_image_load, so a
 * truncated JPEG is caught here and not in the middle of training) and compares its size
 * with the one the labels give. Prints to stdout: counts of images and boxes, boxes per
 * image (statistics and a 0/1/2/3+ histogram), box width/height/longer-side statistics
 * (min, median, mean, max; the median of an even count is the mean of the two middle
 * values), how many boxes fit the paper's 100 px patch (longer side <= 100), the
 * categories, the image sizes, the extra per-image fields with their number of distinct
 * values (and the values themselves when there are few), the label reader's warnings,
 * and the images of the folder that no label mentions.
 *
 * Exit status: 1 when the labels cannot be read, or when any labelled image is missing,
 * unreadable, or not of the size its labels say (boxes would land in the wrong place):
 * every such image is named on stderr, one line each, after all were checked. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "cli.h"
#include "lymphdet/image.h"
#include "lymphdet/labels.h"

#define PATCH 100   /* the paper's window, px */

typedef struct {
    double min, median, mean, max;
} stats;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts v[n] (n > 0) and summarises it. */
static stats summarise(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    stats s = {v[0], n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, sum / n, v[n - 1]};
    return s;
}

static const char *format_name(ld_label_format f)
{
    static const char *const names[] = {"auto", "COCO", "Pascal VOC", "YOLO"};
    return names[f];
}

static int parse_format(const char *s, ld_label_format *f)
{
    static const char *const names[] = {"auto", "coco", "voc", "yolo"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *f = (ld_label_format)i;
            return 0;
        }
    }
    return -1;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fputs("lymphdet inspect: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

/* ---- report sections ----------------------------------------------------------- */

static void print_box_stats(const ld_labels *l, int n_boxes)
{
    if (n_boxes == 0) {
        printf("\n%-20s no boxes\n", "box size (px)");
        return;
    }
    double *w = xcalloc((size_t)n_boxes, sizeof *w), *h = xcalloc((size_t)n_boxes, sizeof *h);
    double *side = xcalloc((size_t)n_boxes, sizeof *side);
    int k = 0, fit = 0;
    for (int i = 0; i < l->n_images; i++) {
        for (int b = 0; b < l->images[i].n_boxes; b++, k++) {
            const ld_box *box = &l->images[i].boxes[b];
            w[k] = box->w;
            h[k] = box->h;
            side[k] = box->w > box->h ? box->w : box->h;
            fit += side[k] <= PATCH;
        }
    }
    printf("\n%-20s %9s %9s %9s %9s\n", "box size (px)", "min", "median", "mean", "max");
    const char *names[3] = {"width", "height", "longer side"};
    double *v[3] = {w, h, side};
    for (int j = 0; j < 3; j++) {
        stats s = summarise(v[j], n_boxes);
        printf("  %-18s %9.1f %9.1f %9.1f %9.1f\n", names[j], s.min, s.median, s.mean, s.max);
    }
    printf("  %-18s %9d of %d (%.1f%%)\n", "fit 100 px patch", fit, n_boxes, 100.0 * fit / n_boxes);
    free(w);
    free(h);
    free(side);
}

static void print_boxes_per_image(const ld_labels *l)
{
    int n = l->n_images, hist[4] = {0};
    if (n == 0) return;
    double *v = xcalloc((size_t)n, sizeof *v);
    for (int i = 0; i < n; i++) {
        int b = l->images[i].n_boxes;
        v[i] = b;
        hist[b < 3 ? b : 3]++;
    }
    stats s = summarise(v, n);
    printf("\n%-20s min %g, median %g, mean %.2f, max %g\n", "boxes per image", s.min, s.median,
           s.mean, s.max);
    const char *names[4] = {"0", "1", "2", "3+"};
    for (int b = 0; b < 4; b++) printf("  %-18s %9d\n", names[b], hist[b]);
    free(v);
}

static void print_categories(const ld_labels *l)
{
    int *count = xcalloc((size_t)l->n_categories, sizeof *count);
    for (int i = 0; i < l->n_images; i++)
        for (int b = 0; b < l->images[i].n_boxes; b++) count[l->images[i].boxes[b].category]++;
    printf("\n%-20s %9d\n", "categories", l->n_categories);
    for (int c = 0; c < l->n_categories; c++)
        printf("  %-18s %9d box%s\n", l->categories[c], count[c], count[c] == 1 ? "" : "es");
    free(count);
}

static void print_image_sizes(const ld_labels *l)
{
    /* distinct (width, height) pairs, most frequent first; at most 5 shown */
    int n = l->n_images, n_sizes = 0;
    int (*sizes)[3] = xcalloc((size_t)n, sizeof *sizes);
    for (int i = 0; i < n; i++) {
        int j = 0;
        while (j < n_sizes && !(sizes[j][0] == l->images[i].width && sizes[j][1] == l->images[i].height))
            j++;
        if (j == n_sizes) {
            sizes[j][0] = l->images[i].width;
            sizes[j][1] = l->images[i].height;
            n_sizes++;
        }
        sizes[j][2]++;
    }
    printf("\n%-20s %9d\n", "image sizes", n_sizes);
    for (int shown = 0; shown < 5 && shown < n_sizes; shown++) {
        int best = shown;
        for (int j = shown + 1; j < n_sizes; j++)
            if (sizes[j][2] > sizes[best][2]) best = j;
        int tmp[3];
        memcpy(tmp, sizes[shown], sizeof tmp);
        memcpy(sizes[shown], sizes[best], sizeof tmp);
        memcpy(sizes[best], tmp, sizeof tmp);
        char text[32];
        snprintf(text, sizeof text, "%d x %d", sizes[shown][0], sizes[shown][1]);
        printf("  %-18s %9d\n", text, sizes[shown][2]);
    }
    if (n_sizes > 5) printf("  ... %d more sizes\n", n_sizes - 5);
    free(sizes);
}

/* Each extra field: in how many images, how many distinct values (listed when few). */
static void print_fields(const ld_labels *l)
{
    int n_keys = 0;
    const char **keys = NULL;
    for (int i = 0; i < l->n_images; i++) {
        for (int f = 0; f < l->images[i].n_fields; f++) {
            const char *key = l->images[i].fields[f].key;
            int j = 0;
            while (j < n_keys && strcmp(keys[j], key) != 0) j++;
            if (j < n_keys) continue;
            const char **more = realloc(keys, (size_t)(n_keys + 1) * sizeof *keys);
            if (!more) {
                fputs("lymphdet inspect: out of memory\n", stderr);
                exit(1);
            }
            keys = more;
            keys[n_keys++] = key;
        }
    }
    if (n_keys == 0) {
        printf("\n%-20s %9d\n", "extra image fields", 0);
        return;
    }
    printf("\n%-20s %9d\n", "extra image fields", n_keys);
    const char **vals = xcalloc((size_t)l->n_images, sizeof *vals);
    for (int j = 0; j < n_keys; j++) {
        int n = 0;
        for (int i = 0; i < l->n_images; i++) {
            const char *v = ld_label_field(&l->images[i], keys[j]);
            if (v) vals[n++] = v;
        }
        qsort(vals, (size_t)n, sizeof *vals, cmp_str);
        int distinct = 0;
        for (int i = 0; i < n; i++) distinct += i == 0 || strcmp(vals[i], vals[i - 1]) != 0;
        printf("  %-18s %9d distinct value%s", keys[j], distinct, distinct == 1 ? "" : "s");
        if (n < l->n_images) printf(" (in %d of %d images)", n, l->n_images);
        if (distinct <= 8) {
            const char *sep = ": ";
            for (int i = 0; i < n;) {
                int k = i;
                while (k < n && strcmp(vals[k], vals[i]) == 0) k++;
                printf("%s%.40s (%d)", sep, vals[i], k - i);
                sep = ", ";
                i = k;
            }
        }
        putchar('\n');
    }
    free(vals);
    free(keys);
}

/* Images of the folder that no label mentions (a note, not a problem); `example`
 * receives the first of them by name. */
static int count_unlabelled(const char *dir, char **found, int n_found, char *example, size_t size)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    qsort(found, (size_t)n_found, sizeof *found, cmp_str);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        const char *ext = strrchr(e->d_name, '.');
        if (e->d_name[0] == '.' || !ext ||
            (strcasecmp(ext, ".jpg") && strcasecmp(ext, ".jpeg") && strcasecmp(ext, ".png")))
            continue;
        char path[4096];
        if (ld_path_join(path, sizeof path, dir, e->d_name, NULL) != LD_OK || len == 0) continue;
        const char *key = path;
        if (bsearch(&key, found, (size_t)n_found, sizeof *found, cmp_str)) continue;
        if (n++ == 0 || strcmp(e->d_name, example) < 0) snprintf(example, size, "%s", e->d_name);
    }
    closedir(d);
    return n;
}

int cmd_inspect(int argc, char **argv)
{
    const char *images_dir = NULL, *labels_path = NULL, *format = "auto";
    int one_based = 0, max_pixels = (int)LD_IMAGE_MAX_PIXELS_DEFAULT, quiet = 0;
    double tolerance;
    ld_label_options lo;
    ld_label_options_default(&lo);
    tolerance = lo.clip_tolerance;
    cli_opt opts[] = {
        {"images", OPT_STRING, &images_dir, "DIR", "folder of the images", 1},
        {"labels", OPT_STRING, &labels_path, "FILE", "COCO JSON file, or VOC / YOLO folder", 1},
        {"label-format", OPT_STRING, &format, "F", "auto|coco|voc|yolo", 0},
        {"voc-one-based", OPT_FLAG, &one_based, NULL,
         "VOC boxes are 1-based inclusive (official VOC) rather than continuous", 0},
        {"clip-tolerance", OPT_DOUBLE, &tolerance, "PX",
         "boxes this far outside the image are clipped with a warning, further out: an error", 0},
        {"max-pixels", OPT_INT, &max_pixels, "N", "largest image to decode, width*height", 0},
        {"quiet", OPT_FLAG, &quiet, NULL, "no progress on stderr", 0},
    };
    int rc = cli_parse("inspect", "--images DIR --labels FILE [options]",
                       "Reads the labels and decodes every labelled image, then summarises the\n"
                       "data set (images, boxes, sizes, categories, per-image fields) and lists\n"
                       "every problem found. Exits 1 when an image is missing, unreadable or not\n"
                       "of the size its labels give.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv, NULL, 0, NULL);
    if (rc >= 0) return rc;
    if (parse_format(format, &lo.format) != 0)
        return cli_usage_error("inspect", "--label-format must be auto, coco, voc or yolo, "
                               "not '%s'", format);
    if (tolerance < 0)
        return cli_usage_error("inspect", "--clip-tolerance must not be negative");
    if (max_pixels <= 0)
        return cli_usage_error("inspect", "--max-pixels must be positive");
    lo.voc_one_based = one_based;
    lo.images_dir = images_dir;
    lo.clip_tolerance = tolerance;

    ld_error err = {0};
    ld_labels l;
    if (ld_labels_load(&l, labels_path, &lo, &err) != LD_OK) return cli_fail("inspect", &err);

    /* decode every labelled image */
    int n_bad = 0, n_mismatch = 0, n_boxes = 0, n_empty = 0;
    char **found = xcalloc((size_t)l.n_images, sizeof *found);
    int n_found = 0;
    cli_progress progress;
    cli_progress_start(&progress, "reading images", l.n_images, quiet);
    for (int i = 0; i < l.n_images; i++) {
        const ld_label_image *img = &l.images[i];
        n_boxes += img->n_boxes;
        n_empty += img->n_boxes == 0;
        char path[4096];
        ld_image im = {0};
        if (ld_label_image_path(path, sizeof path, images_dir, img->file_name, &err) != LD_OK) {
            cli_progress_end(&progress);
            cli_fail("inspect", &err);
            n_bad++;
            continue;
        }
        if (!(found[n_found] = strdup(path))) {
            fputs("lymphdet inspect: out of memory\n", stderr);
            exit(1);
        }
        n_found++;
        if (ld_image_load(&im, path, max_pixels, &err) != LD_OK) {
            cli_progress_end(&progress);
            cli_fail("inspect", &err);
            n_bad++;
        } else if (im.w != img->width || im.h != img->height) {
            cli_progress_end(&progress);
            fprintf(stderr, "lymphdet inspect: %s: the image is %dx%d but the labels say %dx%d\n",
                    path, im.w, im.h, img->width, img->height);
            n_mismatch++;
        }
        ld_image_free(&im);
        cli_progress_update(&progress, i + 1, NULL);
    }
    cli_progress_end(&progress);

    printf("labels                 %s (%s)\n", labels_path, format_name(l.format));
    printf("images folder          %s\n\n", images_dir);
    printf("%-20s %9d\n", "images", l.n_images);
    printf("  %-18s %9d\n", "without boxes", n_empty);
    printf("  %-18s %9d\n", "decoded", l.n_images - n_bad);
    printf("%-20s %9d\n", "boxes", n_boxes);
    print_boxes_per_image(&l);
    print_box_stats(&l, n_boxes);
    print_categories(&l);
    print_image_sizes(&l);
    print_fields(&l);

    char example[256] = "";
    int unlabelled = count_unlabelled(images_dir, found, n_found, example, sizeof example);
    if (unlabelled > 0)
        printf("\nnote: %d image%s in %s without labels (e.g. %s)\n", unlabelled,
               unlabelled == 1 ? "" : "s", images_dir, example);

    int n_problems = l.n_warnings + n_bad + n_mismatch;
    printf("\n%-20s %9d\n", "problems", n_problems);
    if (n_bad) printf("  %d image%s missing or unreadable (named on stderr)\n", n_bad,
                      n_bad == 1 ? "" : "s");
    if (n_mismatch) printf("  %d image%s not of the size the labels give (named on stderr)\n",
                           n_mismatch, n_mismatch == 1 ? "" : "s");
    for (int i = 0; i < l.n_warnings; i++) printf("  warning: %s\n", l.warnings[i]);

    for (int i = 0; i < n_found; i++) free(found[i]);
    free(found);
    ld_labels_free(&l);
    if (fflush(stdout) != 0) {
        fputs("lymphdet inspect: writing the report failed\n", stderr);
        return 1;
    }
    return n_bad || n_mismatch ? 1 : 0;
}
