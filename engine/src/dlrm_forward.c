/*
 * The forward pass: MLPs on the engine's own kernels (y = x W^T + b, W row-major [out, in] as
 * in the reference's Linear; dlrm_gemm.c), sum-pooled embedding bags, dot or cat interaction,
 * sigmoid.  A batch runs in chunks of samples (on one or more threads),
 * each chunk through every stage while its data is in cache.
 * Summation orders differ from PyTorch's kernels, so results agree to float rounding
 * (the tests allow 1e-5), not bit for bit with PyTorch; they are bit-for-bit reproducible here.
 */
#include "dlrm_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef DLRM_OPENMP
#include <omp.h>
#endif

/*
 * Batch invariance: a sample's prediction must not depend on how many samples share its batch,
 * where it sits there, or which thread computes it (a distributed run gives each process a
 * slice of every batch).  Every stage below computes a sample from that sample's inputs alone,
 * in an order fixed by the model: the Linear layers on the engine's own kernels (dlrm_gemm.c:
 * one chain of fused multiply-adds per output, in input order), the width-1 click logit as a
 * dot product in a fixed order, the lookups in bag order, the interaction in a fixed order.
 * tests/engine checks the bits across batch sizes, positions, threads, kernels and process
 * counts.
 */
#define V DLRM_LANES /* lanes of the explicit vectors (lookup sums, dot) */
typedef float vf __attribute__((vector_size(V * sizeof(float))));
/* The same, at any float's address (as the compilers' own unaligned vector types). */
typedef float vfu
    __attribute__((vector_size(V * sizeof(float)), aligned(sizeof(float)), may_alias));

/* n floats rounded up to whole vectors: workspace parts start on vector boundaries. */
static size_t whole_vectors(size_t n)
{
    return (n + V - 1) / V * V;
}

static int max_width(const int *w, int n)
{
    int m = 1;
    for (int i = 0; i <= n; i++)
        m = w[i] > m ? w[i] : m;
    return m;
}

/* y[r] = bias + x[r] . w for a width-1 layer: 8 interleaved partial sums (k mod 8) added in a
 * fixed order, so it vectorises and every sample gets the same bits whatever B is. */
DLRM_HOT static void dot_layer(int B, int K, const float *x, const float *w, float bias, float *y)
{
    for (int r = 0; r < B; r++) {
        const float *xr = x + (size_t)r * K;
        float acc[8] = {0};
        int k = 0;
        for (; k + 8 <= K; k += 8)
            for (int j = 0; j < 8; j++)
                acc[j] += xr[k + j] * w[k + j];
        for (int j = 0; k < K; k++, j++)
            acc[j] += xr[k] * w[k];
        y[r] = bias +
               (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
    }
}

/* Floats of mlp()'s scratch for B samples: two activation buffers of B rows of the widest
 * layer, and the kernels' packing space for the widest input. */
static size_t mlp_buffer_floats(int B, const int *w, int n)
{
    int widest = max_width(w, n);
    return 2 * whole_vectors((size_t)B * (size_t)widest) +
           whole_vectors(dlrm_linear_ws_floats(widest));
}

/* Runs Linear layers in[B, w[0]] -> out[B, w[n]]; ReLU after each, sigmoid after the last when
 * sigmoid_last.  Layers with more than one output run packed (lin), width-1 ones as dots. */
static void mlp(int B, const int *w, int n, const dlrm_linear_t *lin, const float *const *W,
                const float *const *bias, const float *in, float *out, float *scratch,
                int sigmoid_last)
{
    size_t cap = whole_vectors((size_t)B * (size_t)max_width(w, n));
    float *a = scratch, *b = scratch + cap, *pack = scratch + 2 * cap;
    const float *x = in;
    for (int l = 0; l < n; l++) {
        int fi = w[l], fo = w[l + 1], last = l == n - 1;
        int relu = !(last && sigmoid_last);
        float *y = last ? out : (l % 2 == 0 ? a : b);
        if (fo > 1) {
            dlrm_linear_run(&lin[l], B, x, (size_t)fi, y, (size_t)fo, relu, pack);
        } else {
            dot_layer(B, fi, x, W[l], bias[l][0], y);
            for (int r = 0; relu && r < B; r++)
                y[r] = y[r] > 0.0f ? y[r] : 0.0f;
        }
        if (!relu)
            for (size_t i = 0; i < (size_t)B * fo; i++)
                y[i] = 1.0f / (1.0f + expf(-y[i]));
        x = y;
    }
}

/*
 * Samples per pass through the layers.  A whole batch of 2048 makes each 512-wide activation
 * 4 MiB, twice the L2.  In chunks of CHUNK samples it stays in L2 from one layer to the next.
 * A row's result does not depend on the rows beside it, so the chunking does not change a bit.
 */
#ifndef CHUNK
#define CHUNK 256
#endif

/* Scratch floats for the MLPs of up to `chunk` samples (both MLPs share it, in turn). */
static size_t mlp_scratch_floats(const dlrm_config_t *c, int chunk)
{
    size_t bot = mlp_buffer_floats(chunk, c->bot, c->n_bot - 1);
    size_t top = mlp_buffer_floats(chunk, c->top, c->n_top);
    return bot > top ? bot : top;
}

static int engine_threads = 1;

int dlrm_set_threads(int n)
{
#ifdef DLRM_OPENMP
    __atomic_store_n(&engine_threads, n < 1 ? 1 : n, __ATOMIC_RELAXED);
#else
    (void)n;
#endif
    return __atomic_load_n(&engine_threads, __ATOMIC_RELAXED);
}

static size_t dot_tp_floats(int F, int d);

/*
 * Where the parts of a chunk's workspace lie, in floats from its start, each on a vector
 * boundary: planned once per batch call for its chunk size C and the stages it runs, then
 * used by every chunk.
 */
typedef enum { PLAN_BOTTOM, PLAN_EMBED, PLAN_TOP, PLAN_FORWARD } plan_kind_t;
typedef struct {
    size_t x_bot, pooled; /* FORWARD: the bottom MLP's output [C][d], pooled rows [C][T][d] */
    size_t r, tp;         /* TOP, FORWARD: the top MLP's input [C][R], dot_sample's tiles */
    size_t mlp;           /* all but EMBED: mlp()'s scratch, shared by both MLPs in turn */
    size_t total;
} ws_plan_t;

static ws_plan_t plan_workspace(const dlrm_config_t *c, int C, plan_kind_t kind)
{
    ws_plan_t p = {0};
    size_t at = 0;
    if (kind == PLAN_FORWARD) {
        p.x_bot = at;
        at += whole_vectors((size_t)C * c->d);
        p.pooled = at;
        at += whole_vectors((size_t)C * c->n_tables * c->d);
    }
    if (kind == PLAN_TOP || kind == PLAN_FORWARD) {
        p.r = at;
        at += whole_vectors((size_t)C * c->top[0]);
        p.tp = at;
        at += whole_vectors(dot_tp_floats(c->n_tables + 1, c->d));
    }
    if (kind != PLAN_EMBED) {
        p.mlp = at;
        at += mlp_scratch_floats(c, C);
    }
    p.total = at;
    return p;
}

/* What a batch function hands its chunks: its arguments, and the workspace plan. */
typedef struct {
    const dlrm_model_t *m;
    const dlrm_batch_t *batch;
    const int *tables; /* dlrm_embed's list (NULL: all) and its length */
    int nt;
    const float *in0, *in1; /* dense, or x_bot and pooled */
    float *out;
    ws_plan_t plan;
} job_t;

typedef void (*chunk_fn)(const job_t *job, int b0, int nb, float *ws);

/*
 * Runs fn over the batch's samples in chunks of up to CHUNK, each with a workspace planned
 * for the stages `kind` (plan_workspace), on a vector boundary.  With several engine threads
 * (dlrm_set_threads) the chunks are shared out, and a batch smaller than threads x CHUNK is cut
 * into one chunk per thread.  A sample's result does not depend on its chunk, so neither does it on
 * the thread count.
 */
static dlrm_status_t run_chunks(job_t *job, int B, plan_kind_t kind, chunk_fn fn, const char *who)
{
    int T = __atomic_load_n(&engine_threads, __ATOMIC_RELAXED), C = B < CHUNK ? B : CHUNK;
    if (T > 1 && (B + T - 1) / T < C)
        C = (B + T - 1) / T;
    int chunks = (B + C - 1) / C;
    T = T < chunks ? T : chunks;
    job->plan = plan_workspace(&job->m->cfg, C, kind);
    size_t per = whole_vectors(job->plan.total + 1);
    float *ws = aligned_alloc(sizeof(vf), per * (size_t)T * sizeof(float));
    if (!ws)
        return dlrm_error(DLRM_ERR_NOMEM, "%s: out of memory for batch %d", who, B);
#ifdef DLRM_OPENMP
#pragma omp parallel for num_threads(T) schedule(static) if (T > 1)
#endif
    for (int k = 0; k < chunks; k++) {
#ifdef DLRM_OPENMP
        size_t tid = (size_t)omp_get_thread_num();
#else
        size_t tid = 0;
#endif
        int b0 = k * C;
        fn(job, b0, B - b0 < C ? B - b0 : C, ws + per * tid);
    }
    free(ws);
    return DLRM_OK;
}

static void bottom_chunk(const job_t *j, int b0, int nb, float *ws)
{
    const dlrm_config_t *c = &j->m->cfg;
    mlp(nb, c->bot, c->n_bot - 1, j->m->bot_lin, j->m->bot_w, j->m->bot_b,
        j->in0 + (size_t)b0 * c->bot[0], j->out + (size_t)b0 * c->d, ws + j->plan.mlp, 0);
}

dlrm_status_t dlrm_bottom(const dlrm_model_t *m, int B, const float *dense, float *out)
{
    if (!m || B < 0 || (B > 0 && (!dense || !out)))
        return dlrm_error(DLRM_ERR_ARG, "dlrm_bottom: model, dense and out are required");
    if (B == 0)
        return DLRM_OK;
    job_t job = {.m = m, .in0 = dense, .out = out};
    return run_chunks(&job, B, PLAN_BOTTOM, bottom_chunk, "dlrm_bottom");
}

#ifndef EMBED_PREFETCH /* lookups ahead (0: none; -DEMBED_PREFETCH=0 builds the A/B baseline) */
#define EMBED_PREFETCH 16
#endif

/* Checks a table list (NULL: every table) before anything is written. */
static dlrm_status_t check_tables(const dlrm_model_t *m, const int *tables, int nt)
{
    for (int i = 0; i < nt; i++) {
        int t = tables ? tables[i] : i;
        if (t < 0 || t >= m->cfg.n_tables)
            return dlrm_error(DLRM_ERR_ARG,
                              "dlrm_embed: table list entry %d: table %d is not "
                              "within the model's %d tables",
                              i, t, m->cfg.n_tables);
        if (!m->tables[t])
            return dlrm_error(DLRM_ERR_ARG, "dlrm_embed: table %d is not held by this model", t);
    }
    return DLRM_OK;
}

/* Checks every bag of the listed tables before anything is written: offsets that never
 * decrease and indices within the table. */
static dlrm_status_t check_bags(const dlrm_model_t *m, const dlrm_batch_t *batch, const int *tables,
                                int nt)
{
    for (int i = 0; i < nt; i++) {
        int t = tables ? tables[i] : i;
        const int64_t *idx = batch->indices[t], *off = batch->offsets[t];
        int64_t rows = m->cfg.rows[t];
        for (int b = 0; b < batch->B; b++) {
            if (off[b + 1] < off[b])
                return dlrm_error(DLRM_ERR_ARG,
                                  "table %d, sample %d: offsets decrease (%lld > %lld)", t, b,
                                  (long long)off[b], (long long)off[b + 1]);
            for (int64_t k = off[b]; k < off[b + 1]; k++)
                if (idx[k] < 0 || idx[k] >= rows)
                    return dlrm_error(DLRM_ERR_RANGE,
                                      "table %d, sample %d: index %lld is outside [0, %lld)", t, b,
                                      (long long)idx[k], (long long)rows);
        }
    }
    return DLRM_OK;
}

/* Random rows of large tables miss every cache: the row EMBED_PREFETCH lookups ahead is asked
 * for now, so several misses are in flight. */
static inline __attribute__((always_inline)) void
prefetch_ahead(const float *table, const int64_t *idx, int64_t k, int64_t end, int d)
{
    if (EMBED_PREFETCH > 0 && k + EMBED_PREFETCH < end) {
        const float *ahead = table + (size_t)idx[k + EMBED_PREFETCH] * d;
        __builtin_prefetch(ahead);
        __builtin_prefetch(ahead + d - 1);
    }
}

/* One table's bags for samples b0 .. b1-1, out row of sample b at out + (b - b0) * ld.  Each
 * element is 0 + w_0 row_0 + w_1 row_1 + ... in bag order.  nv > 0: d = nv * V, the sums kept in
 * nv vector registers (inlined with nv constant); nv = 0: any d, summed in place. */
static inline __attribute__((always_inline)) void pool_table(const float *table, const int64_t *idx,
                                                             const int64_t *off, const float *wt,
                                                             int d, int b0, int b1, float *out,
                                                             size_t ld, int nv)
{
    int64_t end = off[b1];
    for (int b = b0; b < b1; b++) {
        float *o = out + (size_t)(b - b0) * ld;
        if (nv > 0) {
            vf acc[4];
            for (int c = 0; c < nv; c++)
                acc[c] = (vf){0};
            for (int64_t k = off[b]; k < off[b + 1]; k++) {
                prefetch_ahead(table, idx, k, end, d);
                const vfu *row = (const vfu *)(table + (size_t)idx[k] * d);
                float w = wt ? wt[k] : 1.0f;
                for (int c = 0; c < nv; c++)
                    acc[c] += w * row[c];
            }
            for (int c = 0; c < nv; c++)
                ((vfu *)o)[c] = acc[c];
        } else {
            memset(o, 0, sizeof(float) * (size_t)d);
            for (int64_t k = off[b]; k < off[b + 1]; k++) {
                prefetch_ahead(table, idx, k, end, d);
                const float *row = table + (size_t)idx[k] * d;
                float w = wt ? wt[k] : 1.0f;
                for (int j = 0; j < d; j++)
                    o[j] += w * row[j];
            }
        }
    }
}

/* Pools samples b0 .. b1-1 of the batch into out [b1 - b0, nt, d]; check_bags has passed. */
DLRM_HOT static void embed_rows(const dlrm_model_t *m, const dlrm_batch_t *batch, const int *tables,
                                int nt, int b0, int b1, float *out)
{
    int d = m->cfg.d;
    size_t ld = (size_t)nt * d;
    for (int i = 0; i < nt; i++) {
        int t = tables ? tables[i] : i;
        const float *tab = m->tables[t];
        const int64_t *idx = batch->indices[t], *off = batch->offsets[t];
        const float *wt = batch->weights ? batch->weights[t] : NULL;
        float *o = out + (size_t)i * d;
        switch (d) { /* the common widths with whole vectors; nv is a constant in each */
        case V: pool_table(tab, idx, off, wt, d, b0, b1, o, ld, 1); break;
        case 2 * V: pool_table(tab, idx, off, wt, d, b0, b1, o, ld, 2); break;
        case 4 * V: pool_table(tab, idx, off, wt, d, b0, b1, o, ld, 4); break;
        default: pool_table(tab, idx, off, wt, d, b0, b1, o, ld, 0); break;
        }
    }
}

static void embed_chunk(const job_t *j, int b0, int nb, float *ws)
{
    (void)ws;
    embed_rows(j->m, j->batch, j->tables, j->nt, b0, b0 + nb,
               j->out + (size_t)b0 * j->nt * j->m->cfg.d);
}

dlrm_status_t dlrm_embed(const dlrm_model_t *m, const dlrm_batch_t *batch, const int *tables,
                         int n_list, float *out)
{
    if (!m || !batch || !out || (tables && n_list < 0))
        return dlrm_error(DLRM_ERR_ARG, "dlrm_embed: model, batch and out are required");
    int nt = tables ? n_list : m->cfg.n_tables;
    dlrm_status_t st = check_tables(m, tables, nt);
    if (st == DLRM_OK)
        st = check_bags(m, batch, tables, nt);
    if (st != DLRM_OK || batch->B == 0)
        return st;
    job_t job = {.m = m, .batch = batch, .tables = tables, .nt = nt, .out = out};
    return run_chunks(&job, batch->B, PLAN_EMBED, embed_chunk, "dlrm_embed");
}

/* One round of transpose_tile: for each row i without bit h, rows i and i + h become LO and
 * HI, two shuffles of both (index lists in parentheses; 16 + n is lane n of the second). */
#define LANES_OF(...) __VA_ARGS__
#define SWAP_BLOCKS(r, h, LO, HI)                                                                  \
    for (int i = 0; i < V; i++)                                                                    \
        if (!(i & (h))) {                                                                          \
            vf a = (r)[i], b = (r)[i + (h)];                                                       \
            (r)[i] = __builtin_shufflevector(a, b, LANES_OF LO);                                   \
            (r)[i + (h)] = __builtin_shufflevector(a, b, LANES_OF HI);                             \
        }

/* r[0..V) := its transpose, a V x V tile of floats: four rounds, each swapping the
 * off-diagonal blocks of side h = 8, 4, 2, 1 between rows i and i + h. */
static inline __attribute__((always_inline)) void transpose_tile(vf *r)
{
    SWAP_BLOCKS(r, 8, (0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
                (8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31))
    SWAP_BLOCKS(r, 4, (0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27),
                (4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31))
    SWAP_BLOCKS(r, 2, (0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29),
                (2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31))
    SWAP_BLOCKS(r, 1, (0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30),
                (1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31))
}

#define DOT_ROWS 4 /* rows of Z per pass: independent sums that keep the adders busy */

/* Floats dot_sample needs in tp for F vectors of width d: the vectors' columns (d rounded up
 * to V rows of F rounded up to V), and when d is not a multiple of V the vectors themselves
 * zero-padded to that width. */
static size_t dot_tp_floats(int F, int d)
{
    size_t dp = whole_vectors((size_t)d), Fp = whole_vectors((size_t)F);
    return dp * Fp + (dp > (size_t)d ? dp * (size_t)F : 0);
}

/*
 * The dot interaction of one sample: its F vectors e_0 = x_bot, e_1.. = the n pooled rows.
 * Z[i][j] = e_i . e_j for j < i (j <= i with itself) goes to z in row order, i outer, so row i
 * of the triangle is a contiguous run of z.  The vectors are transposed into tp, V by V tiles
 * (cols[k][j] = e_j[k]); then V entries of a row at a time are
 * e_i[0] cols[0][j..] + e_i[1] cols[1][j..] + ... in order of k, for DOT_ROWS rows at once.
 * The order of every sum is fixed, so a sample's bits do not depend on its batch.
 * Rows are stored whole vectors at a time, in order: a vector's lanes past its row's end land
 * on later rows, which overwrite them; only a store that would pass the end of z is cut short.
 * Within a pass the vectors go last first, so that a row's second vector cannot overwrite the
 * next row's first.
 */
DLRM_HOT static void dot_sample(int F, int d, int itself, const float *x_bot, const float *pooled,
                                float *tp, float *z)
{
    int dp = (int)whole_vectors((size_t)d), Fp = (int)whole_vectors((size_t)F);
    const float *x0 = x_bot, *e0 = pooled; /* rows of width dp, readable whole */
    float *cols = tp;                      /* [dp][Fp] */
    if (dp > d) {
        float *rows = tp + (size_t)dp * Fp;
        for (int f = 0; f < F; f++) {
            memcpy(rows + (size_t)f * dp, f == 0 ? x_bot : pooled + (size_t)(f - 1) * d,
                   sizeof(float) * (size_t)d);
            memset(rows + (size_t)f * dp + d, 0, sizeof(float) * (size_t)(dp - d));
        }
        x0 = rows;
        e0 = rows + dp;
    }
    for (int fb = 0; fb < Fp; fb += V)
        for (int kb = 0; kb < dp; kb += V) {
            vf t[V];
            for (int u = 0; u < V; u++) {
                int f = fb + u;
                t[u] = (vf){0};
                if (f < F)
                    t[u] = *(const vfu *)((f == 0 ? x0 : e0 + (size_t)(f - 1) * dp) + kb);
            }
            transpose_tile(t);
            for (int u = 0; u < V; u++)
                *(vfu *)(cols + (size_t)(kb + u) * Fp + fb) = t[u];
        }

    size_t total = itself ? (size_t)F * (F + 1) / 2 : (size_t)F * (F - 1) / 2, off = 0;
    for (int i0 = itself ? 0 : 1; i0 < F; i0 += DOT_ROWS) {
        int ng = F - i0 < DOT_ROWS ? F - i0 : DOT_ROWS;
        const float *e[DOT_ROWS];
        size_t at[DOT_ROWS];
        for (int g = 0; g < DOT_ROWS; g++) {
            int i = i0 + (g < ng ? g : ng - 1); /* a short pass repeats its last row, unstored */
            e[g] = i == 0 ? x_bot : pooled + (size_t)(i - 1) * d;
            at[g] = off;
            if (g < ng)
                off += (size_t)(itself ? i + 1 : i);
        }
        int last = itself ? i0 + ng : i0 + ng - 1; /* the longest row's length */
        for (int jb = (last + V - 1) / V - 1; jb >= 0; jb--) {
            const vfu *c = (const vfu *)(cols + jb * V);
            vf acc[DOT_ROWS];
            for (int g = 0; g < DOT_ROWS; g++)
                acc[g] = e[g][0] * c[0];
            for (int k = 1; k < d; k++) {
                vf ck = c[(size_t)k * Fp / V];
                for (int g = 0; g < DOT_ROWS; g++)
                    acc[g] += e[g][k] * ck;
            }
            for (int g = 0; g < ng; g++) {
                size_t pos = at[g] + (size_t)jb * V;
                if (pos + V <= total)
                    *(vfu *)(z + pos) = acc[g];
                else if (pos < total)
                    memcpy(z + pos, &acc[g], sizeof(float) * (total - pos));
            }
        }
    }
}

/* Interaction and top MLP for nb samples (at most the plan's chunk) in workspace ws. */
static void interact_top(const dlrm_model_t *m, int nb, const float *x_bot, const float *pooled,
                         float *out, float *ws, const ws_plan_t *plan)
{
    const dlrm_config_t *c = &m->cfg;
    int d = c->d, n = c->n_tables, F = n + 1, R = c->top[0];
    float *r = ws + plan->r, *tp = ws + plan->tp, *scratch = ws + plan->mlp;
    for (int s = 0; s < nb; s++) {
        float *rs = r + (size_t)s * R;
        const float *es = pooled + (size_t)s * n * d;
        memcpy(rs, x_bot + (size_t)s * d, sizeof(float) * (size_t)d);
        if (c->op == DLRM_INTERACT_CAT)
            memcpy(rs + d, es, sizeof(float) * (size_t)n * d);
        else
            dot_sample(F, d, c->itself, x_bot + (size_t)s * d, es, tp, rs + d);
    }
    mlp(nb, c->top, c->n_top, m->top_lin, m->top_w, m->top_b, r, out, scratch, 1);
}

static void top_chunk(const job_t *j, int b0, int nb, float *ws)
{
    const dlrm_config_t *c = &j->m->cfg;
    interact_top(j->m, nb, j->in0 + (size_t)b0 * c->d, j->in1 + (size_t)b0 * c->n_tables * c->d,
                 j->out + b0, ws, &j->plan);
}

dlrm_status_t dlrm_interact_top(const dlrm_model_t *m, int B, const float *x_bot,
                                const float *pooled, float *out)
{
    if (!m || B < 0 || (B > 0 && (!x_bot || !pooled || !out)))
        return dlrm_error(DLRM_ERR_ARG, "dlrm_interact_top: model, inputs and out are required");
    if (B == 0)
        return DLRM_OK;
    job_t job = {.m = m, .in0 = x_bot, .in1 = pooled, .out = out};
    return run_chunks(&job, B, PLAN_TOP, top_chunk, "dlrm_interact_top");
}

/* The whole pass a chunk at a time: its bottom output and pooled rows are still in cache when
 * the interaction reads them. */
static void forward_chunk(const job_t *j, int b0, int nb, float *ws)
{
    const dlrm_config_t *c = &j->m->cfg;
    float *x = ws + j->plan.x_bot, *pooled = ws + j->plan.pooled;
    mlp(nb, c->bot, c->n_bot - 1, j->m->bot_lin, j->m->bot_w, j->m->bot_b,
        j->batch->dense + (size_t)b0 * c->bot[0], x, ws + j->plan.mlp, 0);
    embed_rows(j->m, j->batch, NULL, c->n_tables, b0, b0 + nb, pooled);
    interact_top(j->m, nb, x, pooled, j->out + b0, ws, &j->plan);
}

dlrm_status_t dlrm_forward(const dlrm_model_t *m, const dlrm_batch_t *batch, float *out)
{
    if (!m || !batch || !out || batch->B < 0)
        return dlrm_error(DLRM_ERR_ARG, "dlrm_forward: model, batch and out are required");
    dlrm_status_t st = check_tables(m, NULL, m->cfg.n_tables);
    if (st == DLRM_OK)
        st = check_bags(m, batch, NULL, m->cfg.n_tables);
    if (st != DLRM_OK || batch->B == 0)
        return st;
    job_t job = {.m = m, .batch = batch, .out = out};
    return run_chunks(&job, batch->B, PLAN_FORWARD, forward_chunk, "dlrm_forward");
}
