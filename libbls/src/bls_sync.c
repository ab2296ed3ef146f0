/*
 * Algorithm: SYNC mode, the baseline.  Each bls_post() is one MPI_Alltoallv on the caller's
 * thread; the iteration is complete when bls_post() returns and only waits to be reported, so
 * pipelined drivers run unchanged in every mode.  When the receiver passes NULL counts, an
 * MPI_Alltoall of the counts runs first (the index-exchange pattern).  MPI's int counts and
 * displacements limit blocks to INT_MAX elements here; larger ones are rejected, not truncated.
 * Cost: MPI_Alltoallv's, nothing more; the int arrays are allocated once, at creation.
 */
#include "bls_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int *ints;    /* sc, sd, rc, rd: [4][P] MPI's int counts and displacements */
    int64_t *all; /* [P] bls_finish's gathered counts */
} sync_state_t;

static bls_status_t sync_start(bls_comm_t *c)
{
    sync_state_t *s = calloc(1, sizeof(*s));
    if (s) {
        s->ints = malloc(4 * (size_t)c->size * sizeof(int));
        s->all = malloc((size_t)c->size * sizeof(int64_t));
    }
    c->state = s;
    if (!s || !s->ints || !s->all)
        return bls_error(BLS_ERR_NOMEM, "bls_comm_create: out of memory");
    c->buffer_bytes += 4 * (size_t)c->size * sizeof(int) + (size_t)c->size * sizeof(int64_t);
    return BLS_OK;
}

static void sync_stop(bls_comm_t *c)
{
    sync_state_t *s = c->state;
    if (s) {
        free(s->ints);
        free(s->all);
    }
    free(s);
    c->state = NULL;
}

/* MPI_Alltoallv (after an MPI_Alltoall of the counts when they are unknown) into rc. */
static bls_status_t exchange(bls_comm_t *c, const bls_post_args_t *a, bls_iter_t k, int *rc)
{
    int P = c->size, *sc = ((sync_state_t *)c->state)->ints, *sd = sc + P, *rd = sc + 3 * P;
    bls_status_t st = bls_to_int(a->sendcounts, sc, P, "sendcounts", k, "SYNC");
    if (st == BLS_OK)
        st = bls_to_int(a->sdispls, sd, P, "sdispls", k, "SYNC");
    if (st == BLS_OK)
        st = bls_to_int(a->rdispls, rd, P, "rdispls", k, "SYNC");
    if (st == BLS_OK && a->recvcounts)
        st = bls_to_int(a->recvcounts, rc, P, "recvcounts", k, "SYNC");
    if (st == BLS_OK && !a->recvcounts) {
        int mrc = MPI_Alltoall(sc, 1, MPI_INT, rc, 1, MPI_INT, c->mpi);
        if (mrc != MPI_SUCCESS)
            st = bls_mpi_error(mrc, "bls_post: MPI_Alltoall of the counts");
    }
    if (st != BLS_OK)
        return st;
    MPI_Datatype t = c->elem_type;
    int mrc = MPI_Alltoallv(a->sendbuf, sc, sd, t, a->recvbuf, rc, rd, t, c->mpi);
    if (mrc == MPI_SUCCESS)
        return BLS_OK;
    int cls = 0;
    MPI_Error_class(mrc, &cls);
    if (cls == MPI_ERR_TRUNCATE)
        return bls_error(BLS_ERR_COUNT,
                         "iteration %lld: MPI_Alltoallv reports truncation: a peer sent more "
                         "than this process expected",
                         (long long)k);
    return bls_mpi_error(mrc, "bls_post: MPI_Alltoallv");
}

static bls_status_t sync_post(bls_comm_t *c, const bls_post_args_t *a, bls_iter_t *iter_p)
{
    bls_iter_t k = c->n_posted;
    bls_iter_rec_t *rec;
    bls_status_t st = bls_free_entry(c, k, &rec);
    if (st != BLS_OK)
        return st;
    int *rc = ((sync_state_t *)c->state)->ints + 2 * c->size;
    double t0 = bls_now();
    st = exchange(c, a, k, rc);
    c->post_wait_seconds += bls_now() - t0;
    if (st != BLS_OK)
        return st;
    bls_rec_fill(c, rec, k, a);
    for (int p = 0; p < c->size; p++)
        rec->arrived[p] = (size_t)rc[p];
    rec->missing = 0;
    rec->done = 1;
    c->n_posted = k + 1;
    *iter_p = k;
    if (c->notify)
        c->notify(c->notify_arg, k);
    return BLS_OK;
}

static bls_status_t sync_wait(bls_comm_t *c, bls_iter_t iter, int blocking, int *flag_p,
                              size_t *recvcounts_out)
{
    (void)blocking; /* complete since its post */
    if (flag_p)
        *flag_p = 1;
    return bls_report(c, &c->ring[iter % c->nslots], recvcounts_out);
}

static bls_status_t sync_wait_any(bls_comm_t *c, bls_iter_t *iter_p, size_t *recvcounts_out)
{
    bls_iter_t k = bls_oldest_unreported(c);
    if (k < 0)
        return bls_error(BLS_ERR_STATE, "bls_wait_any: no posted iteration is unreported");
    *iter_p = k;
    return bls_report(c, &c->ring[k % c->nslots], recvcounts_out);
}

/* Every post was a collective, so peers can only differ in how many they posted if the job is
 * already broken; still compare, for the same report as the other modes. */
static bls_status_t sync_finish(bls_comm_t *c)
{
    return bls_compare_counts(c, ((sync_state_t *)c->state)->all);
}

static void sync_pending(bls_comm_t *c, bls_iter_t iter, char *buf, size_t len)
{
    (void)c;
    (void)iter;
    snprintf(buf, len, "nothing");
}

static double sync_cpu(const bls_comm_t *c)
{
    (void)c;
    return 0.0;
}

const bls_mode_ops_t bls_sync_ops = {
    .mode = BLS_MODE_SYNC,
    .name = "sync",
    .needs_thread_multiple = 0,
    .needs_recvcounts = 0,
    .start = sync_start,
    .stop = sync_stop,
    .post = sync_post,
    .wait = sync_wait,
    .wait_any = sync_wait_any,
    .finish = sync_finish,
    .pending = sync_pending,
    .cpu = sync_cpu,
};
