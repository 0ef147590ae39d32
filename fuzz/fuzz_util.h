/* fuzz_util.h — what the libFuzzer targets share (fuzz/fuzz_*.c; `make fuzz`).
 *
 * The parsers under test read files by path (a COCO file, a VOC or YOLO folder, a
 * model file), so each target writes the fuzz input into a private scratch folder
 * and hands the parser that path. The folder lives in /dev/shm when there is one
 * (no disk I/O per execution). libFuzzer gives LLVMFuzzerTestOneInput no context
 * argument, so the folder's name is the one piece of static state a target keeps;
 * it is set once, in LLVMFuzzerInitialize, and removed at exit.
 *
 * Several targets need more than one file per input (two VOC files, a YOLO class
 * list plus label files): fuzz_split cuts the input at the separator line
 * FUZZ_SEP, so a seed shows the layout and mutations can move bytes between parts. */
#ifndef LYMPHDET_FUZZ_UTIL_H
#define LYMPHDET_FUZZ_UTIL_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_SEP "\n--8<--\n"

static char fuzz_dir[256];

static inline void fuzz_remove_dir(void)
{
    DIR *d = opendir(fuzz_dir);
    if (!d) return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", fuzz_dir, e->d_name);
        if (unlink(path) != 0) {
            /* a sub-folder (the YOLO target's images): one level deep */
            DIR *s = opendir(path);
            struct dirent *f;
            char inner[768];
            while (s && (f = readdir(s))) {
                snprintf(inner, sizeof inner, "%s/%s", path, f->d_name);
                unlink(inner);
            }
            if (s) closedir(s);
            rmdir(path);
        }
    }
    closedir(d);
    rmdir(fuzz_dir);
}

/* Creates the scratch folder; aborts (the fuzzer cannot run without it). */
static inline void fuzz_make_dir(const char *tag)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/lymphdet-fuzz-%s-XXXXXX", base, tag);
    if (!mkdtemp(fuzz_dir)) {
        perror("mkdtemp");
        abort();
    }
    atexit(fuzz_remove_dir);
}

/* path <- fuzz_dir/name, written with data[0..size) */
static inline void fuzz_write(char *path, size_t path_size, const char *name, const uint8_t *data,
                       size_t size)
{
    snprintf(path, path_size, "%s/%s", fuzz_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

static inline void fuzz_unlink(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir, name);
    unlink(path);
}

/* Cuts data at FUZZ_SEP into at most max parts: part[k] = data + off[k], len[k] bytes.
 * Returns the number of parts (>= 1); text after the last allowed cut stays in the last. */
static inline int fuzz_split(const uint8_t *data, size_t size, const uint8_t **part, size_t *len,
                      int max)
{
    size_t sep = strlen(FUZZ_SEP), start = 0;
    int n = 0;
    for (size_t i = 0; n < max - 1 && i + sep <= size; i++) {
        if (memcmp(data + i, FUZZ_SEP, sep) != 0) continue;
        part[n] = data + start;
        len[n++] = i - start;
        start = i + sep;
        i = start - 1;
    }
    part[n] = data + start;
    len[n++] = size - start;
    return n;
}

#endif
