/* Internal state of the DLRM engine. */
#ifndef DLRM_INTERNAL_H
#define DLRM_INTERNAL_H

#include "dlrm.h"

#include <stdarg.h>

struct dlrm_model {
    dlrm_config_t cfg;          /* deep copy (rows owned) */
    const float *bot_w[DLRM_MAX_LAYERS], *bot_b[DLRM_MAX_LAYERS]; /* layer l: [bot[l+1], bot[l]] */
    const float *top_w[DLRM_MAX_LAYERS], *top_b[DLRM_MAX_LAYERS]; /* layer l: [top[l+1], top[l]] */
    const float **tables;       /* [n_tables]; NULL for tables this process does not hold */
    float *owned;               /* one allocation holding every randomly initialised tensor */
    size_t owned_len;           /* its mapped length */
    void *map;                  /* the mapped safetensors file, or NULL */
    size_t map_len;
};

/*
 * Hot element-wise loops are compiled for AVX-512, AVX2 and the baseline, chosen at load time
 * (ifunc).  The engine is built without floating-point contraction (-ffp-contract=off), so the
 * wider vectors run the same additions in the same order: the bits do not depend on the CPU.
 */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) && !defined(DLRM_NO_CLONES)
#define DLRM_HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DLRM_HOT
#endif

dlrm_status_t dlrm_error(dlrm_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The 64-bit finaliser of SplitMix64: the engine's counter-based generators hash with it. */
static inline uint64_t dlrm_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Shared by init and load: copies cfg, allocates the tables array. */
dlrm_status_t dlrm_model_alloc(const dlrm_config_t *cfg, dlrm_model_t **model_p);

#endif
