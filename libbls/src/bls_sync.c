/*
 * Algorithm: SYNC mode, the baseline.  Each bls_post() is one MPI_Alltoallv on the caller's
 * thread; the iteration is complete when bls_post() returns and only waits to be reported, so
 * pipelined drivers run unchanged in both modes.  When the receiver passes NULL counts, an
 * MPI_Alltoall of the counts runs first (the index-exchange pattern).  MPI's int counts and
 * displacements limit blocks to INT_MAX elements here; larger ones are rejected, not truncated.
 */
#include "bls_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static bls_status_t to_int(const size_t *in, int *out, int n, const char *what, bls_iter_t k)
{
    for (int i = 0; i < n; i++) {
        if (in[i] > INT_MAX)
            return bls_error(BLS_ERR_ARG,
                             "bls_post (iteration %lld, SYNC mode): %s[%d] = %zu exceeds the "
                             "INT_MAX that MPI_Alltoallv accepts",
                             (long long)k, what, i, in[i]);
        out[i] = (int)in[i];
    }
    return BLS_OK;
}

bls_status_t bls_sync_post(bls_comm_t *c, const void *sendbuf, const size_t *sendcounts,
                           const size_t *sdispls, void *recvbuf, const size_t *recvcounts,
                           const size_t *rdispls, bls_iter_t *iter_p)
{
    bls_iter_t k = c->n_posted;
    bls_iter_rec_t *rec = &c->ring[k % c->nslots];
    if (rec->iter >= 0)
        return bls_error(BLS_ERR_STATE,
                         "bls_post (iteration %lld): iteration %lld was never waited for; with "
                         "lag %d, wait for iteration k-L-2 before posting iteration k",
                         (long long)k, (long long)rec->iter, c->lag);
    int P = c->size;
    int *ints = malloc(4 * (size_t)P * sizeof(int));
    if (!ints)
        return bls_error(BLS_ERR_NOMEM, "bls_post: out of memory");
    int *sc = ints, *sd = ints + P, *rc = ints + 2 * P, *rd = ints + 3 * P;
    bls_status_t st = to_int(sendcounts, sc, P, "sendcounts", k);
    if (st == BLS_OK)
        st = to_int(sdispls, sd, P, "sdispls", k);
    if (st == BLS_OK)
        st = to_int(rdispls, rd, P, "rdispls", k);
    if (st == BLS_OK && recvcounts)
        st = to_int(recvcounts, rc, P, "recvcounts", k);
    double t0 = bls_now();
    if (st == BLS_OK && !recvcounts) {
        int mrc = MPI_Alltoall(sc, 1, MPI_INT, rc, 1, MPI_INT, c->mpi);
        if (mrc != MPI_SUCCESS)
            st = bls_mpi_error(mrc, "bls_post: MPI_Alltoall of the counts");
    }
    if (st == BLS_OK) {
        MPI_Datatype t = c->elem_type;
        int mrc = MPI_Alltoallv(sendbuf, sc, sd, t, recvbuf, rc, rd, t, c->mpi);
        if (mrc != MPI_SUCCESS) {
            int cls = 0;
            MPI_Error_class(mrc, &cls);
            if (cls == MPI_ERR_TRUNCATE)
                st = bls_error(BLS_ERR_COUNT,
                               "iteration %lld: MPI_Alltoallv reports truncation: a peer sent "
                               "more than this process expected",
                               (long long)k);
            else
                st = bls_mpi_error(mrc, "bls_post: MPI_Alltoallv");
        }
    }
    c->post_wait_seconds += bls_now() - t0;
    if (st == BLS_OK) {
        bls_rec_fill(c, rec, k, sendbuf, sendcounts, sdispls, recvbuf, recvcounts, rdispls);
        for (int p = 0; p < P; p++)
            rec->arrived[p] = (size_t)rc[p];
        rec->missing = 0;
        rec->done = 1;
        c->n_posted = k + 1;
        *iter_p = k;
        if (c->notify)
            c->notify(c->notify_arg, k);
    }
    free(ints);
    return st;
}

bls_status_t bls_sync_finish(bls_comm_t *c)
{
    /* Every post was a collective, so peers can only differ in how many they posted if the
     * job is already broken; still compare, for the same report as BLS mode. */
    int64_t mine = c->n_posted;
    int64_t *all = malloc((size_t)c->size * sizeof(int64_t));
    if (!all)
        return bls_error(BLS_ERR_NOMEM, "bls_finish: out of memory");
    int mrc = MPI_Allgather(&mine, 1, MPI_INT64_T, all, 1, MPI_INT64_T, c->mpi);
    bls_status_t st = BLS_OK;
    if (mrc != MPI_SUCCESS)
        st = bls_mpi_error(mrc, "bls_finish: MPI_Allgather of the iteration counts");
    for (int p = 0; p < c->size && st == BLS_OK; p++)
        if (all[p] != mine)
            st = bls_error(BLS_ERR_ITER_MISMATCH,
                           "bls_finish: this process (rank %d) posted %lld iterations but rank "
                           "%d posted %lld",
                           c->rank, (long long)mine, p, (long long)all[p]);
    free(all);
    return st;
}
