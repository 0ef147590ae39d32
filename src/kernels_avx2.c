/* kernels_avx2.c — the fast kernels for AVX2 + FMA (kernels_impl.h). The Makefile
 * compiles this file alone with -mavx2 -mfma on x86-64; ld_kernels_get only hands
 * the table out when the CPU has both. Elsewhere the file is empty. */
#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#define LDK_ISA 2
#define LDK_TABLE ld_kernels_avx2
#define LDK_NAME "avx2"
#include "kernels_impl.h"
#elif defined(__x86_64__)
#error "kernels_avx2.c must be compiled with -mavx2 -mfma (see the Makefile)"
#else
typedef int ld_kernels_avx2_not_built;   /* a translation unit must declare something */
#endif
