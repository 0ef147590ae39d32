/* test.h — the tiny test harness (redis/sqlite style).
 *
 * A test file defines suites with TEST_SUITE(name) { ... } and checks with CHECK*;
 * suites register themselves (no central list to edit) and run_tests runs them in
 * name order, printing each failure with file and line, then "N passed, N failed"
 * (checks) and exiting non-zero on any failure.
 *   build/run_tests            all suites
 *   build/run_tests image      suites whose name contains "image"
 * Fixtures are read relative to the repository root (tests/fixtures/...); the CLI
 * binary under test is $LYMPHDET (default build/lymphdet). */
#ifndef LYMPHDET_TEST_H
#define LYMPHDET_TEST_H

#include <math.h>
#include <stdio.h>

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn);
void test_record(int ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define TEST_SUITE(name)                                                     \
    static void suite_##name(void);                                          \
    __attribute__((constructor)) static void register_##name(void)           \
    { test_register(#name, suite_##name); }                                  \
    static void suite_##name(void)

#define CHECK(cond) test_record(!!(cond), __FILE__, __LINE__, "%s", #cond)
#define CHECK_MSG(cond, ...) test_record(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define CHECK_INT(a, b) do { long long a_ = (a), b_ = (b);                     \
    test_record(a_ == b_, __FILE__, __LINE__, "%s == %s (%lld vs %lld)", #a, #b, a_, b_); } while (0)
#define CHECK_NEAR(a, b, tol) do { double a_ = (a), b_ = (b);                  \
    test_record(fabs(a_ - b_) <= (tol), __FILE__, __LINE__,                    \
                "%s ~ %s (%.9g vs %.9g, tol %g)", #a, #b, a_, b_, (double)(tol)); } while (0)
#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b);                  \
    test_record(a_ && b_ && strcmp(a_, b_) == 0, __FILE__, __LINE__,           \
                "%s == %s (\"%s\" vs \"%s\")", #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } while (0)

/* Runs the CLI with a shell command line (the binary is prepended), captures
 * stdout and stderr into the given buffers (may be NULL), returns the exit code. */
int test_run_cli(const char *args, char *out, size_t out_size, char *errbuf, size_t err_size);
/* A fresh empty folder under /tmp for a test's outputs (path stays valid). */
const char *test_tmpdir(const char *tag);
/* The whole file as a NUL-terminated string (malloc'd: free it), or NULL. */
char *test_read_file(const char *path);
/* 1 if PATH exists. */
int test_exists(const char *path);

#endif
