/* lsan_suppress.c — LeakSanitizer's built-in suppressions for the programs that draw
 * (the CLI, the test runner and the fuzz targets link it; see the Makefile), read by
 * the sanitizer runtime at exit (only in ASan/LSan builds: `make sanitize`).
 *
 * cairo's toy font API (the charts and overlays set text with it) keeps a
 * process-wide font cache whose fontconfig patterns LeakSanitizer cannot reach
 * through fontconfig's own structures, so it reports them at exit as leaked
 * (about 1 KB, once per process, whatever the number of drawings: see
 * tests/valgrind.supp for the same blocks under valgrind). Only allocations made
 * inside libfontconfig are suppressed; a leak in lymphdet's own code still fails. */
#if defined(__SANITIZE_ADDRESS__)
#define LD_HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#define LD_HAVE_LSAN 1
#endif
#endif

#ifdef LD_HAVE_LSAN
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig.so\n"; }
#endif
