/* error.h — how the library reports failure.
 *
 * Every fallible library function returns an ld_status and, on failure, fills a
 * caller-provided ld_error with one line naming the file and the cause, e.g.
 *   "scan_014.jpg: not a JPEG file (starts with 89 50 4e 47)"
 *   "labels.json:3:17: annotation 12: bbox width is negative"
 * The library never prints and never exits; the CLI maps statuses to exit codes
 * (LD_ERR_USAGE -> 2, everything else -> 1). */
#ifndef LYMPHDET_ERROR_H
#define LYMPHDET_ERROR_H

#include <stddef.h>

typedef enum {
    LD_OK = 0,
    LD_ERR_INPUT = 1,   /* a file or a value given to us is bad */
    LD_ERR_IO = 2,      /* the environment failed: open, read, write, rename */
    LD_ERR_NOMEM = 3,   /* an allocation failed or a size would overflow */
    LD_ERR_USAGE = 4    /* the caller asked for something meaningless */
} ld_status;

typedef struct {
    ld_status status;
    char msg[1024];
} ld_error;

/* Sets err (if non-NULL) to status and the printf-formatted message; returns status.
 * Used as:  return ld_fail(err, LD_ERR_INPUT, "%s: not a PNG file", path); */
ld_status ld_fail(ld_error *err, ld_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (keeps the status). Returns err->status. */
ld_status ld_error_prefix(ld_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Exit code for a status: 0 for LD_OK, 2 for LD_ERR_USAGE, 1 otherwise. */
int ld_exit_code(ld_status status);

#endif
