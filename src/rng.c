/* rng.c — xoshiro256** (Blackman & Vigna 2018) seeded by splitmix64.
 * Chosen for a tiny state that is a plain struct, so training can checkpoint it. */
#include "lymphdet/rng.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void ld_rng_seed(ld_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

uint64_t ld_rng_u64(ld_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float ld_rng_float(ld_rng *rng) { return (float)(ld_rng_u64(rng) >> 40) * (1.0f / 16777216.0f); }

double ld_rng_double(ld_rng *rng) { return (double)(ld_rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0); }

uint64_t ld_rng_below(ld_rng *rng, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;  /* largest multiple of n */
    uint64_t x;
    do x = ld_rng_u64(rng); while (x >= limit);
    return x % n;
}

void ld_rng_shuffle(ld_rng *rng, int *idx, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)ld_rng_below(rng, (uint64_t)i + 1);
        int t = idx[i]; idx[i] = idx[j]; idx[j] = t;
    }
}
