/* test_hostile.c — hostile inputs and a hostile environment, through the CLI.
 *
 * Inputs: decompression bombs (huge declared dimensions in PNG and JPEG headers),
 * zero-width images, boxes with NaN, Inf or gigantic values in COCO, VOC and YOLO,
 * file names that try to leave --images (`../secret.png`, absolute paths), next to a
 * valid image just outside --images that they name. Such names are looked up by their
 * base name inside --images only (labels.h), so they find nothing or a file inside,
 * never the one outside. Each is refused with exit 1 and a message naming the file
 * and the cause; a bomb is refused
 * from its header, before any pixel buffer exists (under the sanitizer build a 4-Gpixel
 * allocation would abort the run).
 *
 * Environment: every output (model + history CSV, checkpoint, results JSON, overlays,
 * patches + patches.csv) is written into a folder that is read-only, or on a disk that
 * fills up. Each run must end with exit 1 and a message, leave no partial or temporary
 * file, and leave the files of an earlier run exactly as they were.
 *   - read-only: chmod 0555 when not root; as root (who ignores permissions) the CLI
 *     runs as user nobody, for whom the folder is read-only;
 *   - disk full: RLIMIT_FSIZE in the CLI's process (writes past the limit fail with
 *     EFBIG; SIGXFSZ ignored), always; and a real full disk, a tmpfs filled to the last
 *     byte, when the test runs as root and may mount (in a private mount namespace, so
 *     nothing is visible outside this process). The docs record which ran. */
#define _GNU_SOURCE   /* unshare, setgroups */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "lymphdet/image.h"
#include "lymphdet/labels.h"
#include "synth.h"
#include "test.h"

#define NOBODY 65534

/* ---- files ------------------------------------------------------------------------- */

static int put_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int put_bytes(const char *path, const uint8_t *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(d, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static char *get_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *d = malloc((size_t)n + 1);
    size_t got = fread(d, 1, (size_t)n, f);
    d[got] = '\0';
    fclose(f);
    return d;
}

/* ---- running the CLI ---------------------------------------------------------------- */

typedef struct {
    long fsize_limit;   /* RLIMIT_FSIZE in bytes; 0: none */
    int unprivileged;   /* run as nobody (root only) */
} run_opts;

/* Runs `lymphdet ARGS` (sh -c "exec ..."), stdout and stderr captured; returns the exit
 * code, or 128 + signal. */
static int run_cli_ex(const char *args, const run_opts *o, char *out, size_t out_size,
                      char *errbuf, size_t err_size)
{
    const char *bin = getenv("LYMPHDET");
    char abs_bin[PATH_MAX], cmd[8192];
    if (!realpath(bin ? bin : "build/lymphdet", abs_bin)) return -1;
    snprintf(cmd, sizeof cmd, "exec %s %s", abs_bin, args);
    char op[] = "/tmp/lymphdet-hostile-out-XXXXXX", ep[] = "/tmp/lymphdet-hostile-err-XXXXXX";
    int fo = mkstemp(op), fe = mkstemp(ep);
    if (fo < 0 || fe < 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fo, 1);
        dup2(fe, 2);
        if (o && o->fsize_limit > 0) {
            struct rlimit rl = {(rlim_t)o->fsize_limit, (rlim_t)o->fsize_limit};
            signal(SIGXFSZ, SIG_IGN);   /* ignored across exec: writes fail with EFBIG */
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(125);
        }
        if (o && o->unprivileged &&
            (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0))
            _exit(126);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    char *o_text = get_text(op), *e_text = get_text(ep);
    if (out && out_size) snprintf(out, out_size, "%s", o_text ? o_text : "");
    if (errbuf && err_size) snprintf(errbuf, err_size, "%s", e_text ? e_text : "");
    free(o_text);
    free(e_text);
    close(fo);
    close(fe);
    unlink(op);
    unlink(ep);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- the shared data: synthetic frames and one trained model ------------------------- */

typedef struct {
    char root[256];     /* holds data/ and secret.png, a valid image outside data/ */
    char data[300];     /* synthetic images + labels.json */
    char open[256];     /* a folder anyone may write to (outputs of runs as nobody) */
    char work[256];     /* scratch outputs */
    char model[512];    /* a trained model */
    char base[1024];    /* "train --images ... --labels ..." options */
    int ok;
} fixture;

/* world-readable folders, so a CLI running as nobody can read the inputs */
static const char *open_tmpdir(const char *tag)
{
    const char *d = test_tmpdir(tag);
    chmod(d, 0755);
    return d;
}

static void fixture_init(fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    snprintf(fx->root, sizeof fx->root, "%s", open_tmpdir("hostile-data"));
    snprintf(fx->data, sizeof fx->data, "%s/frames", fx->root);
    snprintf(fx->work, sizeof fx->work, "%s", open_tmpdir("hostile-work"));
    snprintf(fx->open, sizeof fx->open, "%s", open_tmpdir("hostile-open"));
    chmod(fx->open, 0777);
    if (mkdir(fx->data, 0755) != 0) {
        CHECK_MSG(0, "cannot make %s", fx->data);
        return;
    }
    synth_config sc = {12, 120, 2, 8, 16, 5};
    if (synth_write(fx->data, &sc) <= 0) {
        CHECK_MSG(0, "synthetic data not written");
        return;
    }
    snprintf(fx->base, sizeof fx->base, "train --preset paper --images %s --labels %s/labels.json --patch 44 "
             "--margin 4 --epochs 1 --quiet", fx->data, fx->data);
    snprintf(fx->model, sizeof fx->model, "%s/good.safetensors", fx->work);
    char args[2048], err[2048];
    snprintf(args, sizeof args, "%s --out %s", fx->base, fx->model);
    int rc = run_cli_ex(args, NULL, NULL, 0, err, sizeof err);
    CHECK_MSG(rc == 0, "training the fixture model: exit %d: %s", rc, err);
    fx->ok = rc == 0;
}

/* ---- hostile images ------------------------------------------------------------------ */

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void put_be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

/* A grey 8-bit PNG whose header declares w x h, with a tiny (valid zlib, empty-ish)
 * IDAT and IEND: a decoder that trusts the header allocates w*h bytes. */
static size_t png_declaring(uint8_t *out, uint32_t w, uint32_t h)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const uint8_t idat[] = {0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01};
    size_t n = 0;
    memcpy(out, sig, 8);
    n = 8;
    uint8_t ihdr[4 + 13] = {'I', 'H', 'D', 'R'};
    put_be32(ihdr + 4, w);
    put_be32(ihdr + 8, h);
    ihdr[12] = 8;   /* bit depth */
    ihdr[13] = 0;   /* grey */
    put_be32(out + n, 13);
    memcpy(out + n + 4, ihdr, sizeof ihdr);
    put_be32(out + n + 4 + sizeof ihdr, crc32_of(ihdr, sizeof ihdr));
    n += 4 + sizeof ihdr + 4;
    uint8_t chunk[4 + sizeof idat] = {'I', 'D', 'A', 'T'};
    memcpy(chunk + 4, idat, sizeof idat);
    put_be32(out + n, sizeof idat);
    memcpy(out + n + 4, chunk, sizeof chunk);
    put_be32(out + n + 4 + sizeof chunk, crc32_of(chunk, sizeof chunk));
    n += 4 + sizeof chunk + 4;
    static const uint8_t iend[4] = {'I', 'E', 'N', 'D'};
    put_be32(out + n, 0);
    memcpy(out + n + 4, iend, 4);
    put_be32(out + n + 8, crc32_of(iend, 4));
    return n + 12;
}

/* frame_64x48.jpg with its SOF0 dimensions replaced by w x h */
static size_t jpeg_declaring(uint8_t *out, size_t cap, int w, int h)
{
    FILE *f = fopen("tests/fixtures/images/frame_64x48.jpg", "rb");
    if (!f) return 0;
    size_t n = fread(out, 1, cap, f);
    fclose(f);
    for (size_t i = 2; i + 9 < n; i++)
        if (out[i] == 0xFF && (out[i + 1] == 0xC0 || out[i + 1] == 0xC2)) {
            out[i + 5] = (uint8_t)(h >> 8);
            out[i + 6] = (uint8_t)h;
            out[i + 7] = (uint8_t)(w >> 8);
            out[i + 8] = (uint8_t)w;
            return n;
        }
    return 0;
}

typedef struct {
    const char *name, *expect;
} image_case;

static void hostile_images(const fixture *fx)
{
    uint8_t buf[8192];
    char path[512], args[2048], err[2048];
    static const image_case cases[] = {
        {"bomb.png", "over the limit"},     /* 100000 x 100000 */
        {"zero_width.png", "zero"},         /* 0 x 30 */
        {"bomb.jpg", "over the limit"},     /* 65000 x 65000 */
        {"zero_width.jpg", ""},             /* 0 x 48 */
    };
    size_t sizes[4] = {png_declaring(buf, 100000, 100000), 0, 0, 0};
    int n = 4;
    for (int i = 0; i < n; i++) {
        if (i == 1) sizes[i] = png_declaring(buf, 0, 30);
        if (i == 2) sizes[i] = jpeg_declaring(buf, sizeof buf, 65000, 65000);
        if (i == 3) sizes[i] = jpeg_declaring(buf, sizeof buf, 0, 48);
        CHECK_MSG(sizes[i] > 0, "%s not made", cases[i].name);
        snprintf(path, sizeof path, "%s/%s", fx->work, cases[i].name);
        put_bytes(path, buf, sizes[i]);
    }
    for (int i = 0; i < n; i++) {
        ld_image img;
        ld_error e = {0};
        snprintf(path, sizeof path, "%s/%s", fx->work, cases[i].name);
        ld_status st = ld_image_load(&img, path, 0, &e);
        CHECK_MSG(st == LD_ERR_INPUT && img.px == NULL && strstr(e.msg, cases[i].name) &&
                  strstr(e.msg, cases[i].expect),
                  "%s: status %d \"%s\"", cases[i].name, (int)st, e.msg);
        if (!fx->ok) continue;
        snprintf(args, sizeof args, "classify --model %s %s", fx->model, path);
        int rc = run_cli_ex(args, NULL, NULL, 0, err, sizeof err);
        CHECK_MSG(rc == 1 && strstr(err, "lymphdet classify: ") && strstr(err, cases[i].name),
                  "classify %s: exit %d, stderr \"%s\"", cases[i].name, rc, err);
        fprintf(stderr, "  %-16s %s", cases[i].name, err);
    }
    /* a frame at the pixel limit the user sets is refused the same way */
    ld_image img;
    ld_error e = {0};
    snprintf(path, sizeof path, "%s/img_000.png", fx->data);
    CHECK_INT(ld_image_load(&img, path, 120 * 120 - 1, &e), LD_ERR_INPUT);
    CHECK(strstr(e.msg, "over the limit of 14399") != NULL);
}

/* ---- hostile labels ------------------------------------------------------------------ */

typedef struct {
    const char *what;
    const char *file;       /* relative to a fresh labels folder */
    const char *text;
    const char *expect;     /* in stderr */
} label_case;

static void hostile_labels(const fixture *fx)
{
    /* a readable, valid image just outside --images: reaching it would be the bug */
    char secret[512];
    snprintf(secret, sizeof secret, "%s/secret.png", fx->root);
    char src[512];
    snprintf(src, sizeof src, "%s/img_000.png", fx->data);
    ld_image img;
    ld_error e = {0};
    if (ld_image_load(&img, src, 0, &e) == LD_OK) {
        CHECK_INT(ld_image_save_png(&img, secret, &e), LD_OK);
        ld_image_free(&img);
    }
    char abs_secret[PATH_MAX];
    CHECK(realpath(secret, abs_secret) != NULL);
    char coco_abs[1024];
    snprintf(coco_abs, sizeof coco_abs,
             "{\"images\": [{\"id\": 1, \"file_name\": \"%s\", \"width\": 120, \"height\": 120}],"
             " \"categories\": [{\"id\": 1, \"name\": \"node\"}],"
             " \"annotations\": [{\"id\": 1, \"image_id\": 1, \"category_id\": 1, "
             "\"bbox\": [10, 10, 30, 30]}]}", abs_secret);
#define COCO_BOX(b) "{\"images\": [{\"id\": 1, \"file_name\": \"img_000.png\", \"width\": 120, " \
    "\"height\": 120}], \"categories\": [{\"id\": 1, \"name\": \"node\"}], \"annotations\": " \
    "[{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": " b "}]}"
#define COCO_NAME(n) "{\"images\": [{\"id\": 1, \"file_name\": \"" n "\", \"width\": 120, " \
    "\"height\": 120}], \"categories\": [{\"id\": 1, \"name\": \"node\"}], \"annotations\": " \
    "[{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [10, 10, 30, 30]}]}"
#define VOC_BOX(x0, y0, x1, y1) "<annotation><filename>img_000.png</filename><size><width>120" \
    "</width><height>120</height></size><object><name>node</name><bndbox><xmin>" x0 "</xmin>" \
    "<ymin>" y0 "</ymin><xmax>" x1 "</xmax><ymax>" y1 "</ymax></bndbox></object></annotation>\n"
    const label_case cases[] = {
        {"COCO NaN literal", "l.json", COCO_BOX("[NaN, 10, 30, 30]"), "l.json:1:"},
        {"COCO 1e999", "l.json", COCO_BOX("[10, 10, 1e999, 30]"), "l.json:1:"},
        {"COCO Infinity", "l.json", COCO_BOX("[10, 10, Infinity, 30]"), "l.json:1:"},
        {"COCO huge box", "l.json", COCO_BOX("[10, 10, 1e300, 30]"), "outside"},
        {"COCO far negative", "l.json", COCO_BOX("[-1e308, 10, 30, 30]"), "outside"},
        {"COCO zero width", "l.json", COCO_BOX("[10, 10, 0, 30]"), "not positive"},
        {"COCO string coordinate", "l.json", COCO_BOX("[\"10\", 10, 30, 30]"), "l.json"},
        {"COCO ../ file name", "l.json", COCO_NAME("../secret.png"), "frames/secret.png: image not found"},
        {"COCO deep ../ file name", "l.json", COCO_NAME("a/../../secret.png"),
         "frames/secret.png: image not found"},
        {"COCO ..\\\\ file name", "l.json", COCO_NAME("..\\\\secret.png"),
         "frames/secret.png: image not found"},
        {"COCO /etc/passwd", "l.json", COCO_NAME("/etc/passwd"), "frames/passwd: image not found"},
        {"COCO absolute path outside", "l.json", coco_abs, "frames/secret.png: image not found"},
        {"COCO ../../etc/passwd", "l.json", COCO_NAME("../../etc/passwd"),
         "frames/passwd: image not found"},
        {"VOC nan", "v/a.xml", VOC_BOX("nan", "10", "40", "40"), "a.xml"},
        {"VOC inf", "v/a.xml", VOC_BOX("10", "10", "inf", "40"), "a.xml"},
        {"VOC 1e400", "v/a.xml", VOC_BOX("10", "10", "1e400", "40"), "a.xml"},
        {"VOC 1e300", "v/a.xml", VOC_BOX("10", "10", "1e300", "40"), "outside"},
        {"VOC ../ file name", "v/a.xml", "<annotation><filename>../secret.png</filename><size>"
         "<width>0</width><height>0</height></size></annotation>\n", "frames/secret.png: image not found"},
        {"YOLO nan", "y/img_000.txt", "0 nan 0.5 0.2 0.2\n", "img_000.txt:1: 'nan'"},
        {"YOLO inf", "y/img_000.txt", "0 0.5 0.5 inf 0.2\n", "img_000.txt:1: 'inf'"},
        {"YOLO huge", "y/img_000.txt", "0 0.5 0.5 1e300 0.2\n", "outside"},
    };
#undef COCO_BOX
#undef COCO_NAME
#undef VOC_BOX
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *dir = open_tmpdir("hostile-labels");
        char path[512], sub[512], args[4096], err[4096], out[512];
        const char *slash = strchr(cases[i].file, '/');
        if (slash) {
            snprintf(sub, sizeof sub, "%s/%.*s", dir, (int)(slash - cases[i].file), cases[i].file);
            mkdir(sub, 0755);
        } else {
            snprintf(sub, sizeof sub, "%s/%s", dir, cases[i].file);
        }
        snprintf(path, sizeof path, "%s/%s", dir, cases[i].file);
        put_text(path, cases[i].text);
        snprintf(out, sizeof out, "%s/m.safetensors", dir);
        snprintf(args, sizeof args, "train --preset paper --images %s --labels %s --out %s --patch 44 "
                 "--margin 4 --epochs 1 --quiet", fx->data, sub, out);
        int rc = run_cli_ex(args, NULL, NULL, 0, err, sizeof err);
        CHECK_MSG(rc == 1 && strstr(err, "lymphdet train: ") && strstr(err, cases[i].expect) &&
                  !test_exists(out),
                  "%s: exit %d, stderr \"%s\" (expected \"%s\")", cases[i].what, rc, err,
                  cases[i].expect);
        fprintf(stderr, "  %-26s %s", cases[i].what, err);
    }

    /* the resolver itself: never a path outside the folder (a climbing name is looked
     * up by its base name inside it) */
    static const struct { const char *name; ld_status st; } names[] = {
        {"../secret.png", LD_ERR_IO}, {"..", LD_ERR_INPUT}, {"x/../../secret.png", LD_ERR_IO},
        {"..\\secret.png", LD_ERR_IO}, {"/etc/passwd", LD_ERR_IO}, {"C:\\x\\secret.png", LD_ERR_IO},
        {"../../../../../../etc/passwd", LD_ERR_IO}, {"", LD_ERR_INPUT}, {"img_000.png", LD_OK},
        {"/data/upload/1/img_000.png", LD_OK}, {"C:\\Users\\me\\img_000.png", LD_OK},
        {"../img_000.png", LD_OK}, {"../../frames/../img_000.png", LD_OK},
    };
    size_t dl = strlen(fx->data);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char out[4096];
        ld_status st = ld_label_image_path(out, sizeof out, fx->data, names[i].name, &e);
        CHECK_MSG(st == names[i].st, "'%s': status %d (expected %d) \"%s\"", names[i].name, (int)st,
                  (int)names[i].st, e.msg);
        if (st == LD_OK)
            CHECK_MSG(strncmp(out, fx->data, dl) == 0 && out[dl] == '/' && !strstr(out + dl, ".."),
                      "'%s' resolved to %s", names[i].name, out);
    }
    remove(secret);
}

/* ---- a hostile environment ----------------------------------------------------------- */

/* The old files of an earlier run: each holds "old <name>\n". */
static void put_olds(const char *dir, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        char path[1024], text[256];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(text, sizeof text, "old %s\n", names[i]);
        CHECK_MSG(put_text(path, text) == 0, "cannot write %s", path);
    }
}

/* dir (recursively) holds the old files unchanged, PNGs that decode (each written
 * whole, see the patches command), and nothing else: no partial, no temporary file */
static void check_left(const char *what, const char *dir, const char *const *olds, int n_old,
                       int *n_png)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            check_left(what, path, olds, n_old, n_png);
            continue;
        }
        int old = -1;
        for (int i = 0; i < n_old; i++)
            if (strcmp(e->d_name, olds[i]) == 0) old = i;
        if (old >= 0 && strcmp(olds[old], "filler") == 0) {
            continue;   /* what fills the tmpfs: zeros, not an output */
        } else if (old >= 0) {
            char expect[256], *text = get_text(path);
            snprintf(expect, sizeof expect, "old %s\n", olds[old]);
            CHECK_MSG(text && strcmp(text, expect) == 0, "%s: old %s was changed", what, path);
            free(text);
        } else if (strstr(e->d_name, ".png") && !strstr(e->d_name, ".tmp")) {
            ld_image img;
            ld_error err = {0};
            CHECK_MSG(ld_image_load(&img, path, 0, &err) == LD_OK, "%s: %s is not whole: %s",
                      what, path, err.msg);
            ld_image_free(&img);
            (*n_png)++;
        } else {
            CHECK_MSG(0, "%s: %s was left behind", what, path);
        }
    }
    if (d) closedir(d);
}

typedef enum { ENV_READ_ONLY, ENV_FSIZE, ENV_TMPFS_FULL, ENV_TMPFS_ALMOST, ENV_COUNT } env_kind;
static const char *const env_names[] = {"read-only folder", "RLIMIT_FSIZE", "full tmpfs",
                                        "tmpfs filling up"};

/* Makes dir hostile; returns the run options, or -1 when this kind cannot be set up
 * here. A tmpfs is mounted over dir (old files written into it first) and filled to
 * the last byte, or (ENV_TMPFS_ALMOST) all but `leave` bytes, so that a run fails
 * part-way: after a first file fits. */
static int make_hostile(env_kind kind, const char *dir, const char *const *olds, int n_old,
                        long leave, run_opts *o)
{
    memset(o, 0, sizeof *o);
    if (kind == ENV_READ_ONLY) {
        put_olds(dir, olds, n_old);
        if (geteuid() == 0) o->unprivileged = 1;
        else chmod(dir, 0555);
        return 0;
    }
    if (kind == ENV_FSIZE) {
        put_olds(dir, olds, n_old);
        o->fsize_limit = 1200;   /* below every output tried: a model, a PNG, ... */
        return 0;
    }
    if (geteuid() != 0 || mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0755") != 0) return -1;
    put_olds(dir, olds, n_old);
    char filler[1024];
    snprintf(filler, sizeof filler, "%s/filler", dir);
    FILE *f = fopen(filler, "wb");
    static const char block[4096] = {0};
    while (f && fwrite(block, 1, sizeof block, f) == sizeof block) {}
    if (f) fclose(f);   /* fails with ENOSPC: the disk is full */
    struct stat st;
    if (kind == ENV_TMPFS_ALMOST && stat(filler, &st) == 0)
        CHECK(truncate(filler, st.st_size > leave ? st.st_size - leave : 0) == 0);
    return 0;
}

static void unmake_hostile(env_kind kind, const char *dir)
{
    if (kind == ENV_READ_ONLY) chmod(dir, 0755);
    if (kind == ENV_TMPFS_FULL || kind == ENV_TMPFS_ALMOST) umount(dir);
}

/* A private mount namespace for the tmpfs cases (root only): mounts made in it are
 * invisible outside this process and vanish with it. */
static int private_mounts(void)
{
    if (geteuid() != 0) return 0;
    if (unshare(CLONE_NEWNS) != 0) return 0;
    return mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
}

typedef struct {
    const char *what;
    const char *olds[3];    /* files of an earlier run in the hostile folder */
    int n_old;
    long leave;             /* bytes a filling tmpfs leaves: the first file(s) fit */
} output_case;

/* runs one output case in one environment: exit 1, a message, the folder as it was */
static void try_output(const fixture *fx, env_kind kind, const output_case *c, const char *args,
                       const char *dir, const char *must_not_exist)
{
    run_opts o;
    char tag[64];
    snprintf(tag, sizeof tag, "%s / %s", c->what, env_names[kind]);
    if (kind == ENV_TMPFS_ALMOST && !c->leave) return;
    if (make_hostile(kind, dir, c->olds, c->n_old, c->leave, &o) != 0) {
        fprintf(stderr, "  %-44s not run (mount not permitted here)\n", tag);
        return;
    }
    char err[4096];
    int rc = run_cli_ex(args, &o, NULL, 0, err, sizeof err);
    const char *olds[4];
    int n_old = 0, n_png = 0;
    for (; n_old < c->n_old; n_old++) olds[n_old] = c->olds[n_old];
    if (kind == ENV_TMPFS_FULL || kind == ENV_TMPFS_ALMOST) olds[n_old++] = "filler";
    check_left(tag, dir, olds, n_old, &n_png);
    for (int i = 0; i < c->n_old; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, c->olds[i]);
        CHECK_MSG(test_exists(path), "%s: old %s is gone", tag, path);
    }
    CHECK_MSG(rc == 1 && strncmp(err, "lymphdet ", 9) == 0 && strstr(err, dir),
              "%s: exit %d, stderr \"%s\"", tag, rc, err);
    if (must_not_exist) CHECK_MSG(!test_exists(must_not_exist), "%s: %s exists", tag, must_not_exist);
    fprintf(stderr, "  %-44s exit %d, %d whole PNGs, old files intact: %s", tag, rc, n_png, err);
    unmake_hostile(kind, dir);
}

static void hostile_outputs(const fixture *fx)
{
    if (!fx->ok) return;
    int can_mount = private_mounts();
    fprintf(stderr, "  environment: %s; tmpfs %s\n",
            geteuid() == 0 ? "root (read-only = run as nobody)" : "not root (read-only = chmod 0555)",
            can_mount ? "mounted in a private namespace" : "not available");
    /* the model (4.7 KB: two 4 KB pages) fits in 8 KB, its history then does not; a
     * few 44 x 44 patches fit in 20 KB */
    static const output_case model_case = {"train: model + history", {"m.safetensors",
                                            "m.safetensors.history.csv"}, 2, 8192};
    static const output_case ckpt_case = {"train: checkpoint", {"run.ckpt"}, 1, 0};
    static const output_case results_case = {"detect: results JSON", {"r.json"}, 1, 0};
    static const output_case overlay_case = {"detect: overlays", {"img_000.png"}, 1, 0};
    static const output_case patches_case = {"patches: PNGs + patches.csv", {"patches.csv"}, 1,
                                             20480};
    /* the detection preset's model (21 KB: six pages) fits in 24 KB, its histories
     * then do not */
    static const output_case det_case = {"train (detect): model + histories",
                                         {"d.safetensors", "d.safetensors.history.csv",
                                          "d.safetensors.det_history.csv"}, 3, 24576};
    static const output_case eval_case = {"evaluate: metrics, charts, report",
                                          {"metrics.json", "report.html"}, 2, 61440};
    char args[4096], out[1024], img[512], results[512];
    snprintf(img, sizeof img, "%s/img_000.png", fx->data);
    /* results for evaluate to read, made once where nothing is hostile */
    snprintf(results, sizeof results, "%s/results.json", fx->work);
    snprintf(args, sizeof args, "detect --model %s --quiet --threshold 0.2 --out %s %s", fx->model,
             results, fx->data);
    CHECK_INT(test_run_cli(args, NULL, 0, NULL, 0), 0);
    for (int k = 0; k < ENV_COUNT; k++) {
        env_kind kind = (env_kind)k;
        const char *dir = open_tmpdir("hostile-out");
        snprintf(args, sizeof args, "%s --out %s/m.safetensors", fx->base, dir);
        try_output(fx, kind, &model_case, args, dir, NULL);

        dir = open_tmpdir("hostile-out");
        snprintf(out, sizeof out, "%s/never.safetensors", fx->open);
        snprintf(args, sizeof args, "%s --out %s --checkpoint %s/run.ckpt", fx->base, out, dir);
        try_output(fx, kind, &ckpt_case, args, dir, out);

        dir = open_tmpdir("hostile-out");
        snprintf(args, sizeof args, "detect --model %s --quiet --threshold 0 --merge none "
                 "--out %s/r.json %s", fx->model, dir, img);
        try_output(fx, kind, &results_case, args, dir, NULL);

        dir = open_tmpdir("hostile-out");
        snprintf(out, sizeof out, "%s/never.json", fx->open);
        snprintf(args, sizeof args, "detect --model %s --quiet --out %s --overlay %s %s",
                 fx->model, out, dir, img);
        try_output(fx, kind, &overlay_case, args, dir, out);

        dir = open_tmpdir("hostile-out");
        snprintf(args, sizeof args, "patches --images %s --labels %s/labels.json --patch 44 "
                 "--margin 4 --quiet --out %s", fx->data, fx->data, dir);
        try_output(fx, kind, &patches_case, args, dir, NULL);

        dir = open_tmpdir("hostile-out");
        snprintf(args, sizeof args, "train --images %s --labels %s/labels.json --epochs 1 "
                 "--eval-every 1 --bootstrap 5 --quiet --out %s/d.safetensors", fx->data,
                 fx->data, dir);
        try_output(fx, kind, &det_case, args, dir, NULL);

        dir = open_tmpdir("hostile-out");
        snprintf(args, sizeof args, "evaluate --results %s --labels %s/labels.json --images %s "
                 "--bootstrap 10 --out %s", results, fx->data, fx->data, dir);
        try_output(fx, kind, &eval_case, args, dir, NULL);
    }
}

TEST_SUITE(hostile_cli)
{
    fixture fx;
    fixture_init(&fx);
    hostile_images(&fx);
    hostile_labels(&fx);
    hostile_outputs(&fx);
}
