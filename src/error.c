/* error.c — filling ld_error (see include/lymphdet/error.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "lymphdet/error.h"

ld_status ld_fail(ld_error *err, ld_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

ld_status ld_error_prefix(ld_error *err, const char *fmt, ...)
{
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    return err->status;
}

int ld_exit_code(ld_status status)
{
    if (status == LD_OK) return 0;
    return status == LD_ERR_USAGE ? 2 : 1;
}
