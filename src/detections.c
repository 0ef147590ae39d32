/* detections.c — per-image detection lists and the COCO results JSON that holds
 * them (see include/lymphdet/detections.h).
 *
 * Saving writes the JSON text directly, one detection per line, because the format
 * fixes the decimals (boxes 2, scores 7) and jansson can only set significant
 * digits for all reals at once; file names are still escaped by jansson. Loading
 * is jansson, and every value is checked before it is used: a results file may
 * come from any detector.
 *
 * Details the header leaves open:
 *  - names may be NULL (no "file_name" written) and ids may be NULL (ids 1..n).
 *  - category_id must be in 1..n_categories (1 when the labels have no category);
 *    pycocotools would silently drop other ids, which hides a mismatch.
 *  - score must be in [0, 1], like ld_det's.
 *  - an entry's optional file_name is checked against its image_id: if the labels
 *    hold that file name (exactly, or else by base name when only one image has
 *    it) under a different id, the file is rejected. This catches results written
 *    by `detect` without --labels (ids 1..n) being evaluated against labels whose
 *    ids differ, which would otherwise score detections against the wrong images. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "lymphdet/detections.h"
#include "lymphdet/outfile.h"

ld_status ld_dets_push(ld_dets *dets, ld_det d, ld_error *err)
{
    if (dets->n == dets->cap) {
        if (dets->cap > INT32_MAX / 2)
            return ld_fail(err, LD_ERR_NOMEM, "too many detections (%d)", dets->n);
        int cap = dets->cap ? 2 * dets->cap : 16;
        ld_det *p = ld_realloc(dets->d, (size_t)cap, sizeof *p, "detections", err);
        if (!p) return LD_ERR_NOMEM;
        dets->d = p;
        dets->cap = cap;
    }
    dets->d[dets->n++] = d;
    return LD_OK;
}

void ld_dets_free(ld_dets *dets)
{
    ld_free(dets->d);
    dets->d = NULL;
    dets->n = dets->cap = 0;
}

/* ---- stable in-place sort ----------------------------------------------------
 * ld_dets_sort cannot fail, so it cannot allocate: it is the SymMerge stable
 * sort (Kim & Kutzner 2004; the scheme of Go's sort.Stable): insertion-sorted
 * blocks of 20, merged pairwise in place by rotations. O(n log^2 n) moves, no
 * extra memory, and equal scores keep their order. */

static int before(const ld_det *a, const ld_det *b) { return a->score > b->score; }

static void swap_det(ld_det *a, ld_det *b)
{
    ld_det t = *a;
    *a = *b;
    *b = t;
}

static void insertion_sort(ld_det *d, int a, int b)
{
    for (int i = a + 1; i < b; i++)
        for (int j = i; j > a && before(&d[j], &d[j - 1]); j--) swap_det(&d[j], &d[j - 1]);
}

static void swap_range(ld_det *d, int a, int b, int n)
{
    for (int i = 0; i < n; i++) swap_det(&d[a + i], &d[b + i]);
}

/* exchanges the blocks [a, m) and [m, b) */
static void rotate(ld_det *d, int a, int m, int b)
{
    int i = m - a, j = b - m;
    while (i != j) {
        if (i > j) {
            swap_range(d, m - i, m, j);
            i -= j;
        } else {
            swap_range(d, m - i, m + j - i, i);
            j -= i;
        }
    }
    swap_range(d, m - i, m, i);
}

/* merges the sorted runs [a, m) and [m, b) */
static void sym_merge(ld_det *d, int a, int m, int b)
{
    if (m - a == 1) {   /* one element on the left: binary insertion */
        int i = m, j = b;
        while (i < j) {
            int h = i + (j - i) / 2;
            if (before(&d[h], &d[a])) i = h + 1;
            else j = h;
        }
        for (int k = a; k < i - 1; k++) swap_det(&d[k], &d[k + 1]);
        return;
    }
    if (b - m == 1) {   /* one element on the right */
        int i = a, j = m;
        while (i < j) {
            int h = i + (j - i) / 2;
            if (!before(&d[m], &d[h])) i = h + 1;
            else j = h;
        }
        for (int k = m; k > i; k--) swap_det(&d[k], &d[k - 1]);
        return;
    }
    int mid = a + (b - a) / 2, n = mid + m, start, r;
    if (m > mid) {
        start = n - b;
        r = mid;
    } else {
        start = a;
        r = m;
    }
    int p = n - 1;
    while (start < r) {
        int c = start + (r - start) / 2;
        if (!before(&d[p - c], &d[c])) start = c + 1;
        else r = c;
    }
    int end = n - start;
    if (start < m && m < end) rotate(d, start, m, end);
    if (a < start && start < mid) sym_merge(d, a, start, mid);
    if (mid < end && end < b) sym_merge(d, mid, end, b);
}

void ld_dets_sort(ld_dets *dets)
{
    ld_det *d = dets->d;
    int n = dets->n, block = 20;
    int a = 0;
    for (; a + block <= n; a += block) insertion_sort(d, a, a + block);
    insertion_sort(d, a, n);
    for (; block < n; block *= 2) {
        for (a = 0; a + 2 * block <= n; a += 2 * block) sym_merge(d, a, a + block, a + 2 * block);
        if (a + block < n) sym_merge(d, a, a + block, n);
    }
}

/* ---- saving ---------------------------------------------------------------- */

/* v with `decimals` decimals; tiny negatives print as 0, not "-0.00" */
static void put_fixed(FILE *f, double v, int decimals, double half_unit)
{
    if (fabs(v) < half_unit) v = 0.0;
    fprintf(f, "%.*f", decimals, v);
}

ld_status ld_results_save(const char *path, const ld_dets *dets, const char *const *names,
                          const int64_t *ids, int n, ld_error *err)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < dets[i].n; k++) {
            const ld_det *d = &dets[i].d[k];
            if (!isfinite(d->x) || !isfinite(d->y) || !isfinite(d->w) || !isfinite(d->h) ||
                !isfinite(d->score))
                return ld_fail(err, LD_ERR_INPUT, "%s: image %d, detection %d: not a finite number",
                               path, i, k);
        }
    ld_outfile out;
    ld_status rc = ld_out_open(&out, path, err);
    if (rc) return rc;
    FILE *f = out.fp;
    int first = 1;
    fputs("[", f);
    for (int i = 0; i < n; i++) {
        char *name = NULL;
        if (names && names[i]) {
            json_t *s = json_string(names[i]);
            name = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
            json_decref(s);
            if (!name) {
                ld_out_abort(&out);
                return ld_fail(err, LD_ERR_INPUT, "%s: file name of image %d is not valid UTF-8",
                               path, i);
            }
        }
        for (int k = 0; k < dets[i].n; k++) {
            const ld_det *d = &dets[i].d[k];
            fprintf(f, "%s\n{\"image_id\": %lld, ", first ? "" : ",",
                    (long long)(ids ? ids[i] : (int64_t)i + 1));
            if (name) fprintf(f, "\"file_name\": %s, ", name);
            fprintf(f, "\"category_id\": %d, \"bbox\": [", d->category + 1);
            put_fixed(f, d->x, 2, 0.005);
            fputs(", ", f);
            put_fixed(f, d->y, 2, 0.005);
            fputs(", ", f);
            put_fixed(f, d->w, 2, 0.005);
            fputs(", ", f);
            put_fixed(f, d->h, 2, 0.005);
            fputs("], \"score\": ", f);
            put_fixed(f, d->score, 7, 0.5e-7);
            fputs("}", f);
            first = 0;
        }
        free(name);   /* jansson's allocation */
    }
    fputs(first ? "]\n" : "\n]\n", f);
    return ld_out_commit(&out, err);
}

/* ---- loading --------------------------------------------------------------- */

typedef struct {
    int64_t id;
    int index;
} id_index;

static int cmp_id(const void *a, const void *b)
{
    const id_index *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

static int find_id(const id_index *t, int n, int64_t id)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (t[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && t[lo].id == id ? t[lo].index : -1;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Index of the labelled image called `name` (exact file name, else the only one
 * with the same base name), or -1 when none or ambiguous. */
static int find_name(const ld_labels *labels, const char *name)
{
    for (int i = 0; i < labels->n_images; i++)
        if (labels->images[i].file_name && strcmp(labels->images[i].file_name, name) == 0) return i;
    const char *b = base_name(name);
    int found = -1;
    for (int i = 0; i < labels->n_images; i++) {
        const char *f = labels->images[i].file_name;
        if (!f || strcmp(base_name(f), b) != 0) continue;
        if (found >= 0) return -1;
        found = i;
    }
    return found;
}

/* An integer, or a real with an integral value (pycocotools keys by value). */
static int get_int(const json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = (long long)json_integer_value(v);
        return 1;
    }
    if (json_is_real(v)) {
        double r = json_real_value(v);
        if (r == floor(r) && fabs(r) < 9.0e15) {
            *out = (long long)r;
            return 1;
        }
    }
    return 0;
}

static void free_all(ld_dets *d, int n)
{
    if (!d) return;
    for (int i = 0; i < n; i++) ld_dets_free(&d[i]);
    ld_free(d);
}

/* Reads entry k into *det and *image; returns LD_OK or an error naming the entry. */
static ld_status read_entry(ld_det *det, int *image, const json_t *e, size_t k, const char *path,
                            const ld_labels *labels, const id_index *ids, int n_cat,
                            const char **last_name, int *last_image, ld_error *err)
{
    if (!json_is_object(e))
        return ld_fail(err, LD_ERR_INPUT, "%s: entry %zu is not an object", path, k);
    long long id, cat;
    const json_t *v = json_object_get(e, "image_id");
    if (!v) return ld_fail(err, LD_ERR_INPUT, "%s: entry %zu has no image_id", path, k);
    if (!get_int(v, &id))
        return ld_fail(err, LD_ERR_INPUT, "%s: entry %zu: image_id is not an integer", path, k);
    int idx = find_id(ids, labels->n_images, (int64_t)id);
    if (idx < 0)
        return ld_fail(err, LD_ERR_INPUT, "%s: entry %zu: image_id %lld is not in the labels",
                       path, k, id);
    v = json_object_get(e, "category_id");
    if (!v) return ld_fail(err, LD_ERR_INPUT, "%s: entry %zu has no category_id", path, k);
    if (!get_int(v, &cat) || cat < 1 || cat > n_cat)
        return ld_fail(err, LD_ERR_INPUT,
                       "%s: entry %zu: category_id is not an integer in 1..%d (the labels' categories)",
                       path, k, n_cat);
    v = json_object_get(e, "bbox");
    if (!v) return ld_fail(err, LD_ERR_INPUT, "%s: entry %zu has no bbox", path, k);
    if (!json_is_array(v) || json_array_size(v) != 4)
        return ld_fail(err, LD_ERR_INPUT, "%s: entry %zu: bbox is not an array [x, y, w, h]",
                       path, k);
    double b[4];
    static const char *const what[4] = {"x", "y", "width", "height"};
    for (size_t j = 0; j < 4; j++) {
        const json_t *x = json_array_get(v, j);
        if (!json_is_number(x))
            return ld_fail(err, LD_ERR_INPUT, "%s: entry %zu: bbox %s is not a number", path, k,
                           what[j]);
        b[j] = json_number_value(x);
        if (!isfinite(b[j]))
            return ld_fail(err, LD_ERR_INPUT, "%s: entry %zu: bbox %s is not finite", path, k,
                           what[j]);
        if (j >= 2 && b[j] < 0)
            return ld_fail(err, LD_ERR_INPUT, "%s: entry %zu: bbox %s %g is negative", path, k,
                           what[j], b[j]);
    }
    v = json_object_get(e, "score");
    if (!v) return ld_fail(err, LD_ERR_INPUT, "%s: entry %zu has no score", path, k);
    if (!json_is_number(v))
        return ld_fail(err, LD_ERR_INPUT, "%s: entry %zu: score is not a number", path, k);
    double score = json_number_value(v);
    if (!(score >= 0 && score <= 1))
        return ld_fail(err, LD_ERR_INPUT, "%s: entry %zu: score %g is not in [0, 1]", path, k,
                       score);
    v = json_object_get(e, "file_name");
    if (v && !json_is_string(v))
        return ld_fail(err, LD_ERR_INPUT, "%s: entry %zu: file_name is not a string", path, k);
    if (v) {
        const char *name = json_string_value(v);
        /* entries come grouped by image: check each (name, image) pair once */
        if (!*last_name || *last_image != idx || strcmp(*last_name, name) != 0) {
            int by_name = find_name(labels, name);
            if (by_name >= 0 && by_name != idx)
                return ld_fail(err, LD_ERR_INPUT,
                               "%s: entry %zu: image_id %lld does not match file_name \"%s\" "
                               "(image id %lld in the labels)",
                               path, k, id, name, (long long)labels->images[by_name].id);
            *last_name = name;
            *last_image = idx;
        }
    }
    det->x = b[0];
    det->y = b[1];
    det->w = b[2];
    det->h = b[3];
    det->score = (float)score;
    det->category = (int)cat - 1;
    *image = idx;
    return LD_OK;
}

ld_status ld_results_load(ld_dets **dets_out, const char *path, const ld_labels *labels,
                          ld_error *err)
{
    *dets_out = NULL;
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        enum json_error_code code = json_error_code(&jerr);
        if (code == json_error_cannot_open_file)
            return ld_fail(err, LD_ERR_IO, "%s: cannot open: %s", path, jerr.text);
        if (code == json_error_out_of_memory)
            return ld_fail(err, LD_ERR_NOMEM, "%s: out of memory reading JSON", path);
        if (jerr.line > 0)
            return ld_fail(err, LD_ERR_INPUT, "%s:%d:%d: %s", path, jerr.line, jerr.column,
                           jerr.text);
        return ld_fail(err, LD_ERR_INPUT, "%s: %s", path, jerr.text);
    }
    if (!json_is_array(root)) {
        json_decref(root);
        return ld_fail(err, LD_ERR_INPUT,
                       "%s: not a COCO results file (expected a JSON array of detections)", path);
    }
    int n = labels->n_images;
    int n_cat = labels->n_categories > 0 ? labels->n_categories : 1;
    ld_dets *dets = ld_zalloc((size_t)n, sizeof *dets, "detections", err);
    id_index *ids = ld_alloc((size_t)n, sizeof *ids, "image ids", err);
    ld_status rc = dets && ids ? LD_OK : LD_ERR_NOMEM;
    if (!rc) {
        for (int i = 0; i < n; i++) {
            ids[i].id = labels->images[i].id;
            ids[i].index = i;
        }
        qsort(ids, (size_t)n, sizeof *ids, cmp_id);
    }
    const char *last_name = NULL;
    int last_image = -1;
    for (size_t k = 0; !rc && k < json_array_size(root); k++) {
        ld_det d;
        int image = 0;
        rc = read_entry(&d, &image, json_array_get(root, k), k, path, labels, ids, n_cat,
                        &last_name, &last_image, err);
        if (!rc) rc = ld_dets_push(&dets[image], d, err);
    }
    ld_free(ids);
    json_decref(root);
    if (rc) {
        free_all(dets, dets ? n : 0);
        return rc;
    }
    *dets_out = dets;
    return LD_OK;
}
