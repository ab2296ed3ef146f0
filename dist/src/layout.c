/*
 * The layout of distributed inference (dlrm_dist.h): placement, slices, exchange.  No MPI:
 * tests/dist/test_layout.c checks it without mpirun, and torch_bls/dlrm_infer.py follows the
 * same rules (tests/torch_bls/test_layout.py holds the two equal).
 */
#include "dist_internal.h"

#include <stdlib.h>
#include <string.h>

int64_t dist_slice_lo(int q, int P, int64_t n)
{
    return (int64_t)q * n / P;
}

int64_t dist_slice_rows(int q, int P, int64_t n)
{
    return dist_slice_lo(q + 1, P, n) - dist_slice_lo(q, P, n);
}

static void place_contiguous(int P, int T, int *owner)
{
    int base = T / P, extra = T % P, t = 0;
    for (int p = 0; p < P; p++)
        for (int i = 0; i < base + (p < extra); i++)
            owner[t++] = p;
}

/* Tables by decreasing cost (stable: equal costs keep table order), each to the least loaded
 * process (ties: the lower rank). */
static dist_status_t place_balanced(int P, int T, const double *cost, int *owner)
{
    double *load = calloc((size_t)P, sizeof(double));
    int *order = malloc(sizeof(int) * (size_t)T);
    if (!load || !order) {
        free(load);
        free(order);
        return dist_error(DIST_ERR_NOMEM, "layout: out of memory");
    }
    for (int t = 0; t < T; t++)
        order[t] = t;
    for (int i = 1; i < T; i++) /* insertion sort: T is small */
        for (int j = i; j > 0 && (cost ? cost[order[j]] : 1.0) > (cost ? cost[order[j - 1]] : 1.0);
             j--) {
            int x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    for (int i = 0; i < T; i++) {
        int best = 0;
        for (int p = 1; p < P; p++)
            if (load[p] < load[best])
                best = p;
        owner[order[i]] = best;
        load[best] += cost ? cost[order[i]] : 1.0;
    }
    free(load);
    free(order);
    return DIST_OK;
}

dist_status_t dist_layout_init(dist_layout_t *L, int P, int T, int d, dist_placement_t how,
                               const double *cost)
{
    memset(L, 0, sizeof(*L));
    if (P < 1 || T < 1 || d < 1)
        return dist_error(DIST_ERR_ARG,
                          "layout: %d processes, %d tables, d %d: each must be "
                          ">= 1",
                          P, T, d);
    if (T < P)
        return dist_error(DIST_ERR_ARG,
                          "layout: %d tables for %d processes: every process "
                          "needs a table",
                          T, P);
    L->P = P;
    L->T = T;
    L->d = d;
    L->owner = malloc(sizeof(int) * (size_t)T);
    L->first = calloc((size_t)P + 1, sizeof(int));
    L->tables = malloc(sizeof(int) * (size_t)T);
    int *fill = calloc((size_t)P, sizeof(int));
    dist_status_t st = L->owner && L->first && L->tables && fill
                           ? DIST_OK
                           : dist_error(DIST_ERR_NOMEM, "layout: out of memory");
    if (st == DIST_OK && how == DIST_PLACE_BALANCED)
        st = place_balanced(P, T, cost, L->owner);
    else if (st == DIST_OK)
        place_contiguous(P, T, L->owner);
    for (int t = 0; st == DIST_OK && t < T; t++)
        L->first[L->owner[t] + 1]++;
    for (int p = 0; st == DIST_OK && p < P; p++)
        L->first[p + 1] += L->first[p];
    for (int t = 0; st == DIST_OK && t < T; t++) /* each process's tables in increasing order */
        L->tables[L->first[L->owner[t]] + fill[L->owner[t]]++] = t;
    free(fill);
    if (st != DIST_OK)
        dist_layout_free(L);
    return st;
}

void dist_layout_free(dist_layout_t *L)
{
    free(L->owner);
    free(L->first);
    free(L->tables);
    memset(L, 0, sizeof(*L));
}

static size_t n_tables(const dist_layout_t *L, int p)
{
    return (size_t)(L->first[p + 1] - L->first[p]);
}

void dist_send_layout(const dist_layout_t *L, int p, int64_t n, size_t *counts, size_t *displs)
{
    size_t per = n_tables(L, p) * (size_t)L->d; /* floats per sample */
    for (int q = 0; q < L->P; q++) {
        counts[q] = (size_t)dist_slice_rows(q, L->P, n) * per;
        displs[q] = (size_t)dist_slice_lo(q, L->P, n) * per;
    }
}

void dist_recv_layout(const dist_layout_t *L, int q, int64_t n, size_t *counts, size_t *displs)
{
    size_t rows = (size_t)dist_slice_rows(q, L->P, n), off = 0;
    for (int p = 0; p < L->P; p++) {
        counts[p] = rows * n_tables(L, p) * (size_t)L->d;
        displs[p] = off;
        off += counts[p];
    }
}

void dist_unpack(const dist_layout_t *L, int q, int64_t n, const float *recv, float *pooled)
{
    dist_unpack_gap(L, q, n, recv, 0, pooled);
}

void dist_unpack_gap(const dist_layout_t *L, int q, int64_t n, const float *recv, size_t gap,
                     float *pooled)
{
    size_t rows = (size_t)dist_slice_rows(q, L->P, n), T = (size_t)L->T, d = (size_t)L->d;
    for (int p = 0; p < L->P; p++) {
        size_t np = n_tables(L, p);
        const int *tabs = L->tables + L->first[p];
        for (size_t b = 0; b < rows; b++)
            for (size_t j = 0; j < np; j++)
                memcpy(pooled + (b * T + (size_t)tabs[j]) * d, recv + (b * np + j) * d,
                       sizeof(float) * d);
        recv += rows * np * d + gap;
    }
}
