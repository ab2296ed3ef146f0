/*
 * A run's figures gathered to rank 0 (dlrm_dist.h): loop and engine times, waiting, the ideal
 * model on the gathered work trace, every batch latency, and the predictions back in input
 * order (process p's rows of batch k follow its rows of the batches before k).
 */
#include "dist_internal.h"

#include <stdlib.h>
#include <string.h>

/* Gathers every process's per-row records to rank 0 in input order. */
static dist_status_t gather_rows(dist_session_t *s, MPI_Comm comm, int rank, int P,
                                 const dist_run_t *r, dist_summary_t *sum)
{
    (void)s;
    int nl = (int)r->n_local, *counts = NULL, *displs = NULL;
    float *pred = NULL, *lab = NULL;
    int ok = 1;
    if (rank == 0) {
        counts = malloc(sizeof(int) * (size_t)P);
        displs = malloc(sizeof(int) * (size_t)P);
        ok = counts && displs;
    }
    MPI_Gather(&nl, 1, MPI_INT, counts, 1, MPI_INT, 0, comm);
    if (rank == 0 && ok) {
        int64_t tot = 0;
        for (int p = 0; p < P; p++) {
            displs[p] = (int)tot;
            tot += counts[p];
        }
        pred = malloc(sizeof(float) * ((size_t)tot + 1));
        lab = malloc(sizeof(float) * ((size_t)tot + 1));
        free(sum->pred);
        free(sum->labels);
        sum->pred = malloc(sizeof(float) * ((size_t)r->samples + 1));
        sum->labels = malloc(sizeof(float) * ((size_t)r->samples + 1));
        ok = pred && lab && sum->pred && sum->labels;
    }
    MPI_Gatherv(r->pred, nl, MPI_FLOAT, pred, counts, displs, MPI_FLOAT, 0, comm);
    MPI_Gatherv(r->labels, nl, MPI_FLOAT, lab, counts, displs, MPI_FLOAT, 0, comm);
    int64_t *at = rank == 0 && ok ? calloc((size_t)P, sizeof(int64_t)) : NULL, g = 0;
    for (int64_t k = 0; at && k < r->batches; k++)
        for (int p = 0; p < P; p++) {
            int64_t cnt = dist_slice_rows(p, P, r->batch_n[k]);
            memcpy(sum->pred + g, pred + displs[p] + at[p], sizeof(float) * (size_t)cnt);
            memcpy(sum->labels + g, lab + displs[p] + at[p], sizeof(float) * (size_t)cnt);
            at[p] += cnt;
            g += cnt;
        }
    if (rank == 0 && !at)
        ok = 0;
    free(at);
    free(counts);
    free(displs);
    free(pred);
    free(lab);
    return ok ? DIST_OK : dist_error(DIST_ERR_NOMEM, "gather: out of memory on rank 0");
}

/* The ideal model on the gathered trace work [P][K]. */
static dist_status_t add_ideal(const double *work, int P, int K, int lag, const int *lags,
                               int n_lags, double *ideal_at, dist_summary_t *sum)
{
    double *scratch = malloc(sizeof(double) * ((size_t)P + (size_t)K + 1));
    if (!scratch)
        return dist_error(DIST_ERR_NOMEM, "gather: out of memory on rank 0");
    sum->ideal += harness_ideal_time(work, P, K, lag, scratch);
    sum->ideal0 += harness_ideal_time(work, P, K, 0, scratch);
    sum->ideal_inf += harness_ideal_time(work, P, K, K, scratch);
    for (int i = 0; ideal_at && i < n_lags; i++)
        ideal_at[i] += harness_ideal_time(work, P, K, lags[i], scratch);
    free(scratch);
    return DIST_OK;
}

dist_status_t dist_gather(dist_session_t *s, const dist_run_t *r, int lag, const int *lags,
                          int n_lags, double *ideal_at, dist_summary_t *sum)
{
    MPI_Comm comm = dist_session_comm(s);
    int rank, P;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &P);
    int K = (int)r->batches;
    double loop_max = 0, compute_max = 0, wait_sum = 0, prog_sum = 0;
    MPI_Reduce(&r->loop, &loop_max, 1, MPI_DOUBLE, MPI_MAX, 0, comm);
    MPI_Reduce(&r->compute, &compute_max, 1, MPI_DOUBLE, MPI_MAX, 0, comm);
    MPI_Reduce(&r->wait, &wait_sum, 1, MPI_DOUBLE, MPI_SUM, 0, comm);
    MPI_Reduce(&r->progress_cpu, &prog_sum, 1, MPI_DOUBLE, MPI_SUM, 0, comm);
    size_t PK = (size_t)P * (size_t)K;
    double *work = rank == 0 ? malloc(sizeof(double) * (PK + 1)) : NULL;
    double *lat = rank == 0 ? realloc(sum->lat, sizeof(double) * (sum->nlat + PK + 1)) : NULL;
    if (rank == 0 && lat)
        sum->lat = lat;
    MPI_Gather(r->work, K, MPI_DOUBLE, work, K, MPI_DOUBLE, 0, comm);
    MPI_Gather(r->lat, K, MPI_DOUBLE, lat ? lat + sum->nlat : NULL, K, MPI_DOUBLE, 0, comm);
    dist_status_t st = gather_rows(s, comm, rank, P, r, sum);
    if (rank == 0 && st == DIST_OK && (!work || !lat))
        st = dist_error(DIST_ERR_NOMEM, "gather: out of memory on rank 0");
    if (rank == 0 && st == DIST_OK) {
        sum->rounds++;
        sum->loop += loop_max;
        sum->compute += compute_max;
        sum->wait += wait_sum / P;
        sum->progress_cpu += prog_sum / P;
        sum->nlat += PK;
        sum->batches = K;
        sum->samples = r->samples;
        st = add_ideal(work, P, K, lag, lags, n_lags, ideal_at, sum);
    }
    free(work);
    return st;
}

void dist_summary_free(dist_summary_t *sum)
{
    free(sum->lat);
    free(sum->pred);
    free(sum->labels);
    memset(sum, 0, sizeof(*sum));
}
