/* cli.c — option parsing, usage text, error printing and progress for the CLI. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"

static void print_default(FILE *f, const cli_opt *o)
{
    switch (o->type) {
    case OPT_FLAG:   break;
    case OPT_INT:    fprintf(f, " [%d]", *(int *)o->value); break;
    case OPT_DOUBLE: fprintf(f, " [%g]", *(double *)o->value); break;
    case OPT_STRING: {
        const char *s = *(const char **)o->value;
        if (s) fprintf(f, " [%s]", s);
        break;
    }
    }
}

static void print_usage(FILE *f, const char *cmd, const char *synopsis, const char *description,
                        const cli_opt *opts, int n_opts)
{
    fprintf(f, "usage: lymphdet %s %s\n\n%s\n\noptions:\n", cmd, synopsis, description);
    for (int i = 0; i < n_opts; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", opts[i].name, opts[i].meta ? " " : "",
                 opts[i].meta ? opts[i].meta : "");
        fprintf(f, "  %-24s %s%s", left, opts[i].help, opts[i].required ? " (required)" : "");
        print_default(f, &opts[i]);
        fputc('\n', f);
    }
    fprintf(f, "  %-24s %s\n", "--help", "print this help and exit");
}

static int set_value(const char *cmd, const cli_opt *o, const char *arg)
{
    char *end;
    errno = 0;
    switch (o->type) {
    case OPT_FLAG: *(int *)o->value = 1; return 0;
    case OPT_INT: {
        long v = strtol(arg, &end, 10);
        if (errno || end == arg || *end || v < INT_MIN || v > INT_MAX)
            return cli_usage_error(cmd, "--%s expects an integer, got '%s'", o->name, arg);
        *(int *)o->value = (int)v;
        return 0;
    }
    case OPT_DOUBLE: {
        double v = strtod(arg, &end);
        if (errno || end == arg || *end || !isfinite(v))
            return cli_usage_error(cmd, "--%s expects a number, got '%s'", o->name, arg);
        *(double *)o->value = v;
        return 0;
    }
    case OPT_STRING: *(const char **)o->value = arg; return 0;
    }
    return 0;
}

int cli_parse(const char *cmd, const char *synopsis, const char *description,
              cli_opt *opts, int n_opts, int argc, char **argv,
              char **pos, int max_pos, int *n_pos)
{
    int given[64] = {0};
    if (n_pos) *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_usage(stdout, cmd, synopsis, description, opts, n_opts);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (!pos || *n_pos >= max_pos)
                return cli_usage_error(cmd, "unexpected argument '%s' (see --help)", a);
            pos[(*n_pos)++] = argv[i];
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int k = -1;
        for (int j = 0; j < n_opts; j++)
            if (strlen(opts[j].name) == len && strncmp(opts[j].name, name, len) == 0) k = j;
        if (k < 0)
            return cli_usage_error(cmd, "unknown option '%.*s' (see --help)", (int)len + 2, a);
        const char *val = NULL;
        if (opts[k].type == OPT_FLAG) {
            if (eq) return cli_usage_error(cmd, "--%s takes no value", opts[k].name);
        } else if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            return cli_usage_error(cmd, "--%s needs a value", opts[k].name);
        }
        if (set_value(cmd, &opts[k], val)) return 2;
        if (k < 64) given[k] = 1;
    }
    for (int j = 0; j < n_opts && j < 64; j++)
        if (opts[j].required && !given[j])
            return cli_usage_error(cmd, "--%s is required (see --help)", opts[j].name);
    return -1;
}

int cli_fail(const char *cmd, const ld_error *err)
{
    fprintf(stderr, "lymphdet %s: %s\n", cmd, err->msg);
    return ld_exit_code(err->status);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "lymphdet %s: usage: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

int cli_label_format(const char *cmd, const char *name, ld_label_format *f)
{
    static const char *const names[] = {"auto", "coco", "voc", "yolo"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0) {
            *f = (ld_label_format)i;
            return 0;
        }
    return cli_usage_error(cmd, "--label-format must be auto, coco, voc or yolo, not '%s'", name);
}

int cli_make_dir(const char *cmd, const char *path)
{
    if (mkdir(path, 0777) == 0 || errno == EEXIST) {
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return 0;
        fprintf(stderr, "lymphdet %s: %s: exists and is not a folder\n", cmd, path);
        return 1;
    }
    fprintf(stderr, "lymphdet %s: %s: cannot create folder: %s\n", cmd, path, strerror(errno));
    return 1;
}

ld_status cli_meta_set(ld_model *m, const char *key, ld_error *err, const char *fmt, ...)
{
    char v[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    return ld_model_meta_set(m, key, v, err);
}

int cli_verbose(int quiet) { return !quiet && isatty(STDERR_FILENO); }

void cli_progress_start(cli_progress *p, const char *label, long total, int quiet)
{
    p->enabled = cli_verbose(quiet);
    p->label = label;
    p->total = total;
}

void cli_progress_update(cli_progress *p, long done, const char *suffix)
{
    if (!p->enabled) return;
    int width = 30, fill = p->total > 0 ? (int)(width * done / p->total) : width;
    fprintf(stderr, "\r%s [", p->label);
    for (int i = 0; i < width; i++) fputc(i < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %ld/%ld %s\033[K", done, p->total, suffix ? suffix : "");
    fflush(stderr);
}

void cli_progress_end(cli_progress *p)
{
    if (p->enabled) fputs("\r\033[K", stderr);
}
