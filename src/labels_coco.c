/* labels_coco.c — COCO detection JSON (ImgLab, CVAT, Label Studio, Roboflow) with jansson.
 *
 * What the tools write, and what is done with it:
 *   - ImgLab restarts annotation ids at 1 in every image, so annotation ids are never
 *     used; annotations join images by image_id only. Old ImgLab files write bbox as an
 *     object {"x","y","width","height"} ("left"/"top" also accepted); coordinates may
 *     be fractional.
 *   - CVAT numbers images and annotations from 1 and adds "segmentation", "area",
 *     "attributes" to annotations: ignored (the bbox is what is read).
 *   - Label Studio numbers images from 0 and writes file_name with a folder prefix
 *     ("images/abc.jpg", "/data/upload/1/abc.jpg"): kept as written; the images are
 *     found by ld_label_image_path (as given, then by base name).
 *   - Category names are lower-cased, a missing or empty name becomes
 *     "uncategorized", and two categories whose names differ only in case are one. An
 *     annotation without category_id (or with null) is "uncategorized"; a category_id
 *     not in "categories" is an error. Declared categories without any annotation are
 *     kept (Roboflow declares a super-category that way) so indices are stable.
 *   - "iscrowd": 1 (or true) annotations describe a crowd region, which pycocotools
 *     ignores in matching; here they are left out, with one warning that counts them.
 *   - Every extra key of an image (all besides id, file_name, width, height) is kept as
 *     text: strings as they are, anything else as compact JSON ("12", "true", "null",
 *     "[\"a.png\"]"). Images without width/height get them from the image file header
 *     when the images folder is known.
 *
 * Positions in messages. jansson reports line:column for syntax errors (and rejects
 * NaN, real overflow such as 1e999, and duplicate keys there). For errors found after
 * parsing (negative width, unknown image_id) jansson keeps no positions, so the reader
 * walks the already-validated text once more, only on the error path, to the element
 * at fault (e.g. annotations[12].bbox) and reports its line:column, as well as the
 * path in the document: "labels.json:120:15: annotations[12] (image_id 4): bbox width
 * -3 is not positive". Columns count characters from 1, as jansson's do; jansson's point
 * at the last character of the bad token, ours at the first character of the value at
 * fault. Warnings carry the document path only (locating costs a pass over the text per
 * message). */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "labels_internal.h"
#include "lymphdet/image.h"

typedef struct {
    const char *path;      /* for messages */
    const char *text;      /* [len] the document as jansson read it */
    size_t len;
} coco_doc;

/* ---- locating an element in the text (error path only) --------------------------- */

static size_t skip_ws(const char *t, size_t n, size_t p)
{
    while (p < n && (t[p] == ' ' || t[p] == '\t' || t[p] == '\n' || t[p] == '\r')) p++;
    return p;
}

static size_t skip_string(const char *t, size_t n, size_t p)
{
    for (p++; p < n && t[p] != '"'; p++)
        if (t[p] == '\\') p++;
    return p < n ? p + 1 : n;
}

static size_t skip_value(const char *t, size_t n, size_t p)
{
    if (p >= n) return n;
    if (t[p] == '"') return skip_string(t, n, p);
    if (t[p] == '{' || t[p] == '[') {
        int depth = 0;
        while (p < n) {
            char c = t[p];
            if (c == '"') {
                p = skip_string(t, n, p);
                continue;
            }
            if (c == '{' || c == '[') depth++;
            else if ((c == '}' || c == ']') && --depth == 0) return p + 1;
            p++;
        }
        return n;
    }
    while (p < n && !strchr(",]} \t\r\n", t[p])) p++;
    return p;
}

/* Position of key's value in the object starting at p, or n. */
static size_t find_key(const char *t, size_t n, size_t p, const char *key)
{
    p = skip_ws(t, n, p);
    if (p >= n || t[p] != '{') return n;
    p++;
    size_t klen = strlen(key);
    for (;;) {
        p = skip_ws(t, n, p);
        if (p >= n || t[p] != '"') return n;
        size_t k0 = p + 1, k1 = skip_string(t, n, p);
        p = skip_ws(t, n, k1);
        if (p >= n || t[p] != ':') return n;
        p = skip_ws(t, n, p + 1);
        if (k1 - k0 == klen + 1 && memcmp(t + k0, key, klen) == 0) return p;
        p = skip_ws(t, n, skip_value(t, n, p));
        if (p >= n || t[p] != ',') return n;
        p++;
    }
}

/* Position of element `index` of the array starting at p, or n. */
static size_t find_item(const char *t, size_t n, size_t p, long index)
{
    p = skip_ws(t, n, p);
    if (p >= n || t[p] != '[') return n;
    p++;
    for (long i = 0;; i++) {
        p = skip_ws(t, n, p);
        if (p >= n || t[p] == ']') return n;
        if (i == index) return p;
        p = skip_ws(t, n, skip_value(t, n, p));
        if (p >= n || t[p] != ',') return n;
        p++;
    }
}

/* "path:line:col" of key[index].subkey (subkey may be NULL; falls back to the
 * element, then to the plain path). */
static void locate(char *out, size_t size, const coco_doc *d, const char *key, long index,
                   const char *subkey)
{
    const char *t = d->text;
    size_t n = d->len, p = find_key(t, n, 0, key);
    if (p < n && index >= 0) p = find_item(t, n, p, index);
    if (p < n && subkey) {
        size_t q = find_key(t, n, p, subkey);
        if (q < n) p = q;
    }
    if (p >= n) {
        snprintf(out, size, "%s", d->path);
        return;
    }
    long line = 1, col = 1;
    for (size_t i = 0; i < p; i++) {
        if (t[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)t[i] & 0xC0) != 0x80) {
            col++;
        }
    }
    snprintf(out, size, "%s:%ld:%ld", d->path, line, col);
}

/* Fails with "path:line:col: key[index]" followed by the formatted rest, which starts
 * with ": " or " (context): ". */
static ld_status coco_fail(ld_error *err, const coco_doc *d, const char *key, long index,
                           const char *subkey, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static ld_status coco_fail(ld_error *err, const coco_doc *d, const char *key, long index,
                           const char *subkey, const char *fmt, ...)
{
    char where[1024], rest[1024];
    locate(where, sizeof where, d, key, index, subkey);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rest, sizeof rest, fmt, ap);
    va_end(ap);
    if (index >= 0) return ld_fail(err, LD_ERR_INPUT, "%s: %s[%ld]%s", where, key, index, rest);
    return ld_fail(err, LD_ERR_INPUT, "%s: %s%s", where, key, rest);
}

/* ---- values ---------------------------------------------------------------------- */

/* An integer, or a real with an integral value (some tools write 469.0). */
static int get_integer(const json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double x = json_real_value(v);
        if (x == floor(x) && fabs(x) < 9.0e15) {
            *out = (long long)x;
            return 0;
        }
    }
    return -1;
}

static const char *kind_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:  return "an object";
    case JSON_ARRAY:   return "an array";
    case JSON_STRING:  return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL:    return "a real number";
    case JSON_TRUE:    return "true";
    case JSON_FALSE:   return "false";
    case JSON_NULL:    return "null";
    }
    return "?";
}

/* Reads bbox as [x, y, w, h] or {"x"|"left", "y"|"top", "width", "height"}. */
static int get_bbox(const json_t *b, double v[4], char *why, size_t size)
{
    if (json_is_array(b)) {
        if (json_array_size(b) != 4) {
            snprintf(why, size, "bbox has %zu numbers, expected 4 (x, y, width, height)",
                     json_array_size(b));
            return -1;
        }
        for (size_t k = 0; k < 4; k++) {
            const json_t *x = json_array_get(b, k);
            if (!json_is_number(x)) {
                snprintf(why, size, "bbox[%zu] is %s, not a number", k, kind_of(x));
                return -1;
            }
            v[k] = json_number_value(x);
        }
        return 0;
    }
    if (json_is_object(b)) {
        static const char *const keys[4][2] = {
            {"x", "left"}, {"y", "top"}, {"width", NULL}, {"height", NULL}};
        for (int k = 0; k < 4; k++) {
            const json_t *x = json_object_get(b, keys[k][0]);
            if (!x && keys[k][1]) x = json_object_get(b, keys[k][1]);
            if (!json_is_number(x)) {
                snprintf(why, size, "bbox object has no number \"%s\"", keys[k][0]);
                return -1;
            }
            v[k] = json_number_value(x);
        }
        return 0;
    }
    snprintf(why, size, "bbox is %s, expected [x, y, width, height]", kind_of(b));
    return -1;
}

typedef struct {
    long long id;
    int index;
} id_index;

static int by_id(const void *a, const void *b)
{
    const id_index *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->index - y->index;
}

static int lookup(const id_index *map, int n, long long id)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (map[mid].id == id) return map[mid].index;
        if (map[mid].id < id) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* ---- sections -------------------------------------------------------------------- */

/* categories -> (COCO id, category index) sorted by id */
static ld_status read_categories(id_index **map_out, int *n_out, ld_labels *labels,
                                 const json_t *root, const coco_doc *d, ld_error *err)
{
    *map_out = NULL;
    *n_out = 0;
    const json_t *cats = json_object_get(root, "categories");
    if (!cats || json_is_null(cats)) return LD_OK;
    if (!json_is_array(cats))
        return coco_fail(err, d, "categories", -1, NULL, " is %s, not an array", kind_of(cats));
    size_t n = json_array_size(cats);
    if (n > LD_LABELS_MAX_ITEMS)
        return coco_fail(err, d, "categories", -1, NULL, ": %zu entries, over the limit", n);
    id_index *map = ld_alloc(n, sizeof *map, "the category index", err);
    if (!map) return err->status;
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(cats, i), *name = json_object_get(c, "name");
        long long id;
        ld_status st = LD_OK;
        if (!json_is_object(c))
            st = coco_fail(err, d, "categories", (long)i, NULL, " is %s, not an object", kind_of(c));
        else if (get_integer(json_object_get(c, "id"), &id) != 0)
            st = coco_fail(err, d, "categories", (long)i, "id", ": id is missing or not an integer");
        else if (name && !json_is_string(name) && !json_is_null(name))
            st = coco_fail(err, d, "categories", (long)i, "name", ": name is %s, not a string",
                           kind_of(name));
        if (st == LD_OK)
            st = ld_labels_category(&map[i].index, labels, json_string_value(name), err);
        if (st != LD_OK) {
            ld_free(map);
            return st;
        }
        map[i].id = id;
    }
    qsort(map, n, sizeof *map, by_id);
    for (size_t i = 1; i < n; i++) {
        if (map[i].id == map[i - 1].id) {
            long long id = map[i].id;
            ld_free(map);
            return coco_fail(err, d, "categories", -1, NULL, ": category id %lld is used twice", id);
        }
    }
    *map_out = map;
    *n_out = (int)n;
    return LD_OK;
}

static ld_status field_text(ld_label_image *img, const char *key, const json_t *v, ld_error *err)
{
    if (json_is_string(v)) return ld_labels_add_field(img, key, json_string_value(v), err);
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) return ld_fail(err, LD_ERR_NOMEM, "out of memory writing field '%s'", key);
    ld_status st = ld_labels_add_field(img, key, text, err);
    free(text);   /* jansson's allocation */
    return st;
}

static ld_status image_size(int *w, int *h, const json_t *im, size_t i, const char *file_name,
                            const coco_doc *d, const ld_label_options *opt, ld_error *err)
{
    static const char *const keys[2] = {"width", "height"};
    int *out[2] = {w, h};
    for (int k = 0; k < 2; k++) {
        const json_t *v = json_object_get(im, keys[k]);
        long long x;
        if (!v && opt->images_dir) {
            char path[4096];
            if (ld_label_image_path(path, sizeof path, opt->images_dir, file_name, err) != LD_OK ||
                ld_image_probe(path, w, h, err) != LD_OK)
                return ld_error_prefix(err, "%s: images[%zu] has no %s", d->path, i, keys[k]);
            return LD_OK;
        }
        if (!v)
            return coco_fail(err, d, "images", (long)i, NULL,
                             " ('%s'): no %s (give the images folder to read it from the file)",
                             file_name, keys[k]);
        if (get_integer(v, &x) != 0 || x <= 0 || x > LD_LABELS_MAX_SIDE) {
            char text[64];
            if (json_is_number(v)) snprintf(text, sizeof text, "%g", json_number_value(v));
            else snprintf(text, sizeof text, "%s", kind_of(v));
            return coco_fail(err, d, "images", (long)i, keys[k],
                             " ('%s'): %s %s is not an integer in 1..%d", file_name, keys[k],
                             text, LD_LABELS_MAX_SIDE);
        }
        *out[k] = (int)x;
    }
    return LD_OK;
}

static ld_status read_images(id_index **map_out, ld_labels *labels, const json_t *root,
                             const coco_doc *d, const ld_label_options *opt, ld_error *err)
{
    *map_out = NULL;
    const json_t *images = json_object_get(root, "images");
    if (!json_is_array(images))
        return ld_fail(err, LD_ERR_INPUT, "%s: no \"images\" array: not a COCO dataset", d->path);
    size_t n = json_array_size(images);
    if (n > LD_LABELS_MAX_ITEMS)
        return coco_fail(err, d, "images", -1, NULL, ": %zu entries, over the limit of %d", n,
                         LD_LABELS_MAX_ITEMS);
    for (size_t i = 0; i < n; i++) {
        const json_t *im = json_array_get(images, i), *name = json_object_get(im, "file_name");
        long long id;
        int w = 0, h = 0;
        if (!json_is_object(im))
            return coco_fail(err, d, "images", (long)i, NULL, " is %s, not an object", kind_of(im));
        if (get_integer(json_object_get(im, "id"), &id) != 0)
            return coco_fail(err, d, "images", (long)i, "id", ": id is missing or not an integer");
        if (!json_is_string(name) || json_string_length(name) == 0 ||
            json_string_length(name) != strlen(json_string_value(name)))
            return coco_fail(err, d, "images", (long)i, "file_name",
                             " (id %lld): file_name is missing, empty or not a string", id);
        const char *file_name = json_string_value(name);
        if (image_size(&w, &h, im, i, file_name, d, opt, err) != LD_OK) return err->status;
        if (ld_labels_add_image(labels, id, file_name, w, h, err) != LD_OK) return err->status;
        ld_label_image *img = &labels->images[labels->n_images - 1];
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)im, key, v) {
            if (strcmp(key, "id") == 0 || strcmp(key, "file_name") == 0 ||
                strcmp(key, "width") == 0 || strcmp(key, "height") == 0)
                continue;
            if (field_text(img, key, v, err) != LD_OK) return err->status;
        }
    }
    int first, second, kind;
    if (ld_labels_find_duplicate(&first, &second, &kind, labels, err) != LD_OK) return err->status;
    if (second >= 0) {
        if (kind == 0)
            return coco_fail(err, d, "images", second, "id", ": image id %lld is used twice "
                             "(first by images[%d])", (long long)labels->images[second].id, first);
        return coco_fail(err, d, "images", second, "file_name", ": file name '%s' is used twice "
                         "(first by images[%d])", labels->images[second].file_name, first);
    }
    id_index *map = ld_alloc(n, sizeof *map, "the image index", err);
    if (!map) return err->status;
    for (size_t i = 0; i < n; i++) {
        map[i].id = labels->images[i].id;
        map[i].index = (int)i;
    }
    qsort(map, n, sizeof *map, by_id);
    *map_out = map;
    return LD_OK;
}

static int truthy(const json_t *v)
{
    return json_is_true(v) || (json_is_integer(v) && json_integer_value(v) != 0) ||
           (json_is_real(v) && json_real_value(v) != 0);
}

static ld_status read_annotations(ld_labels *labels, const json_t *root, const id_index *images,
                                  const id_index *cats, int n_cats, const coco_doc *d,
                                  const ld_label_options *opt, ld_error *err)
{
    const json_t *anns = json_object_get(root, "annotations");
    if (!anns || json_is_null(anns)) return LD_OK;
    if (!json_is_array(anns))
        return coco_fail(err, d, "annotations", -1, NULL, " is %s, not an array", kind_of(anns));
    size_t n = json_array_size(anns);
    if (n > LD_LABELS_MAX_ITEMS)
        return coco_fail(err, d, "annotations", -1, NULL, ": %zu entries, over the limit of %d",
                         n, LD_LABELS_MAX_ITEMS);
    long n_crowd = 0, first_crowd = -1;
    for (size_t j = 0; j < n; j++) {
        const json_t *a = json_array_get(anns, j);
        long i = (long)j;
        long long image_id, cat_id;
        if (!json_is_object(a))
            return coco_fail(err, d, "annotations", i, NULL, " is %s, not an object", kind_of(a));
        if (get_integer(json_object_get(a, "image_id"), &image_id) != 0)
            return coco_fail(err, d, "annotations", i, "image_id",
                             ": image_id is missing or not an integer");
        int k = lookup(images, labels->n_images, image_id);
        if (k < 0)
            return coco_fail(err, d, "annotations", i, "image_id",
                             ": image_id %lld is not in images", image_id);
        if (truthy(json_object_get(a, "iscrowd"))) {
            if (n_crowd++ == 0) first_crowd = i;
            continue;
        }
        int category;
        const json_t *c = json_object_get(a, "category_id");
        if (!c || json_is_null(c)) {
            if (ld_labels_category(&category, labels, NULL, err) != LD_OK) return err->status;
        } else if (get_integer(c, &cat_id) != 0) {
            return coco_fail(err, d, "annotations", i, "category_id",
                             " (image_id %lld): category_id is %s, not an integer", image_id,
                             kind_of(c));
        } else if ((category = lookup(cats, n_cats, cat_id)) < 0) {
            return coco_fail(err, d, "annotations", i, "category_id",
                             " (image_id %lld): category_id %lld is not in categories",
                             image_id, cat_id);
        }
        const json_t *b = json_object_get(a, "bbox");
        double v[4];
        char why[512];
        if (!b)
            return coco_fail(err, d, "annotations", i, NULL, " (image_id %lld): no bbox", image_id);
        if (get_bbox(b, v, why, sizeof why) != 0)
            return coco_fail(err, d, "annotations", i, "bbox", " (image_id %lld): %s", image_id, why);
        ld_label_image *img = &labels->images[k];
        ld_box box = {v[0], v[1], v[2], v[3], category};
        int fit = ld_box_fit(&box, img->width, img->height, opt->clip_tolerance, why, sizeof why);
        if (fit < 0)
            return coco_fail(err, d, "annotations", i, "bbox", " (image_id %lld): %s", image_id, why);
        if (fit > 0 &&
            ld_labels_warn(labels, err, "%s: annotations[%ld] (image '%s'): %s", d->path, i,
                           img->file_name, why) != LD_OK)
            return err->status;
        if (ld_labels_add_box(img, &box, err) != LD_OK) return err->status;
    }
    if (n_crowd > 0)
        return ld_labels_warn(labels, err, "%s: %ld iscrowd annotation%s left out (first: "
                              "annotations[%ld])", d->path, n_crowd, n_crowd == 1 ? "" : "s",
                              first_crowd);
    return LD_OK;
}

ld_status ld_labels_load_coco(ld_labels *labels, const char *path, const ld_label_options *opt,
                              ld_error *err)
{
    char *data;
    size_t size;
    if (ld_read_file(&data, &size, path, LD_LABELS_MAX_FILE, err) != LD_OK) return err->status;
    /* a UTF-8 byte-order mark (Windows tools write one) is not JSON */
    size_t skip = size >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    coco_doc d = {path, data + skip, size - skip};
    json_error_t jerr;
    json_t *root = json_loadb(d.text, d.len, JSON_REJECT_DUPLICATES, &jerr);
    ld_status st = LD_OK;
    id_index *images = NULL, *cats = NULL;
    int n_cats = 0;
    if (!root) {
        if (jerr.line > 0)
            st = ld_fail(err, LD_ERR_INPUT, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        else
            st = ld_fail(err, LD_ERR_INPUT, "%s: %s", path, jerr.text);
    } else if (json_is_array(root)) {
        st = ld_fail(err, LD_ERR_INPUT, "%s: the top level is an array, as in COCO detection "
                     "results; a labelled dataset is an object with \"images\"", path);
    } else if (!json_is_object(root)) {
        st = ld_fail(err, LD_ERR_INPUT, "%s: the top level is %s, not an object", path,
                     kind_of(root));
    } else if (read_categories(&cats, &n_cats, labels, root, &d, err) == LD_OK &&
               read_images(&images, labels, root, &d, opt, err) == LD_OK) {
        st = read_annotations(labels, root, images, cats, n_cats, &d, opt, err);
    } else {
        st = err->status;
    }
    ld_free(images);
    ld_free(cats);
    json_decref(root);
    ld_free(data);
    return st;
}
