/* layers_fast.c — picking the fast kernels for this CPU, the inlined dropout mask,
 * and the thread pool the fast network runs on (kernels.h states the contracts).
 *
 * The pool is a fixed team: workers wait for a job number to change, then take
 * chunks of units (a few per thread) from the job until none are left; the caller
 * takes chunks too and returns when every unit is done. Taking chunks, rather than
 * fixed shares, matters on a busy machine: a worker that the OS has not scheduled
 * yet leaves its share to the others instead of stalling the job. Jobs in a
 * training step are short (tens of microseconds), so both sides spin briefly before
 * sleeping on a condition variable: a wake-up through the kernel costs as much as
 * a job. The spin is bounded, so a worker whose core is wanted elsewhere soon
 * gives it back. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include "alloc.h"
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* ---- kernel selection -------------------------------------------------------- */

/* CPUID checks: GCC's and Clang's __builtin_cpu_supports also check that the OS
 * saves the wide registers (XCR0), so a "yes" means the instructions can run. */
static int cpu_has(const char *isa)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (strcmp(isa, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
    if (strcmp(isa, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return strcmp(isa, "generic") == 0;
}

const ld_kernels *ld_kernels_get(const char *name)
{
    if (!name || strcmp(name, "auto") == 0) return ld_kernels_best();
    if (!cpu_has(name)) return NULL;
#if defined(__x86_64__)
    if (strcmp(name, "avx512") == 0) return &ld_kernels_avx512;
    if (strcmp(name, "avx2") == 0) return &ld_kernels_avx2;
#endif
    return &ld_kernels_generic;
}

const ld_kernels *ld_kernels_best(void)
{
    static const char *const order[] = {"avx512", "avx2", "generic"};
    for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
        const ld_kernels *k = ld_kernels_get(order[i]);
        if (k) return k;
    }
    return &ld_kernels_generic;
}

/* ---- dropout ----------------------------------------------------------------- */

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** exactly as rng.c, with the state in registers. ld_rng_float is
 * u = (x >> 40) / 2^24, exact in float, and rate * 2^24 is exact too, so u >= rate
 * is the integer comparison (x >> 40) >= ceil(rate * 2^24): no conversion, and
 * the kept value is selected with a bit mask rather than a branch. */
void ld_dropout_mask_fast(float *mask, ld_rng *rng, float rate, long count)
{
    if (rate <= 0.0f) {
        for (long k = 0; k < count; k++) mask[k] = 1.0f;
        return;
    }
    float keep = 1.0f / (1.0f - rate);
    uint32_t keep_bits, th = (uint32_t)ceilf(rate * 16777216.0f);
    memcpy(&keep_bits, &keep, sizeof keep);
    uint64_t s0 = rng->s[0], s1 = rng->s[1], s2 = rng->s[2], s3 = rng->s[3];
    for (long k = 0; k < count; k++) {
        uint64_t r = rotl(s1 * 5, 7) * 9, t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = rotl(s3, 45);
        uint32_t bits = keep_bits & (0u - (uint32_t)((uint32_t)(r >> 40) >= th));
        memcpy(mask + k, &bits, sizeof bits);
    }
    rng->s[0] = s0;
    rng->s[1] = s1;
    rng->s[2] = s2;
    rng->s[3] = s3;
}

/* ---- thread pool ------------------------------------------------------------- */

#define SPIN_ROUNDS 20000   /* ~20-50 us of pause instructions before sleeping */

struct ld_pool {
    int threads;
    int started;            /* workers running */
    pthread_t *tids;        /* [threads - 1] */
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    atomic_uint gen;        /* the job number: bumped (under mu) for every job */
    ld_pool_fn fn;          /* the current job (under mu) */
    void *ctx;
    int n_units, next, chunk;
    atomic_int done;        /* units of the current job finished */
    int waiting;            /* the caller sleeps on done_cv (under mu) */
    int quit;               /* under mu */
};

/* Takes the next `chunk` units of job g, if it is still the current job and has
 * units left: [*u0, *u1) of *n. Every field is read under the lock, so a worker
 * that wakes up late can never run a unit of a job it did not see published. */
static int claim(struct ld_pool *p, unsigned g, int *u0, int *u1, int *n, ld_pool_fn *fn,
                 void **ctx)
{
    pthread_mutex_lock(&p->mu);
    int ok = atomic_load(&p->gen) == g && p->next < p->n_units;
    if (ok) {
        *u0 = p->next;
        *u1 = p->n_units - p->next < p->chunk ? p->n_units : p->next + p->chunk;
        *n = p->n_units;
        *fn = p->fn;
        *ctx = p->ctx;
        p->next = *u1;
    }
    pthread_mutex_unlock(&p->mu);
    return ok;
}

static void work(struct ld_pool *p, unsigned g)
{
    int u0, u1, n;
    ld_pool_fn fn;
    void *ctx;
    while (claim(p, g, &u0, &u1, &n, &fn, &ctx)) {
        for (int u = u0; u < u1; u++) fn(ctx, u);
        if (atomic_fetch_add(&p->done, u1 - u0) + (u1 - u0) == n) {
            pthread_mutex_lock(&p->mu);
            if (p->waiting) pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void *worker_main(void *arg)
{
    struct ld_pool *p = arg;
    unsigned seen = 0;
    for (;;) {
        unsigned g = atomic_load(&p->gen);
        for (int i = 0; g == seen && i < SPIN_ROUNDS; i++) {
            CPU_RELAX();
            g = atomic_load(&p->gen);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load(&p->gen)) == seen && !p->quit)
                pthread_cond_wait(&p->work_cv, &p->mu);
            int quit = p->quit;
            pthread_mutex_unlock(&p->mu);
            if (quit) break;
        }
        seen = g;
        work(p, g);
    }
    return NULL;
}

ld_status ld_pool_init(ld_pool **out, int threads, ld_error *err)
{
    *out = NULL;
    if (threads < 1 || threads > 256)
        return ld_fail(err, LD_ERR_USAGE, "threads: %d is not in 1..256", threads);
    struct ld_pool *p = ld_zalloc(1, sizeof *p, "thread pool", err);
    if (!p) return err->status;
    p->threads = threads;
    p->tids = ld_zalloc((size_t)threads, sizeof *p->tids, "thread pool", err);
    if (!p->tids) {
        ld_free(p);
        return err->status;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    atomic_init(&p->gen, 0u);
    atomic_init(&p->done, 0);
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&p->tids[t - 1], NULL, worker_main, p) != 0) {
            ld_pool_free(p);
            return ld_fail(err, LD_ERR_NOMEM, "thread pool: cannot start thread %d of %d", t + 1,
                           threads);
        }
        p->started++;
    }
    *out = p;
    return LD_OK;
}

void ld_pool_free(ld_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int t = 0; t < p->started; t++) pthread_join(p->tids[t], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    ld_free(p->tids);
    ld_free(p);
}

int ld_pool_threads(const ld_pool *p) { return p ? p->threads : 1; }

void ld_pool_run(ld_pool *p, ld_pool_fn fn, void *ctx, int n_units)
{
    if (!p || p->threads == 1 || n_units < 2) {
        for (int u = 0; u < n_units; u++) fn(ctx, u);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_units = n_units;
    p->next = 0;
    /* a few chunks per thread: late or slow threads leave their share to the others */
    p->chunk = (n_units + 4 * p->threads - 1) / (4 * p->threads);
    atomic_store(&p->done, 0);
    unsigned g = atomic_load(&p->gen) + 1u;
    atomic_store(&p->gen, g);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    work(p, g);
    for (int i = 0; atomic_load(&p->done) != n_units && i < SPIN_ROUNDS; i++) CPU_RELAX();
    if (atomic_load(&p->done) != n_units) {
        pthread_mutex_lock(&p->mu);
        p->waiting = 1;
        while (atomic_load(&p->done) != n_units) pthread_cond_wait(&p->done_cv, &p->mu);
        p->waiting = 0;
        pthread_mutex_unlock(&p->mu);
    }
}
