/*
 * Adaptive lag in a run (dlrm_dist.h, bls:auto[:MAX]): each process decides before each batch
 * how far it runs ahead, at most MAX (the communicator's bound), with harness.h's lag policy.
 *
 * What the policy needs, every process's work per batch and when each posted, travels beside
 * the exchange: before posting batch k's pooled vectors a process posts, on a second libbls
 * communicator (BLS mode, lag MAX, no progress thread: 16 bytes per peer go out eagerly and are
 * picked up in this file's own calls), two doubles to every process: its work on batch k-1
 * and the moment it posts batch k, on process 0's clock (the session's offset).  So batch j is
 * known everywhere once every process posted batch j+1, which needs no process to wait for
 * another: the bound already holds the processes within MAX batches.  The exchange's own time
 * for batch j is when it was seen complete here minus the last process's post.
 *
 * Deadlock-free: posting meta batch k needs meta k-MAX-1 from everyone, and every process
 * posts meta j before data j; this process consumed data k-l-1 >= k-MAX-1 before producing k,
 * so every peer has posted meta k-MAX-1 already.
 *
 * Memory: MAX+2 slots of 2P doubles, a ring of 2 MAX + 8 rows of P doubles, the policy's
 * window (64 x P doubles): bounded, as libbls's own bookkeeping.
 */
#include "dist_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct autolag {
    harness_lag_policy_t *pol;
    bls_comm_t *comm;
    int P, M, R;    /* meta slots (MAX + 2), ring rows */
    double *send;   /* [M][2] */
    double *recv;   /* [M][P][2] */
    size_t *counts; /* [P] 2 */
    size_t *sdispl; /* [P] 0: every peer gets the same two doubles */
    size_t *rdispl; /* [P] 2p */
    int64_t posted, reported, fed;
    double *work;     /* [R][P] batch j's work, from meta j+1 */
    double *lastpost; /* [R] the last process's post of batch j, process 0's clock */
    double *seen;     /* [R] when batch j was seen complete here, process 0's clock */
};

void autolag_free(run_t *x)
{
    autolag_t *a = x->al;
    if (!a)
        return;
    harness_lag_policy_free(a->pol);
    bls_comm_destroy(a->comm);
    free(a->send);
    free(a->recv);
    free(a->counts);
    free(a->sdispl);
    free(a->rdispl);
    free(a->work);
    free(a->lastpost);
    free(a->seen);
    free(a);
    x->al = NULL;
}

dist_status_t autolag_begin(run_t *x, double timeout)
{
    if (!x->drv->auto_lag)
        return DIST_OK;
    const dist_session_t *s = x->s;
    int P = s->P, max = x->drv->lag;
    autolag_t *a = calloc(1, sizeof(*a));
    if (!a)
        return dist_error(DIST_ERR_NOMEM, "adaptive lag: out of memory");
    x->al = a;
    a->P = P;
    a->M = max + 2;
    a->R = 2 * max + 8;
    size_t Pz = (size_t)P;
    a->send = calloc((size_t)a->M * 2, sizeof(double));
    a->recv = calloc((size_t)a->M * Pz * 2, sizeof(double));
    a->counts = malloc(sizeof(size_t) * Pz);
    a->sdispl = calloc(Pz, sizeof(size_t));
    a->rdispl = malloc(sizeof(size_t) * Pz);
    a->work = calloc((size_t)a->R * Pz, sizeof(double));
    a->lastpost = calloc((size_t)a->R, sizeof(double));
    a->seen = calloc((size_t)a->R, sizeof(double));
    a->pol = harness_lag_policy_new(P, max, DIST_AUTO_WINDOW, DIST_AUTO_TOLERANCE);
    if (!a->send || !a->recv || !a->counts || !a->sdispl || !a->rdispl || !a->work ||
        !a->lastpost || !a->seen || !a->pol)
        return dist_error(DIST_ERR_NOMEM, "adaptive lag: out of memory for %d processes", P);
    for (int p = 0; p < P; p++) {
        a->counts[p] = 2;
        a->rdispl[p] = 2 * (size_t)p;
    }
    if (x->serving && x->opts)
        harness_lag_policy_bound(a->pol, x->opts->latency_bound);
    bls_config_t bc;
    bls_config_init(&bc);
    bc.mode = BLS_MODE_BLS;
    bc.lag = max;
    bc.datatype = MPI_DOUBLE;
    bc.max_block = 2;
    bc.timeout = timeout;
    bc.progress = BLS_PROGRESS_CALLER;
    if (bls_comm_create(s->comm, &bc, &a->comm) != BLS_OK)
        return dist_error(DIST_ERR_COMM, "adaptive lag: cannot create its communicator: %s",
                          bls_last_error());
    return DIST_OK;
}

/* Process 0's clock now. */
static double global_now(const run_t *x)
{
    return harness_now() - x->s->clock.offset;
}

/* Feeds the policy every batch known everywhere and consumed here, in order. */
static void feed(run_t *x)
{
    autolag_t *a = x->al;
    while (a->fed + 1 < a->reported && a->fed < x->consumed) {
        int64_t j = a->fed;
        size_t i = (size_t)(j % a->R);
        double arrival = x->arrivals ? x->arrivals[j] : NAN;
        harness_lag_observe(a->pol, a->work + i * (size_t)a->P, a->seen[i] - a->lastpost[i],
                            arrival);
        a->fed++;
    }
}

/* Meta batch j arrived from everyone: batch j-1's work and batch j's last post. */
static void record(autolag_t *a, int64_t j)
{
    const double *m = a->recv + (size_t)(j % a->M) * (size_t)a->P * 2;
    double last = -INFINITY;
    for (int p = 0; p < a->P; p++) {
        if (j > 0)
            a->work[(size_t)((j - 1) % a->R) * (size_t)a->P + (size_t)p] = m[2 * p];
        last = fmax(last, m[2 * p + 1]);
    }
    a->lastpost[j % a->R] = last;
}

/* Reports meta batches in order: those complete, or (wait) up to `upto` (exclusive). */
static dist_status_t reap(run_t *x, int64_t upto, int wait)
{
    autolag_t *a = x->al;
    while (a->reported < a->posted) {
        int flag = 1;
        int must = wait && a->reported < upto;
        bls_status_t st = must ? bls_wait(a->comm, a->reported, NULL)
                               : bls_test(a->comm, a->reported, &flag, NULL);
        if (st != BLS_OK)
            return dist_error(DIST_ERR_COMM, "adaptive lag: the figures of batch %lld: %s: %s",
                              (long long)a->reported, bls_strerror(st), bls_last_error());
        if (!flag)
            break;
        record(a, a->reported);
        a->reported++;
    }
    feed(x);
    return DIST_OK;
}

int autolag_choose(run_t *x)
{
    if (!x->al)
        return x->drv->lag;
    if (reap(x, 0, 0) != DIST_OK) /* an error shows again at the next post */
        return x->drv->lag;
    return harness_lag_choose(x->al->pol);
}

dist_status_t autolag_post(run_t *x, int64_t k)
{
    autolag_t *a = x->al;
    if (!a)
        return DIST_OK;
    /* libbls needs meta k-MAX-2 reported before k is posted */
    dist_status_t ds = reap(x, k - x->drv->lag - 1, 1);
    if (ds != DIST_OK)
        return ds;
    double *m = a->send + (size_t)(k % a->M) * 2;
    m[0] = k > 0 ? x->r->work[k - 1] : 0;
    m[1] = global_now(x);
    bls_iter_t it;
    bls_status_t st =
        bls_post(a->comm, m, a->counts, a->sdispl, a->recv + (size_t)(k % a->M) * (size_t)a->P * 2,
                 a->counts, a->rdispl, &it);
    if (st != BLS_OK)
        return dist_error(DIST_ERR_COMM, "adaptive lag: posting the figures of batch %lld: %s: %s",
                          (long long)k, bls_strerror(st), bls_last_error());
    a->posted++;
    return reap(x, 0, 0);
}

void autolag_seen(run_t *x, int64_t j)
{
    if (x->al)
        x->al->seen[j % x->al->R] = global_now(x);
}

dist_status_t autolag_finish(run_t *x)
{
    autolag_t *a = x->al;
    if (!a)
        return DIST_OK;
    dist_status_t ds = reap(x, a->posted, 1);
    if (ds == DIST_OK && bls_finish(a->comm) != BLS_OK)
        ds = dist_error(DIST_ERR_COMM, "adaptive lag: ending its communicator: %s",
                        bls_last_error());
    return ds;
}
