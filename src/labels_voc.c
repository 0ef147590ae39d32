/* labels_voc.c — Pascal VOC: a folder of XML files, one per image, read with libxml2.
 *
 * Each file: <annotation><filename>, <size><width><height>, then one <object> per box
 * with <name> and <bndbox><xmin><ymin><xmax><ymax>. Coordinates may be fractional
 * (CVAT writes "240.34"). The convention is the caller's choice (labels.h):
 * opt->voc_one_based = 1 is the official VOC one (1-based, inclusive: x = xmin - 1,
 * w = xmax - xmin + 1), 0 the continuous one that CVAT, ImgLab and Label Studio write
 * (x = xmin, w = xmax - xmin). <difficult> and <truncated> objects are kept as boxes.
 * Files are read in strcmp order of their names, and images are numbered 1.. in that
 * order, so the result never depends on the order of the folder listing. A missing or
 * zero <size> is read from the image file header when the images folder is known.
 *
 * Safety. Files are read into memory by us (size-capped) and parsed with
 * XML_PARSE_NONET and without XML_PARSE_NOENT / XML_PARSE_DTDLOAD: external entities
 * are never fetched, so XXE is impossible; libxml2's own checks stop entity loops and
 * amplification. Text is taken from text and CDATA children only, so the content of
 * entities never reaches the labels; an element that uses an entity reference is an
 * error. Parser errors are never printed (XML_PARSE_NOERROR); the first one is kept through
 * the context's structured-error hook and reported.
 * Messages carry file:line (xmlGetLineNo on the offending node). */
#include <ctype.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "alloc.h"
#include "labels_internal.h"
#include "lymphdet/image.h"

static xmlNodePtr child(xmlNodePtr node, const char *name)
{
    for (xmlNodePtr c = node ? node->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && xmlStrcmp(c->name, (const xmlChar *)name) == 0)
            return c;
    return NULL;
}

/* The trimmed text of an element (text and CDATA children). */
static ld_status text_of(char *out, size_t size, xmlNodePtr node, const char *path,
                         ld_error *err)
{
    size_t n = 0;
    out[0] = '\0';
    for (xmlNodePtr c = node->children; c; c = c->next) {
        if (c->type == XML_ENTITY_REF_NODE)
            return ld_fail(err, LD_ERR_INPUT, "%s:%ld: <%s> uses the entity &%s;, which is "
                           "not expanded", path, xmlGetLineNo(node), (const char *)node->name,
                           (const char *)c->name);
        if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE) continue;
        size_t len = c->content ? strlen((const char *)c->content) : 0;
        if (n + len >= size)
            return ld_fail(err, LD_ERR_INPUT, "%s:%ld: <%s> is longer than %zu characters",
                           path, xmlGetLineNo(node), (const char *)node->name, size - 1);
        memcpy(out + n, c->content, len);
        n += len;
    }
    out[n] = '\0';
    size_t a = 0;
    while (a < n && isspace((unsigned char)out[a])) a++;
    while (n > a && isspace((unsigned char)out[n - 1])) n--;
    memmove(out, out + a, n - a);
    out[n - a] = '\0';
    return LD_OK;
}

/* The number in <parent><name>; `what` names it in messages. */
static ld_status number_of(double *v, xmlNodePtr parent, const char *name, const char *what,
                           const char *path, ld_error *err)
{
    xmlNodePtr node = child(parent, name);
    char text[256];
    if (!node)
        return ld_fail(err, LD_ERR_INPUT, "%s:%ld: %s has no <%s>", path, xmlGetLineNo(parent),
                       what, name);
    if (text_of(text, sizeof text, node, path, err) != LD_OK) return err->status;
    if (ld_parse_double(text, v) != 0)
        return ld_fail(err, LD_ERR_INPUT, "%s:%ld: %s <%s> '%s' is not a finite number", path,
                       xmlGetLineNo(node), what, name, text);
    return LD_OK;
}

static ld_status read_size(int *w, int *h, xmlNodePtr root, const char *file_name,
                           const char *path, const ld_label_options *opt, ld_error *err)
{
    xmlNodePtr size = child(root, "size");
    double v[2] = {0, 0};
    static const char *const keys[2] = {"width", "height"};
    for (int k = 0; size && k < 2; k++) {
        xmlNodePtr node = child(size, keys[k]);
        if (!node) continue;
        if (number_of(&v[k], size, keys[k], "<size>", path, err) != LD_OK) return err->status;
        if (v[k] < 0 || v[k] > LD_LABELS_MAX_SIDE || v[k] != floor(v[k]))
            return ld_fail(err, LD_ERR_INPUT, "%s:%ld: <%s> %g is not an integer in 1..%d", path,
                           xmlGetLineNo(node), keys[k], v[k], LD_LABELS_MAX_SIDE);
    }
    if (v[0] >= 1 && v[1] >= 1) {
        *w = (int)v[0];
        *h = (int)v[1];
        return LD_OK;
    }
    /* LabelImg writes 0 x 0 when it could not read the image; the file knows better */
    if (opt->images_dir) {
        char img_path[4096];
        if (ld_label_image_path(img_path, sizeof img_path, opt->images_dir, file_name, err) != LD_OK ||
            ld_image_probe(img_path, w, h, err) != LD_OK)
            return ld_error_prefix(err, "%s: no <size>", path);
        return LD_OK;
    }
    return ld_fail(err, LD_ERR_INPUT, "%s:%ld: no <size> with <width> and <height> (give the "
                   "images folder to read it from the file)", path,
                   xmlGetLineNo(size ? size : root));
}

static ld_status read_object(ld_labels *labels, int image, xmlNodePtr obj, int number,
                             const char *path, const ld_label_options *opt, ld_error *err)
{
    char name[1024] = "", what[64], why[512];
    xmlNodePtr name_node = child(obj, "name"), bnd = child(obj, "bndbox");
    if (name_node && text_of(name, sizeof name, name_node, path, err) != LD_OK) return err->status;
    snprintf(what, sizeof what, "object %d", number);
    if (!bnd)
        return ld_fail(err, LD_ERR_INPUT, "%s:%ld: %s has no <bndbox>", path, xmlGetLineNo(obj),
                       what);
    static const char *const keys[4] = {"xmin", "ymin", "xmax", "ymax"};
    double v[4];
    for (int k = 0; k < 4; k++)
        if (number_of(&v[k], bnd, keys[k], what, path, err) != LD_OK) return err->status;
    ld_box box;
    if (opt->voc_one_based) {
        box = (ld_box){v[0] - 1, v[1] - 1, v[2] - v[0] + 1, v[3] - v[1] + 1, 0};
    } else {
        box = (ld_box){v[0], v[1], v[2] - v[0], v[3] - v[1], 0};
    }
    if (ld_labels_category(&box.category, labels, name, err) != LD_OK) return err->status;
    ld_label_image *img = &labels->images[image];
    int fit = ld_box_fit(&box, img->width, img->height, opt->clip_tolerance, why, sizeof why);
    if (fit < 0)
        return ld_fail(err, LD_ERR_INPUT, "%s:%ld: %s (%s): %s (from xmin %g ymin %g xmax %g "
                       "ymax %g, %s)", path, xmlGetLineNo(bnd), what, labels->categories[box.category],
                       why, v[0], v[1], v[2], v[3],
                       opt->voc_one_based ? "1-based inclusive" : "continuous");
    if (fit > 0 && ld_labels_warn(labels, err, "%s:%ld: %s: %s", path, xmlGetLineNo(bnd), what,
                                  why) != LD_OK)
        return err->status;
    return ld_labels_add_box(img, &box, err);
}

/* The parser's first error (the later ones are usually its consequences). */
typedef struct {
    int line, column, seen;
    char msg[512];
} first_error;

static void keep_first_error(void *user, xmlErrorPtr e)
{
    first_error *fe = ((xmlParserCtxtPtr)user)->_private;
    if (!fe || fe->seen || !e || e->level < XML_ERR_ERROR) return;
    fe->seen = 1;
    fe->line = e->line;
    fe->column = e->int2;
    snprintf(fe->msg, sizeof fe->msg, "%s", e->message ? e->message : "not well-formed XML");
    fe->msg[strcspn(fe->msg, "\r\n")] = '\0';
}

static ld_status read_file(ld_labels *labels, xmlParserCtxtPtr ctxt, const char *path, int id,
                           const ld_label_options *opt, ld_error *err)
{
    char *data;
    size_t size;
    if (ld_read_file(&data, &size, path, LD_LABELS_MAX_FILE, err) != LD_OK) return err->status;
    first_error fe = {0};
    ctxt->_private = &fe;
    ctxt->sax->serror = keep_first_error;
    xmlDocPtr doc = xmlCtxtReadMemory(ctxt, data, (int)size, path, NULL,
                                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    ctxt->_private = NULL;
    ld_free(data);
    if (!doc) {
        if (!fe.seen) snprintf(fe.msg, sizeof fe.msg, "not well-formed XML");
        if (fe.line > 0 && fe.column > 0)
            return ld_fail(err, LD_ERR_INPUT, "%s:%d:%d: %s", path, fe.line, fe.column, fe.msg);
        if (fe.line > 0)
            return ld_fail(err, LD_ERR_INPUT, "%s:%d: %s", path, fe.line, fe.msg);
        return ld_fail(err, LD_ERR_INPUT, "%s: %s", path, fe.msg);
    }
    ld_status st = LD_OK;
    xmlNodePtr root = xmlDocGetRootElement(doc), fname = child(root, "filename");
    char file_name[4096];
    int w = 0, h = 0;
    if (!root || xmlStrcmp(root->name, (const xmlChar *)"annotation") != 0) {
        st = ld_fail(err, LD_ERR_INPUT, "%s:%ld: the root element is <%s>, not <annotation>: not "
                     "a Pascal VOC file", path, root ? xmlGetLineNo(root) : 1L,
                     root ? (const char *)root->name : "");
    } else if (!fname) {
        st = ld_fail(err, LD_ERR_INPUT, "%s:%ld: no <filename>", path, xmlGetLineNo(root));
    } else if (text_of(file_name, sizeof file_name, fname, path, err) != LD_OK) {
        st = err->status;
    } else if (!*file_name) {
        st = ld_fail(err, LD_ERR_INPUT, "%s:%ld: <filename> is empty", path, xmlGetLineNo(fname));
    } else if (read_size(&w, &h, root, file_name, path, opt, err) != LD_OK ||
               ld_labels_add_image(labels, id, file_name, w, h, err) != LD_OK) {
        st = err->status;
    }
    int number = 0;
    for (xmlNodePtr c = root ? root->children : NULL; st == LD_OK && c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || xmlStrcmp(c->name, (const xmlChar *)"object") != 0)
            continue;
        if (++number > LD_LABELS_MAX_ITEMS)
            st = ld_fail(err, LD_ERR_INPUT, "%s: more than %d objects", path, LD_LABELS_MAX_ITEMS);
        else
            st = read_object(labels, labels->n_images - 1, c, number, path, opt, err);
    }
    xmlFreeDoc(doc);
    return st;
}

ld_status ld_labels_load_voc(ld_labels *labels, const char *dir, const ld_label_options *opt,
                             ld_error *err)
{
    static const char *const exts[] = {".xml"};
    char **names;
    int n;
    if (ld_list_dir(&names, &n, dir, exts, 1, err) != LD_OK) return err->status;
    if (n == 0) {
        ld_names_free(names, n);
        return ld_fail(err, LD_ERR_INPUT, "%s: no .xml files (Pascal VOC)", dir);
    }
    xmlInitParser();
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (!ctxt) {
        ld_names_free(names, n);
        return ld_fail(err, LD_ERR_NOMEM, "out of memory creating the XML parser");
    }
    ld_status st = LD_OK;
    char path[4096];
    for (int i = 0; i < n && st == LD_OK; i++) {
        st = ld_path_join(path, sizeof path, dir, names[i], err);
        if (st == LD_OK) st = read_file(labels, ctxt, path, i + 1, opt, err);
    }
    xmlFreeParserCtxt(ctxt);
    int first, second, kind;
    if (st == LD_OK && (st = ld_labels_find_duplicate(&first, &second, &kind, labels, err)) == LD_OK &&
        second >= 0) {
        /* ids are 1.. by construction, so only a file name can repeat */
        ld_path_join(path, sizeof path, dir, names[second], err);
        st = ld_fail(err, LD_ERR_INPUT, "%s: <filename> '%s' is also the image of %s", path,
                     labels->images[second].file_name, names[first]);
    }
    ld_names_free(names, n);
    return st;
}
