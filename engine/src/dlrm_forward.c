/*
 * The forward pass: MLPs through OpenBLAS sgemm (y = x W^T + b, W row-major [out, in] as in
 * the reference's Linear), sum-pooled embedding bags, dot or cat interaction, sigmoid.
 * Summation orders differ from PyTorch's kernels, so results agree to float rounding
 * (the tests allow 1e-5), not bit for bit with PyTorch; they are bit-for-bit reproducible here.
 */
#include "dlrm_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * Batch invariance: a sample's prediction must not depend on how many samples share its batch
 * (a distributed run gives each process a slice of the batch).  OpenBLAS's normal sgemm path
 * computes every row alike whatever the number of rows, but 0.3.21 on AVX-512 machines takes a
 * "small matrix" kernel with another summation order when rows x outputs <= 1200 (and K >= 32,
 * M*N*K <= 1e6).  So a layer with fo outputs runs on at least 1200 / fo + 1 rows, zero rows
 * added.  A width-1 layer (the click logit) is one dot product per sample: it is computed here
 * in a fixed order instead (padding it would take 1201 rows).  tests/engine checks the bits
 * across batch sizes and process counts.
 */
#define IB 16 /* samples per block of the dot interaction */

static int gemm_rows(int B, int fo)
{
    int min_rows = 1200 / fo + 1;
    return B > min_rows ? B : min_rows;
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
        y[r] = bias + (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
    }
}

/* An unconditional store: a branch here mispredicts on half the activations. */
DLRM_HOT static void relu(float *y, size_t cnt)
{
    for (size_t i = 0; i < cnt; i++) {
        float v = y[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}

/* Floats of each of mlp()'s three scratch buffers (an input pad, two activations) for B
 * samples: the most rows a layer runs on (width-1 layers never pad) times the widest layer. */
static size_t mlp_buffer_floats(int B, const int *w, int n)
{
    return (size_t)gemm_rows(B, 2) * (size_t)max_width(w, n);
}

/* Runs Linear layers in[B, w[0]] -> out[B, w[n]]; ReLU after each, sigmoid after the last when
 * sigmoid_last. */
static void mlp(int B, const int *w, int n, const float *const *W, const float *const *bias,
                const float *in, float *out, float *scratch, int sigmoid_last)
{
    size_t cap = mlp_buffer_floats(B, w, n);
    float *pad = scratch, *a = scratch + cap, *b = a + cap;
    const float *x = in; /* B rows of data; rows past B are zeroed before a layer pads */
    for (int l = 0; l < n; l++) {
        int fi = w[l], fo = w[l + 1], M = fo == 1 ? B : gemm_rows(B, fo);
        if (M > B) {
            if (x == in) {
                memcpy(pad, in, sizeof(float) * (size_t)B * fi);
                x = pad;
            }
            memset((float *)x + (size_t)B * fi, 0, sizeof(float) * (size_t)(M - B) * fi);
        }
        float *y = l == n - 1 && M == B ? out : (l % 2 == 0 ? a : b);
        for (int r = 0; fo > 1 && r < M; r++)
            memcpy(y + (size_t)r * fo, bias[l], sizeof(float) * (size_t)fo);
        if (fo == 1)
            dot_layer(B, fi, x, W[l], bias[l][0], y);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, fo, fi, 1.0f, x, fi, W[l],
                        fi, 1.0f, y, fo);
        size_t cnt = (size_t)B * fo; /* the padded rows are never read again */
        if (l == n - 1 && sigmoid_last) {
            for (size_t i = 0; i < cnt; i++)
                y[i] = 1.0f / (1.0f + expf(-y[i]));
        } else {
            relu(y, cnt);
        }
        x = y;
    }
    if (x != out)
        memcpy(out, x, sizeof(float) * (size_t)B * w[n]);
}

dlrm_status_t dlrm_bottom(const dlrm_model_t *m, int B, const float *dense, float *out)
{
    if (!m || B < 0 || (B > 0 && (!dense || !out)))
        return dlrm_error(DLRM_ERR_ARG, "dlrm_bottom: model, dense and out are required");
    if (B == 0)
        return DLRM_OK;
    const dlrm_config_t *c = &m->cfg;
    float *scratch = malloc(3 * mlp_buffer_floats(B, c->bot, c->n_bot - 1) * sizeof(float));
    if (!scratch)
        return dlrm_error(DLRM_ERR_NOMEM, "dlrm_bottom: out of memory");
    mlp(B, c->bot, c->n_bot - 1, m->bot_w, m->bot_b, dense, out, scratch, 0);
    free(scratch);
    return DLRM_OK;
}

#ifndef EMBED_PREFETCH /* lookups ahead (0: none; -DEMBED_PREFETCH=0 builds the A/B baseline) */
#define EMBED_PREFETCH 16
#endif

dlrm_status_t dlrm_embed(const dlrm_model_t *m, const dlrm_batch_t *batch, const int *tables,
                         int n_list, float *out)
{
    if (!m || !batch || !out || (tables && n_list < 0))
        return dlrm_error(DLRM_ERR_ARG, "dlrm_embed: model, batch and out are required");
    int d = m->cfg.d, nt = tables ? n_list : m->cfg.n_tables, B = batch->B;
    for (int i = 0; i < nt; i++) { /* the whole list first: no partial output on a bad entry */
        int t = tables ? tables[i] : i;
        if (t < 0 || t >= m->cfg.n_tables)
            return dlrm_error(DLRM_ERR_ARG, "dlrm_embed: table list entry %d: table %d is not "
                              "within the model's %d tables", i, t, m->cfg.n_tables);
        if (!m->tables[t])
            return dlrm_error(DLRM_ERR_ARG, "dlrm_embed: table %d is not held by this model", t);
    }
    for (int i = 0; i < nt; i++) {
        int t = tables ? tables[i] : i;
        const float *table = m->tables[t];
        const int64_t *idx = batch->indices[t], *off = batch->offsets[t];
        const float *wt = batch->weights ? batch->weights[t] : NULL;
        int64_t rows = m->cfg.rows[t], end = off[B];
        for (int b = 0; b < B; b++) {
            float *o = out + ((size_t)b * nt + (size_t)i) * d;
            memset(o, 0, sizeof(float) * (size_t)d);
            if (off[b + 1] < off[b])
                return dlrm_error(DLRM_ERR_ARG, "table %d, sample %d: offsets decrease (%lld > %lld)",
                                  t, b, (long long)off[b], (long long)off[b + 1]);
            for (int64_t k = off[b]; k < off[b + 1]; k++) {
                int64_t r = idx[k];
                if (r < 0 || r >= rows)
                    return dlrm_error(DLRM_ERR_RANGE,
                                      "table %d, sample %d: index %lld is outside [0, %lld)", t, b,
                                      (long long)r, (long long)rows);
                /* Random rows of large tables miss every cache: ask for the row
                 * EMBED_PREFETCH lookups ahead now, so several misses are in flight. */
                if (EMBED_PREFETCH > 0 && k + EMBED_PREFETCH < end) {
                    int64_t ahead = idx[k + EMBED_PREFETCH];
                    if (ahead >= 0 && ahead < rows) {
                        __builtin_prefetch(table + (size_t)ahead * d);
                        __builtin_prefetch(table + (size_t)ahead * d + d - 1);
                    }
                }
                const float *row = table + (size_t)r * d;
                float w = wt ? wt[k] : 1.0f;
                for (int j = 0; j < d; j++)
                    o[j] += w * row[j];
            }
        }
    }
    return DLRM_OK;
}

/*
 * The dot interaction for a block of nb <= IB samples, vectorised across the samples: T of the
 * block is laid out [F][d][IB] (lane s = sample s; lanes past nb are zero), so each Z[i][j] of
 * all IB samples is one loop over q = 0..d-1 on IB-wide vectors.  Per sample, Z[i][j] is still
 * 0 + T_i[0] T_j[0] + T_i[1] T_j[1] + ... in that order: the bits do not depend on the block.
 * Results go to z[s * ldz + k] for the k-th kept (i, j), i outer, j < i (j <= i with itself).
 */
DLRM_HOT static void dot_block(int F, int d, int itself, int nb, const float *x_bot,
                               const float *pooled, float *tb, float *z, int ldz)
{
    int n = F - 1;
    if (nb < IB) /* the last block: its unused lanes are computed too, so give them zeros */
        memset(tb, 0, sizeof(float) * (size_t)F * d * IB);
    for (int s = 0; s < nb; s++) {
        for (int q = 0; q < d; q++)
            tb[(size_t)q * IB + s] = x_bot[(size_t)s * d + q];
        for (int f = 1; f < F; f++)
            for (int q = 0; q < d; q++)
                tb[((size_t)f * d + q) * IB + s] = pooled[((size_t)s * n + (f - 1)) * d + q];
    }
    int k = 0;
    for (int i = 0; i < F; i++) {
        const float *ti = tb + (size_t)i * d * IB;
        for (int j = 0; j < (itself ? i + 1 : i); j++, k++) {
            const float *tj = tb + (size_t)j * d * IB;
            float acc[IB] = {0};
            for (int q = 0; q < d; q++)
                for (int s = 0; s < IB; s++)
                    acc[s] += ti[(size_t)q * IB + s] * tj[(size_t)q * IB + s];
            for (int s = 0; s < nb; s++)
                z[(size_t)s * ldz + k] = acc[s];
        }
    }
}

dlrm_status_t dlrm_interact_top(const dlrm_model_t *m, int B, const float *x_bot,
                                const float *pooled, float *out)
{
    if (!m || B < 0 || (B > 0 && (!x_bot || !pooled || !out)))
        return dlrm_error(DLRM_ERR_ARG, "dlrm_interact_top: model, inputs and out are required");
    if (B == 0)
        return DLRM_OK;
    const dlrm_config_t *c = &m->cfg;
    int d = c->d, n = c->n_tables, F = n + 1, R = c->top[0];
    size_t ms = 3 * mlp_buffer_floats(B, c->top, c->n_top);
    float *buf = malloc(((size_t)B * R + ms + (size_t)IB * d * F) * sizeof(float));
    if (!buf)
        return dlrm_error(DLRM_ERR_NOMEM, "dlrm_interact_top: out of memory for batch %d", B);
    float *r = buf, *tb = buf + (size_t)B * R + ms;
    for (int b0 = 0; b0 < B; b0 += IB) {
        int nb = B - b0 < IB ? B - b0 : IB;
        for (int s = 0; s < nb; s++) {
            float *rb = r + (size_t)(b0 + s) * R;
            const float *eb = pooled + (size_t)(b0 + s) * n * d;
            memcpy(rb, x_bot + (size_t)(b0 + s) * d, sizeof(float) * (size_t)d);
            if (c->op == DLRM_INTERACT_CAT)
                memcpy(rb + d, eb, sizeof(float) * (size_t)n * d);
        }
        if (c->op == DLRM_INTERACT_DOT)
            dot_block(F, d, c->itself, nb, x_bot + (size_t)b0 * d, pooled + (size_t)b0 * n * d, tb,
                      r + (size_t)b0 * R + d, R);
    }
    mlp(B, c->top, c->n_top, m->top_w, m->top_b, r, out, buf + (size_t)B * R, 1); /* width 1 */
    free(buf);
    return DLRM_OK;
}

dlrm_status_t dlrm_forward(const dlrm_model_t *m, const dlrm_batch_t *batch, float *out)
{
    if (!m || !batch || !out)
        return dlrm_error(DLRM_ERR_ARG, "dlrm_forward: model, batch and out are required");
    int B = batch->B, d = m->cfg.d, n = m->cfg.n_tables;
    float *x = malloc(sizeof(float) * ((size_t)B * d + (size_t)B * n * d + 1));
    if (!x)
        return dlrm_error(DLRM_ERR_NOMEM, "dlrm_forward: out of memory for batch %d", B);
    float *pooled = x + (size_t)B * d;
    dlrm_status_t st = dlrm_bottom(m, B, batch->dense, x);
    if (st == DLRM_OK)
        st = dlrm_embed(m, batch, NULL, n, pooled);
    if (st == DLRM_OK)
        st = dlrm_interact_top(m, B, x, pooled, out);
    free(x);
    return st;
}
