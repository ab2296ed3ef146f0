/*
 * Algorithm: BLS mode, a bounded-lag pipelined alltoallv over MPI point-to-point.
 *
 * Slots.  With lag L there are S = L+2 of everything: ring entries (posted, unreported
 * iterations), send slots and receive slots per peer.  Iteration k uses index k % S.
 *
 * Why S = L+2 receive slots suffice for "credits, not blocking".  Peer p can post k only after
 * its iteration k-L-1 is complete, which needs this process's block for k-L-1; so when this
 * process has posted up to m, no peer has posted beyond m+L+1.  And since posting m required
 * every iteration <= m-L-1 to be complete here, the receive slots hold iterations >= m-L.  A
 * receive for iteration j is posted into slot j % S as soon as iteration j-S was delivered;
 * a sender whose receiver has no slot yet (rendezvous) simply keeps the block in its own send
 * slot: MPI does not move it before the matching receive exists.  Send slot k % S is reused
 * by k+S only after all sends from it completed; under the bound those sends always have a
 * posted receive, so post() waits on data movement at most, never on a peer's application.
 *
 * Matching.  The tag is k mod tag_cycle with tag_cycle > 2L+2, larger than the window of
 * iterations a peer can have unmatched towards this process, so blocks of different iterations
 * are never mixed; MPI's non-overtaking order is not relied upon.
 *
 * Progress.  Only the progress thread calls MPI after creation.  It issues the sends of newly
 * posted iterations, reposts receives into freed slots, tests everything with MPI_Testsome and
 * copies arrived blocks into the receiver's buffer once that iteration is posted.  It polls
 * without sleeping while a caller is blocked in this library, backs off to poll_max_us sleeps
 * while an iteration is outstanding, and sleeps 1 ms at a time when nothing is.  A post or a
 * waiter wakes it at once.
 *
 * Locking.  comm->lock guards the ring, the slot states and the counters.  The caller's thread
 * fills a ring entry and its send slot; the progress thread owns the MPI requests and the
 * receive slots.  Copies of blocks run without the lock: nobody else touches a receive slot or
 * a not-yet-done ring entry's buffer.
 */
#define _GNU_SOURCE
#include "bls_internal.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#define IDLE_SLEEP_US 1000
#define SPIN_POLLS 32

enum { TAG_CONTROL_OFFSET = 0 };

static size_t ridx(const bls_comm_t *c, int slot, int p) { return (size_t)slot * c->size + p; }
static int tag_of(const bls_comm_t *c, bls_iter_t k) { return (int)(k % c->tag_cycle); }
static int ctrl_tag(const bls_comm_t *c) { return c->tag_cycle + TAG_CONTROL_OFFSET; }

/* Request layout: [0, SP) receives, [SP, 2SP) sends, then P control receives, P control sends. */
static MPI_Request *recv_req(bls_comm_t *c, int slot, int p) { return &c->reqs[ridx(c, slot, p)]; }
static MPI_Request *send_req(bls_comm_t *c, int slot, int q)
{
    return &c->reqs[(size_t)c->nslots * c->size + ridx(c, slot, q)];
}
static MPI_Request *ctrl_recv_req(bls_comm_t *c, int p)
{
    return &c->reqs[2 * (size_t)c->nslots * c->size + p];
}
static MPI_Request *ctrl_send_req(bls_comm_t *c, int q)
{
    return &c->reqs[2 * (size_t)c->nslots * c->size + c->size + q];
}

static void abs_timespec(struct timespec *ts, double at)
{
    ts->tv_sec = (time_t)at;
    ts->tv_nsec = (long)((at - (double)ts->tv_sec) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Waits on wake_user until woken or the deadline (0: none); returns 0 on timeout. */
static int wait_user(bls_comm_t *c, double deadline)
{
    if (deadline <= 0) {
        pthread_cond_wait(&c->wake_user, &c->lock);
        return 1;
    }
    if (bls_now() >= deadline)
        return 0;
    struct timespec ts;
    abs_timespec(&ts, deadline);
    pthread_cond_timedwait(&c->wake_user, &c->lock, &ts);
    return 1;
}

static void set_fatal(bls_comm_t *c, int mpi_rc, const char *what)
{
    if (c->fatal != BLS_OK)
        return;
    bls_mpi_error(mpi_rc, what);
    c->fatal = BLS_ERR_MPI;
    snprintf(c->fatal_msg, sizeof(c->fatal_msg), "rank %d: %s", c->rank, bls_last_error());
    pthread_cond_broadcast(&c->wake_user);
}

static void rec_fail(bls_iter_rec_t *rec, bls_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void rec_fail(bls_iter_rec_t *rec, bls_status_t st, const char *fmt, ...)
{
    if (rec->status != BLS_OK)
        return; /* the first failure is the one reported */
    rec->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rec->msg, sizeof(rec->msg), fmt, ap);
    va_end(ap);
}

static void rec_block_in(bls_comm_t *c, bls_iter_rec_t *rec, int p)
{
    rec->have[p] = 1;
    if (--rec->missing == 0) {
        rec->done = 1;
        pthread_cond_broadcast(&c->wake_user);
    }
}

/* A peer announced its final count: iterations it will never post cannot complete. */
static void fail_beyond_final(bls_comm_t *c, int p)
{
    for (int s = 0; s < c->nslots; s++) {
        bls_iter_rec_t *rec = &c->ring[s];
        if (rec->iter < 0 || rec->done || rec->have[p] || rec->iter < c->peer_final[p])
            continue;
        rec_fail(rec, BLS_ERR_PEER_FINISHED,
                 "iteration %lld: peer %d finished after posting %lld iterations; its block for "
                 "this iteration will never arrive",
                 (long long)rec->iter, p, (long long)c->peer_final[p]);
        rec->missing = 0;
        rec->done = 1;
        pthread_cond_broadcast(&c->wake_user);
    }
}

/*
 * Moves an arrived block of (slot, p) into its iteration's buffer.  Called with the lock held;
 * drops it around the copy.  Frees the slot for the next iteration it serves.
 */
static void deliver(bls_comm_t *c, int slot, int p)
{
    size_t i = ridx(c, slot, p);
    bls_iter_t j = c->recv_iter[i];
    bls_iter_rec_t *rec = &c->ring[j % c->nslots];
    size_t n = c->recv_count[i];
    if (rec->iter == j && !rec->done) {
        rec->arrived[p] = n;
        if (rec->counts_known && n != rec->expected[p]) {
            rec_fail(rec, BLS_ERR_COUNT,
                     "iteration %lld, peer %d: expected %zu elements, received %zu",
                     (long long)j, p, rec->expected[p], n);
        } else if (n > 0) {
            char *dst = rec->recvbuf + rec->rdispls[p] * c->elem;
            const char *src = c->recv_slots + (size_t)slot * c->recv_slot_bytes + c->recv_off[p];
            pthread_mutex_unlock(&c->lock);
            memcpy(dst, src, n * c->elem);
            pthread_mutex_lock(&c->lock);
        }
        rec_block_in(c, rec, p);
    }
    /* else: the iteration already failed for good; the block is dropped. */
    c->recv_state[i] = RSLOT_IDLE;
    c->recv_iter[i] = j + c->nslots;
}

static int post_receive(bls_comm_t *c, int slot, int p)
{
    size_t i = ridx(c, slot, p);
    bls_iter_t j = c->recv_iter[i];
    char *buf = c->recv_slots + (size_t)slot * c->recv_slot_bytes + c->recv_off[p];
    int rc = MPI_Irecv(buf, (int)(c->max_recv[p] * c->elem), MPI_BYTE, p, tag_of(c, j), c->mpi,
                       recv_req(c, slot, p));
    if (rc != MPI_SUCCESS) {
        set_fatal(c, rc, "MPI_Irecv of a block");
        return 0;
    }
    c->recv_state[i] = RSLOT_RECEIVING;
    return 1;
}

/* Issues what posts asked for: sends, receives into free slots, final counts.  Lock held. */
static int issue_work(bls_comm_t *c)
{
    int did = 0;
    while (c->n_issued < c->n_posted && c->fatal == BLS_OK) {
        bls_iter_t k = c->n_issued;
        int slot = (int)(k % c->nslots);
        const char *base = c->send_slots + (size_t)slot * c->send_slot_bytes;
        for (int q = 0; q < c->size; q++) {
            if (q == c->rank)
                continue;
            size_t n = c->send_count[ridx(c, slot, q)];
            int rc = MPI_Isend(base + c->send_off[q], (int)(n * c->elem), MPI_BYTE, q,
                               tag_of(c, k), c->mpi, send_req(c, slot, q));
            if (rc != MPI_SUCCESS) {
                set_fatal(c, rc, "MPI_Isend of a block");
                return did;
            }
            c->send_pending[slot]++;
        }
        c->n_issued++;
        did = 1;
    }
    for (int s = 0; s < c->nslots; s++)
        for (int p = 0; p < c->size; p++) {
            size_t i = ridx(c, s, p);
            if (p == c->rank || c->fatal != BLS_OK)
                continue;
            if (c->recv_state[i] == RSLOT_ARRIVED && c->recv_iter[i] < c->n_posted) {
                deliver(c, s, p);
                did = 1;
            }
            if (c->recv_state[i] == RSLOT_IDLE && post_receive(c, s, p))
                did = 1;
        }
    if (c->drain_to_send && c->fatal == BLS_OK) {
        /* Every peer has receives posted for exactly the iterations N .. N+S-1 (N = the
         * common final count): one empty message each matches them, so a finished
         * communicator holds no request and nothing relies on MPI_Cancel. */
        for (bls_iter_t j = c->n_posted; j < c->n_posted + c->nslots; j++) {
            int slot = (int)(j % c->nslots);
            for (int q = 0; q < c->size; q++) {
                if (q == c->rank)
                    continue;
                int rc = MPI_Isend(c->send_slots, 0, MPI_BYTE, q, tag_of(c, j), c->mpi,
                                   send_req(c, slot, q));
                if (rc != MPI_SUCCESS) {
                    set_fatal(c, rc, "MPI_Isend of a drain message");
                    return did;
                }
                c->send_pending[slot]++;
            }
        }
        c->drain_to_send = 0;
        did = 1;
    }
    if (c->final_to_send && c->fatal == BLS_OK) {
        for (int q = 0; q < c->size; q++) {
            if (q == c->rank)
                continue;
            int rc = MPI_Isend(&c->final_out, 1, MPI_INT64_T, q, ctrl_tag(c), c->mpi,
                               ctrl_send_req(c, q));
            if (rc != MPI_SUCCESS) {
                set_fatal(c, rc, "MPI_Isend of the final iteration count");
                return did;
            }
            c->final_sends_pending++;
        }
        c->final_to_send = 0;
        did = 1;
    }
    return did;
}

static int test_requests(bls_comm_t *c)
{
    int outcount = 0;
    pthread_mutex_unlock(&c->lock);
    int rc = MPI_Testsome(c->nreqs, c->reqs, &outcount, c->done_idx, c->statuses);
    pthread_mutex_lock(&c->lock);
    if (rc != MPI_SUCCESS) {
        /* Name the peer of the first failed request when MPI tells us. */
        char what[128] = "MPI_Testsome";
        for (int i = 0; i < outcount; i++)
            if (c->statuses[i].MPI_ERROR != MPI_SUCCESS) {
                snprintf(what, sizeof(what), "communication with peer %d",
                         c->statuses[i].MPI_SOURCE);
                rc = c->statuses[i].MPI_ERROR;
                break;
            }
        set_fatal(c, rc, what);
        return 0;
    }
    if (outcount == MPI_UNDEFINED)
        return 0;
    size_t SP = (size_t)c->nslots * c->size;
    for (int n = 0; n < outcount; n++) {
        size_t r = (size_t)c->done_idx[n];
        if (r < SP) {
            int slot = (int)(r / c->size), p = (int)(r % c->size);
            int bytes = 0;
            MPI_Get_count(&c->statuses[n], MPI_BYTE, &bytes);
            c->recv_count[r] = (size_t)bytes / c->elem;
            c->recv_state[r] = RSLOT_ARRIVED;
            if (c->recv_iter[r] < c->n_posted)
                deliver(c, slot, p);
            else if (c->finishing)
                pthread_cond_broadcast(&c->wake_user);
        } else if (r < 2 * SP) {
            int slot = (int)((r - SP) / c->size);
            if (--c->send_pending[slot] == 0)
                pthread_cond_broadcast(&c->wake_user);
        } else if (r < 2 * SP + (size_t)c->size) {
            int p = (int)(r - 2 * SP);
            c->peer_final[p] = c->final_in[p];
            fail_beyond_final(c, p);
            pthread_cond_broadcast(&c->wake_user);
        } else {
            if (--c->final_sends_pending == 0)
                pthread_cond_broadcast(&c->wake_user);
        }
    }
    return outcount > 0;
}

static int outstanding_sends(const bls_comm_t *c)
{
    for (int s = 0; s < c->nslots; s++)
        if (c->send_pending[s] > 0)
            return 1;
    return c->final_sends_pending > 0;
}

static int receiving(const bls_comm_t *c)
{
    for (size_t i = 0; i < (size_t)c->nslots * c->size; i++)
        if (c->recv_state[i] == RSLOT_RECEIVING)
            return 1;
    return 0;
}

/* Anything this process is waiting for: a posted iteration not yet complete, or a send. */
static int outstanding(const bls_comm_t *c)
{
    for (int s = 0; s < c->nslots; s++)
        if ((c->ring[s].iter >= 0 && !c->ring[s].done) || c->send_pending[s] > 0)
            return 1;
    return c->final_sends_pending > 0 || c->finishing;
}

static void *progress_main(void *arg)
{
    bls_comm_t *c = arg;
    /* Short sleeps must be short: the default 50 us timer slack would stretch every poll. */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    unsigned idle_polls = 0;
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        int did = 0;
        if (c->fatal == BLS_OK) {
            did |= issue_work(c);
            did |= test_requests(c);
        }
        if (did) {
            idle_polls = 0;
            continue;
        }
        idle_polls++;
        if (c->fatal != BLS_OK) {
            pthread_cond_wait(&c->wake_progress, &c->lock);
            continue;
        }
        if (c->waiters > 0 || idle_polls < SPIN_POLLS) {
            pthread_mutex_unlock(&c->lock);
            sched_yield();
            pthread_mutex_lock(&c->lock);
            continue;
        }
        long us = IDLE_SLEEP_US;
        if (outstanding(c)) {
            unsigned shift = idle_polls - SPIN_POLLS;
            us = shift >= 20 ? c->poll_max_us : (1L << shift);
            if (us > c->poll_max_us)
                us = c->poll_max_us;
        }
        struct timespec ts;
        abs_timespec(&ts, bls_now() + 1e-6 * (double)us);
        pthread_cond_timedwait(&c->wake_progress, &c->lock, &ts);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

bls_status_t bls_lagged_start(bls_comm_t *c)
{
    size_t P = (size_t)c->size, S = (size_t)c->nslots;
    int tag_ub_flag = 0;
    int *tag_ub = NULL;
    MPI_Comm_get_attr(c->mpi, MPI_TAG_UB, &tag_ub, &tag_ub_flag);
    c->tag_cycle = 4 * c->nslots;
    if (tag_ub_flag && tag_ub && c->tag_cycle + 1 > *tag_ub)
        return bls_error(BLS_ERR_ARG, "bls_comm_create: lag %d needs tags up to %d, but MPI's "
                                      "MPI_TAG_UB is %d",
                         c->lag, c->tag_cycle, *tag_ub);

    c->send_off = calloc(P, sizeof(size_t));
    c->recv_off = calloc(P, sizeof(size_t));
    c->send_count = calloc(S * P, sizeof(size_t));
    c->send_pending = calloc(S, sizeof(int));
    c->recv_iter = calloc(S * P, sizeof(bls_iter_t));
    c->recv_state = calloc(S * P, sizeof(int));
    c->recv_count = calloc(S * P, sizeof(size_t));
    c->nreqs = (int)(2 * S * P + 2 * P);
    c->reqs = malloc((size_t)c->nreqs * sizeof(MPI_Request));
    c->done_idx = calloc((size_t)c->nreqs, sizeof(int));
    c->statuses = calloc((size_t)c->nreqs, sizeof(MPI_Status));
    c->final_in = calloc(P, sizeof(int64_t));
    c->peer_final = calloc(P, sizeof(int64_t));
    if (!c->send_off || !c->recv_off || !c->send_count || !c->send_pending || !c->recv_iter ||
        !c->recv_state || !c->recv_count || !c->reqs || !c->done_idx || !c->statuses ||
        !c->final_in || !c->peer_final)
        return bls_error(BLS_ERR_NOMEM, "bls_comm_create: out of memory");
    for (int r = 0; r < c->nreqs; r++)
        c->reqs[r] = MPI_REQUEST_NULL;
    size_t so = 0, ro = 0;
    for (size_t q = 0; q < P; q++) {
        c->send_off[q] = so;
        c->recv_off[q] = ro;
        if ((int)q != c->rank) { /* the block to oneself is copied directly */
            so += c->max_send[q] * c->elem;
            ro += c->max_recv[q] * c->elem;
        }
        c->peer_final[q] = -1;
    }
    c->send_slot_bytes = so;
    c->recv_slot_bytes = ro;
    if ((so > 0 && S > SIZE_MAX / so) || (ro > 0 && S > SIZE_MAX / ro))
        return bls_error(BLS_ERR_ARG, "bls_comm_create: slot sizes overflow");
    c->send_slots = malloc(S * so + 1);
    c->recv_slots = malloc(S * ro + 1);
    if (!c->send_slots || !c->recv_slots)
        return bls_error(BLS_ERR_NOMEM,
                         "bls_comm_create: cannot allocate %zu bytes of slots (lag %d: %d slots "
                         "of %zu send and %zu receive bytes)",
                         S * (so + ro), c->lag, c->nslots, so, ro);
    c->buffer_bytes = S * (so + ro);
    for (size_t s = 0; s < S; s++)
        for (size_t p = 0; p < P; p++) {
            c->recv_iter[s * P + p] = (bls_iter_t)s;
            c->recv_state[s * P + p] = RSLOT_IDLE;
        }
    for (int p = 0; p < c->size; p++) {
        if (p == c->rank)
            continue;
        int rc = MPI_Irecv(&c->final_in[p], 1, MPI_INT64_T, p, ctrl_tag(c), c->mpi,
                           ctrl_recv_req(c, p));
        if (rc != MPI_SUCCESS)
            return bls_mpi_error(rc, "bls_comm_create: MPI_Irecv of the control channel");
    }

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake_progress, &ca);
    pthread_cond_init(&c->wake_user, &ca);
    pthread_condattr_destroy(&ca);
    c->thread_started = -1; /* mutex and conditions exist */
    int err = pthread_create(&c->thread, NULL, progress_main, c);
    if (err != 0)
        return bls_error(BLS_ERR_NOMEM, "bls_comm_create: cannot start the progress thread: %s",
                         strerror(err));
    c->thread_started = 1;
    return BLS_OK;
}

void bls_lagged_stop(bls_comm_t *c)
{
    if (c->thread_started == 1) {
        pthread_mutex_lock(&c->lock);
        c->stop = 1;
        pthread_cond_signal(&c->wake_progress);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
    }
    if (c->thread_started != 0) {
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->wake_progress);
        pthread_cond_destroy(&c->wake_user);
    }
    int leak_send_slots = 0;
    if (c->reqs) {
        size_t SP = (size_t)c->nslots * c->size;
        for (int r = 0; r < c->nreqs; r++) {
            if (c->reqs[r] == MPI_REQUEST_NULL)
                continue;
            int is_recv = (size_t)r < SP || ((size_t)r >= 2 * SP && (size_t)r < 2 * SP + (size_t)c->size);
            if (is_recv) {
                MPI_Cancel(&c->reqs[r]);
                MPI_Wait(&c->reqs[r], MPI_STATUS_IGNORE);
            } else {
                /* A send no peer will receive: let MPI finish or drop it in the background;
                 * its buffer must then outlive us (only after errors). */
                MPI_Request_free(&c->reqs[r]);
                leak_send_slots = 1;
            }
        }
    }
    if (!leak_send_slots) {
        free(c->send_slots);
        free(c->final_in);
    }
    free(c->recv_slots);
    free(c->send_off);
    free(c->recv_off);
    free(c->send_count);
    free(c->send_pending);
    free(c->recv_iter);
    free(c->recv_state);
    free(c->recv_count);
    free(c->reqs);
    free(c->done_idx);
    free(c->statuses);
    free(c->peer_final);
}

/* Names the peers whose blocks of rec are still missing, into buf. */
static void missing_peers(const bls_comm_t *c, const bls_iter_rec_t *rec, char *buf, size_t len)
{
    size_t used = 0;
    int n = 0;
    buf[0] = '\0';
    for (int p = 0; p < c->size && used + 16 < len; p++)
        if (!rec->have[p]) {
            used += (size_t)snprintf(buf + used, len - used, "%s%d", n ? ", " : "", p);
            n++;
        }
    if (n == 0)
        snprintf(buf, len, "none");
}

/* Caller holds the lock.  Fatal errors are reported to every later call. */
static bls_status_t check_fatal(bls_comm_t *c)
{
    if (c->fatal != BLS_OK)
        return bls_error(c->fatal, "%s", c->fatal_msg);
    return BLS_OK;
}

static bls_status_t timeout_error(bls_comm_t *c, const char *who, const bls_iter_rec_t *rec)
{
    char peers[512];
    missing_peers(c, rec, peers, sizeof(peers));
    return bls_error(BLS_ERR_TIMEOUT,
                     "%s: iteration %lld still misses the blocks of peers %s after %.3g s "
                     "(rank %d)",
                     who, (long long)rec->iter, peers, c->timeout, c->rank);
}

bls_status_t bls_lagged_post(bls_comm_t *c, const void *sendbuf, const size_t *sendcounts,
                             const size_t *sdispls, void *recvbuf, const size_t *recvcounts,
                             const size_t *rdispls, bls_iter_t *iter_p)
{
    bls_iter_t k = c->n_posted;
    int slot = (int)(k % c->nslots);
    bls_iter_rec_t *rec = &c->ring[slot];
    double t0 = bls_now(), deadline = bls_deadline(c);
    bls_status_t st = BLS_OK;

    pthread_mutex_lock(&c->lock);
    c->waiters++;
    pthread_cond_signal(&c->wake_progress);
    /* The bound: every iteration <= k-L-1 complete (k-L-1 and the entry k reuses, k-L-2). */
    for (bls_iter_t j = k - c->nslots; j <= k - c->lag - 1 && st == BLS_OK; j++) {
        if (j < 0)
            continue;
        bls_iter_rec_t *old = &c->ring[j % c->nslots];
        while (old->iter == j && !old->done && st == BLS_OK) {
            st = check_fatal(c);
            if (st == BLS_OK && !wait_user(c, deadline))
                st = timeout_error(c, "bls_post (lag bound)", old);
        }
    }
    if (st == BLS_OK && rec->iter >= 0)
        st = bls_error(BLS_ERR_STATE,
                       "bls_post (iteration %lld): iteration %lld was never waited for; with lag "
                       "%d, wait for iteration k-L-2 before posting iteration k",
                       (long long)k, (long long)rec->iter, c->lag);
    /* The send slot is free once the sends of iteration k-S are complete. */
    while (st == BLS_OK && c->send_pending[slot] > 0) {
        st = check_fatal(c);
        if (st == BLS_OK && !wait_user(c, deadline))
            st = bls_error(BLS_ERR_TIMEOUT,
                           "bls_post (iteration %lld): the sends of iteration %lld are still in "
                           "flight after %.3g s (rank %d)",
                           (long long)k, (long long)(k - c->nslots), c->timeout, c->rank);
    }
    c->waiters--;
    if (st == BLS_OK)
        st = check_fatal(c);
    pthread_mutex_unlock(&c->lock);
    c->post_wait_seconds += bls_now() - t0;
    if (st != BLS_OK)
        return st;

    /* Neither the slot nor the entry is seen by the progress thread until n_posted moves. */
    char *base = c->send_slots + (size_t)slot * c->send_slot_bytes;
    for (int q = 0; q < c->size; q++) {
        size_t n = sendcounts[q];
        c->send_count[ridx(c, slot, q)] = n;
        if (q != c->rank && n > 0)
            memcpy(base + c->send_off[q], (const char *)sendbuf + sdispls[q] * c->elem,
                   n * c->elem);
    }
    size_t self = sendcounts[c->rank];
    int self_mismatch = recvcounts && recvcounts[c->rank] != self;
    if (!self_mismatch && self > 0)
        memcpy((char *)recvbuf + rdispls[c->rank] * c->elem,
               (const char *)sendbuf + sdispls[c->rank] * c->elem, self * c->elem);
    pthread_mutex_lock(&c->lock);
    bls_rec_fill(c, rec, k, recvbuf, recvcounts, rdispls);
    rec->arrived[c->rank] = self;
    if (self_mismatch)
        rec_fail(rec, BLS_ERR_COUNT,
                 "iteration %lld, peer %d (itself): expected %zu elements, received %zu",
                 (long long)k, c->rank, recvcounts[c->rank], self);
    rec_block_in(c, rec, c->rank);
    for (int p = 0; p < c->size; p++)
        if (c->peer_final[p] >= 0)
            fail_beyond_final(c, p);
    c->n_posted = k + 1;
    pthread_cond_signal(&c->wake_progress);
    pthread_mutex_unlock(&c->lock);
    *iter_p = k;
    return BLS_OK;
}

bls_status_t bls_lagged_wait(bls_comm_t *c, bls_iter_t iter, int blocking, int *flag_p,
                             size_t *recvcounts_out)
{
    bls_iter_rec_t *rec = &c->ring[iter % c->nslots];
    double t0 = bls_now(), deadline = bls_deadline(c);
    bls_status_t st = BLS_OK;
    pthread_mutex_lock(&c->lock);
    if (!rec->done && blocking) {
        c->waiters++;
        pthread_cond_signal(&c->wake_progress);
        while (!rec->done && st == BLS_OK) {
            st = check_fatal(c);
            if (st == BLS_OK && !wait_user(c, deadline))
                st = timeout_error(c, "bls_wait", rec);
        }
        c->waiters--;
    }
    if (st == BLS_OK && !rec->done)
        st = check_fatal(c);
    if (st == BLS_OK && rec->done) {
        if (flag_p)
            *flag_p = 1;
        st = bls_report(c, rec, recvcounts_out);
    }
    pthread_mutex_unlock(&c->lock);
    if (blocking)
        c->wait_seconds += bls_now() - t0;
    return st;
}

bls_status_t bls_lagged_wait_any(bls_comm_t *c, bls_iter_t *iter_p, size_t *recvcounts_out)
{
    double t0 = bls_now(), deadline = bls_deadline(c);
    bls_status_t st = BLS_OK;
    bls_iter_rec_t *oldest = NULL;
    pthread_mutex_lock(&c->lock);
    c->waiters++;
    pthread_cond_signal(&c->wake_progress);
    for (;;) {
        bls_iter_rec_t *found = NULL;
        oldest = NULL;
        for (bls_iter_t k = c->n_posted - c->nslots; k < c->n_posted; k++) {
            if (k < 0 || c->ring[k % c->nslots].iter != k)
                continue;
            bls_iter_rec_t *r = &c->ring[k % c->nslots];
            if (!oldest)
                oldest = r;
            if (r->done) {
                found = r;
                break;
            }
        }
        if (found) {
            *iter_p = found->iter;
            st = bls_report(c, found, recvcounts_out);
            break;
        }
        if (!oldest) {
            st = bls_error(BLS_ERR_STATE, "bls_wait_any: no posted iteration is unreported");
            break;
        }
        st = check_fatal(c);
        if (st == BLS_OK && !wait_user(c, deadline))
            st = timeout_error(c, "bls_wait_any", oldest);
        if (st != BLS_OK)
            break;
    }
    c->waiters--;
    pthread_mutex_unlock(&c->lock);
    c->wait_seconds += bls_now() - t0;
    return st;
}

bls_status_t bls_lagged_finish(bls_comm_t *c)
{
    double deadline = bls_deadline(c);
    bls_status_t st = BLS_OK;
    pthread_mutex_lock(&c->lock);
    c->waiters++;
    if (!c->final_announced) { /* a retry after a timeout must not announce twice */
        c->final_announced = 1;
        c->final_out = c->n_posted;
        c->final_to_send = c->size > 1;
    }
    pthread_cond_signal(&c->wake_progress);
    /* Every posted iteration complete (or failed for good), every announcement exchanged. */
    for (;;) {
        st = check_fatal(c);
        if (st != BLS_OK)
            break;
        const bls_iter_rec_t *pending = NULL;
        for (int s = 0; s < c->nslots; s++)
            if (c->ring[s].iter >= 0 && !c->ring[s].done)
                pending = &c->ring[s];
        int unknown = 0;
        for (int p = 0; p < c->size; p++)
            if (p != c->rank && c->peer_final[p] < 0)
                unknown++;
        if (!pending && unknown == 0 && !c->final_to_send && c->final_sends_pending == 0)
            break;
        if (!wait_user(c, deadline)) {
            if (pending) {
                st = timeout_error(c, "bls_finish", pending);
            } else {
                char peers[512] = "";
                size_t used = 0;
                for (int p = 0; p < c->size && used + 16 < sizeof(peers); p++)
                    if (p != c->rank && c->peer_final[p] < 0)
                        used += (size_t)snprintf(peers + used, sizeof(peers) - used, "%s%d",
                                                 used ? ", " : "", p);
                st = bls_error(BLS_ERR_TIMEOUT,
                               "bls_finish (rank %d): peers %s did not finish within %.3g s",
                               c->rank, peers[0] ? peers : "(none; own announcement unsent)",
                               c->timeout);
            }
            break;
        }
    }
    if (st == BLS_OK) {
        char diff[512] = "";
        size_t used = 0;
        for (int p = 0; p < c->size && used + 40 < sizeof(diff); p++)
            if (p != c->rank && c->peer_final[p] != c->n_posted)
                used += (size_t)snprintf(diff + used, sizeof(diff) - used, "%srank %d posted %lld",
                                         used ? ", " : "", p, (long long)c->peer_final[p]);
        if (used)
            st = bls_error(BLS_ERR_ITER_MISMATCH,
                           "bls_finish: this process (rank %d) posted %lld iterations, but %s",
                           c->rank, (long long)c->n_posted, diff);
    }
    /* With equal counts every peer receives everything we sent: let the sends drain. */
    while (st == BLS_OK && outstanding_sends(c)) {
        if (!wait_user(c, deadline))
            st = bls_error(BLS_ERR_TIMEOUT, "bls_finish (rank %d): sends still in flight after "
                                            "%.3g s", c->rank, c->timeout);
        if (st == BLS_OK)
            st = check_fatal(c);
    }
    if (st == BLS_OK) {
        c->drain_to_send = c->size > 1;
        pthread_cond_signal(&c->wake_progress);
    }
    while (st == BLS_OK && (c->drain_to_send || outstanding_sends(c) || receiving(c))) {
        if (!wait_user(c, deadline))
            st = bls_error(BLS_ERR_TIMEOUT, "bls_finish (rank %d): the closing exchange did not "
                                            "complete within %.3g s", c->rank, c->timeout);
        if (st == BLS_OK)
            st = check_fatal(c);
    }
    c->waiters--;
    pthread_mutex_unlock(&c->lock);
    return st;
}

double bls_lagged_cpu_seconds(const bls_comm_t *c)
{
    clockid_t cid;
    struct timespec ts;
    if (c->thread_started != 1 || pthread_getcpuclockid(c->thread, &cid) != 0 ||
        clock_gettime(cid, &ts) != 0)
        return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
