/* Internal state of the DLRM engine. */
#ifndef DLRM_INTERNAL_H
#define DLRM_INTERNAL_H

#include "dlrm.h"
#include "splitmix64.h" /* the engine's counter-based generators hash with it */

#include <stdarg.h>

/*
 * A Linear layer packed for the engine's kernels (dlrm_gemm.c): K inputs, N outputs, the
 * weights in panels of 16 outputs ([K][16] each, zero past N) and the bias padded alike.
 */
typedef struct {
    int K, N;
    const float *panels, *bias;
} dlrm_linear_t;

/* Floats a packed layer takes; a multiple of 16, so packed layers laid end to end from a
 * 64-byte boundary all start on one. */
size_t dlrm_linear_floats(int K, int N);
/* Packs W [N, K] (row-major, as the reference's Linear) and b [N] into dst. */
void dlrm_linear_pack(const float *W, const float *b, int K, int N, float *dst, dlrm_linear_t *out);
/* Workspace floats dlrm_linear_run needs for a layer of K inputs. */
size_t dlrm_linear_ws_floats(int K);
/*
 * y[m][n] = act(b[n] + x[m][0] W[n][0] + ... + x[m][K-1] W[n][K-1]) for m < M, n < N: one
 * fused multiply-add per term in k order from the bias, act = ReLU or none.  A row's bits
 * depend on that row of x and the layer alone (dlrm_gemm.c says why and how).  x and y are
 * row-major with leading dimensions ldx >= K and ldy >= N; they must not overlap.
 */
void dlrm_linear_run(const dlrm_linear_t *L, int M, const float *x, size_t ldx, float *y,
                     size_t ldy, int relu, float *ws);
/* DLRM_OK, or the error of a bad DLRM_KERNEL setting (checked when a model is made). */
dlrm_status_t dlrm_kernel_check(void);

struct dlrm_model {
    dlrm_config_t cfg;                                            /* deep copy (rows owned) */
    const float *bot_w[DLRM_MAX_LAYERS], *bot_b[DLRM_MAX_LAYERS]; /* layer l: [bot[l+1], bot[l]] */
    const float *top_w[DLRM_MAX_LAYERS], *top_b[DLRM_MAX_LAYERS]; /* layer l: [top[l+1], top[l]] */
    const float **tables; /* [n_tables]; NULL for tables this process does not hold */
    float *owned;         /* one allocation holding every tensor (dlrm_model_own) */
    size_t owned_len;     /* its mapped length */
    void *file_map;       /* DLRM_HOLD_MAP: the weights file mapped read-only, the tables in it */
    size_t file_map_len;
    size_t file_table_bytes; /* the bytes of the tables that live in file_map */
    /* Derived once from the weights (dlrm_model_prepare): every layer with more than one
     * output packed for dlrm_linear_run (a width-1 layer is a dot product per sample and
     * keeps K = 0 here); one 64-byte-aligned allocation. */
    dlrm_linear_t bot_lin[DLRM_MAX_LAYERS], top_lin[DLRM_MAX_LAYERS];
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

/*
 * The two MLPs seen alike, so initialisation, loading and saving handle both with one loop:
 * the state_dict prefix, the widths (input first), the number of Linear layers, where their
 * tensors live (layer l: weight [w[l+1], w[l]], bias [w[l+1]]) and their random stream.
 */
typedef struct {
    const char *prefix;
    const int *w;
    int layers;
    const float **W, **b;
    uint64_t stream;
    dlrm_linear_t *lin; /* the packed layers (dlrm_model_prepare) */
} mlp_view_t;

/* The two views of a model's MLPs (m may be NULL: sizes only). */
void dlrm_mlp_views(const dlrm_config_t *cfg, const dlrm_model_t *m, mlp_view_t v[2]);
/* Expands a table list (NULL: every table) into want[n_tables] flags, checking every entry. */
dlrm_status_t dlrm_table_set(const dlrm_config_t *cfg, const int *tables, int n,
                             unsigned char *want);

/* Shared by init and load: copies cfg, allocates the tables array. */
dlrm_status_t dlrm_model_alloc(const dlrm_config_t *cfg, dlrm_model_t **model_p);
/* Memory for the MLPs and the tables in want (2 MiB pages where the kernel allows), every
 * pointer set into it: the model owns its weights, whether drawn or read from a file. */
dlrm_status_t dlrm_model_own(dlrm_model_t *m, const unsigned char *want);

/* Shared by init and load, once the weights are in place: checks the kernel choice and
 * packs the layers (bot_lin, top_lin). */
dlrm_status_t dlrm_model_prepare(dlrm_model_t *m);

#define DLRM_LANES 16 /* floats in the forward pass's explicit vectors */

#endif
