/*
 * A run's figures gathered to rank 0 (dlrm_dist.h): loop and engine times, waiting, the ideal
 * model on the gathered work trace, every batch latency, and the predictions back in input
 * order (process p's rows of batch k follow its rows of the batches before k).
 */
#include "dist_internal.h"

#include <math.h>
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

/* Every process's run-ahead per batch (r->lag) to rank 0: *mean_p ([K], replaced) the mean
 * over the processes per batch, and every value counted into *hist_p ([*hist_n], grown). */
static dist_status_t gather_lags(MPI_Comm comm, int rank, int P, const dist_run_t *r,
                                 double **mean_p, int64_t **hist_p, int *hist_n)
{
    int K = (int)r->batches;
    size_t PK = (size_t)P * (size_t)K;
    int *all = rank == 0 ? malloc(sizeof(int) * (PK + 1)) : NULL;
    MPI_Gather(r->lag, K, MPI_INT, all, K, MPI_INT, 0, comm);
    if (rank != 0)
        return DIST_OK;
    double *mean = all ? calloc((size_t)K + 1, sizeof(double)) : NULL;
    int top = -1;
    for (size_t i = 0; mean && i < PK; i++)
        top = all[i] > top ? all[i] : top;
    int64_t *hist =
        mean && top >= *hist_n ? realloc(*hist_p, sizeof(int64_t) * (size_t)(top + 1)) : *hist_p;
    if (!mean || (top >= 0 && !hist)) {
        free(all);
        free(mean);
        return dist_error(DIST_ERR_NOMEM, "gather: out of memory on rank 0");
    }
    for (int i = *hist_n; i <= top; i++)
        hist[i] = 0;
    if (top >= *hist_n)
        *hist_n = top + 1;
    *hist_p = hist;
    for (int p = 0; p < P; p++)
        for (int k = 0; k < K; k++) {
            int l = all[(size_t)p * (size_t)K + (size_t)k];
            mean[k] += (double)l / P;
            hist[l]++;
        }
    free(*mean_p);
    *mean_p = mean;
    free(all);
    return DIST_OK;
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
    double loop_max = 0, compute_max = 0, wait_sum = 0, prog_sum = 0, cpu_sum = 0, sb_sum = 0;
    MPI_Reduce(&r->loop, &loop_max, 1, MPI_DOUBLE, MPI_MAX, 0, comm);
    MPI_Reduce(&r->compute, &compute_max, 1, MPI_DOUBLE, MPI_MAX, 0, comm);
    MPI_Reduce(&r->wait, &wait_sum, 1, MPI_DOUBLE, MPI_SUM, 0, comm);
    MPI_Reduce(&r->progress_cpu, &prog_sum, 1, MPI_DOUBLE, MPI_SUM, 0, comm);
    MPI_Reduce(&r->progress_standby, &sb_sum, 1, MPI_DOUBLE, MPI_SUM, 0, comm);
    MPI_Reduce(&r->cpu, &cpu_sum, 1, MPI_DOUBLE, MPI_SUM, 0, comm);
    int copy_peers = 0;
    MPI_Reduce(&r->copy_peers, &copy_peers, 1, MPI_INT, MPI_MIN, 0, comm);
    size_t PK = (size_t)P * (size_t)K;
    double *work = rank == 0 ? malloc(sizeof(double) * (PK + 1)) : NULL;
    double *lat = rank == 0 ? realloc(sum->lat, sizeof(double) * (sum->nlat + PK + 1)) : NULL;
    if (rank == 0 && lat)
        sum->lat = lat;
    MPI_Gather(r->work, K, MPI_DOUBLE, work, K, MPI_DOUBLE, 0, comm);
    MPI_Gather(r->lat, K, MPI_DOUBLE, lat ? lat + sum->nlat : NULL, K, MPI_DOUBLE, 0, comm);
    dist_status_t st = gather_rows(s, comm, rank, P, r, sum);
    dist_status_t sl =
        gather_lags(comm, rank, P, r, &sum->lag_mean, &sum->lag_hist, &sum->lag_hist_n);
    st = st == DIST_OK ? sl : st;
    if (rank == 0 && st == DIST_OK && (!work || !lat))
        st = dist_error(DIST_ERR_NOMEM, "gather: out of memory on rank 0");
    if (rank == 0 && st == DIST_OK) {
        sum->rounds++;
        sum->loop += loop_max;
        sum->compute += compute_max;
        sum->wait += wait_sum / P;
        sum->progress_cpu += prog_sum / P;
        sum->progress_standby += sb_sum / P;
        sum->cpu += cpu_sum / P;
        sum->copy_peers = copy_peers;
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
    free(sum->lag_mean);
    free(sum->lag_hist);
    memset(sum, 0, sizeof(*sum));
}

/* The server run's per-query figures on rank 0 from every process's done, begun and work
 * ([P][K], times on process 0's clock since the schedule's start), and their percentiles. */
static dist_status_t serve_latencies(const double *const per[3], const harness_schedule_t *sched,
                                     int P, int K, int lag, dist_serve_t *out)
{
    const double *done = per[0], *begun = per[1], *work = per[2];
    size_t n = (size_t)K + 1;
    out->latency = malloc(sizeof(double) * n);
    out->queue = malloc(sizeof(double) * n);
    out->ideal = malloc(sizeof(double) * n);
    double *scratch = malloc(sizeof(double) * (n > (size_t)P ? n : (size_t)P + 1)), last = 0;
    if (!out->latency || !out->queue || !out->ideal || !scratch) {
        free(scratch);
        return dist_error(DIST_ERR_NOMEM, "gather: out of memory on rank 0");
    }
    for (int k = 0; k < K; k++) {
        double slowest = 0, latest = 0;
        for (int p = 0; p < P; p++) {
            slowest = fmax(slowest, done[(size_t)p * K + k]);
            latest = fmax(latest, begun[(size_t)p * K + k]);
        }
        out->latency[k] = slowest - sched->at[k];
        out->queue[k] = latest - sched->at[k];
        last = fmax(last, slowest);
    }
    harness_ideal_open(work, sched->at, P, K, lag, out->ideal, scratch);
    for (int k = 0; k < K; k++)
        out->ideal[k] -= sched->at[k];
    memcpy(scratch, out->latency, sizeof(double) * (size_t)K);
    harness_sort(scratch, (size_t)K);
    out->p50 = harness_percentile(scratch, (size_t)K, 0.5);
    out->p99 = harness_percentile(scratch, (size_t)K, 0.99);
    memcpy(scratch, out->ideal, sizeof(double) * (size_t)K);
    harness_sort(scratch, (size_t)K);
    out->ideal_p99 = harness_percentile(scratch, (size_t)K, 0.99);
    free(scratch);
    out->scheduled_qps = K > 0 ? K / sched->at[K - 1] : 0;
    out->completed_qps = last > 0 ? K / last : 0;
    out->samples_per_s = last > 0 ? (double)out->samples / last : 0;
    return DIST_OK;
}

dist_status_t dist_gather_serve(dist_session_t *s, const dist_run_t *r,
                                const harness_schedule_t *sched, int lag, dist_serve_t *out)
{
    memset(out, 0, sizeof(*out));
    MPI_Comm comm = dist_session_comm(s);
    int rank, P, K = (int)r->batches;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &P);
    MPI_Reduce(&r->wait, &out->wait, 1, MPI_DOUBLE, MPI_SUM, 0, comm);
    MPI_Reduce(&r->progress_cpu, &out->progress_cpu, 1, MPI_DOUBLE, MPI_SUM, 0, comm);
    MPI_Reduce(&r->copy_peers, &out->copy_peers, 1, MPI_INT, MPI_MIN, 0, comm);
    size_t PK = (size_t)P * (size_t)K;
    double *per[3] = {NULL, NULL, NULL}; /* done, begun, work: [P][K] */
    const double *mine[3] = {r->done, r->begun, r->work};
    int have = 1;
    for (int i = 0; i < 3; i++) {
        per[i] = rank == 0 ? malloc(sizeof(double) * (PK + 1)) : NULL;
        have &= rank != 0 || per[i] != NULL;
        MPI_Gather(mine[i], K, MPI_DOUBLE, per[i], K, MPI_DOUBLE, 0, comm);
    }
    dist_summary_t rows = {0};
    dist_status_t st = gather_rows(s, comm, rank, P, r, &rows);
    dist_status_t sl =
        gather_lags(comm, rank, P, r, &out->lag_mean, &out->lag_hist, &out->lag_hist_n);
    st = st == DIST_OK ? sl : st;
    out->queries = K;
    out->samples = r->samples;
    out->stopped_early = r->stopped_early;
    out->pred = rows.pred;
    out->labels = rows.labels;
    out->wait /= P;
    out->progress_cpu /= P;
    if (rank == 0 && st == DIST_OK)
        st = have ? serve_latencies((const double *const *)per, sched, P, K, lag, out)
                  : dist_error(DIST_ERR_NOMEM, "gather: out of memory on rank 0");
    for (int i = 0; i < 3; i++)
        free(per[i]);
    double figures[6] = {out->p50,           out->p99,           out->ideal_p99,
                         out->scheduled_qps, out->completed_qps, out->samples_per_s};
    MPI_Bcast(figures, 6, MPI_DOUBLE, 0, comm); /* every process follows the same verdicts */
    out->p50 = figures[0];
    out->p99 = figures[1];
    out->ideal_p99 = figures[2];
    out->scheduled_qps = figures[3];
    out->completed_qps = figures[4];
    out->samples_per_s = figures[5];
    return st;
}

void dist_serve_free(dist_serve_t *v)
{
    free(v->latency);
    free(v->queue);
    free(v->ideal);
    free(v->pred);
    free(v->labels);
    free(v->lag_mean);
    free(v->lag_hist);
    memset(v, 0, sizeof(*v));
}
