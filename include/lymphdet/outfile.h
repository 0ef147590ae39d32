/* outfile.h — write an output file so that a failure never leaves half of it (public: the CLI uses it too).
 *
 * ld_out_open creates "PATH.tmp.XXXXXX" in the same folder; ld_out_commit flushes,
 * fsyncs, closes and renames it over PATH; ld_out_abort closes and removes it. A
 * failed run therefore leaves PATH as it was (absent, or the previous version).
 *
 * Several files that are one result (a model and its histories) are written in two
 * steps: ld_out_finish each (flush, fsync, close: the data is safe, still under its
 * temporary name), and only when all are finished ld_out_publish each (the rename).
 * A failure before the renames leaves every old file as it was. */
#ifndef LYMPHDET_OUTFILE_H
#define LYMPHDET_OUTFILE_H

#include <stdio.h>
#include "lymphdet/error.h"

typedef struct {
    FILE *fp;
    char path[4096];
    char tmp[4096 + 16];
} ld_outfile;

ld_status ld_out_open(ld_outfile *out, const char *path, ld_error *err);
ld_status ld_out_commit(ld_outfile *out, ld_error *err);  /* checks every write's error state */
ld_status ld_out_finish(ld_outfile *out, ld_error *err);  /* commit without the rename */
ld_status ld_out_publish(ld_outfile *out, ld_error *err); /* the rename of a finished file */
void      ld_out_abort(ld_outfile *out);                  /* open or finished: removed */

#endif
