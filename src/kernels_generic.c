/* kernels_generic.c — the fast kernels in portable C on 4-float vector types (SSE2 on
 * x86-64, NEON on arm64): the fallback every build has (kernels_impl.h). */
#define LDK_ISA 1
#define LDK_TABLE ld_kernels_generic
#define LDK_NAME "generic"
#include "kernels_impl.h"
