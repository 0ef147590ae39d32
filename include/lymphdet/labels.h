/* labels.h — boxes drawn in annotation tools, read into one in-memory form.
 *
 * Boxes are continuous pixel coordinates as COCO uses them: (x, y) is the top-left
 * corner, (w, h) the size; the box covers [x, x+w) x [y, y+h). Pixel i spans
 * [i, i+1). Formats:
 *   - COCO JSON (ImgLab, CVAT, Label Studio, Roboflow): annotations are joined to
 *     images by image_id and never keyed by their own id (ImgLab restarts ids at 1
 *     in every image); `bbox` may be [x,y,w,h] or, in old ImgLab files, an object
 *     {"x","y","width","height"} (also "left"/"top" accepted).
 *   - Pascal VOC: a folder of XML files; <bndbox> xmin/ymin/xmax/ymax either
 *     1-based inclusive (the official convention: x = xmin-1, w = xmax-xmin+1) or
 *     continuous 0-based (as CVAT/ImgLab/Label Studio write it: x = xmin, w = xmax-xmin).
 *   - YOLO: a folder of .txt files, one "class cx cy w h" line per box, normalised
 *     to [0,1]; class names from classes.txt or data.yaml; image sizes are read from
 *     the image headers.
 * Category names are lower-cased; an empty name becomes "uncategorized".
 * Every image's extra fields (COCO: everything besides id/file_name/width/height,
 * e.g. near_dup_group, patient, pathology) are kept as text for later stages. */
#ifndef LYMPHDET_LABELS_H
#define LYMPHDET_LABELS_H

#include <stdint.h>
#include "lymphdet/error.h"

typedef struct {
    double x, y, w, h;  /* continuous pixel coordinates, top-left + size */
    int category;       /* index into ld_labels.categories */
} ld_box;

typedef struct {
    char *key;
    char *value;        /* strings as they are; numbers, booleans, null as JSON text */
} ld_field;

typedef struct {
    int64_t id;         /* COCO image id; VOC/YOLO: 1.. in file-name order */
    char *file_name;    /* relative to the images folder */
    int width, height;
    ld_box *boxes;
    int n_boxes;
    ld_field *fields;
    int n_fields;
} ld_label_image;

typedef enum {
    LD_LABELS_AUTO = 0,  /* a file: COCO; a folder: VOC if it holds .xml, YOLO if .txt */
    LD_LABELS_COCO,
    LD_LABELS_VOC,
    LD_LABELS_YOLO
} ld_label_format;

typedef struct {
    ld_label_format format;
    int voc_one_based;        /* 1: official VOC (1-based inclusive), 0: continuous */
    const char *images_dir;   /* needed for YOLO (image sizes); may be NULL otherwise */
    double clip_tolerance;    /* boxes outside the image by at most this many px are
                                 clipped with a warning; further out: an error. */
} ld_label_options;

typedef struct {
    ld_label_image *images;
    int n_images;
    char **categories;        /* lower-cased names */
    int n_categories;
    char **warnings;          /* e.g. "labels.json: image 7: box 2 clipped to the image" */
    int n_warnings;
    ld_label_format format;   /* what was read */
} ld_labels;

void ld_label_options_default(ld_label_options *opt);  /* AUTO, continuous VOC, tolerance 2 px */

/* Reads labels from a COCO file, a VOC folder or a YOLO folder. Validates: finite
 * numbers, positive sizes, boxes inside the image (within tolerance), annotations
 * whose image_id exists, unique image ids and file names. Messages carry
 * file:line:column where the format has them (jansson, libxml2). */
ld_status ld_labels_load(ld_labels *labels, const char *path, const ld_label_options *opt,
                         ld_error *err);
void ld_labels_free(ld_labels *labels);

/* The value of an image's extra field, or NULL when absent. */
const char *ld_label_field(const ld_label_image *img, const char *key);
/* Index of the image whose file_name is `name` (exact match, or the same base
 * name when `name` or the file_name carries a folder), or -1 when there is none or
 * when two images share that base name. Linear in the number of images. */
int ld_labels_find(const ld_labels *labels, const char *name);
/* Joins folder and file name, refusing names that escape the folder (absolute
 * paths, ".." components). Returns LD_ERR_INPUT with a message otherwise. */
ld_status ld_path_join(char *out, size_t size, const char *dir, const char *name, ld_error *err);
/* Where an image's file lives: images_dir/file_name when that is a safe relative
 * path (ld_path_join) and the file exists, else images_dir/<base name of file_name>
 * when that exists. The second try serves exports that prefix a folder the user
 * does not have (Label Studio's "/data/upload/1/abc.jpg", "images/abc.jpg"); the
 * result never leaves images_dir. LD_ERR_IO "...: image not found" otherwise. */
ld_status ld_label_image_path(char *out, size_t size, const char *images_dir,
                              const char *file_name, ld_error *err);

#endif
