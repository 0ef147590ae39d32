/* alloc.h — the library's only way to allocate memory (internal).
 *
 * Sizes are multiplied through overflow-checked helpers, and every allocation
 * passes through one place so that tests can make the N-th one fail (SQLite's
 * habit) and check that every error path is clean and leak-free. */
#ifndef LYMPHDET_ALLOC_H
#define LYMPHDET_ALLOC_H

#include <stddef.h>
#include "lymphdet/error.h"

/* a*b (and a*b*c) or 0 with *overflow set; never wraps */
size_t ld_mul2(size_t a, size_t b, int *overflow);
size_t ld_mul3(size_t a, size_t b, size_t c, int *overflow);

/* malloc/calloc/realloc of n elements of size sz; NULL (and err filled with
 * LD_ERR_NOMEM naming `what`) on failure or overflow. n == 0 returns a valid
 * 1-byte block so callers never special-case empty arrays. */
void *ld_alloc(size_t n, size_t sz, const char *what, ld_error *err);
void *ld_zalloc(size_t n, size_t sz, const char *what, ld_error *err);
void *ld_realloc(void *p, size_t n, size_t sz, const char *what, ld_error *err);
char *ld_strdup(const char *s, ld_error *err);
void  ld_free(void *p);

/* Fault injection for tests: the k-th allocation from now (1-based) and all
 * after it fail; 0 disables. Returns the number of allocations since the last call. */
long ld_alloc_fail_after(long k);

#endif
