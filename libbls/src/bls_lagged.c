/*
 * Algorithm: BLS mode, a bounded-lag pipelined alltoallv over MPI point-to-point, zero copy.
 *
 * Buffers.  The caller lends its send and receive buffers from bls_post() until the iteration
 * is reported (MPI_Ialltoallv's rule).  Blocks go out with MPI_Isend straight from the send
 * buffer and land with MPI_Imrecv straight in the receive buffer: the library copies nothing
 * and holds no payload memory, only O((L+2) * P) bookkeeping allocated at creation.
 *
 * Matching.  The progress thread takes every arriving block with MPI_Improbe(ANY_SOURCE,
 * ANY_TAG).  MPI's non-overtaking rule hands a peer's blocks over in the order it posted them,
 * so the block is the peer's next iteration; its tag, k mod tag_cycle, is checked against that
 * (tag_cycle = 4(L+2) exceeds the 2L+2 iterations a peer can have unmatched towards us).  The
 * probe tells the exact size before anything is received: a block that differs from the
 * stated count is consumed into nothing and reported with both sizes, never truncated into
 * the caller's buffer.
 *
 * Credits.  A block whose iteration is not posted here yet is held as a matched-message
 * handle.  Peer p can post k only after its iteration k-L-1 completed, which needs our block
 * for k-L-1; so when we have posted m, nobody has posted beyond m+L+1 and at most L+1 early
 * blocks per peer are held, in L+2 places indexed by iteration mod (L+2).  An eager block
 * then sits in MPI's own eager buffer; a large (rendezvous) block stays in the sender's
 * buffer until we post the iteration and receive it -- the receiver's posted buffer is the
 * credit, and a sender short of credit allocates nothing.  The transfer then overlaps the
 * next L iterations of work, because the progress thread runs it.
 *
 * Bound.  bls_post(k) waits until every iteration <= k-L-1 is done here (all blocks in and
 * all of our sends complete: their buffers go back to the caller).  Under the bound our
 * sends of such an iteration are already matched by the peers, so this waits on data
 * movement at most, never on a peer's application.
 *
 * Progress.  Only the progress thread calls MPI after creation.  It polls without sleeping
 * while a caller is blocked in this library (as MPI's blocking calls would), backs off to
 * poll_max_us sleeps while an iteration is outstanding, and sleeps 1 ms at a time otherwise.
 * A post, a waiter or destruction wakes it at once.
 *
 * Locking.  comm->lock guards the ring and all counters.  Every MPI request and held message
 * belongs to the progress thread; MPI_Testsome and MPI_Improbe run without the lock.
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
#define DESTROY_GRACE_SECONDS 10.0

static size_t idx(const bls_comm_t *c, bls_iter_t k, int p)
{
    return (size_t)(k % c->nslots) * (size_t)c->size + (size_t)p;
}
static int tag_of(const bls_comm_t *c, bls_iter_t k) { return (int)(k % c->tag_cycle); }
static int ctrl_tag(const bls_comm_t *c) { return c->tag_cycle; }

/* Request layout: receives [S*P] and sends [S*P] by (iteration % S, peer), then P control. */
static MPI_Request *recv_req(bls_comm_t *c, bls_iter_t k, int p) { return &c->reqs[idx(c, k, p)]; }
static MPI_Request *send_req(bls_comm_t *c, bls_iter_t k, int q)
{
    return &c->reqs[(size_t)c->nslots * c->size + idx(c, k, q)];
}
static MPI_Request *ctrl_send_req(bls_comm_t *c, int q)
{
    return &c->reqs[2 * (size_t)c->nslots * c->size + q];
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
    if (c->notify)
        c->notify(c->notify_arg, -1);
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

static void rec_check_done(bls_comm_t *c, bls_iter_rec_t *rec)
{
    if (!rec->done && rec->missing == 0 && rec->sends_pending == 0) {
        rec->done = 1;
        pthread_cond_broadcast(&c->wake_user);
        if (c->notify)
            c->notify(c->notify_arg, rec->iter);
    }
}

static void rec_block_in(bls_comm_t *c, bls_iter_rec_t *rec, int p)
{
    rec->have[p] = 1;
    rec->missing--;
    rec_check_done(c, rec);
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
        rec->missing = 0; /* reported at once; its sends are still tracked (see bls_post) */
        rec->done = 1;
        pthread_cond_broadcast(&c->wake_user);
        if (c->notify)
            c->notify(c->notify_arg, rec->iter);
    }
}

/*
 * Receives the matched block of iteration k from p into the caller's buffer.  A block that is
 * rejected (wrong size, or its iteration already failed) is received whole into scratch memory
 * of its size and dropped: truncating it would be an MPI error, which MPICH raises through the
 * fatal default handler in MPI_Testsome.  Lock held; k is posted here.
 */
static void receive_block(bls_comm_t *c, bls_iter_t k, int p, MPI_Message *msg, size_t n)
{
    bls_iter_rec_t *rec = &c->ring[k % c->nslots];
    size_t i = idx(c, k, p), bytes = n * c->elem;
    int reject = 1;
    rec->arrived[p] = n;
    if (rec->iter != k || rec->done) {
        /* the iteration already failed for good */
    } else if (rec->counts_known && n != rec->expected[p]) {
        rec_fail(rec, BLS_ERR_COUNT, "iteration %lld, peer %d: expected %zu elements, received %zu",
                 (long long)k, p, rec->expected[p], n);
    } else if (n > c->max_recv[p]) {
        rec_fail(rec, BLS_ERR_TOO_LARGE,
                 "iteration %lld, peer %d: received %zu elements, more than its declared "
                 "maximum %zu",
                 (long long)k, p, n, c->max_recv[p]);
    } else {
        reject = 0;
    }
    char *dst = reject ? (bytes ? malloc(bytes) : NULL) : rec->recvbuf + rec->rdispls[p] * c->elem;
    if (reject && bytes && !dst) {
        set_fatal(c, MPI_ERR_NO_MEM, "allocating room to discard a rejected block");
        return;
    }
    int rc;
    if (*recv_req(c, k, p) == MPI_REQUEST_NULL) {
        c->scratch[i] = reject ? dst : NULL; /* freed when the receive completes */
        rc = MPI_Imrecv(dst, (int)bytes, MPI_BYTE, msg, recv_req(c, k, p));
    } else {
        /* Only after a failed-for-good iteration was reported and its slot reused while an
         * old block still arrives (always rejected): consume it here. */
        MPI_Status st;
        rc = MPI_Mrecv(dst, (int)bytes, MPI_BYTE, msg, &st);
        if (reject)
            free(dst);
    }
    if (rc != MPI_SUCCESS)
        set_fatal(c, rc, "MPI_Imrecv of a block");
}

/* Issues the sends and the held receives of newly posted iterations.  Lock held. */
static int issue_posts(bls_comm_t *c)
{
    int did = 0;
    while (c->n_issued < c->n_posted && c->fatal == BLS_OK) {
        bls_iter_t k = c->n_issued;
        bls_iter_rec_t *rec = &c->ring[k % c->nslots];
        for (int q = 0; q < c->size && rec->iter == k && !rec->done; q++) {
            if (q == c->rank)
                continue;
            int rc = MPI_Isend(rec->sendbuf + rec->sdispls[q] * c->elem,
                               (int)(rec->sendcounts[q] * c->elem), MPI_BYTE, q, tag_of(c, k),
                               c->mpi, send_req(c, k, q));
            if (rc != MPI_SUCCESS) {
                set_fatal(c, rc, "MPI_Isend of a block");
                return did;
            }
            rec->sends_pending++;
        }
        for (int p = 0; p < c->size; p++) {
            size_t i = idx(c, k, p);
            if (p != c->rank && c->held[i] != MPI_MESSAGE_NULL) {
                MPI_Message m = c->held[i];
                c->held[i] = MPI_MESSAGE_NULL;
                receive_block(c, k, p, &m, c->held_count[i]);
            }
        }
        c->n_issued++;
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

/* Takes every block (and announcement) that has arrived.  Lock held; dropped around MPI. */
static int probe_arrivals(bls_comm_t *c)
{
    int did = 0;
    for (;;) {
        int flag = 0;
        MPI_Message msg = MPI_MESSAGE_NULL;
        MPI_Status st;
        pthread_mutex_unlock(&c->lock);
        int rc = MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, c->mpi, &flag, &msg, &st);
        pthread_mutex_lock(&c->lock);
        if (rc != MPI_SUCCESS) {
            set_fatal(c, rc, "MPI_Improbe");
            return did;
        }
        if (!flag)
            return did;
        did = 1;
        int p = st.MPI_SOURCE, bytes = 0;
        MPI_Get_count(&st, MPI_BYTE, &bytes);
        if (st.MPI_TAG == ctrl_tag(c)) {
            int64_t announced = -1;
            rc = MPI_Mrecv(&announced, 1, MPI_INT64_T, &msg, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS) {
                set_fatal(c, rc, "MPI_Mrecv of a final iteration count");
                return did;
            }
            c->peer_final[p] = announced;
            fail_beyond_final(c, p);
            pthread_cond_broadcast(&c->wake_user);
            continue;
        }
        bls_iter_t k = c->next_from[p]++;
        if (st.MPI_TAG != tag_of(c, k)) {
            char what[160];
            snprintf(what, sizeof(what),
                     "protocol: peer %d sent tag %d where iteration %lld (tag %d) was due", p,
                     st.MPI_TAG, (long long)k, tag_of(c, k));
            set_fatal(c, MPI_ERR_TAG, what);
            return did;
        }
        size_t n = (size_t)bytes / c->elem;
        if (k < c->n_issued) {
            receive_block(c, k, p, &msg, n);
        } else {
            size_t i = idx(c, k, p); /* early: at most L+1 per peer, see Credits */
            c->held[i] = msg;
            c->held_count[i] = n;
        }
    }
}

static int test_requests(bls_comm_t *c)
{
    int outcount = 0;
    pthread_mutex_unlock(&c->lock);
    int rc = MPI_Testsome(c->nreqs, c->reqs, &outcount, c->done_idx, c->statuses);
    pthread_mutex_lock(&c->lock);
    if (rc != MPI_SUCCESS && rc != MPI_ERR_IN_STATUS) {
        set_fatal(c, rc, "MPI_Testsome");
        return 0;
    }
    if (outcount == MPI_UNDEFINED)
        return 0;
    size_t SP = (size_t)c->nslots * c->size;
    for (int n = 0; n < outcount; n++) {
        size_t r = (size_t)c->done_idx[n];
        int err = rc == MPI_ERR_IN_STATUS ? c->statuses[n].MPI_ERROR : MPI_SUCCESS;
        if (r < SP) {
            int p = (int)(r % c->size);
            bls_iter_rec_t *rec = &c->ring[r / c->size];
            free(c->scratch[r]);
            c->scratch[r] = NULL;
            if (err != MPI_SUCCESS) {
                char what[96];
                snprintf(what, sizeof(what), "receiving the block of peer %d", p);
                set_fatal(c, err, what);
                return 0;
            }
            if (rec->iter >= 0 && !rec->have[p] && !rec->done)
                rec_block_in(c, rec, p);
        } else if (r < 2 * SP) {
            bls_iter_rec_t *rec = &c->ring[(r - SP) / c->size];
            if (err != MPI_SUCCESS) {
                char what[96];
                snprintf(what, sizeof(what), "sending a block to peer %d", (int)((r - SP) % c->size));
                set_fatal(c, err, what);
                return 0;
            }
            if (rec->sends_pending > 0) {
                rec->sends_pending--;
                rec_check_done(c, rec);
            }
        } else {
            if (--c->final_sends_pending == 0)
                pthread_cond_broadcast(&c->wake_user);
        }
    }
    return outcount > 0;
}

/* Anything this process is waiting for: a posted iteration not yet done, or an announcement. */
static int outstanding(const bls_comm_t *c)
{
    for (int s = 0; s < c->nslots; s++)
        if (c->ring[s].iter >= 0 && !c->ring[s].done)
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
            did |= issue_posts(c);
            did |= probe_arrivals(c);
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
    if (tag_ub_flag && tag_ub && c->tag_cycle > *tag_ub)
        return bls_error(BLS_ERR_ARG, "bls_comm_create: lag %d needs tags up to %d, but MPI's "
                                      "MPI_TAG_UB is %d",
                         c->lag, c->tag_cycle, *tag_ub);
    c->next_from = calloc(P, sizeof(bls_iter_t));
    c->held = malloc(S * P * sizeof(MPI_Message));
    c->held_count = calloc(S * P, sizeof(size_t));
    c->scratch = calloc(S * P, sizeof(void *));
    c->nreqs = (int)(2 * S * P + P);
    c->reqs = malloc((size_t)c->nreqs * sizeof(MPI_Request));
    c->done_idx = calloc((size_t)c->nreqs, sizeof(int));
    c->statuses = calloc((size_t)c->nreqs, sizeof(MPI_Status));
    c->peer_final = calloc(P, sizeof(int64_t));
    if (!c->next_from || !c->held || !c->held_count || !c->scratch || !c->reqs || !c->done_idx ||
        !c->statuses || !c->peer_final)
        return bls_error(BLS_ERR_NOMEM, "bls_comm_create: out of memory");
    for (int r = 0; r < c->nreqs; r++)
        c->reqs[r] = MPI_REQUEST_NULL;
    for (size_t i = 0; i < S * P; i++)
        c->held[i] = MPI_MESSAGE_NULL;
    for (size_t q = 0; q < P; q++)
        c->peer_final[q] = -1;
    c->buffer_bytes = S * P * (sizeof(MPI_Message) + sizeof(size_t) + sizeof(void *) +
                                  2 * sizeof(MPI_Request)) +
                      S * (sizeof(bls_iter_rec_t) + 5 * P * sizeof(size_t) + P);

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
    /* After an orderly bls_finish nothing is left.  After errors: held blocks are received whole
     * into scratch memory and dropped; matched receives and sends cannot be cancelled, so they
     * get a grace period (their peers' data is already matched).  Whatever is still unfinished
     * then is released to MPI, and the memory it may still touch is deliberately not freed. */
    size_t SP = (size_t)c->nslots * c->size;
    size_t cap = c->reqs ? (size_t)c->nreqs + SP : 0;
    MPI_Request *left = cap ? malloc(cap * sizeof(MPI_Request)) : NULL;
    MPI_Status *lst = cap ? malloc(cap * sizeof(MPI_Status)) : NULL;
    void **held_buf = cap ? calloc(SP, sizeof(void *)) : NULL;
    int all = 1;
    if (left && lst && held_buf && c->held && c->scratch) {
        int n = 0;
        for (int r = 0; r < c->nreqs; r++)
            if (c->reqs[r] != MPI_REQUEST_NULL)
                left[n++] = c->reqs[r];
        for (size_t i = 0; i < SP; i++) {
            if (c->held[i] == MPI_MESSAGE_NULL)
                continue;
            size_t bytes = c->held_count[i] * c->elem;
            held_buf[i] = bytes ? malloc(bytes) : NULL;
            if ((!bytes || held_buf[i]) &&
                MPI_Imrecv(held_buf[i], (int)bytes, MPI_BYTE, &c->held[i], &left[n]) == MPI_SUCCESS)
                n++;
        }
        double until = bls_now() + DESTROY_GRACE_SECONDS;
        all = n == 0;
        while (!all && bls_now() < until)
            if (MPI_Testall(n, left, &all, lst) != MPI_SUCCESS)
                break;
        for (int r = 0; r < n; r++)
            if (left[r] != MPI_REQUEST_NULL)
                MPI_Request_free(&left[r]);
    }
    if (all) {
        for (size_t i = 0; held_buf && i < SP; i++)
            free(held_buf[i]);
        for (size_t i = 0; c->scratch && i < SP; i++)
            free(c->scratch[i]);
        free(c->scratch);
    }
    free(held_buf);
    free(left);
    free(lst);
    free(c->next_from);
    free(c->held);
    free(c->held_count);
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
    if (n > 0)
        return;
    /* Everything arrived; the sends to these peers have not completed (a stalled receiver). */
    used = (size_t)snprintf(buf, len, "none, but its sends to peers ");
    for (int q = 0; q < c->size && used + 16 < len; q++)
        if (q != c->rank && *send_req((bls_comm_t *)c, rec->iter, q) != MPI_REQUEST_NULL) {
            used += (size_t)snprintf(buf + used, len - used, "%s%d", n ? ", " : "", q);
            n++;
        }
    snprintf(buf + used, len - used, "%s", n ? " are still in flight" : "? (none pending)");
}

void bls_lagged_pending_peers(bls_comm_t *c, bls_iter_t iter, char *buf, size_t len)
{
    pthread_mutex_lock(&c->lock);
    const bls_iter_rec_t *rec = &c->ring[iter % c->nslots];
    if (rec->done)
        snprintf(buf, len, "nothing");
    else
        missing_peers(c, rec, buf, len);
    pthread_mutex_unlock(&c->lock);
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
    bls_iter_rec_t *rec = &c->ring[k % c->nslots];
    double t0 = bls_now(), deadline = bls_deadline(c);
    bls_status_t st = BLS_OK;

    pthread_mutex_lock(&c->lock);
    c->waiters++;
    pthread_cond_signal(&c->wake_progress);
    /* The bound: every iteration <= k-L-1 done (k-L-1 and the entry k reuses, k-L-2). */
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
    while (st == BLS_OK && rec->sends_pending > 0) { /* after a failed-for-good iteration */
        st = check_fatal(c);
        if (st == BLS_OK && !wait_user(c, deadline))
            st = bls_error(BLS_ERR_TIMEOUT,
                           "bls_post (iteration %lld): the sends of failed iteration %lld are "
                           "still in flight after %.3g s (rank %d)",
                           (long long)k, (long long)(k - c->nslots), c->timeout, c->rank);
    }
    if (st == BLS_OK && rec->iter >= 0)
        st = bls_error(BLS_ERR_STATE,
                       "bls_post (iteration %lld): iteration %lld was never waited for; with lag "
                       "%d, wait for iteration k-L-2 before posting iteration k",
                       (long long)k, (long long)rec->iter, c->lag);
    c->waiters--;
    if (st == BLS_OK)
        st = check_fatal(c);
    if (st != BLS_OK) {
        pthread_mutex_unlock(&c->lock);
        c->post_wait_seconds += bls_now() - t0;
        return st;
    }
    bls_rec_fill(c, rec, k, sendbuf, sendcounts, sdispls, recvbuf, recvcounts, rdispls);
    size_t self = sendcounts[c->rank];
    rec->arrived[c->rank] = self;
    if (recvcounts && recvcounts[c->rank] != self)
        rec_fail(rec, BLS_ERR_COUNT,
                 "iteration %lld, peer %d (itself): expected %zu elements, received %zu",
                 (long long)k, c->rank, recvcounts[c->rank], self);
    else if (self > 0) /* the block to oneself never touches MPI */
        memcpy((char *)recvbuf + rdispls[c->rank] * c->elem,
               (const char *)sendbuf + sdispls[c->rank] * c->elem, self * c->elem);
    rec_block_in(c, rec, c->rank);
    for (int p = 0; p < c->size; p++)
        if (c->peer_final[p] >= 0)
            fail_beyond_final(c, p);
    c->n_posted = k + 1;
    pthread_cond_signal(&c->wake_progress);
    pthread_mutex_unlock(&c->lock);
    c->post_wait_seconds += bls_now() - t0;
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
    pthread_mutex_lock(&c->lock);
    c->waiters++;
    pthread_cond_signal(&c->wake_progress);
    for (;;) {
        bls_iter_rec_t *found = NULL, *oldest = NULL;
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
    /* Every posted iteration done (or failed for good), every announcement exchanged. */
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
