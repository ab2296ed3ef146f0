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
    /* Derived once from the weights (dlrm_model_prepare): the transposed weights [in][out] of
     * the layers the forward pass computes without sgemm, else NULL; one allocation. */
    const float *bot_wt[DLRM_MAX_LAYERS], *top_wt[DLRM_MAX_LAYERS];
    float *derived;
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

/* Shared by init and load, once the weights are in place: the transposed weights of the
 * small-K layers (bot_wt, top_wt). */
dlrm_status_t dlrm_model_prepare(dlrm_model_t *m);

#define DLRM_LANES 16  /* floats in the forward pass's explicit vectors */
#define DLRM_SMALL_K 32 /* the most inputs of a layer computed without sgemm */

/* Whether layer l of an MLP with widths w[0..n] is computed without sgemm (dlrm_forward.c):
 * few inputs, a whole number of vectors out, and not the last layer before a sigmoid. */
static inline int dlrm_small_k(const int *w, int n, int l, int sigmoid_last)
{
    return w[l] <= DLRM_SMALL_K && w[l + 1] > 1 && w[l + 1] % DLRM_LANES == 0 &&
           !(l == n - 1 && sigmoid_last);
}

#endif
