/* alloc.c — overflow-checked allocation with a fault-injection hook (see alloc.h).
 * The counter is process-wide test machinery, not library state: it is only ever
 * set by tests, and atomics keep it safe when scanning threads allocate. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"

static atomic_long alloc_count;
static atomic_long alloc_fail_at;   /* 0: never fail */

long ld_alloc_fail_after(long k)
{
    long n = atomic_exchange(&alloc_count, 0);
    atomic_store(&alloc_fail_at, k);
    return n;
}

static int injected_failure(void)
{
    long n = atomic_fetch_add(&alloc_count, 1) + 1;
    long at = atomic_load(&alloc_fail_at);
    return at > 0 && n >= at;
}

size_t ld_mul2(size_t a, size_t b, int *overflow)
{
    if (b && a > SIZE_MAX / b) { *overflow = 1; return 0; }
    return a * b;
}

size_t ld_mul3(size_t a, size_t b, size_t c, int *overflow)
{
    size_t ab = ld_mul2(a, b, overflow);
    return *overflow ? 0 : ld_mul2(ab, c, overflow);
}

static void *nomem(const char *what, size_t n, size_t sz, ld_error *err)
{
    ld_fail(err, LD_ERR_NOMEM, "out of memory allocating %s (%zu x %zu bytes)", what, n, sz);
    return NULL;
}

void *ld_alloc(size_t n, size_t sz, const char *what, ld_error *err)
{
    int of = 0;
    size_t bytes = ld_mul2(n, sz, &of);
    if (of || injected_failure()) return nomem(what, n, sz, err);
    void *p = malloc(bytes ? bytes : 1);
    return p ? p : nomem(what, n, sz, err);
}

void *ld_zalloc(size_t n, size_t sz, const char *what, ld_error *err)
{
    int of = 0;
    ld_mul2(n, sz, &of);
    if (of || injected_failure()) return nomem(what, n, sz, err);
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    return p ? p : nomem(what, n, sz, err);
}

void *ld_realloc(void *p, size_t n, size_t sz, const char *what, ld_error *err)
{
    int of = 0;
    size_t bytes = ld_mul2(n, sz, &of);
    if (of || injected_failure()) return nomem(what, n, sz, err);
    void *q = realloc(p, bytes ? bytes : 1);
    return q ? q : nomem(what, n, sz, err);
}

char *ld_strdup(const char *s, ld_error *err)
{
    size_t n = strlen(s) + 1;
    char *d = ld_alloc(n, 1, "a string", err);
    if (d) memcpy(d, s, n);
    return d;
}

void ld_free(void *p) { free(p); }
