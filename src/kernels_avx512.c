/* kernels_avx512.c — the fast kernels for AVX-512F (kernels_impl.h). The Makefile
 * compiles this file alone with -mavx512f -mavx2 -mfma on x86-64; ld_kernels_get only
 * hands the table out when the CPU (and the OS) support AVX-512F. Elsewhere the file
 * is empty. */
#if defined(__x86_64__) && defined(__AVX512F__) && defined(__FMA__)
#define LDK_ISA 3
#define LDK_TABLE ld_kernels_avx512
#define LDK_NAME "avx512"
#include "kernels_impl.h"
#elif defined(__x86_64__)
#error "kernels_avx512.c must be compiled with -mavx512f -mavx2 -mfma (see the Makefile)"
#else
typedef int ld_kernels_avx512_not_built;   /* a translation unit must declare something */
#endif
