/* test_main.c — runs every registered suite and prints "N passed, N failed". */
#define _XOPEN_SOURCE 700   /* nftw */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/wait.h>
#include "test.h"

#define MAX_SUITES 256
static struct { const char *name; test_fn fn; } suites[MAX_SUITES];
static int n_suites, n_pass, n_fail;
static const char *current;

void test_register(const char *name, test_fn fn)
{
    if (n_suites < MAX_SUITES) {
        suites[n_suites].name = name;
        suites[n_suites].fn = fn;
        n_suites++;
    }
}

void test_record(int ok, const char *file, int line, const char *fmt, ...)
{
    if (ok) { n_pass++; return; }
    n_fail++;
    va_list ap;
    fprintf(stderr, "FAIL [%s] %s:%d: ", current, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static char *slurp(FILE *f, char *buf, size_t size)
{
    size_t n = buf && size ? fread(buf, 1, size - 1, f) : 0;
    if (buf && size) buf[n] = '\0';
    char sink[4096];
    while (fread(sink, 1, sizeof sink, f) > 0) {}
    return buf;
}

int test_run_cli(const char *args, char *out, size_t out_size, char *errbuf, size_t err_size)
{
    const char *bin = getenv("LYMPHDET");
    char errpath[] = "/tmp/lymphdet-test-stderr-XXXXXX", cmd[8192];
    int fd = mkstemp(errpath);
    if (fd < 0) return -1;
    snprintf(cmd, sizeof cmd, "%s %s 2>%s", bin ? bin : "build/lymphdet", args, errpath);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    slurp(p, out, out_size);
    int status = pclose(p);
    FILE *e = fdopen(fd, "r");
    slurp(e, errbuf, err_size);
    fclose(e);
    remove(errpath);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

char *test_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (s) s[n] = '\0';
    fclose(f);
    return s;
}

int test_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* every folder test_tmpdir made, removed at exit unless LYMPHDET_KEEP_TMP is set */
static char tmpdirs[256][256];
static int n_tmpdirs;

const char *test_tmpdir(const char *tag)
{
    if (n_tmpdirs == 256) { fputs("test_tmpdir: too many folders\n", stderr); exit(1); }
    char *p = tmpdirs[n_tmpdirs++];
    snprintf(p, 256, "/tmp/lymphdet-test-%s-XXXXXX", tag);
    if (!mkdtemp(p)) { perror("mkdtemp"); exit(1); }
    return p;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

static void remove_tmpdirs(void)
{
    if (getenv("LYMPHDET_KEEP_TMP")) return;
    for (int i = 0; i < n_tmpdirs; i++) nftw(tmpdirs[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(int argc, char **argv)
{
    qsort(suites, (size_t)n_suites, sizeof suites[0], by_name);
    for (int i = 0; i < n_suites; i++) {
        if (argc > 1 && !strstr(suites[i].name, argv[1])) continue;
        int before = n_fail;
        current = suites[i].name;
        suites[i].fn();
        fprintf(stderr, "%-28s %s\n", suites[i].name, n_fail == before ? "ok" : "FAILED");
    }
    remove_tmpdirs();
    fflush(stderr);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
