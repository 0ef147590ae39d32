/* cli.h — what every lymphdet subcommand shares: the option table, usage text,
 * errors and progress.
 *
 * A command declares its options as a table; cli_parse fills the variables, prints
 * `--help` (every option with its default) and rejects unknown or malformed options
 * with exit code 2. Errors from the library go to stderr as "lymphdet CMD: message"
 * and map to exit code 1. Progress goes to stderr only when it is a terminal and
 * --quiet is not given; results go to stdout or files. */
#ifndef LYMPHDET_CLI_H
#define LYMPHDET_CLI_H

#include <stdio.h>
#include "lymphdet/error.h"
#include "lymphdet/labels.h"
#include "lymphdet/model.h"

typedef enum { OPT_FLAG, OPT_INT, OPT_DOUBLE, OPT_STRING } cli_opt_type;

typedef struct {
    const char *name;       /* without the leading "--" */
    cli_opt_type type;
    void *value;            /* int*, int*, double*, const char** */
    const char *meta;       /* placeholder in the usage text, e.g. "DIR" */
    const char *help;       /* one line; the default is appended from *value */
    int required;
} cli_opt;

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} cli_command;

/* Parses argv[1..] (argv[0] is the command name) against opts[0..n_opts).
 * Positional arguments are collected into pos (at most max_pos; NULL allowed when
 * none are accepted). Returns -1 to go on, or the exit code to return right away
 * (0 after --help, 2 after a usage error, with its message on stderr). */
int cli_parse(const char *cmd, const char *synopsis, const char *description,
              cli_opt *opts, int n_opts, int argc, char **argv,
              char **pos, int max_pos, int *n_pos);

/* Prints "lymphdet CMD: message" for a library error; returns its exit code. */
int cli_fail(const char *cmd, const ld_error *err);
/* Prints "lymphdet CMD: usage: ..." and returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --label-format NAME (auto|coco|voc|yolo) into *f; 0, or 2 after a usage error. */
int cli_label_format(const char *cmd, const char *name, ld_label_format *f);
/* Makes the folder PATH unless it exists; 0, or 1 after a message naming it. */
int cli_make_dir(const char *cmd, const char *path);
/* Formats a metadata value (the model file's metadata are strings) and stores it. */
ld_status cli_meta_set(ld_model *m, const char *key, ld_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Progress on stderr: shown only when stderr is a terminal and not quiet. */
typedef struct {
    int enabled;
    const char *label;
    long total;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *label, long total, int quiet);
void cli_progress_update(cli_progress *p, long done, const char *suffix);
void cli_progress_end(cli_progress *p);
/* 1 when stderr is a terminal and not quiet: for per-epoch or per-step lines */
int  cli_verbose(int quiet);

/* The command table, defined in main.c; each cmd_*.c defines one run function. */
int cmd_inspect(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_detect(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);
int cmd_crossval(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_patches(int argc, char **argv);
int cmd_info(int argc, char **argv);

#endif
