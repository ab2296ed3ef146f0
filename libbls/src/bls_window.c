/*
 * Algorithm: WINDOW mode, the naive pipeline: per iteration, an MPI_Irecv from and an
 * MPI_Isend to every peer, up to L+1 iterations in flight, each completed by MPI_Test from this
 * process's later calls (bls_polled.c).  No progress thread and no credits: an eager block
 * lands in MPI's buffers, but a large (rendezvous) one moves only while both sides are inside
 * MPI, so a peer that computes outside MPI holds up the transfer, and the bound then waits on
 * the peer's application.  BLS mode removes exactly that.  Counts must be stated (a receive is
 * posted with its size); a shorter block is BLS_ERR_COUNT with both sizes, a longer one MPI's
 * truncation error.
 */
#include "bls_polled.h"

#include <stdio.h>

/* Requests of one iteration: receives [0, P), sends [P, 2P). */
static int window_requests(int P)
{
    return 2 * P;
}

static bls_status_t window_issue(bls_comm_t *c, bls_iter_rec_t *rec, int tag, MPI_Request *reqs,
                                 int *ints)
{
    int P = c->size, *sc = ints, *rc = ints + 2 * P;
    bls_iter_t k = rec->iter;
    bls_status_t st = bls_to_int(rec->sendcounts, sc, P, "sendcounts", k, "WINDOW");
    if (st == BLS_OK)
        st = bls_to_int(rec->expected, rc, P, "recvcounts", k, "WINDOW");
    for (int q = 0; q < P && st == BLS_OK; q++) {
        int mrc = MPI_Irecv(rec->recvbuf + rec->rdispls[q] * c->elem, rc[q], c->elem_type, q, tag,
                            c->mpi, &reqs[q]);
        if (mrc == MPI_SUCCESS)
            mrc = MPI_Isend(rec->sendbuf + rec->sdispls[q] * c->elem, sc[q], c->elem_type, q, tag,
                            c->mpi, &reqs[P + q]);
        if (mrc != MPI_SUCCESS)
            st = bls_mpi_error(mrc, "bls_post: MPI_Irecv or MPI_Isend");
    }
    rec->sends_pending = P;
    return st;
}

static void window_completed(bls_comm_t *c, bls_iter_rec_t *rec, int i, const MPI_Status *st)
{
    if (i >= c->size) {
        rec->sends_pending--;
        return;
    }
    int n = 0;
    MPI_Get_count(st, c->elem_type, &n);
    rec->arrived[i] = (size_t)n;
    rec->have[i] = 1;
    rec->missing--;
    if ((size_t)n != rec->expected[i] && rec->status == BLS_OK) {
        rec->status = BLS_ERR_COUNT;
        snprintf(rec->msg, sizeof(rec->msg),
                 "iteration %lld, peer %d: expected %zu elements, "
                 "received %d",
                 (long long)rec->iter, i, rec->expected[i], n);
    }
}

/* Appends "LABEL p, q, ..." for the open requests among reqs[0 .. P) to buf at used. */
static size_t list_open(const MPI_Request *reqs, int P, const char *label, char *buf, size_t used,
                        size_t len)
{
    int n = 0;
    for (int p = 0; p < P && used + 16 < len; p++)
        if (reqs[p] != MPI_REQUEST_NULL)
            used += (size_t)snprintf(buf + used, len - used, "%s%d", n++ ? ", " : label, p);
    return used;
}

static void window_pending(const bls_comm_t *c, const MPI_Request *reqs, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t used = list_open(reqs, c->size, "the blocks of peers ", buf, 0, len);
    used = list_open(reqs + c->size, c->size,
                     used ? "; its sends to peers " : "its sends to peers ", buf, used, len);
    if (used == 0)
        snprintf(buf, len, "nothing");
}

static const bls_polled_alg_t window_alg = {window_requests, window_issue, window_completed,
                                            window_pending};

static bls_status_t window_start(bls_comm_t *c)
{
    return bls_polled_start(c, &window_alg);
}

const bls_mode_ops_t bls_window_ops = BLS_POLLED_OPS(BLS_MODE_WINDOW, "window", window_start);
