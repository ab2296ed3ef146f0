/*
 * Algorithm: IALLTOALLV mode, what an MPI user writes without this library: one
 * MPI_Ialltoallv per iteration, up to L+1 of them in flight, each completed by MPI_Test from
 * this process's later calls (bls_polled.c).  Lag 0 is MPI_Ialltoallv waited for in its own
 * iteration.  There is no progress thread: a nonblocking collective advances only inside MPI
 * calls, so a peer computing outside MPI stalls it, and the algorithm MPI picks (pairwise,
 * Bruck, ...) may itself synchronise the processes.  Counts must be stated (MPI's collective
 * takes no unknown counts); a peer sending more than stated is MPI's truncation error.
 */
#include "bls_polled.h"

#include <stdio.h>

static int ialltoallv_requests(int P)
{
    (void)P;
    return 1;
}

static bls_status_t ialltoallv_issue(bls_comm_t *c, bls_iter_rec_t *rec, int tag, MPI_Request *reqs,
                                     int *ints)
{
    (void)tag; /* collectives match by call order */
    int P = c->size, *sc = ints, *sd = ints + P, *rc = ints + 2 * P, *rd = ints + 3 * P;
    bls_iter_t k = rec->iter;
    bls_status_t st = bls_to_int(rec->sendcounts, sc, P, "sendcounts", k, "IALLTOALLV");
    if (st == BLS_OK)
        st = bls_to_int(rec->sdispls, sd, P, "sdispls", k, "IALLTOALLV");
    if (st == BLS_OK)
        st = bls_to_int(rec->expected, rc, P, "recvcounts", k, "IALLTOALLV");
    if (st == BLS_OK)
        st = bls_to_int(rec->rdispls, rd, P, "rdispls", k, "IALLTOALLV");
    if (st != BLS_OK)
        return st;
    int mrc = MPI_Ialltoallv(rec->sendbuf, sc, sd, c->elem_type, rec->recvbuf, rc, rd, c->elem_type,
                             c->mpi, &reqs[0]);
    return mrc == MPI_SUCCESS ? BLS_OK : bls_mpi_error(mrc, "bls_post: MPI_Ialltoallv");
}

static void ialltoallv_completed(bls_comm_t *c, bls_iter_rec_t *rec, int i, const MPI_Status *st)
{
    (void)i;
    (void)st;
    for (int p = 0; p < c->size; p++) {
        rec->arrived[p] = rec->expected[p];
        rec->have[p] = 1;
    }
    rec->missing = 0;
}

static void ialltoallv_pending(const bls_comm_t *c, const MPI_Request *reqs, char *buf, size_t len)
{
    (void)c;
    (void)reqs;
    snprintf(buf, len, "its MPI_Ialltoallv (MPI does not say which peers)");
}

static const bls_polled_alg_t ialltoallv_alg = {ialltoallv_requests, ialltoallv_issue,
                                                ialltoallv_completed, ialltoallv_pending};

static bls_status_t ialltoallv_start(bls_comm_t *c)
{
    return bls_polled_start(c, &ialltoallv_alg);
}

const bls_mode_ops_t bls_ialltoallv_ops =
    BLS_POLLED_OPS(BLS_MODE_IALLTOALLV, "ialltoallv", ialltoallv_start);
