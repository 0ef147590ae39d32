/* cmd_detect.c — `lymphdet detect --model MODEL --out RESULTS.json IMAGE_OR_DIR...`:
 * run the detector (include/lymphdet/detect.h) over images and write COCO results.
 *
 * Inputs are image files and folders (a folder's *.jpg, *.jpeg, *.png, sorted by
 * name, not recursive). With --labels, each image is matched to the labels by
 * file name (ld_labels_find) and takes its image_id and file_name from them; an
 * image the labels do not know is an error. Without, images are numbered 1..n
 * in argument order (folders in sorted order) and file_name is the name in its
 * folder. `--threshold 0 --merge none --scales 1 --stride 8` lists every window
 * with its probability.
 *
 * --threads N splits the images over N threads, each with its own detector (the
 * model is shared read-only): every image's result depends on that image alone,
 * so the output is identical to one thread. The first failing image (in input
 * order) stops the run; nothing is written then (exit 1). --overlay DIR and
 * --heatmap DIR write NAME.png per image (NAME: the image's name without its
 * extension). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"
#include "detect_opts.h"
#include "lymphdet/detect.h"
#include "lymphdet/detections.h"
#include "lymphdet/draw.h"
#include "lymphdet/image.h"
#include "lymphdet/labels.h"
#include "lymphdet/model.h"

#define MAX_THREADS 256

static const char *const cmd = "detect";

typedef struct {
    char *path;         /* to read */
    char *name;         /* name in its folder, or the argument's base name */
    int label;          /* index into the labels, or -1 */
} item;

typedef struct {
    item *items;
    int n, cap;
} item_list;

static int push_item(item_list *l, const char *dir, const char *name)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        item *p = realloc(l->items, (size_t)cap * sizeof *p);
        if (!p) return 1;
        l->items = p;
        l->cap = cap;
    }
    size_t n = (dir ? strlen(dir) + 1 : 0) + strlen(name) + 1;
    char *path = malloc(n);
    const char *base = strrchr(name, '/');
    char *nm = strdup(dir ? name : base ? base + 1 : name);
    if (!path || !nm) {
        free(path);
        free(nm);
        return 1;
    }
    snprintf(path, n, "%s%s%s", dir ? dir : "", dir ? "/" : "", name);
    l->items[l->n++] = (item){path, nm, -1};
    return 0;
}

static void free_items(item_list *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->items[i].path);
        free(l->items[i].name);
    }
    free(l->items);
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || name[0] == '.') return 0;
    char ext[8] = {0};
    for (int i = 0; i < 7 && dot[1 + i]; i++) ext[i] = (char)tolower((unsigned char)dot[1 + i]);
    return strcmp(ext, "jpg") == 0 || strcmp(ext, "jpeg") == 0 || strcmp(ext, "png") == 0;
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends a folder's images in name order; returns an exit code. */
static int list_folder(item_list *l, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "lymphdet %s: %s: cannot open folder: %s\n", cmd, dir, strerror(errno));
        return 1;
    }
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL) {
        if (!is_image_name(e->d_name)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(names, (size_t)cap * sizeof *p);
            if (!p) rc = 1;
            else names = p;
        }
        if (!rc && !(names[n++] = strdup(e->d_name))) rc = 1;
    }
    closedir(d);
    if (!rc && n == 0) {
        fprintf(stderr, "lymphdet %s: %s: no JPEG or PNG images in the folder\n", cmd, dir);
        rc = 1;
    } else if (rc) {
        fprintf(stderr, "lymphdet %s: out of memory listing %s\n", cmd, dir);
    }
    if (!rc) qsort(names, (size_t)n, sizeof *names, by_string);
    for (int i = 0; i < n; i++) {
        if (!rc && push_item(l, dir, names[i])) {
            fprintf(stderr, "lymphdet %s: out of memory listing %s\n", cmd, dir);
            rc = 1;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

/* "scan_014.jpg" -> "scan_014" into out */
static void stem(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s", name);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = '\0';
}

/* Two images whose pictures would land on the same NAME.png: an error. */
static int check_unique_stems(const item_list *l)
{
    char **stems = malloc((size_t)l->n * sizeof *stems);
    if (!stems) return 1;
    int rc = 0, made = 0;
    for (; made < l->n; made++) {
        char buf[4096];
        stem(buf, sizeof buf, l->items[made].name);
        if (!(stems[made] = strdup(buf))) {
            rc = 1;
            break;
        }
    }
    if (!rc) {
        qsort(stems, (size_t)l->n, sizeof *stems, by_string);
        for (int i = 1; i < l->n && !rc; i++)
            if (strcmp(stems[i - 1], stems[i]) == 0) {
                fprintf(stderr, "lymphdet %s: two images would both be drawn to %s.png; "
                                "give them different names\n", cmd, stems[i]);
                rc = 1;
            }
    }
    for (int i = 0; i < made; i++) free(stems[i]);
    free(stems);
    return rc;
}

typedef struct {
    const ld_model *model;
    const ld_detect_config *cfg;
    const item_list *items;
    const ld_labels *labels;            /* or NULL */
    const char *overlay, *heatmap;      /* folders, or NULL */
    ld_dets *dets;                      /* [n] results */
    ld_error *errs;                     /* [n] */
    atomic_int next, stop;
    pthread_mutex_t lock;
    int done;
    cli_progress *bar;
} job;

static ld_status save_picture(const char *dir, const char *name, const ld_image *img,
                              ld_error *err)
{
    char base[4096], path[8300];
    stem(base, sizeof base, name);
    snprintf(path, sizeof path, "%s/%s.png", dir, base);
    return ld_image_save_png(img, path, err);
}

/* Detects on one image and draws its pictures. The detector writes into the
 * thread's `found`, whose capacity covers every window of a frame; the image
 * keeps an exact-size copy, so a long run holds only the boxes it found. */
static ld_status one_image(job *jb, ld_detector *det, ld_dets *found, float **heat,
                           size_t *heat_cap, int i, ld_error *err)
{
    const item *it = &jb->items->items[i];
    ld_image img = {0}, pic = {0};
    ld_status st = ld_image_load(&img, it->path, 0, err);
    if (st) return st;
    st = ld_detector_run(det, img.px, img.w, img.h, img.c, img.w * img.c, found, err);
    if (st) ld_error_prefix(err, "%s", it->path);
    if (!st && found->n > 0) {
        ld_dets *keep = &jb->dets[i];
        keep->d = malloc((size_t)found->n * sizeof *keep->d);
        if (!keep->d) st = ld_fail(err, LD_ERR_NOMEM, "%s: out of memory for %d boxes", it->path,
                                   found->n);
        else {
            memcpy(keep->d, found->d, (size_t)found->n * sizeof *keep->d);
            keep->n = keep->cap = found->n;
        }
    }
    if (!st && jb->overlay) {
        const ld_label_image *li = it->label >= 0 ? &jb->labels->images[it->label] : NULL;
        st = ld_draw_overlay(&pic, &img, li ? li->boxes : NULL, li ? li->n_boxes : 0,
                             found->d, found->n, err);
        if (!st) st = save_picture(jb->overlay, it->name, &pic, err);
        ld_image_free(&pic);
    }
    if (!st && jb->heatmap) {
        size_t n = (size_t)img.w * (size_t)img.h;
        if (n > *heat_cap) {
            float *p = realloc(*heat, n * sizeof *p);
            if (!p) st = ld_fail(err, LD_ERR_NOMEM, "%s: out of memory for the heat map", it->path);
            else {
                *heat = p;
                *heat_cap = n;
            }
        }
        if (!st) {
            ld_detector_heat(det, *heat);
            st = ld_draw_heatmap(&pic, &img, *heat, err);
        }
        if (!st) st = save_picture(jb->heatmap, it->name, &pic, err);
        ld_image_free(&pic);
    }
    ld_image_free(&img);
    return st;
}

static void *worker(void *arg)
{
    job *jb = arg;
    ld_detector det;
    ld_error err = {0};
    float *heat = NULL;
    size_t heat_cap = 0;
    ld_dets found = {0};
    if (ld_detector_init(&det, jb->model, jb->cfg, &err)) {
        /* report against the first image not yet taken */
        int i = atomic_fetch_add(&jb->next, 1);
        if (i < jb->items->n) jb->errs[i] = err;
        atomic_store(&jb->stop, 1);
        return NULL;
    }
    for (;;) {
        if (atomic_load(&jb->stop)) break;
        int i = atomic_fetch_add(&jb->next, 1);
        if (i >= jb->items->n) break;
        if (one_image(jb, &det, &found, &heat, &heat_cap, i, &jb->errs[i])) {
            atomic_store(&jb->stop, 1);
            break;
        }
        pthread_mutex_lock(&jb->lock);
        jb->done++;
        cli_progress_update(jb->bar, jb->done, jb->items->items[i].name);
        pthread_mutex_unlock(&jb->lock);
    }
    free(heat);
    ld_dets_free(&found);
    ld_detector_free(&det);
    return NULL;
}

/* Runs the job on `threads` threads; returns the index of the first failed image or -1. */
static int run_job(job *jb, int threads)
{
    pthread_t tid[MAX_THREADS];
    int started = 0;
    for (; started < threads - 1; started++)
        if (pthread_create(&tid[started], NULL, worker, jb) != 0) break;
    worker(jb);   /* the main thread works too */
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    for (int i = 0; i < jb->items->n; i++)
        if (jb->errs[i].status != LD_OK) return i;
    return -1;
}

int cmd_detect(int argc, char **argv)
{
    detect_opts det;
    detect_opts_default(&det);
    ld_detect_config *cfg = &det.cfg;
    const char *model_path = NULL, *labels_path = NULL, *out_path = NULL;
    const char *overlay = NULL, *heatmap = NULL, *label_format = "auto";
    int threads = 1, quiet = 0, voc_one_based = 0;
    cli_opt head[] = {
        {"model", OPT_STRING, &model_path, "MODEL", "model file (safetensors)", 1},
        {"labels", OPT_STRING, &labels_path, "FILE",
         "labels (COCO file, VOC or YOLO folder): image ids and red boxes in overlays", 0},
        {"label-format", OPT_STRING, &label_format, "F", "auto|coco|voc|yolo", 0},
        {"voc-one-based", OPT_FLAG, &voc_one_based, NULL,
         "VOC boxes are 1-based inclusive (the official convention)", 0},
        {"out", OPT_STRING, &out_path, "RESULTS.json", "COCO results file to write", 1},
    };
    cli_opt tail[] = {
        {"overlay", OPT_STRING, &overlay, "DIR", "write NAME.png overlays (labels red, boxes blue)", 0},
        {"heatmap", OPT_STRING, &heatmap, "DIR", "write NAME.png score maps over the frames", 0},
        {"threads", OPT_INT, &threads, "N", "images processed in parallel", 0},
        {"quiet", OPT_FLAG, &quiet, NULL, "no progress bar", 0},
    };
    enum { N_HEAD = sizeof head / sizeof head[0], N_TAIL = sizeof tail / sizeof tail[0] };
    cli_opt opts[N_HEAD + DETECT_OPT_COUNT + N_TAIL];
    memcpy(opts, head, sizeof head);
    detect_opts_table(opts + N_HEAD, &det);
    memcpy(opts + N_HEAD + DETECT_OPT_COUNT, tail, sizeof tail);
    char **pos = malloc((size_t)argc * sizeof *pos);
    if (!pos) {
        fprintf(stderr, "lymphdet %s: out of memory\n", cmd);
        return 1;
    }
    int n_pos = 0;
    int rc = cli_parse(cmd, "--model MODEL --out RESULTS.json [options] IMAGE_OR_DIR...",
                       "Finds nodes in whole frames: the network scans every window (exactly, in\n"
                       "one pass), positive windows (p > threshold) are merged into boxes, over\n"
                       "a pyramid of scales. Writes COCO results: image_id, file_name,\n"
                       "category_id, bbox [x,y,w,h], score. --threshold 0 --merge none\n"
                       "--scales 1 lists every window with its probability. A model trained with\n"
                       "--preset detect records its tuned scales, stride, threshold and NMS IoU:\n"
                       "they replace the defaults below, and its boxes are refined by its box head.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv, pos, argc, &n_pos);
    if (rc < 0 && n_pos == 0) rc = cli_usage_error(cmd, "no images or folders given (see --help)");
    ld_error err = {0};
    ld_label_options lo;
    ld_label_options_default(&lo);
    if (rc < 0 && labels_path && cli_label_format(cmd, label_format, &lo.format)) rc = 2;
    if (rc < 0) rc = detect_opts_finish(cmd, &det);
    if (rc < 0 && (threads < 1 || threads > MAX_THREADS))
        rc = cli_usage_error(cmd, "--threads must be 1..%d", MAX_THREADS);
    if (rc >= 0) {
        free(pos);
        return rc;
    }

    rc = 0;
    item_list items = {0};
    for (int i = 0; i < n_pos && !rc; i++) {
        struct stat sb;
        if (stat(pos[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            if (!lo.images_dir) lo.images_dir = pos[i];   /* YOLO labels read image sizes */
            rc = list_folder(&items, pos[i]);
        } else if (push_item(&items, NULL, pos[i])) {
            fprintf(stderr, "lymphdet %s: out of memory\n", cmd);
            rc = 1;
        }
    }
    free(pos);
    ld_labels labels = {0};
    int have_labels = 0;
    ld_model m;
    int have_model = 0;
    if (!rc && labels_path) {
        lo.voc_one_based = voc_one_based;
        if (ld_labels_load(&labels, labels_path, &lo, &err)) rc = cli_fail(cmd, &err);
        else have_labels = 1;
        for (int i = 0; !rc && i < labels.n_warnings && !quiet; i++)
            fprintf(stderr, "lymphdet %s: warning: %s\n", cmd, labels.warnings[i]);
    }
    for (int i = 0; !rc && have_labels && i < items.n; i++) {
        item *it = &items.items[i];
        it->label = ld_labels_find(&labels, it->name);
        if (it->label < 0) it->label = ld_labels_find(&labels, it->path);
        if (it->label < 0) {
            fprintf(stderr, "lymphdet %s: %s: not in the labels %s\n", cmd, it->path, labels_path);
            rc = 1;
        }
    }
    if (!rc && (overlay || heatmap) && check_unique_stems(&items)) rc = 1;
    if (!rc && overlay) rc = cli_make_dir(cmd, overlay);
    if (!rc && heatmap) rc = cli_make_dir(cmd, heatmap);
    if (!rc) {
        if (ld_model_load(&m, model_path, 1, &err)) rc = cli_fail(cmd, &err);
        else have_model = 1;
    }
    if (!rc) rc = detect_opts_from_model(cmd, &det, &m, argc, argv);
    if (!rc && ld_detect_config_check(cfg, &m.arch, &err)) rc = cli_fail(cmd, &err);

    ld_dets *dets = NULL;
    ld_error *errs = NULL;
    const char **names = NULL;
    int64_t *ids = NULL;
    if (!rc) {
        dets = calloc((size_t)items.n, sizeof *dets);
        errs = calloc((size_t)items.n, sizeof *errs);
        names = calloc((size_t)items.n, sizeof *names);
        ids = calloc((size_t)items.n, sizeof *ids);
        if (!dets || !errs || !names || !ids) {
            fprintf(stderr, "lymphdet %s: out of memory\n", cmd);
            rc = 1;
        }
    }
    if (!rc) {
        cli_progress bar;
        cli_progress_start(&bar, cmd, items.n, quiet || items.n < 2);
        job jb = {.model = &m, .cfg = cfg, .items = &items,
                  .labels = have_labels ? &labels : NULL, .overlay = overlay,
                  .heatmap = heatmap, .dets = dets, .errs = errs, .bar = &bar};
        atomic_init(&jb.next, 0);
        atomic_init(&jb.stop, 0);
        pthread_mutex_init(&jb.lock, NULL);
        int failed = run_job(&jb, threads < items.n ? threads : items.n);
        pthread_mutex_destroy(&jb.lock);
        cli_progress_end(&bar);
        if (failed >= 0) rc = cli_fail(cmd, &errs[failed]);
    }
    if (!rc) {
        for (int i = 0; i < items.n; i++) {
            const item *it = &items.items[i];
            names[i] = it->label >= 0 ? labels.images[it->label].file_name : it->name;
            ids[i] = it->label >= 0 ? labels.images[it->label].id : i + 1;
        }
        if (ld_results_save(out_path, dets, names, ids, items.n, &err)) rc = cli_fail(cmd, &err);
    }
    if (!rc && cli_verbose(quiet)) {
        long total = 0;
        for (int i = 0; i < items.n; i++) total += dets[i].n;
        fprintf(stderr, "%ld boxes in %d images -> %s\n", total, items.n, out_path);
    }
    for (int i = 0; dets && i < items.n; i++) free(dets[i].d);   /* malloc'd in one_image */
    free(dets);
    free(errs);
    free(names);
    free(ids);
    if (have_model) ld_model_free(&m);
    if (have_labels) ld_labels_free(&labels);
    free_items(&items);
    return rc;
}
