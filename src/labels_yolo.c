/* labels_yolo.c — YOLO: a folder of .txt files, one per image, "class cx cy w h" per line.
 *
 * The images folder is the list of images (every .jpg/.jpeg/.png in it, strcmp order,
 * numbered 1..); the label file of image "abc.jpg" is "abc.txt". An image without a
 * label file has no boxes, as YOLO tools treat it; a label file without an image is an
 * error (its boxes would silently vanish), and so are two images with the same stem.
 * Coordinates are normalised to [0, 1] by the image size, which is read from the image
 * header (ld_image_probe): x = (cx - w/2) * W, and so on; the result is validated and
 * clipped like every other format, in pixels.
 *
 * Class names come from the first of classes.txt, data.yaml, data.yml found in the
 * labels folder, then its parent, then its grandparent (Roboflow puts data.yaml two
 * levels above train/labels/). classes.txt holds one name per line. From data.yaml only
 * two keys are read, in the forms the YOLO tools write, without a YAML library:
 *     names: [a, b, 'c d']          (flow list, may span lines)
 *     names:                        (block: "- a" items, or "0: a" keys numbered
 *       0: a                         0, 1, 2, ... in order)
 *       1: b
 *     nc: 2                         (optional; must match the number of names)
 * Anything else in data.yaml is ignored. Without a names file the categories are the
 * class numbers as text ("0", "1", ...). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "alloc.h"
#include "labels_internal.h"
#include "lymphdet/image.h"

#define MAX_CLASSES LD_LABELS_MAX_CATEGORIES

typedef struct {
    char **names;        /* [n] */
    int n;
    char source[4096];   /* the file they came from, "" when none */
} class_names;

static void classes_free(class_names *c)
{
    ld_names_free(c->names, c->n);
    c->names = NULL;
    c->n = 0;
}

static ld_status push_name(class_names *c, const char *name, size_t len, ld_error *err)
{
    if (c->n >= MAX_CLASSES)
        return ld_fail(err, LD_ERR_INPUT, "%s: more than %d class names", c->source, MAX_CLASSES);
    char **names = ld_realloc(c->names, (size_t)c->n + 1, sizeof *names, "class names", err);
    if (!names) return err->status;
    c->names = names;
    char *s = ld_alloc(len + 1, 1, "a class name", err);
    if (!s) return err->status;
    memcpy(s, name, len);
    s[len] = '\0';
    c->names[c->n++] = s;
    return LD_OK;
}

/* Next line of text[*pos..] (without its end), or NULL at the end. */
static char *next_line(char *text, size_t *pos, size_t size)
{
    if (*pos >= size) return NULL;
    char *line = text + *pos;
    size_t len = strcspn(line, "\n");
    *pos += len + (*pos + len < size);
    line[len] = '\0';
    if (len && line[len - 1] == '\r') line[len - 1] = '\0';
    return line;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

static ld_status read_classes_txt(class_names *c, char *text, size_t size, ld_error *err)
{
    size_t pos = 0;
    char *line;
    int n_blank = 0;   /* blank lines count only when a name follows them */
    while ((line = next_line(text, &pos, size)) != NULL) {
        line = trim(line);
        if (!*line) {
            n_blank++;
            continue;
        }
        for (; n_blank > 0; n_blank--)
            if (push_name(c, "", 0, err) != LD_OK) return err->status;
        if (push_name(c, line, strlen(line), err) != LD_OK) return err->status;
    }
    return LD_OK;
}

/* Cuts a YAML comment (a '#' at the start or after a blank, outside quotes). */
static void cut_comment(char *s)
{
    char quote = 0;
    for (char *p = s; *p; p++) {
        if (quote) {
            if (*p == quote) quote = 0;
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
        } else if (*p == '#' && (p == s || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            return;
        }
    }
}

/* A scalar without its quotes ('' in single quotes is a quote; \x in double quotes is x). */
static ld_status push_scalar(class_names *c, char *s, ld_error *err)
{
    s = trim(s);
    size_t n = strlen(s);
    if (n >= 2 && (s[0] == '\'' || s[0] == '"') && s[n - 1] == s[0]) {
        char q = s[0], *out = s;
        for (size_t i = 1; i + 1 < n; i++) {
            if (q == '\'' && s[i] == '\'' && s[i + 1] == '\'' && i + 2 < n) i++;
            else if (q == '"' && s[i] == '\\' && i + 2 < n) i++;
            *out++ = s[i];
        }
        return push_name(c, s, (size_t)(out - s), err);
    }
    return push_name(c, s, n, err);
}

static ld_status flow_list(class_names *c, char *list, int line_no, ld_error *err)
{
    /* list is "[a, b, ...]", continuation lines joined with blanks */
    size_t n = strlen(list);
    if (n < 2 || list[n - 1] != ']')
        return ld_fail(err, LD_ERR_INPUT, "%s:%d: names: the list has no closing ']'", c->source,
                       line_no);
    list[n - 1] = '\0';
    char *item = list + 1, quote = 0;
    for (char *p = item;; p++) {
        if (quote && *p) {
            if (*p == quote) quote = 0;
            continue;
        }
        if (*p == '\'' || *p == '"') {
            quote = *p;
            continue;
        }
        if (*p != ',' && *p != '\0') continue;
        int last = *p == '\0';
        *p = '\0';
        if (*trim(item)) {
            if (push_scalar(c, item, err) != LD_OK) return err->status;
        } else if (!last) {   /* an empty last item is a trailing comma or "[]" */
            return ld_fail(err, LD_ERR_INPUT, "%s:%d: names: an empty item in the list",
                           c->source, line_no);
        }
        if (last) return LD_OK;
        item = p + 1;
    }
}

static ld_status block_list(class_names *c, char **lines, int n_lines, int *i, ld_error *err)
{
    for (; *i < n_lines; (*i)++) {
        char *line = lines[*i];
        cut_comment(line);
        char *t = trim(line);
        if (!*t) continue;
        if (!isspace((unsigned char)line[0]) && line[0] != '-') break;   /* next top-level key */
        if (*t == '-') {
            if (push_scalar(c, t + 1, err) != LD_OK) return err->status;
            continue;
        }
        char *colon = strchr(t, ':');
        long k;
        if (!colon)
            return ld_fail(err, LD_ERR_INPUT, "%s:%d: expected '- name' or 'N: name'", c->source,
                           *i + 1);
        *colon = '\0';
        if (ld_parse_int(trim(t), 0, MAX_CLASSES, &k) != 0 || k != c->n)
            return ld_fail(err, LD_ERR_INPUT, "%s:%d: names key '%s', expected %d (keys must be "
                           "0, 1, 2, ... in order)", c->source, *i + 1, t, c->n);
        if (push_scalar(c, colon + 1, err) != LD_OK) return err->status;
    }
    (*i)--;   /* the caller's loop moves on to the line that ended the block */
    return LD_OK;
}

static ld_status parse_data_yaml(class_names *c, char **lines, int n_lines, ld_error *err)
{
    int names_line = 0, nc_line = 0;
    long nc = -1;
    for (int i = 0; i < n_lines; i++) {
        char *line = lines[i];
        cut_comment(line);
        if (strncmp(line, "nc:", 3) == 0) {
            if (ld_parse_int(trim(line + 3), 0, MAX_CLASSES, &nc) != 0)
                return ld_fail(err, LD_ERR_INPUT, "%s:%d: nc is not a class count", c->source,
                               i + 1);
            nc_line = i + 1;
            continue;
        }
        if (strncmp(line, "names:", 6) != 0) continue;
        if (names_line)
            return ld_fail(err, LD_ERR_INPUT, "%s:%d: a second names: (the first is at line %d)",
                           c->source, i + 1, names_line);
        names_line = i + 1;
        char *rest = trim(line + 6);
        if (*rest == '[') {
            /* a flow list may go on over the next lines: join them up to the ']' */
            size_t len = strlen(rest);
            int j = i;
            while (!strchr(lines[j] == line ? rest : lines[j], ']') && j + 1 < n_lines) {
                cut_comment(lines[++j]);
                len += 1 + strlen(lines[j]);
            }
            char *list = ld_alloc(len + 1, 1, "the names list", err);
            if (!list) return err->status;
            strcpy(list, rest);
            for (int k = i + 1; k <= j; k++) {
                strcat(list, " ");
                strcat(list, lines[k]);
            }
            i = j;
            ld_status st = flow_list(c, trim(list), names_line, err);
            ld_free(list);
            if (st != LD_OK) return st;
        } else if (*rest) {
            return ld_fail(err, LD_ERR_INPUT, "%s:%d: names: only a list [a, b] or a block of "
                           "'- a' / '0: a' lines is read", c->source, i + 1);
        } else {
            i++;
            if (block_list(c, lines, n_lines, &i, err) != LD_OK) return err->status;
        }
    }
    if (!names_line) return ld_fail(err, LD_ERR_INPUT, "%s: no names: key", c->source);
    if (nc >= 0 && nc != c->n)
        return ld_fail(err, LD_ERR_INPUT, "%s:%d: nc is %ld but names lists %d classes",
                       c->source, nc_line, nc, c->n);
    return LD_OK;
}

/* Splits text into its lines (in place) and parses them. */
static ld_status read_data_yaml(class_names *c, char *text, size_t size, ld_error *err)
{
    int n_lines = 0;   /* next_line ends a line at '\n' and at a stray NUL */
    for (size_t p = 0; p < size; p++) n_lines += text[p] == '\n' || text[p] == '\0';
    char **lines = ld_alloc((size_t)n_lines + 1, sizeof *lines, "data.yaml lines", err);
    if (!lines) return err->status;
    size_t pos = 0;
    char *line;
    n_lines = 0;
    while ((line = next_line(text, &pos, size)) != NULL) lines[n_lines++] = line;
    ld_status st = parse_data_yaml(c, lines, n_lines, err);
    ld_free(lines);
    return st;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static ld_status read_class_names(class_names *c, const char *dir, ld_error *err)
{
    static const char *const ups[3] = {"", "/..", "/../.."};
    static const char *const files[3] = {"classes.txt", "data.yaml", "data.yml"};
    c->source[0] = '\0';
    for (int u = 0; u < 3; u++) {
        for (int f = 0; f < 3; f++) {
            int len = snprintf(c->source, sizeof c->source, "%s%s/%s", dir, ups[u], files[f]);
            if (len < 0 || (size_t)len >= sizeof c->source || !exists(c->source)) continue;
            char *text;
            size_t size;
            if (ld_read_file(&text, &size, c->source, LD_LABELS_MAX_FILE, err) != LD_OK)
                return err->status;
            ld_status st = f == 0 ? read_classes_txt(c, text, size, err)
                                  : read_data_yaml(c, text, size, err);
            ld_free(text);
            return st;
        }
    }
    c->source[0] = '\0';
    return LD_OK;
}

/* ---- label files ----------------------------------------------------------------- */

static size_t stem_len(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}

/* category index of class k, making "0".."k" when there are no names */
static ld_status class_category(int *category, ld_labels *labels, const class_names *c,
                                const int *cat_of, long k, const char *path, int line_no,
                                ld_error *err)
{
    if (c->n > 0) {
        if (k >= c->n)
            return ld_fail(err, LD_ERR_INPUT, "%s:%d: class %ld, but %s names only %d (0..%d)",
                           path, line_no, k, c->source, c->n, c->n - 1);
        *category = cat_of[k];
        return LD_OK;
    }
    for (long j = labels->n_categories; j <= k; j++) {
        char name[32];
        int index;
        snprintf(name, sizeof name, "%ld", j);
        /* without class names the categories are exactly "0" .. "n-1": j is new */
        if (ld_labels_new_category(&index, labels, name, err) != LD_OK) return err->status;
    }
    *category = (int)k;
    return LD_OK;
}

static ld_status read_label_file(ld_labels *labels, int image, const char *path,
                                 const class_names *c, const int *cat_of,
                                 const ld_label_options *opt, ld_error *err)
{
    char *text;
    size_t size;
    if (ld_read_file(&text, &size, path, LD_LABELS_MAX_FILE, err) != LD_OK) return err->status;
    ld_status st = LD_OK;
    size_t pos = 0;
    char *line;
    int line_no = 0;
    while (st == LD_OK && (line = next_line(text, &pos, size)) != NULL) {
        line_no++;
        char *tok[6];
        int n = 0;
        for (char *p = line; *p && n < 6;) {
            while (isspace((unsigned char)*p)) p++;
            if (!*p) break;
            tok[n++] = p;
            while (*p && !isspace((unsigned char)*p)) p++;
            if (*p) *p++ = '\0';
        }
        if (n == 0) continue;
        if (n != 5) {
            st = ld_fail(err, LD_ERR_INPUT, "%s:%d: %s%d values, expected 5 (class cx cy w h, "
                         "normalised)", path, line_no, n > 5 ? "more than " : "", n > 5 ? 5 : n);
            break;
        }
        long k;
        double v[4];
        if (ld_parse_int(tok[0], 0, MAX_CLASSES - 1, &k) != 0) {
            st = ld_fail(err, LD_ERR_INPUT, "%s:%d: class '%s' is not a class number (0..%d)",
                         path, line_no, tok[0], MAX_CLASSES - 1);
            break;
        }
        for (int j = 0; j < 4 && st == LD_OK; j++)
            if (ld_parse_double(tok[j + 1], &v[j]) != 0)
                st = ld_fail(err, LD_ERR_INPUT, "%s:%d: '%s' is not a finite number", path,
                             line_no, tok[j + 1]);
        if (st != LD_OK) break;
        ld_label_image *img = &labels->images[image];
        ld_box box = {(v[0] - v[2] / 2) * img->width, (v[1] - v[3] / 2) * img->height,
                      v[2] * img->width, v[3] * img->height, 0};
        char why[512];
        if ((st = class_category(&box.category, labels, c, cat_of, k, path, line_no, err)) != LD_OK)
            break;
        int fit = ld_box_fit(&box, img->width, img->height, opt->clip_tolerance, why, sizeof why);
        if (fit < 0)
            st = ld_fail(err, LD_ERR_INPUT, "%s:%d: %s (from cx %g cy %g w %g h %g)", path,
                         line_no, why, v[0], v[1], v[2], v[3]);
        else if (fit > 0)
            st = ld_labels_warn(labels, err, "%s:%d: %s", path, line_no, why);
        if (st == LD_OK) st = ld_labels_add_box(img, &box, err);
    }
    ld_free(text);
    return st;
}

typedef struct {
    const char *name;   /* the file name */
    size_t stem;        /* length of its stem */
    int index;          /* its position in the sorted listing */
} stem_ref;

static int by_stem(const void *a, const void *b)
{
    const stem_ref *x = a, *y = b;
    size_t n = x->stem < y->stem ? x->stem : y->stem;
    int c = strncmp(x->name, y->name, n);
    if (c) return c;
    if (x->stem != y->stem) return x->stem < y->stem ? -1 : 1;
    return x->index - y->index;
}

static ld_status read_all(ld_labels *labels, const char *dir, const ld_label_options *opt,
                          char **images, int n_images, char **txts, int n_txts,
                          const class_names *c, const int *cat_of, ld_error *err)
{
    stem_ref *stems = ld_alloc((size_t)n_images, sizeof *stems, "the image index", err);
    if (!stems) return err->status;
    for (int i = 0; i < n_images; i++) stems[i] = (stem_ref){images[i], stem_len(images[i]), i};
    qsort(stems, (size_t)n_images, sizeof *stems, by_stem);
    ld_status st = LD_OK;
    for (int i = 1; i < n_images && st == LD_OK; i++)
        if (stems[i].stem == stems[i - 1].stem &&
            strncmp(stems[i].name, stems[i - 1].name, stems[i].stem) == 0)
            st = ld_fail(err, LD_ERR_INPUT, "%s: images %s and %s would share the label file "
                         "%.*s.txt", opt->images_dir, stems[i - 1].name, stems[i].name,
                         (int)stems[i].stem, stems[i].name);
    /* label file of each image, or -1 */
    int *label_of = st == LD_OK ? ld_alloc((size_t)n_images, sizeof *label_of, "the label index",
                                           err) : NULL;
    if (st == LD_OK && !label_of) st = err->status;
    for (int i = 0; i < n_images && st == LD_OK; i++) label_of[i] = -1;
    int n_orphans = 0, first_orphan = -1;
    for (int t = 0; t < n_txts && st == LD_OK; t++) {
        if (strcmp(txts[t], "classes.txt") == 0) continue;
        stem_ref key = {txts[t], stem_len(txts[t]), -1};
        int lo = 0, hi = n_images - 1, found = -1;
        while (lo <= hi) {
            int mid = lo + (hi - lo) / 2;
            const stem_ref *s = &stems[mid];
            size_t n = s->stem < key.stem ? s->stem : key.stem;
            int cmp = strncmp(s->name, key.name, n);
            if (!cmp && s->stem != key.stem) cmp = s->stem < key.stem ? -1 : 1;
            if (!cmp) {
                found = s->index;
                break;
            }
            if (cmp < 0) lo = mid + 1;
            else hi = mid - 1;
        }
        if (found >= 0) {
            label_of[found] = t;
        } else if (n_orphans++ == 0) {
            first_orphan = t;
        }
    }
    if (st == LD_OK && n_orphans > 0)
        st = ld_fail(err, LD_ERR_INPUT, "%s/%s: no image of that name (.jpg, .jpeg, .png) in "
                     "%s%s", dir, txts[first_orphan], opt->images_dir,
                     n_orphans > 1 ? " (nor for other label files)" : "");
    for (int i = 0; i < n_images && st == LD_OK; i++) {
        char path[4096];
        int w, h;
        if ((st = ld_path_join(path, sizeof path, opt->images_dir, images[i], err)) != LD_OK ||
            (st = ld_image_probe(path, &w, &h, err)) != LD_OK ||
            (st = ld_labels_add_image(labels, i + 1, images[i], w, h, err)) != LD_OK)
            break;
        if (label_of[i] < 0) continue;
        if ((st = ld_path_join(path, sizeof path, dir, txts[label_of[i]], err)) == LD_OK)
            st = read_label_file(labels, labels->n_images - 1, path, c, cat_of, opt, err);
    }
    ld_free(label_of);
    ld_free(stems);
    return st;
}

ld_status ld_labels_load_yolo(ld_labels *labels, const char *dir, const ld_label_options *opt,
                              ld_error *err)
{
    if (!opt->images_dir)
        return ld_fail(err, LD_ERR_USAGE, "%s: YOLO labels need the images folder (the image "
                       "sizes come from the image files)", dir);
    class_names c = {0};
    static const char *const image_exts[] = {".jpg", ".jpeg", ".png"}, *const txt[] = {".txt"};
    char **images = NULL, **txts = NULL;
    int n_images = 0, n_txts = 0, *cat_of = NULL;
    ld_status st = read_class_names(&c, dir, err);
    if (st == LD_OK) st = ld_list_dir(&images, &n_images, opt->images_dir, image_exts, 3, err);
    if (st == LD_OK) st = ld_list_dir(&txts, &n_txts, dir, txt, 1, err);
    if (st == LD_OK && !(cat_of = ld_alloc((size_t)c.n, sizeof *cat_of, "the class index", err)))
        st = err->status;
    /* categories in class order, so class k is category k unless two names differ only
     * in case (then they are one category, and cat_of says so) */
    for (int k = 0; k < c.n && st == LD_OK; k++)
        st = ld_labels_category(&cat_of[k], labels, c.names[k], err);
    if (st == LD_OK) st = read_all(labels, dir, opt, images, n_images, txts, n_txts, &c, cat_of, err);
    ld_free(cat_of);
    ld_names_free(images, n_images);
    ld_names_free(txts, n_txts);
    classes_free(&c);
    return st;
}
