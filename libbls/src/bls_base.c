/* Beneath every mode: errors, the clock, the ring of posted iterations, modes by name. */
#define _GNU_SOURCE
#include "bls_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char last_error[BLS_MSG_LEN];

bls_status_t bls_error(bls_status_t status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return status;
}

bls_status_t bls_mpi_error(int mpi_rc, const char *what)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(mpi_rc, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof(text), "MPI error %d", mpi_rc);
    return bls_error(BLS_ERR_MPI, "%s failed: %s", what, text);
}

const char *bls_version(int *major, int *minor, int *patch)
{
    if (major)
        *major = BLS_VERSION_MAJOR;
    if (minor)
        *minor = BLS_VERSION_MINOR;
    if (patch)
        *patch = BLS_VERSION_PATCH;
    return BLS_VERSION_STRING;
}

const char *bls_last_error(void)
{
    return last_error;
}

const char *bls_strerror(bls_status_t status)
{
    switch (status) {
    case BLS_OK: return "BLS_OK: success";
    case BLS_ERR_ARG: return "BLS_ERR_ARG: invalid argument";
    case BLS_ERR_NOMEM: return "BLS_ERR_NOMEM: out of memory";
    case BLS_ERR_MPI: return "BLS_ERR_MPI: an MPI call failed";
    case BLS_ERR_THREAD: return "BLS_ERR_THREAD: MPI_THREAD_MULTIPLE is required";
    case BLS_ERR_TOO_LARGE: return "BLS_ERR_TOO_LARGE: block larger than the declared maximum";
    case BLS_ERR_COUNT: return "BLS_ERR_COUNT: received block differs from the expected count";
    case BLS_ERR_TIMEOUT: return "BLS_ERR_TIMEOUT: wait exceeded the timeout";
    case BLS_ERR_PEER_FINISHED: return "BLS_ERR_PEER_FINISHED: a peer finished earlier";
    case BLS_ERR_ITER_MISMATCH: return "BLS_ERR_ITER_MISMATCH: processes posted different counts";
    case BLS_ERR_STATE: return "BLS_ERR_STATE: call out of order";
    case BLS_ERR_CONFIG: return "BLS_ERR_CONFIG: processes disagree on the settings";
    }
    return "BLS_ERR_?: unknown status";
}

double bls_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double bls_deadline(const bls_comm_t *c)
{
    return c->timeout > 0 ? bls_now() + c->timeout : 0;
}

/* ---- modes by name ---- */

static const struct {
    bls_mode_t mode;
    const char *name;
    int lag_by_default; /* a bare name takes the caller's default lag; else lag 0 */
} mode_names[] = {
    {BLS_MODE_BLS, "bls", 1},
    {BLS_MODE_SYNC, "sync", 0},
    {BLS_MODE_IALLTOALLV, "ialltoallv", 0},
    {BLS_MODE_WINDOW, "window", 1},
};
#define N_MODE_NAMES (int)(sizeof(mode_names) / sizeof(mode_names[0]))

const char *bls_mode_name(bls_mode_t mode)
{
    for (int i = 0; i < N_MODE_NAMES; i++)
        if (mode_names[i].mode == mode)
            return mode_names[i].name;
    return "unknown";
}

bls_status_t bls_mode_parse(const char *spec, int default_lag, bls_mode_t *mode_p, int *lag_p)
{
    if (!spec || !mode_p || !lag_p)
        return bls_error(BLS_ERR_ARG, "bls_mode_parse: spec, mode_p and lag_p are required");
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    for (int i = 0; i < N_MODE_NAMES; i++) {
        if (strlen(mode_names[i].name) != len || strncmp(spec, mode_names[i].name, len) != 0)
            continue;
        long lag = mode_names[i].lag_by_default ? default_lag : 0;
        if (colon) {
            char *end;
            lag = strtol(colon + 1, &end, 10);
            if (mode_names[i].mode == BLS_MODE_SYNC)
                return bls_error(BLS_ERR_ARG, "mode '%s': sync takes no lag", spec);
            if (end == colon + 1 || *end != '\0')
                return bls_error(BLS_ERR_ARG, "mode '%s': the lag after ':' must be an integer",
                                 spec);
        }
        if (lag < 0 || lag > BLS_MAX_LAG)
            return bls_error(BLS_ERR_ARG, "mode '%s': lag %ld is outside [0, %d]", spec, lag,
                             BLS_MAX_LAG);
        *mode_p = mode_names[i].mode;
        *lag_p = (int)lag;
        return BLS_OK;
    }
    return bls_error(BLS_ERR_ARG, "unknown mode '%s' (bls:L, sync, ialltoallv:L, window:L)", spec);
}

/* ---- progress settings by name ---- */

static const struct {
    bls_progress_mode_t progress;
    const char *name;
} progress_names[] = {
    {BLS_PROGRESS_THREAD, "thread"},
    {BLS_PROGRESS_THREAD_NORMAL, "thread-normal"},
    {BLS_PROGRESS_CALLER, "caller"},
};
#define N_PROGRESS_NAMES (int)(sizeof(progress_names) / sizeof(progress_names[0]))

const char *bls_progress_name(bls_progress_mode_t progress)
{
    for (int i = 0; i < N_PROGRESS_NAMES; i++)
        if (progress_names[i].progress == progress)
            return progress_names[i].name;
    return "unknown";
}

bls_status_t bls_progress_parse(const char *name, bls_progress_mode_t *progress_p)
{
    if (!name || !progress_p)
        return bls_error(BLS_ERR_ARG, "bls_progress_parse: name and progress_p are required");
    for (int i = 0; i < N_PROGRESS_NAMES; i++)
        if (!strcmp(name, progress_names[i].name)) {
            *progress_p = progress_names[i].progress;
            return BLS_OK;
        }
    return bls_error(BLS_ERR_ARG, "unknown progress '%s' (thread, thread-normal or caller)", name);
}

/* ---- the ring of posted iterations ---- */

void bls_rec_fill(bls_comm_t *c, bls_iter_rec_t *rec, bls_iter_t k, const bls_post_args_t *a)
{
    size_t P = (size_t)c->size;
    rec->iter = k;
    rec->done = 0;
    rec->recvbuf = a->recvbuf;
    rec->sendbuf = a->sendbuf;
    memcpy(rec->sendcounts, a->sendcounts, P * sizeof(size_t));
    memcpy(rec->sdispls, a->sdispls, P * sizeof(size_t));
    rec->sends_pending = 0;
    rec->counts_known = a->recvcounts != NULL;
    if (a->recvcounts)
        memcpy(rec->expected, a->recvcounts, P * sizeof(size_t));
    memcpy(rec->rdispls, a->rdispls, P * sizeof(size_t));
    memset(rec->arrived, 0, P * sizeof(size_t));
    memset(rec->have, 0, P);
    rec->missing = c->size;
    rec->status = BLS_OK;
    rec->msg[0] = '\0';
}

bls_status_t bls_report(bls_comm_t *c, bls_iter_rec_t *rec, size_t *recvcounts_out)
{
    if (recvcounts_out)
        memcpy(recvcounts_out, rec->arrived, (size_t)c->size * sizeof(size_t));
    bls_status_t st = rec->status;
    if (st != BLS_OK)
        bls_error(st, "%s", rec->msg);
    rec->iter = -1;
    c->n_completed++;
    return st;
}

bls_status_t bls_find_unreported(const bls_comm_t *c, bls_iter_t iter, const char *who)
{
    if (iter < 0 || iter >= c->n_posted)
        return bls_error(BLS_ERR_STATE, "%s: iteration %lld was never posted (%lld posted)", who,
                         (long long)iter, (long long)c->n_posted);
    if (c->ring[iter % c->nslots].iter != iter)
        return bls_error(BLS_ERR_STATE, "%s: iteration %lld was already reported", who,
                         (long long)iter);
    return BLS_OK;
}

bls_status_t bls_free_entry(bls_comm_t *c, bls_iter_t k, bls_iter_rec_t **rec_p)
{
    bls_iter_rec_t *rec = &c->ring[k % c->nslots];
    if (rec->iter >= 0)
        return bls_error(BLS_ERR_STATE,
                         "bls_post (iteration %lld): iteration %lld was never waited for; with "
                         "lag %d, wait for iteration k-L-2 before posting iteration k",
                         (long long)k, (long long)rec->iter, c->lag);
    *rec_p = rec;
    return BLS_OK;
}

bls_iter_t bls_oldest_unreported(const bls_comm_t *c)
{
    for (bls_iter_t k = c->n_posted - c->nslots; k < c->n_posted; k++)
        if (k >= 0 && c->ring[k % c->nslots].iter == k)
            return k;
    return -1;
}

bls_status_t bls_compare_counts(bls_comm_t *c, int64_t *all)
{
    int64_t mine = c->n_posted;
    int mrc = MPI_Allgather(&mine, 1, MPI_INT64_T, all, 1, MPI_INT64_T, c->mpi);
    if (mrc != MPI_SUCCESS)
        return bls_mpi_error(mrc, "bls_finish: MPI_Allgather of the iteration counts");
    for (int p = 0; p < c->size; p++)
        if (all[p] != mine)
            return bls_error(BLS_ERR_ITER_MISMATCH,
                             "bls_finish: this process (rank %d) posted %lld iterations but rank "
                             "%d posted %lld",
                             c->rank, (long long)mine, p, (long long)all[p]);
    return BLS_OK;
}

bls_status_t bls_to_int(const size_t *in, int *out, int n, const char *what, bls_iter_t k,
                        const char *mode)
{
    for (int i = 0; i < n; i++) {
        if (in[i] > INT_MAX)
            return bls_error(BLS_ERR_ARG,
                             "bls_post (iteration %lld, %s mode): %s[%d] = %zu exceeds the "
                             "INT_MAX that MPI accepts",
                             (long long)k, mode, what, i, in[i]);
        out[i] = (int)in[i];
    }
    return BLS_OK;
}
