/*
 * Sources of batches (dlrm_dist.h): each process gets the whole batch's indices for its own
 * tables and the dense rows and labels of its slice, from synthetic data (generated per
 * process for exactly those parts) or a Criteo file (streamed whole by every process).
 */
#include "dist_internal.h"

#include <stdlib.h>
#include <string.h>

struct dist_source {
    const dlrm_config_t *cfg;
    const dist_layout_t *L;
    int rank, batch_max;
    const int *mine; /* this process's tables */
    int n_mine;
    /* Synthetic */
    const dlrm_synth_t *synth;
    int64_t samples, produced;
    int64_t **idx;         /* [T] indices of our tables (NULL for the others) */
    float *dense, *labels; /* our slice */
    /* Criteo */
    const char *path;
    int strict;
    dlrm_criteo_t *reader;
    dlrm_samples_t s; /* every column of a batch (all are checked; ours are used) */
    int64_t **off;    /* [T] bag offsets of our tables */
};

static dist_status_t nomem(void)
{
    return dist_error(DIST_ERR_NOMEM, "source: out of memory");
}

/* The parts both kinds share: our tables and their offsets. */
static dist_status_t source_alloc(const dlrm_config_t *cfg, int batch_max, const dist_layout_t *L,
                                  int rank, dist_source_t **src_p)
{
    if (!cfg || !L || batch_max < 1 || rank < 0 || rank >= L->P || L->T != cfg->n_tables)
        return dist_error(DIST_ERR_ARG,
                          "source: bad arguments (batch %d, rank %d of %d, %d "
                          "tables in the layout, %d in the model)",
                          batch_max, rank, L ? L->P : 0, L ? L->T : 0, cfg ? cfg->n_tables : 0);
    dist_source_t *src = calloc(1, sizeof(*src));
    if (!src)
        return nomem();
    src->cfg = cfg;
    src->L = L;
    src->rank = rank;
    src->batch_max = batch_max;
    src->mine = L->tables + L->first[rank];
    src->n_mine = L->first[rank + 1] - L->first[rank];
    src->idx = calloc((size_t)cfg->n_tables, sizeof(int64_t *));
    src->off = calloc((size_t)cfg->n_tables, sizeof(int64_t *));
    *src_p = src;
    if (!src->idx || !src->off)
        return nomem();
    for (int i = 0; i < src->n_mine; i++)
        if (!(src->off[src->mine[i]] = malloc(sizeof(int64_t) * ((size_t)batch_max + 1))))
            return nomem();
    return DIST_OK;
}

dist_status_t dist_source_synthetic(const dlrm_config_t *cfg, const dlrm_synth_t *synth,
                                    int64_t samples, int batch_max, const dist_layout_t *L,
                                    int rank, dist_source_t **src_p)
{
    *src_p = NULL;
    dist_status_t st = source_alloc(cfg, batch_max, L, rank, src_p);
    dist_source_t *src = *src_p;
    if (st == DIST_OK) {
        src->synth = synth;
        src->samples = samples;
        src->dense = malloc(sizeof(float) * (size_t)batch_max * (size_t)cfg->bot[0]);
        src->labels = malloc(sizeof(float) * (size_t)batch_max);
        if (!src->dense || !src->labels)
            st = nomem();
    }
    for (int i = 0; st == DIST_OK && i < src->n_mine; i++) {
        int t = src->mine[i];
        size_t most = (size_t)batch_max * (size_t)dlrm_synth_max_bag(synth, t) + 1;
        if (!(src->idx[t] = malloc(sizeof(int64_t) * most)))
            st = nomem();
    }
    if (st != DIST_OK) {
        dist_source_free(src);
        *src_p = NULL;
    }
    return st;
}

dist_status_t dist_source_criteo(const dlrm_config_t *cfg, const char *path, int strict,
                                 int batch_max, const dist_layout_t *L, int rank,
                                 dist_source_t **src_p)
{
    *src_p = NULL;
    dist_status_t st = source_alloc(cfg, batch_max, L, rank, src_p);
    dist_source_t *src = *src_p;
    if (st == DIST_OK) {
        src->path = path;
        src->strict = strict;
        src->s.labels = malloc(sizeof(float) * (size_t)batch_max);
        src->s.dense = malloc(sizeof(float) * (size_t)batch_max * (size_t)cfg->bot[0]);
        src->s.indices = calloc((size_t)cfg->n_tables, sizeof(int64_t *));
        if (!src->s.labels || !src->s.dense || !src->s.indices)
            st = nomem();
    }
    for (int t = 0; st == DIST_OK && t < cfg->n_tables; t++)
        if (!(src->s.indices[t] = malloc(sizeof(int64_t) * (size_t)batch_max)))
            st = nomem();
    for (int i = 0; st == DIST_OK && i < src->n_mine; i++) /* a file's bags hold one index */
        for (int b = 0; b <= batch_max; b++)
            src->off[src->mine[i]][b] = b;
    if (st == DIST_OK)
        st = dist_source_rewind(src);
    if (st != DIST_OK) {
        dist_source_free(src);
        *src_p = NULL;
    }
    return st;
}

dist_status_t dist_source_rewind(dist_source_t *src)
{
    src->produced = 0;
    if (!src->path)
        return DIST_OK;
    dlrm_criteo_close(src->reader);
    src->reader = NULL;
    if (dlrm_criteo_open(src->path, src->cfg, src->strict, &src->reader) != DLRM_OK)
        return dist_error(DIST_ERR_INPUT, "%s", dlrm_last_error());
    return DIST_OK;
}

/* Synthetic samples base .. base+n-1: our slice's dense rows and labels, our tables' bags. */
static void synth_batch(dist_source_t *src, int64_t base, int n)
{
    const dlrm_synth_t *sy = src->synth;
    int m_den = src->cfg->bot[0], P = src->L->P;
    int64_t lo = dist_slice_lo(src->rank, P, n), hi = lo + dist_slice_rows(src->rank, P, n);
    for (int64_t b = lo; b < hi; b++) {
        src->labels[b - lo] = dlrm_synth_label(sy, base + b);
        dlrm_synth_dense(sy, base + b, m_den, src->dense + (b - lo) * m_den);
    }
    for (int i = 0; i < src->n_mine; i++) {
        int t = src->mine[i];
        int64_t j = 0;
        for (int b = 0; b < n; b++) {
            src->off[t][b] = j;
            int bag = dlrm_synth_bag(sy, base + b, t);
            for (int k = 0; k < bag; k++)
                src->idx[t][j++] = dlrm_synth_index(sy, src->cfg->rows[t], base + b, t, k);
        }
        src->off[t][n] = j;
    }
}

dist_status_t dist_source_next(dist_source_t *src, int n, dist_batch_t *b)
{
    memset(b, 0, sizeof(*b));
    if (n < 0 || n > src->batch_max)
        return dist_error(DIST_ERR_ARG,
                          "source: a batch of %d samples, more than the %d it was "
                          "made for",
                          n, src->batch_max);
    int m_den = src->cfg->bot[0];
    if (src->reader) {
        int got = 0;
        if (dlrm_criteo_read(src->reader, n, &src->s, &got) != DLRM_OK)
            return dist_error(DIST_ERR_INPUT, "%s", dlrm_last_error());
        n = got;
        int64_t lo = dist_slice_lo(src->rank, src->L->P, n);
        b->dense = src->s.dense + lo * m_den;
        b->labels = src->s.labels + lo;
    } else {
        if (src->samples - src->produced < n)
            n = (int)(src->samples - src->produced);
        synth_batch(src, src->produced, n);
        b->dense = src->dense;
        b->labels = src->labels;
    }
    src->produced += n;
    b->n = n;
    b->emb =
        (dlrm_batch_t){n, NULL, (const int64_t *const *)(src->reader ? src->s.indices : src->idx),
                       (const int64_t *const *)src->off, NULL};
    return DIST_OK;
}

int64_t dist_source_lines(const dist_source_t *src)
{
    return src->reader ? dlrm_criteo_lines(src->reader) : 0;
}

int64_t dist_source_skipped(const dist_source_t *src)
{
    return src->reader ? dlrm_criteo_skipped(src->reader) : 0;
}

const char *dist_source_last_skip(const dist_source_t *src)
{
    return src->reader ? dlrm_criteo_last_skip(src->reader) : NULL;
}

void dist_source_free(dist_source_t *src)
{
    if (!src)
        return;
    for (int t = 0; t < src->cfg->n_tables; t++) {
        if (src->idx)
            free(src->idx[t]);
        if (src->off)
            free(src->off[t]);
        if (src->s.indices)
            free(src->s.indices[t]);
    }
    free(src->idx);
    free(src->off);
    free(src->s.indices);
    free(src->s.labels);
    free(src->s.dense);
    free(src->dense);
    free(src->labels);
    dlrm_criteo_close(src->reader);
    free(src);
}
