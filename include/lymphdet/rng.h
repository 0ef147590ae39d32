/* rng.h — the seeded random number generator every random choice goes through.
 *
 * No global state: callers own an ld_rng and pass it. The generator is
 * xoshiro256** seeded through splitmix64, so one 64-bit seed fixes every draw, on
 * every platform, bit for bit. */
#ifndef LYMPHDET_RNG_H
#define LYMPHDET_RNG_H

#include <stdint.h>

typedef struct { uint64_t s[4]; } ld_rng;

void     ld_rng_seed(ld_rng *rng, uint64_t seed);
uint64_t ld_rng_u64(ld_rng *rng);
/* uniform in [0, 1) with 24 random bits (exactly representable as float) */
float    ld_rng_float(ld_rng *rng);
/* uniform in [0, 1) with 53 random bits */
double   ld_rng_double(ld_rng *rng);
/* uniform integer in [0, n), unbiased (rejection); n > 0 */
uint64_t ld_rng_below(ld_rng *rng, uint64_t n);
/* Fisher-Yates shuffle of idx[0..n) */
void     ld_rng_shuffle(ld_rng *rng, int *idx, int n);

#endif
