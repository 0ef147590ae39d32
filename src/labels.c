/* labels.c — the format-independent half of label reading (see lymphdet/labels.h).
 *
 * Format detection, the public helpers (field lookup, file-name matching, safe path
 * joining), and what the three readers share (labels_internal.h): growth of the
 * arrays, category naming, box validation and clipping, duplicate checks, folder
 * listing and whole-file reading.
 *
 * File-name matching. Annotation tools write file names in different ways: ImgLab
 * and CVAT write the bare name ("abc.jpg"), Label Studio writes the path on its
 * server ("/data/upload/1/abc.jpg") or a folder prefix ("images/abc.jpg"). An image
 * is therefore looked for first under its name as written (when that is a safe
 * relative path), then under its base name, always inside the images folder. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "alloc.h"
#include "labels_internal.h"

void ld_label_options_default(ld_label_options *opt)
{
    opt->format = LD_LABELS_AUTO;
    opt->voc_one_based = 0;
    opt->images_dir = NULL;
    opt->clip_tolerance = 2.0;
}

void ld_labels_free(ld_labels *labels)
{
    if (!labels) return;
    for (int i = 0; i < labels->n_images; i++) {
        ld_label_image *img = &labels->images[i];
        ld_free(img->file_name);
        ld_free(img->boxes);
        for (int k = 0; k < img->n_fields; k++) {
            ld_free(img->fields[k].key);
            ld_free(img->fields[k].value);
        }
        ld_free(img->fields);
    }
    ld_free(labels->images);
    ld_names_free(labels->categories, labels->n_categories);
    ld_names_free(labels->warnings, labels->n_warnings);
    memset(labels, 0, sizeof *labels);
}

const char *ld_label_field(const ld_label_image *img, const char *key)
{
    for (int k = 0; k < img->n_fields; k++)
        if (strcmp(img->fields[k].key, key) == 0) return img->fields[k].value;
    return NULL;
}

const char *ld_base_name(const char *path)
{
    const char *base = path;
    for (const char *p = path; *p; p++)
        if (*p == '/' || *p == '\\') base = p + 1;
    return base;
}

int ld_labels_find(const ld_labels *labels, const char *name)
{
    for (int i = 0; i < labels->n_images; i++)
        if (strcmp(labels->images[i].file_name, name) == 0) return i;
    /* same base name on either side; a base name shared by two images is ambiguous */
    const char *base = ld_base_name(name);
    int found = -1;
    for (int i = 0; i < labels->n_images; i++) {
        if (strcmp(ld_base_name(labels->images[i].file_name), base) != 0) continue;
        if (found >= 0) return -1;
        found = i;
    }
    return found;
}

ld_status ld_path_join(char *out, size_t size, const char *dir, const char *name, ld_error *err)
{
    if (!name || !*name) return ld_fail(err, LD_ERR_INPUT, "empty file name");
    if (name[0] == '/' || name[0] == '\\' || (isalpha((unsigned char)name[0]) && name[1] == ':'))
        return ld_fail(err, LD_ERR_INPUT, "file name '%s' is an absolute path", name);
    /* a ".." component, with either separator, could climb out of dir */
    for (const char *p = name; *p;) {
        size_t len = strcspn(p, "/\\");
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return ld_fail(err, LD_ERR_INPUT, "file name '%s' leaves the images folder", name);
        p += len;
        if (*p) p++;
    }
    size_t dlen = dir ? strlen(dir) : 0;
    const char *sep = dlen && dir[dlen - 1] != '/' ? "/" : "";
    int n = snprintf(out, size, "%s%s%s", dlen ? dir : "", sep, name);
    if (n < 0 || (size_t)n >= size)
        return ld_fail(err, LD_ERR_INPUT, "file name '%s': path too long", name);
    return LD_OK;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

ld_status ld_label_image_path(char *out, size_t size, const char *images_dir,
                              const char *file_name, ld_error *err)
{
    ld_error join_err = {0};
    int given_ok = ld_path_join(out, size, images_dir, file_name, &join_err) == LD_OK;
    if (given_ok && is_file(out)) return LD_OK;
    char first[4096];
    snprintf(first, sizeof first, "%s", given_ok ? out : "");
    const char *base = ld_base_name(file_name);
    if (base != file_name && *base) {
        if (ld_path_join(out, size, images_dir, base, err) != LD_OK) return err->status;
        if (is_file(out)) return LD_OK;
        if (given_ok)
            return ld_fail(err, LD_ERR_IO, "%s: image not found (nor %s)", first, out);
        return ld_fail(err, LD_ERR_IO, "%s: image not found (for '%s')", out, file_name);
    }
    if (!given_ok) {
        *err = join_err;
        return err->status;
    }
    return ld_fail(err, LD_ERR_IO, "%s: image not found", first);
}

/* ---- growth ------------------------------------------------------------------ */

/* Arrays are full exactly when their count is 0 or a power of two. */
static void *grow(void *p, int n, size_t elem, const char *what, ld_error *err)
{
    if (n >= LD_LABELS_MAX_ITEMS) {
        ld_fail(err, LD_ERR_INPUT, "more than %d %s", LD_LABELS_MAX_ITEMS, what);
        return NULL;
    }
    if (n != 0 && (n & (n - 1)) != 0) return p;
    return ld_realloc(p, n ? 2 * (size_t)n : 1, elem, what, err);
}

ld_status ld_labels_add_image(ld_labels *labels, int64_t id, const char *file_name,
                              int width, int height, ld_error *err)
{
    ld_label_image *imgs = grow(labels->images, labels->n_images, sizeof *imgs, "images", err);
    if (!imgs) return err->status;
    labels->images = imgs;
    ld_label_image *img = &imgs[labels->n_images];
    memset(img, 0, sizeof *img);
    img->file_name = ld_strdup(file_name, err);
    if (!img->file_name) return err->status;
    img->id = id;
    img->width = width;
    img->height = height;
    labels->n_images++;
    return LD_OK;
}

ld_status ld_labels_add_field(ld_label_image *img, const char *key, const char *value,
                              ld_error *err)
{
    ld_field *f = grow(img->fields, img->n_fields, sizeof *f, "image fields", err);
    if (!f) return err->status;
    img->fields = f;
    char *k = ld_strdup(key, err);
    char *v = k ? ld_strdup(value, err) : NULL;
    if (!v) {
        ld_free(k);
        return err->status;
    }
    f[img->n_fields].key = k;
    f[img->n_fields].value = v;
    img->n_fields++;
    return LD_OK;
}

ld_status ld_labels_add_box(ld_label_image *img, const ld_box *box, ld_error *err)
{
    ld_box *b = grow(img->boxes, img->n_boxes, sizeof *b, "boxes", err);
    if (!b) return err->status;
    img->boxes = b;
    b[img->n_boxes++] = *box;
    return LD_OK;
}

void ld_lower(char *s)
{
    for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}

/* appends the category `lower` (taken over, freed on failure) */
static ld_status append_category(int *index, ld_labels *labels, char *lower, ld_error *err)
{
    char **c = labels->n_categories < LD_LABELS_MAX_CATEGORIES
                   ? grow(labels->categories, labels->n_categories, sizeof *c, "categories", err)
                   : (ld_fail(err, LD_ERR_INPUT, "more than %d categories",
                              LD_LABELS_MAX_CATEGORIES), NULL);
    if (!c) {
        ld_free(lower);
        return err->status;
    }
    labels->categories = c;
    c[labels->n_categories] = lower;
    *index = labels->n_categories++;
    return LD_OK;
}

ld_status ld_labels_category(int *index, ld_labels *labels, const char *name, ld_error *err)
{
    char *lower = ld_strdup(name && *name ? name : "uncategorized", err);
    if (!lower) return err->status;
    ld_lower(lower);
    for (int i = 0; i < labels->n_categories; i++) {
        if (strcmp(labels->categories[i], lower) == 0) {
            ld_free(lower);
            *index = i;
            return LD_OK;
        }
    }
    return append_category(index, labels, lower, err);
}

ld_status ld_labels_new_category(int *index, ld_labels *labels, const char *name, ld_error *err)
{
    char *lower = ld_strdup(name, err);
    if (!lower) return err->status;
    ld_lower(lower);
    return append_category(index, labels, lower, err);
}

ld_status ld_labels_warn(ld_labels *labels, ld_error *err, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char **w = grow(labels->warnings, labels->n_warnings, sizeof *w, "warnings", err);
    if (!w) return err->status;
    labels->warnings = w;
    w[labels->n_warnings] = ld_strdup(msg, err);
    if (!w[labels->n_warnings]) return err->status;
    labels->n_warnings++;
    return LD_OK;
}

/* ---- validation ---------------------------------------------------------------- */

int ld_box_fit(ld_box *box, int width, int height, double tol, char *why, size_t why_size)
{
    const double v[4] = {box->x, box->y, box->w, box->h};
    static const char *const names[4] = {"x", "y", "width", "height"};
    for (int k = 0; k < 4; k++) {
        if (!isfinite(v[k])) {
            snprintf(why, why_size, "bbox %s is not a finite number", names[k]);
            return -1;
        }
    }
    if (!(box->w > 0) || !(box->h > 0)) {
        snprintf(why, why_size, "bbox %s %g is not positive", box->w > 0 ? "height" : "width",
                 box->w > 0 ? box->h : box->w);
        return -1;
    }
    /* how far the box reaches past each side of the image */
    double out = fmax(fmax(-box->x, -box->y),
                      fmax(box->x + box->w - width, box->y + box->h - height));
    if (out <= 0) return 0;
    if (out > tol) {
        snprintf(why, why_size,
                 "bbox [%g, %g, %g, %g] reaches %g px outside the %dx%d image "
                 "(tolerance %g px)", box->x, box->y, box->w, box->h, out, width, height, tol);
        return -1;
    }
    double x0 = fmax(box->x, 0), y0 = fmax(box->y, 0);
    double x1 = fmin(box->x + box->w, width), y1 = fmin(box->y + box->h, height);
    if (!(x1 > x0) || !(y1 > y0)) {
        snprintf(why, why_size, "bbox [%g, %g, %g, %g] lies outside the %dx%d image",
                 box->x, box->y, box->w, box->h, width, height);
        return -1;
    }
    snprintf(why, why_size, "bbox [%g, %g, %g, %g] clipped to the %dx%d image (%g px outside)",
             box->x, box->y, box->w, box->h, width, height, out);
    box->x = x0;
    box->y = y0;
    box->w = x1 - x0;
    box->h = y1 - y0;
    return 1;
}

typedef struct {
    const ld_label_image *img;
    int index;
} image_ref;

static int by_id(const void *a, const void *b)
{
    const image_ref *x = a, *y = b;
    if (x->img->id != y->img->id) return x->img->id < y->img->id ? -1 : 1;
    return x->index - y->index;
}

static int by_name(const void *a, const void *b)
{
    const image_ref *x = a, *y = b;
    int c = strcmp(x->img->file_name, y->img->file_name);
    return c ? c : x->index - y->index;
}

ld_status ld_labels_find_duplicate(int *first, int *second, int *kind, const ld_labels *labels,
                                   ld_error *err)
{
    *first = *second = -1;
    *kind = 0;
    int n = labels->n_images;
    image_ref *refs = ld_alloc((size_t)n, sizeof *refs, "an image index", err);
    if (!refs) return err->status;
    for (int i = 0; i < n; i++) {
        refs[i].img = &labels->images[i];
        refs[i].index = i;
    }
    /* the sort keeps file order among equals, so the pair found is (earlier, later) */
    for (int pass = 0; pass < 2 && *second < 0; pass++) {
        qsort(refs, (size_t)n, sizeof *refs, pass == 0 ? by_id : by_name);
        for (int i = 1; i < n; i++) {
            const ld_label_image *a = refs[i - 1].img, *b = refs[i].img;
            if (pass == 0 ? a->id != b->id : strcmp(a->file_name, b->file_name) != 0) continue;
            if (*second < 0 || refs[i].index < *second) {
                *first = refs[i - 1].index;
                *second = refs[i].index;
                *kind = pass;
            }
        }
    }
    ld_free(refs);
    return LD_OK;
}

/* ---- files --------------------------------------------------------------------- */

void ld_names_free(char **names, int n)
{
    if (!names) return;
    for (int i = 0; i < n; i++) ld_free(names[i]);
    ld_free(names);
}

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcasecmp(s + n - m, suffix) == 0;
}

static int strcmp_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

ld_status ld_list_dir(char ***names, int *n, const char *dir, const char *const *exts,
                      int n_exts, ld_error *err)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return ld_fail(err, LD_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    char **list = NULL;
    int count = 0;
    ld_status st = LD_OK;
    struct dirent *e;
    while (st == LD_OK && (e = readdir(d)) != NULL) {
        int match = 0;
        for (int k = 0; k < n_exts; k++) match |= ends_with_ci(e->d_name, exts[k]);
        if (!match || e->d_name[0] == '.') continue;
        char path[4096];
        if (ld_path_join(path, sizeof path, dir, e->d_name, err) != LD_OK) {
            st = err->status;
            break;
        }
        if (!is_file(path)) continue;
        char **l = grow(list, count, sizeof *l, "files", err);
        if (!l) {
            st = err->status;
            break;
        }
        list = l;
        if (!(list[count] = ld_strdup(e->d_name, err))) {
            st = err->status;
            break;
        }
        count++;
    }
    closedir(d);
    if (st != LD_OK) {
        ld_names_free(list, count);
        return st;
    }
    if (count) qsort(list, (size_t)count, sizeof *list, strcmp_ptr);
    *names = list;
    *n = count;
    return LD_OK;
}

ld_status ld_read_file(char **data, size_t *size, const char *path, long max_bytes,
                       ld_error *err)
{
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return ld_fail(err, LD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int stat_ok = fstat(fileno(f), &st) == 0;
    if (!stat_ok || !S_ISREG(st.st_mode)) {
        int dir = stat_ok && S_ISDIR(st.st_mode);
        fclose(f);
        return ld_fail(err, LD_ERR_INPUT, "%s: %s", path,
                       dir ? "is a folder, not a file" : "not a regular file");
    }
    if (st.st_size > max_bytes) {
        fclose(f);
        return ld_fail(err, LD_ERR_INPUT, "%s: %lld bytes, over the limit of %ld for a label file",
                       path, (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = ld_alloc(n + 1, 1, "a label file", err);
    if (!buf) {
        fclose(f);
        return err->status;
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        ld_free(buf);
        return ld_fail(err, LD_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *data = buf;
    *size = n;
    return LD_OK;
}

int ld_parse_double(const char *s, double *v)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    while (isspace((unsigned char)*end)) end++;
    if (end == s || *end || !isfinite(x) || isspace((unsigned char)*s)) return -1;
    *v = x;
    return 0;
}

int ld_parse_int(const char *s, long lo, long hi, long *v)
{
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    while (isspace((unsigned char)*end)) end++;
    if (end == s || *end || errno || x < lo || x > hi || isspace((unsigned char)*s)) return -1;
    *v = x;
    return 0;
}

/* ---- dispatch ------------------------------------------------------------------ */

static ld_label_format detect(const char *path, ld_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        ld_fail(err, LD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return LD_LABELS_AUTO;
    }
    if (!S_ISDIR(st.st_mode)) return LD_LABELS_COCO;
    static const char *const xml[] = {".xml"}, *const txt[] = {".txt"};
    char **names;
    int n_xml, n_txt;
    if (ld_list_dir(&names, &n_xml, path, xml, 1, err) != LD_OK) return LD_LABELS_AUTO;
    ld_names_free(names, n_xml);
    if (ld_list_dir(&names, &n_txt, path, txt, 1, err) != LD_OK) return LD_LABELS_AUTO;
    int n_boxes_txt = n_txt;
    for (int i = 0; i < n_txt; i++)
        if (strcmp(names[i], "classes.txt") == 0) n_boxes_txt--;
    ld_names_free(names, n_txt);
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "%s/data.yaml", path);
    int yolo_hint = n_boxes_txt > 0 || is_file(yaml) || (n_txt > n_boxes_txt && n_xml == 0);
    if (n_xml > 0 && !yolo_hint) return LD_LABELS_VOC;
    if (yolo_hint && n_xml == 0) return LD_LABELS_YOLO;
    if (n_xml > 0)
        ld_fail(err, LD_ERR_INPUT, "%s: holds both .xml (VOC) and .txt (YOLO) labels; "
                "choose with --label-format", path);
    else
        ld_fail(err, LD_ERR_INPUT, "%s: no .xml (VOC) or .txt (YOLO) label files; "
                "a COCO file or --label-format is needed", path);
    return LD_LABELS_AUTO;
}

ld_status ld_labels_load(ld_labels *labels, const char *path, const ld_label_options *opt,
                         ld_error *err)
{
    memset(labels, 0, sizeof *labels);
    ld_label_options defaults;
    if (!opt) {
        ld_label_options_default(&defaults);
        opt = &defaults;
    }
    if (!(opt->clip_tolerance >= 0) || !isfinite(opt->clip_tolerance))
        return ld_fail(err, LD_ERR_USAGE, "clip tolerance %g is not a non-negative number",
                       opt->clip_tolerance);
    ld_label_format format = opt->format;
    if (format == LD_LABELS_AUTO && (format = detect(path, err)) == LD_LABELS_AUTO)
        return err->status;
    ld_status st;
    switch (format) {
    case LD_LABELS_COCO: st = ld_labels_load_coco(labels, path, opt, err); break;
    case LD_LABELS_VOC:  st = ld_labels_load_voc(labels, path, opt, err); break;
    case LD_LABELS_YOLO: st = ld_labels_load_yolo(labels, path, opt, err); break;
    default: st = ld_fail(err, LD_ERR_USAGE, "unknown label format %d", (int)format); break;
    }
    if (st != LD_OK) {
        ld_labels_free(labels);
        return st;
    }
    labels->format = format;
    return LD_OK;
}
