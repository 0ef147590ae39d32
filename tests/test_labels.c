/* test_labels.c — COCO (ImgLab, CVAT, Label Studio styles), Pascal VOC and YOLO readers,
 * their error messages, file-name matching and safe path joining.
 *
 * Fixtures are in tests/fixtures/labels/ (see its README.md); every expected value
 * below was worked out by hand from the fixture text: COCO boxes as written, VOC
 * continuous x = xmin, w = xmax - xmin and 1-based x = xmin - 1, w = xmax - xmin + 1,
 * YOLO x = (cx - w/2) * W with the 40x30 image a.png. Line:column positions were
 * counted by hand in the fixture files (columns in characters, from 1). */
#include <string.h>
#include "alloc.h"
#include "lymphdet/labels.h"
#include "test.h"

#define FIX "tests/fixtures/labels/"

static ld_status load(ld_labels *l, const char *path, ld_label_format format,
                      const char *images_dir, int one_based, ld_error *err)
{
    ld_label_options opt;
    ld_label_options_default(&opt);
    opt.format = format;
    opt.images_dir = images_dir;
    opt.voc_one_based = one_based;
    return ld_labels_load(l, path, &opt, err);
}

static int box_is(const ld_box *b, double x, double y, double w, double h, int category)
{
    return fabs(b->x - x) < 1e-9 && fabs(b->y - y) < 1e-9 && fabs(b->w - w) < 1e-9 &&
           fabs(b->h - h) < 1e-9 && b->category == category;
}

/* the message of a load that must fail with LD_ERR_INPUT */
static const char *load_error(const char *path, ld_label_format format, const char *images_dir,
                              ld_error *err)
{
    ld_labels l;
    ld_status st = load(&l, path, format, images_dir, 0, err);
    CHECK_MSG(st == LD_ERR_INPUT, "%s: status %d (%s)", path, (int)st, st ? err->msg : "loaded");
    CHECK(l.n_images == 0 && l.images == NULL);   /* nothing left behind on failure */
    ld_labels_free(&l);
    return err->msg;
}

TEST_SUITE(labels_defaults)
{
    ld_label_options opt;
    memset(&opt, 0x55, sizeof opt);
    ld_label_options_default(&opt);
    CHECK_INT(opt.format, LD_LABELS_AUTO);
    CHECK_INT(opt.voc_one_based, 0);
    CHECK(opt.images_dir == NULL);
    CHECK_NEAR(opt.clip_tolerance, 2.0, 0);
}

TEST_SUITE(labels_coco_imglab)
{
    ld_labels l;
    ld_error err = {0};
    CHECK_INT(load(&l, FIX "coco/imglab.json", LD_LABELS_AUTO, NULL, 0, &err), LD_OK);
    CHECK_INT(l.format, LD_LABELS_COCO);
    CHECK_INT(l.n_images, 2);
    CHECK_INT(l.n_categories, 2);
    CHECK_STR(l.categories[0], "lymph node");      /* lower-cased */
    CHECK_STR(l.categories[1], "uncategorized");   /* empty name */
    CHECK_INT(l.n_warnings, 0);
    if (l.n_images != 2) return;
    const ld_label_image *a = &l.images[0], *b = &l.images[1];
    CHECK_INT(a->id, 1);
    CHECK_STR(a->file_name, "a.png");
    CHECK_INT(a->width, 40);
    CHECK_INT(a->height, 30);
    /* annotation ids restart at 1 in image 2: boxes still go to their image_id */
    CHECK_INT(a->n_boxes, 2);
    CHECK_INT(b->n_boxes, 2);
    CHECK(box_is(&a->boxes[0], 2.5, 3.25, 10, 8.5, 0));
    CHECK(box_is(&a->boxes[1], 20, 10, 5.5, 6, 1));
    CHECK(box_is(&b->boxes[0], 1, 2, 30, 20, 0));   /* old-style object bbox */
    CHECK(box_is(&b->boxes[1], 5, 6, 7, 8, 0));     /* "left"/"top" */
    /* extra fields as text, in file order */
    CHECK_INT(a->n_fields, 2);
    CHECK_STR(ld_label_field(a, "patient"), "P01");
    CHECK_STR(ld_label_field(a, "near_dup_group"), "1");
    CHECK(ld_label_field(a, "axilla") == NULL);
    CHECK_INT(b->n_fields, 5);
    CHECK_STR(b->fields[2].key, "axilla");
    CHECK_STR(ld_label_field(b, "axilla"), "true");
    CHECK_STR(ld_label_field(b, "note"), "null");
    CHECK_STR(ld_label_field(b, "orig"), "[\"x.png\",2.5]");
    CHECK(ld_label_field(b, "id") == NULL && ld_label_field(b, "width") == NULL);
    CHECK_INT(ld_labels_find(&l, "b.jpg"), 1);
    CHECK_INT(ld_labels_find(&l, "some/folder/a.png"), 0);
    CHECK_INT(ld_labels_find(&l, "c.png"), -1);
    ld_labels_free(&l);
    CHECK(l.images == NULL && l.n_images == 0);
    ld_labels_free(&l);   /* freeing twice is harmless */
}

TEST_SUITE(labels_coco_cvat)
{
    ld_labels l;
    ld_error err = {0};
    CHECK_INT(load(&l, FIX "coco/cvat.json", LD_LABELS_COCO, NULL, 0, &err), LD_OK);
    CHECK_INT(l.n_images, 2);
    CHECK_INT(l.n_categories, 1);
    CHECK_STR(l.categories[0], "node");
    if (l.n_images != 2) return;
    CHECK_INT(l.images[0].n_boxes, 1);
    CHECK(box_is(&l.images[0].boxes[0], 4, 5, 8, 6, 0));
    /* [-1, 2, 11, 5] sticks out 1 px on the left of the 50x20 image: clipped to [0, 2, 10, 5];
     * the iscrowd annotation is left out */
    CHECK_INT(l.images[1].n_boxes, 1);
    CHECK(box_is(&l.images[1].boxes[0], 0, 2, 10, 5, 0));
    CHECK_INT(l.n_warnings, 2);
    if (l.n_warnings == 2) {
        CHECK_STR(l.warnings[0], FIX "coco/cvat.json: annotations[1] (image 'c.png'): bbox "
                  "[-1, 2, 11, 5] clipped to the 50x20 image (1 px outside)");
        CHECK_STR(l.warnings[1], FIX "coco/cvat.json: 1 iscrowd annotation left out (first: "
                  "annotations[2])");
    }
    CHECK_STR(ld_label_field(&l.images[0], "license"), "0");
    CHECK_STR(ld_label_field(&l.images[0], "flickr_url"), "");
    CHECK_INT(l.images[0].n_fields, 4);
    ld_labels_free(&l);

    /* a tolerance of 0.5 px makes the same box an error */
    ld_label_options opt;
    ld_label_options_default(&opt);
    opt.clip_tolerance = 0.5;
    CHECK_INT(ld_labels_load(&l, FIX "coco/cvat.json", &opt, &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, "annotations[1] (image_id 2): bbox [-1, 2, 11, 5] reaches 1 px "
                 "outside the 50x20 image (tolerance 0.5 px)") != NULL);
}

TEST_SUITE(labels_coco_labelstudio)
{
    ld_labels l;
    ld_error err = {0};
    CHECK_INT(load(&l, FIX "coco/labelstudio.json", LD_LABELS_AUTO, NULL, 0, &err), LD_OK);
    CHECK_INT(l.n_images, 2);
    if (l.n_images != 2) return;
    CHECK_INT(l.images[0].id, 0);   /* ids from 0 */
    CHECK_INT(l.images[1].id, 1);
    CHECK_STR(l.images[0].file_name, "images/a.png");
    CHECK_STR(l.categories[0], "malignant");
    CHECK_STR(l.categories[1], "benign");
    CHECK(box_is(&l.images[0].boxes[0], 10.123456, 5.5, 12.25, 7.75, 1));
    CHECK(box_is(&l.images[1].boxes[0], 0, 0, 40, 30, 0));
    CHECK_INT(l.images[0].n_fields, 0);
    /* matching by base name, both ways */
    CHECK_INT(ld_labels_find(&l, "a.png"), 0);
    CHECK_INT(ld_labels_find(&l, "images/a.png"), 0);
    CHECK_INT(ld_labels_find(&l, "/elsewhere/b.jpg"), 1);
    /* the images are found in the images folder by base name */
    char path[512];
    CHECK_INT(ld_label_image_path(path, sizeof path, FIX "images", l.images[1].file_name, &err),
              LD_OK);
    CHECK_STR(path, FIX "images/b.jpg");
    CHECK_INT(ld_label_image_path(path, sizeof path, FIX "images", l.images[0].file_name, &err),
              LD_OK);
    CHECK_STR(path, FIX "images/a.png");
    ld_labels_free(&l);
}

TEST_SUITE(labels_coco_errors)
{
    ld_error err;
    /* syntax errors: jansson's line:column (column of the last character it read) */
    CHECK_STR(load_error(FIX "bad/syntax.json", LD_LABELS_COCO, NULL, &err),
              FIX "bad/syntax.json:3:42: '}' expected near '\"width\"'");
    CHECK_STR(load_error(FIX "bad/nan.json", LD_LABELS_COCO, NULL, &err),
              FIX "bad/nan.json:3:46: invalid token near 'NaN'");
    CHECK_STR(load_error(FIX "bad/overflow.json", LD_LABELS_COCO, NULL, &err),
              FIX "bad/overflow.json:3:48: real number overflow near '1e999'");
    CHECK_STR(load_error(FIX "bad/dup_key.json", LD_LABELS_COCO, NULL, &err),
              FIX "bad/dup_key.json:2:76: duplicate object key near '\"id\"'");
    /* semantic errors: the position of the offending value, found in the text */
    CHECK_STR(load_error(FIX "bad/negwidth.json", LD_LABELS_COCO, NULL, &err),
              FIX "bad/negwidth.json:5:29: annotations[1] (image_id 1): bbox width -3 is not positive");
    CHECK_STR(load_error(FIX "bad/bbox3.json", LD_LABELS_COCO, NULL, &err),
              FIX "bad/bbox3.json:5:14: annotations[0] (image_id 1): bbox has 3 numbers, "
              "expected 4 (x, y, width, height)");
    CHECK_STR(load_error(FIX "bad/unknown_image.json", LD_LABELS_COCO, NULL, &err),
              FIX "bad/unknown_image.json:3:71: annotations[1]: image_id 9 is not in images");
    CHECK_STR(load_error(FIX "bad/far_outside.json", LD_LABELS_COCO, NULL, &err),
              FIX "bad/far_outside.json:3:43: annotations[0] (image_id 1): bbox [30, 5, 20, 5] "
              "reaches 10 px outside the 40x30 image (tolerance 2 px)");
    CHECK(strstr(load_error(FIX "bad/huge.json", LD_LABELS_COCO, NULL, &err),
                 "huge.json:3:43: annotations[0] (image_id 1): bbox [1e+300, 2, 3, 4] reaches") != NULL);
    CHECK_STR(load_error(FIX "bad/dup_id.json", LD_LABELS_COCO, NULL, &err),
              FIX "bad/dup_id.json:4:12: images[1]: image id 1 is used twice (first by images[0])");
    CHECK_STR(load_error(FIX "bad/dup_name.json", LD_LABELS_COCO, NULL, &err),
              FIX "bad/dup_name.json:4:28: images[1]: file name 'a.png' is used twice (first by "
              "images[0])");
    CHECK_STR(load_error(FIX "bad/width0.json", LD_LABELS_COCO, NULL, &err),
              FIX "bad/width0.json:2:55: images[0] ('a.png'): width 0 is not an integer in 1..100000");
    /* columns count characters: "été.png" is 7 characters, 9 bytes */
    CHECK_STR(load_error(FIX "bad/utf8_column.json", LD_LABELS_COCO, NULL, &err),
              FIX "bad/utf8_column.json:2:57: images[0] ('\xc3\xa9t\xc3\xa9.png'): width 0 is "
              "not an integer in 1..100000");
    CHECK_STR(load_error(FIX "bad/unknown_category.json", LD_LABELS_COCO, NULL, &err),
              FIX "bad/unknown_category.json:4:50: annotations[0] (image_id 1): category_id 5 "
              "is not in categories");
    CHECK(strstr(load_error(FIX "bad/results.json", LD_LABELS_COCO, NULL, &err),
                 "results.json: the top level is an array") != NULL);
    /* a folder given as a COCO file, a missing file */
    ld_labels l;
    CHECK_INT(load(&l, FIX "images", LD_LABELS_COCO, NULL, 0, &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, "images: is a folder, not a file") != NULL);
    CHECK_INT(load(&l, FIX "nothing.json", LD_LABELS_AUTO, NULL, 0, &err), LD_ERR_IO);
    CHECK(strstr(err.msg, "nothing.json: cannot open") != NULL);
}

TEST_SUITE(labels_paths)
{
    char out[64];
    ld_error err = {0};
    CHECK_INT(ld_path_join(out, sizeof out, "imgs", "a/b.jpg", &err), LD_OK);
    CHECK_STR(out, "imgs/a/b.jpg");
    CHECK_INT(ld_path_join(out, sizeof out, "imgs/", "b.jpg", &err), LD_OK);
    CHECK_STR(out, "imgs/b.jpg");
    CHECK_INT(ld_path_join(out, sizeof out, "", "b.jpg", &err), LD_OK);
    CHECK_STR(out, "b.jpg");
    CHECK_INT(ld_path_join(out, sizeof out, "imgs", "..foo/x..y.jpg", &err), LD_OK);  /* not ".." */
    CHECK_INT(ld_path_join(out, sizeof out, "imgs", "../../etc/passwd", &err), LD_ERR_INPUT);
    CHECK_STR(err.msg, "file name '../../etc/passwd' leaves the images folder");
    CHECK_INT(ld_path_join(out, sizeof out, "imgs", "a/../../x.jpg", &err), LD_ERR_INPUT);
    CHECK_INT(ld_path_join(out, sizeof out, "imgs", "a\\..\\..\\x.jpg", &err), LD_ERR_INPUT);
    CHECK_INT(ld_path_join(out, sizeof out, "imgs", "a/..", &err), LD_ERR_INPUT);
    CHECK_INT(ld_path_join(out, sizeof out, "imgs", "/etc/passwd", &err), LD_ERR_INPUT);
    CHECK_STR(err.msg, "file name '/etc/passwd' is an absolute path");
    CHECK_INT(ld_path_join(out, sizeof out, "imgs", "C:\\x.jpg", &err), LD_ERR_INPUT);
    CHECK_INT(ld_path_join(out, sizeof out, "imgs", "", &err), LD_ERR_INPUT);
    CHECK_INT(ld_path_join(out, 8, "imgs", "long.jpg", &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, "path too long") != NULL);

    /* the loader keeps a hostile name as text; resolving it never leaves the folder */
    ld_labels l;
    CHECK_INT(load(&l, FIX "bad/traversal.json", LD_LABELS_COCO, NULL, 0, &err), LD_OK);
    char path[512];
    CHECK_INT(ld_label_image_path(path, sizeof path, FIX "images", l.images[0].file_name, &err),
              LD_ERR_IO);
    CHECK_STR(err.msg, FIX "images/passwd: image not found (for '../../etc/passwd')");
    ld_labels_free(&l);
    CHECK_INT(ld_label_image_path(path, sizeof path, FIX "images", "zz.png", &err), LD_ERR_IO);
    CHECK_STR(err.msg, FIX "images/zz.png: image not found");
    CHECK_INT(ld_label_image_path(path, sizeof path, FIX "images", "sub/zz.png", &err), LD_ERR_IO);
    CHECK_STR(err.msg, FIX "images/sub/zz.png: image not found (nor " FIX "images/zz.png)");
    CHECK_INT(ld_label_image_path(path, sizeof path, FIX "images", "c.png", &err), LD_OK);
    CHECK_STR(path, FIX "images/c.png");
}

TEST_SUITE(labels_voc)
{
    ld_labels l;
    ld_error err = {0};
    /* continuous (CVAT, ImgLab, Label Studio): x = xmin, w = xmax - xmin */
    CHECK_INT(load(&l, FIX "voc", LD_LABELS_AUTO, NULL, 0, &err), LD_OK);
    CHECK_INT(l.format, LD_LABELS_VOC);
    CHECK_INT(l.n_images, 2);
    CHECK_INT(l.n_categories, 2);
    if (l.n_images == 2 && l.n_categories == 2) {
        CHECK_STR(l.categories[0], "node");     /* "Node" and "node" are one category */
        CHECK_STR(l.categories[1], "benign");   /* trimmed, lower-cased */
        CHECK_INT(l.images[0].id, 1);           /* a.xml before b.xml */
        CHECK_STR(l.images[0].file_name, "a.png");
        CHECK_INT(l.images[0].width, 40);
        CHECK_INT(l.images[0].height, 30);
        CHECK_INT(l.images[0].n_boxes, 2);
        CHECK(box_is(&l.images[0].boxes[0], 3, 4, 9, 6, 0));
        CHECK(box_is(&l.images[0].boxes[1], 10.5, 2.25, 10.25, 10.25, 0));
        CHECK_INT(l.images[1].id, 2);
        CHECK(box_is(&l.images[1].boxes[0], 1, 1, 39, 29, 1));
    }
    CHECK_INT(l.n_warnings, 0);
    ld_labels_free(&l);
    /* official VOC (1-based, inclusive): x = xmin - 1, w = xmax - xmin + 1 */
    CHECK_INT(load(&l, FIX "voc", LD_LABELS_VOC, NULL, 1, &err), LD_OK);
    if (l.n_images == 2) {
        CHECK(box_is(&l.images[0].boxes[0], 2, 3, 10, 7, 0));
        CHECK(box_is(&l.images[0].boxes[1], 9.5, 1.25, 11.25, 11.25, 0));
        CHECK(box_is(&l.images[1].boxes[0], 0, 0, 40, 30, 1));   /* the whole 40x30 image */
    }
    ld_labels_free(&l);
    /* <size> 0 x 0 (LabelImg without the image): taken from the image file */
    CHECK_INT(load(&l, FIX "voc_nosize", LD_LABELS_VOC, FIX "images", 0, &err), LD_OK);
    if (l.n_images == 1) {
        CHECK_INT(l.images[0].width, 40);
        CHECK_INT(l.images[0].height, 30);
        CHECK(box_is(&l.images[0].boxes[0], 1, 2, 38, 27, 0));
    }
    ld_labels_free(&l);
}

TEST_SUITE(labels_voc_errors)
{
    ld_error err;
    CHECK_STR(load_error(FIX "voc_syntax", LD_LABELS_AUTO, NULL, &err),
              FIX "voc_syntax/a.xml:5:14: Opening and ending tag mismatch: object line 4 and annotation");
    CHECK_STR(load_error(FIX "voc_neg", LD_LABELS_VOC, NULL, &err),
              FIX "voc_neg/a.xml:6: object 1 (node): bbox width -5 is not positive (from xmin 12 "
              "ymin 4 xmax 7 ymax 10, continuous)");
    /* XXE: the external entity is never read; using it is an error */
    const char *msg = load_error(FIX "voc_xxe", LD_LABELS_VOC, NULL, &err);
    CHECK_STR(msg, FIX "voc_xxe/a.xml:9: <name> uses the entity &xxe;, which is not expanded");
    CHECK(strstr(msg, "SECRET") == NULL);
    /* billion laughs: stopped by libxml2, quickly */
    CHECK(strstr(load_error(FIX "voc_laughs", LD_LABELS_VOC, NULL, &err), "voc_laughs/a.xml:") != NULL);
    CHECK(strstr(err.msg, "entity") != NULL);
    CHECK_STR(load_error(FIX "voc_nosize", LD_LABELS_VOC, NULL, &err),
              FIX "voc_nosize/a.xml:3: no <size> with <width> and <height> (give the images "
              "folder to read it from the file)");
    /* a folder of images holds no labels of either kind */
    CHECK(strstr(load_error(FIX "images", LD_LABELS_AUTO, NULL, &err),
                 "no .xml (VOC) or .txt (YOLO) label files") != NULL);
}

TEST_SUITE(labels_yolo)
{
    static const char *const folders[3] = {FIX "yolo_classes", FIX "yolo_yaml",
                                           FIX "yolo_yaml_block"};
    for (int f = 0; f < 3; f++) {
        ld_labels l;
        ld_error err = {0};
        CHECK_INT(load(&l, folders[f], LD_LABELS_AUTO, FIX "images", 0, &err), LD_OK);
        CHECK_INT(l.format, LD_LABELS_YOLO);
        /* the images folder lists the images: a.png, b.jpg, c.png (no label file: no boxes) */
        CHECK_INT(l.n_images, 3);
        CHECK_INT(l.n_categories, 2);
        if (l.n_images != 3 || l.n_categories != 2) {
            ld_labels_free(&l);
            continue;
        }
        CHECK_STR(l.categories[0], "node");
        CHECK_STR(l.categories[1], "benign node");
        CHECK_STR(l.images[0].file_name, "a.png");
        CHECK_STR(l.images[2].file_name, "c.png");
        CHECK_INT(l.images[2].id, 3);
        CHECK_INT(l.images[2].width, 50);
        CHECK_INT(l.images[2].height, 20);
        CHECK_INT(l.images[2].n_boxes, 0);
        /* 0 0.5 0.5 0.25 0.2 on 40x30: w 10, h 6, x 20 - 5, y 15 - 3 */
        CHECK_INT(l.images[0].n_boxes, 2);
        CHECK(box_is(&l.images[0].boxes[0], 15, 12, 10, 6, 0));
        /* 1 0.1 0.2 0.1 0.2: w 4, h 6, x 4 - 2, y 6 - 3 */
        CHECK(box_is(&l.images[0].boxes[1], 2, 3, 4, 6, 1));
        if (f == 0) {   /* b.txt has CRLF line ends and a blank line: the whole image */
            CHECK_INT(l.images[1].n_boxes, 1);
            CHECK(box_is(&l.images[1].boxes[0], 0, 0, 40, 30, 0));
        }
        CHECK_INT(l.n_warnings, 0);
        ld_labels_free(&l);
    }
    /* slightly too wide: 1.05 * 40 = 42 px, 1 px outside on each side -> clipped */
    ld_labels l;
    ld_error err = {0};
    CHECK_INT(load(&l, FIX "yolo_clip", LD_LABELS_YOLO, FIX "images", 0, &err), LD_OK);
    if (l.n_images == 3 && l.images[0].n_boxes == 1) {
        CHECK(box_is(&l.images[0].boxes[0], 0, 7.5, 40, 15, 0));
        CHECK_INT(l.n_warnings, 1);
        CHECK_STR(l.warnings[0], FIX "yolo_clip/a.txt:1: bbox [-1, 7.5, 42, 15] clipped to the "
                  "40x30 image (1 px outside)");
    }
    ld_labels_free(&l);
}

TEST_SUITE(labels_yolo_errors)
{
    ld_error err;
    CHECK_STR(load_error(FIX "yolo_values", LD_LABELS_YOLO, FIX "images", &err),
              FIX "yolo_values/a.txt:3: 4 values, expected 5 (class cx cy w h, normalised)");
    CHECK_STR(load_error(FIX "yolo_class_range", LD_LABELS_YOLO, FIX "images", &err),
              FIX "yolo_class_range/a.txt:1: class 1, but " FIX "yolo_class_range/classes.txt "
              "names only 1 (0..0)");
    CHECK_STR(load_error(FIX "yolo_orphan", LD_LABELS_YOLO, FIX "images", &err),
              FIX "yolo_orphan/zz.txt: no image of that name (.jpg, .jpeg, .png) in " FIX "images");
    /* YOLO needs the images folder for the image sizes */
    ld_labels l;
    CHECK_INT(load(&l, FIX "yolo_classes", LD_LABELS_YOLO, NULL, 0, &err), LD_ERR_USAGE);
    CHECK(strstr(err.msg, "need the images folder") != NULL);
}

/* Without class names a class number makes the categories "0" .. "k": up to the
 * category limit, fast (each is known to be new), and beyond it an error. */
TEST_SUITE(labels_yolo_many_classes)
{
    static const struct { const char *line; int ok; } cases[] = {
        {"9999 0.5 0.5 0.2 0.2\n", 1}, {"10000 0.5 0.5 0.2 0.2\n", 0}, {"69635 0.5 0.5 0.2 0.2\n", 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *dir = test_tmpdir("yolo-classes");
        char path[512];
        snprintf(path, sizeof path, "%s/a.txt", dir);
        FILE *f = fopen(path, "w");
        if (f) {
            fputs(cases[c].line, f);
            fclose(f);
        }
        ld_labels l;
        ld_error err = {0};
        ld_status st = load(&l, dir, LD_LABELS_YOLO, FIX "images", 0, &err);
        if (cases[c].ok) {
            CHECK_MSG(st == LD_OK, "%s: %s", cases[c].line, err.msg);
            if (st == LD_OK) {
                CHECK_INT(l.n_categories, 10000);
                CHECK_STR(l.categories[9999], "9999");
                ld_labels_free(&l);
            }
        } else {
            CHECK_INT(st, LD_ERR_INPUT);
            CHECK(strstr(err.msg, "a.txt:1: class '") && strstr(err.msg, "is not a class number (0..9999)"));
        }
    }
}

/* data.yaml forms and malformed variants, written to a temporary folder */
static const char *yaml_case(const char *yaml, ld_labels *l, ld_error *err, ld_status *st)
{
    const char *dir = test_tmpdir("yaml");
    char path[512];
    snprintf(path, sizeof path, "%s/data.yaml", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(yaml, f);
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/a.txt", dir);
    f = fopen(path, "w");
    if (f) {
        fputs("2 0.5 0.5 0.5 0.5\n", f);
        fclose(f);
    }
    *st = load(l, dir, LD_LABELS_AUTO, FIX "images", 0, err);
    return dir;
}

TEST_SUITE(labels_yolo_yaml)
{
    ld_labels l;
    ld_error err = {0};
    ld_status st;
    yaml_case("names:\n- a\n-   'b ''c'''\n- \"d \\\"e\\\"\"\n", &l, &err, &st);
    CHECK_INT(st, LD_OK);
    if (st == LD_OK && l.n_categories == 3) {
        CHECK_STR(l.categories[0], "a");
        CHECK_STR(l.categories[1], "b 'c'");
        CHECK_STR(l.categories[2], "d \"e\"");
        CHECK_INT(l.images[0].boxes[0].category, 2);
    }
    ld_labels_free(&l);
    yaml_case("names: [a,\n  b, # second\n  c,\n]\nnc: 3\n", &l, &err, &st);
    CHECK_INT(st, LD_OK);
    CHECK_INT(l.n_categories, 3);
    ld_labels_free(&l);
    /* malformed */
    yaml_case("names:\n  0: a\n  2: b\n", &l, &err, &st);
    CHECK_INT(st, LD_ERR_INPUT);
    CHECK(strstr(err.msg, "data.yaml:3: names key '2', expected 1") != NULL);
    yaml_case("nc: 4\nnames: [a, b, c]\n", &l, &err, &st);
    CHECK_INT(st, LD_ERR_INPUT);
    CHECK(strstr(err.msg, "data.yaml:1: nc is 4 but names lists 3 classes") != NULL);
    yaml_case("names: {0: a, 1: b}\n", &l, &err, &st);
    CHECK_INT(st, LD_ERR_INPUT);
    CHECK(strstr(err.msg, "data.yaml:1: names: only a list") != NULL);
    yaml_case("names: [a, b, c\n", &l, &err, &st);
    CHECK_INT(st, LD_ERR_INPUT);
    CHECK(strstr(err.msg, "data.yaml:1: names: the list has no closing ']'") != NULL);
    yaml_case("train: x\n", &l, &err, &st);
    CHECK_INT(st, LD_ERR_INPUT);
    CHECK(strstr(err.msg, "data.yaml: no names: key") != NULL);
}

/* Every allocation failure on the way returns LD_ERR_NOMEM and leaves nothing behind
 * (ASan checks the leaks). */
TEST_SUITE(labels_alloc_failures)
{
    static const struct { const char *path; const char *images; } cases[] = {
        {FIX "coco/imglab.json", NULL}, {FIX "coco/cvat.json", NULL},
        {FIX "voc", NULL}, {FIX "yolo_yaml_block", FIX "images"}};
    for (int c = 0; c < 4; c++) {
        int ok = 0, clean = 1, steps = 0;
        for (long k = 1; k < 1000 && !ok; k++, steps++) {
            ld_labels l;
            ld_error err = {0};
            ld_alloc_fail_after(k);
            ld_status st = load(&l, cases[c].path, LD_LABELS_AUTO, cases[c].images, 0, &err);
            ld_alloc_fail_after(0);
            if (st == LD_OK) ok = 1;
            else clean &= st == LD_ERR_NOMEM && l.images == NULL && l.n_categories == 0;
            ld_labels_free(&l);
        }
        CHECK_MSG(ok && clean && steps > 5, "%s: ok %d clean %d after %d steps", cases[c].path,
                  ok, clean, steps);
    }
}

/* Every prefix of a valid file is either still valid or a clean LD_ERR_INPUT: never a
 * crash, never another status (ASan/UBSan watch the rest). */
static void write_prefix(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

TEST_SUITE(labels_truncated)
{
    static const struct { const char *src, *name; ld_label_format format; } cases[] = {
        {FIX "coco/imglab.json", "labels.json", LD_LABELS_COCO},
        {FIX "coco/cvat.json", "labels.json", LD_LABELS_COCO},
        {FIX "voc/a.xml", "a.xml", LD_LABELS_VOC},
        {FIX "yolo_yaml/data.yaml", "data.yaml", LD_LABELS_YOLO},
        {FIX "yolo_classes/a.txt", "a.txt", LD_LABELS_YOLO}};
    for (int c = 0; c < 5; c++) {
        static char data[8192];
        FILE *f = fopen(cases[c].src, "rb");
        size_t size = f ? fread(data, 1, sizeof data, f) : 0;
        if (f) fclose(f);
        CHECK(size > 0);
        const char *dir = test_tmpdir("trunc");
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, cases[c].name);
        if (cases[c].format == LD_LABELS_YOLO && strcmp(cases[c].name, "a.txt") == 0) {
            char classes[512];
            snprintf(classes, sizeof classes, "%s/classes.txt", dir);
            write_prefix(classes, "node\nbenign node\n", strlen("node\nbenign node\n"));
        }
        int n_ok = 0, n_input = 0, n_other = 0;
        for (size_t n = 0; n <= size; n++) {
            write_prefix(path, data, n);
            ld_labels l;
            ld_error err = {0};
            const char *where = cases[c].format == LD_LABELS_COCO ? path : dir;
            if (cases[c].format == LD_LABELS_YOLO && strcmp(cases[c].name, "data.yaml") == 0) {
                /* a.txt next to the truncated data.yaml uses classes 0 and 1 */
                char txt[512];
                snprintf(txt, sizeof txt, "%s/a.txt", dir);
                const char *boxes = "0 0.5 0.5 0.25 0.2\n1 0.1 0.2 0.1 0.2\n";
                write_prefix(txt, boxes, strlen(boxes));
            }
            ld_status st = load(&l, where, cases[c].format, FIX "images", 0, &err);
            n_ok += st == LD_OK;
            n_input += st == LD_ERR_INPUT;
            n_other += st != LD_OK && st != LD_ERR_INPUT;
            ld_labels_free(&l);
        }
        CHECK_MSG(n_other == 0 && n_ok >= 1 && n_input >= 1, "%s: %d ok, %d input errors, %d other",
                  cases[c].src, n_ok, n_input, n_other);
    }
}

/* COCO without width/height: read from the image header when the folder is known */
TEST_SUITE(labels_coco_probe)
{
    const char *dir = test_tmpdir("probe");
    char path[512];
    snprintf(path, sizeof path, "%s/labels.json", dir);
    const char *json = "{\"images\": [{\"id\": 1, \"file_name\": \"x/c.png\"}]}";
    write_prefix(path, json, strlen(json));
    ld_labels l;
    ld_error err = {0};
    CHECK_INT(load(&l, path, LD_LABELS_COCO, NULL, 0, &err), LD_ERR_INPUT);
    CHECK(strstr(err.msg, "labels.json:1:13: images[0] ('x/c.png'): no width (give the images "
                 "folder to read it from the file)") != NULL);
    CHECK_INT(load(&l, path, LD_LABELS_COCO, FIX "images", 0, &err), LD_OK);
    if (l.n_images == 1) {
        CHECK_INT(l.images[0].width, 50);   /* c.png, found by its base name */
        CHECK_INT(l.images[0].height, 20);
    }
    ld_labels_free(&l);
}
