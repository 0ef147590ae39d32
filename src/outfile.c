/* outfile.c — temporary-name-then-rename output files (see lymphdet/outfile.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "lymphdet/outfile.h"

ld_status ld_out_open(ld_outfile *out, const char *path, ld_error *err)
{
    memset(out, 0, sizeof *out);
    if (strlen(path) >= sizeof out->path)
        return ld_fail(err, LD_ERR_USAGE, "%s: path too long", path);
    strcpy(out->path, path);
    snprintf(out->tmp, sizeof out->tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(out->tmp);
    if (fd < 0)
        return ld_fail(err, LD_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    /* mkstemp makes the file 0600; give it the mode a plain fopen would */
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    out->fp = fdopen(fd, "wb");
    if (!out->fp) {
        int e = errno;
        close(fd);
        unlink(out->tmp);
        return ld_fail(err, LD_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    return LD_OK;
}

ld_status ld_out_finish(ld_outfile *out, ld_error *err)
{
    int bad = ferror(out->fp);
    int e = bad ? EIO : 0;
    if (!bad && fflush(out->fp) != 0) { bad = 1; e = errno; }
    if (!bad && fsync(fileno(out->fp)) != 0 && errno != EINVAL) { bad = 1; e = errno; }
    if (fclose(out->fp) != 0 && !bad) { bad = 1; e = errno; }
    out->fp = NULL;
    if (bad) {
        unlink(out->tmp);
        out->tmp[0] = '\0';
        return ld_fail(err, LD_ERR_IO, "%s: write failed: %s", out->path, strerror(e));
    }
    return LD_OK;
}

ld_status ld_out_publish(ld_outfile *out, ld_error *err)
{
    if (rename(out->tmp, out->path) != 0) {
        int e = errno;
        unlink(out->tmp);
        out->tmp[0] = '\0';
        return ld_fail(err, LD_ERR_IO, "%s: write failed: %s", out->path, strerror(e));
    }
    out->tmp[0] = '\0';
    return LD_OK;
}

ld_status ld_out_commit(ld_outfile *out, ld_error *err)
{
    if (ld_out_finish(out, err)) return err->status;
    return ld_out_publish(out, err);
}

void ld_out_abort(ld_outfile *out)
{
    if (out->fp) fclose(out->fp);
    out->fp = NULL;
    if (out->tmp[0]) unlink(out->tmp);
    out->tmp[0] = '\0';
}
