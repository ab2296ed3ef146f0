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
 * Progress.  One round of the engine (engine_round) issues the sends and held receives of new
 * posts, matches what arrived, and tests the requests.  Whoever holds the engine runs it: the
 * caller inside bls_post, bls_test, bls_wait* and bls_progress, or the progress thread while
 * the caller is away.  What each costs and why it is shaped so:
 *  - The caller.  bls_post runs a round at once, so its sends leave without waking anybody;
 *    bls_test runs one before looking.  These rounds leave large receives to the thread (a
 *    non-matching probe tells a block's size before it is matched; a large held block stays
 *    held, marked held_issued): receiving one is a copy of up to megabytes, which on the thread
 *    overlaps the caller's work and in bls_post would lengthen every iteration (at 1 MiB that
 *    was 1.69x -> 1.21x of MPI_Alltoallv's speed) -- provided the thread gets a core soon: it
 *    measures how late it wakes from its naps, and when that lateness (or how overdue it is
 *    now) exceeds an eighth of the time between posts, the caller's rounds receive large
 *    blocks themselves (caller_defers).  Under the same condition they leave large sends that
 *    move only while their sender polls (pushed_send: to a peer that does not copy them
 *    itself, or HUGE_BYTES) to the thread as well (send_later): over TCP an MPI_Isend writes
 *    its first fragment into the socket at once, and three 64 KiB ones cost a post 60-80 us
 *    across hosts, most of the distance to the ideal model under delays.  Such a post issues
 *    the rest, wakes the thread and skips its own probes and tests, which the thread's round
 *    runs next anyway (each reads every socket); a post then costs about 20 us.  A peer's
 *    blocks keep their order: a send behind one left to the thread is left too.  A blocked
 *    caller runs full rounds itself, as MPI's blocking calls do: back to back while they find
 *    something, then SPIN_ROUNDS yielding ones, then naps that double from 1 us to poll_max_us;
 *    a completion found by the thread wakes it.  Meanwhile the thread stands aside (it waits
 *    until no caller is blocked): two pollers of the same transport shared the caller's core
 *    for nothing, and where CPU is what moves the bytes (1 MiB blocks over TCP, every core
 *    copying into sockets) they made bls 0.74-0.80x of MPI_Alltoallv's speed with the
 *    caller-only mode at 1.03x.  A caller that blocks while the thread is inside a round (it
 *    holds the engine) raises the thread to normal priority until that round ends (see
 *    "Priority").
 *  - The thread only covers the caller's absence, and most of that needs no progress at all: a
 *    small block leaves inside its Isend (eager) and waits at the receiver, in MPI's buffers, for
 *    the receiver's next call; our own completions are noticed by our caller's next round.  So
 *    while only small blocks are in flight, and none large went out or arrived in the last L+2
 *    posts (big_at), the thread naps IDLE_MAX_US, a safety net for a send that a transport queued
 *    (a full FIFO or socket); after a large one, the next may be on its way, and the naps are twice
 *    the mean time between posts (the lazy nap).  (A poll every other iteration, as naps of twice
 *    the time between posts gave, cost 11-13 us of CPU per iteration at 1 KiB over shared memory, a
 *    third of the process's: rounds that only came before the caller's own.)  A large block
 *    (BIG_BYTES or more: above eager limits, rendezvous or fragments) moves only while a side
 *    polls.  While we receive one, a caller left one to the thread (big_waiting, deferred; except
 *    at a steady rhythm, below, the caller then wakes it), or a completion callback is set (someone
 *    may wait on it instead of in bls_wait), naps double from poll_max_us/4 to poll_max_us and a
 *    productive round is followed by another at once.  While only our large sends are incomplete,
 *    the receiver's match comes first.  A peer on this host may then take the block by a single
 *    copy from our memory (a copier: a probe at creation tells, see find_copiers), and our polls
 *    only notice the end, which the caller's next post notices too: naps start at a quarter of the
 *    time between posts, and with a lag of 2 or more a productive round is followed by a nap, not
 *    by another round (a late block then waits at most for its receiver's next post, an iteration
 *    the lag has to spare).  A send to any other peer (TCP sends the rest after the receiver's
 *    answer) or of HUGE_BYTES or more (pushed in fragments) moves only while we poll: naps start at
 *    poll_max_us.  Both double to twice the mean time between posts (the lazy nap).  (At 64 KiB
 *    over shared memory the quarter cut the thread's CPU by a third to a half; napping after
 *    productive rounds took a further third to a half off at lag 4.)  While posts come at a steady
 *    rhythm (steady_rhythm: the mean deviation of the time between posts under a tenth of the mean,
 *    so nothing is late for the lag to absorb) and every peer is a copier, nobody needs the
 *    thread's polls soon.  Large arrivals that a caller's round leaves then do not wake it (lag 2
 *    or more: steady_copies): its timed poll takes them, about two iterations' blocks per wake-up
 *    instead of one (64 KiB over shared memory, 4 processes, lag 4: the thread's CPU 44-48 -> 31-35
 *    us per iteration at equal speed).  With lag 1 the caller's own rounds copy their arrivals, as
 *    MPI_Alltoallv does: the thread's copies had overlapped the caller's work for 2-3% of speed at
 *    a wake-up or more per iteration.  Naps while only our large sends are incomplete are the lazy
 *    one from the start.  (Together, at 64 KiB over shared memory: CPU over MPI_Alltoallv's
 *    2.21-2.32 -> 1.28-1.46 at lag 1, speed over it 1.023-1.029 -> 1.006-1.018; 1.28-1.50 ->
 *    1.10-1.30 at lag 4, speed unchanged.)  Under delays the rhythm is not steady and the thread
 *    works as above: batching there cost efficiency (0.989 -> 0.961-0.964 with exponential delays).
 *    With nothing outstanding the thread sleeps until a post.  It never spins: spinning, and 50 us
 *    polls during the caller's work, were most of what it cost (bench/RESULTS.md, issue 16).
 *  - BLS_PROGRESS_CALLER: no thread; everything above but the thread.
 *
 * Priority.  The thread runs under SCHED_IDLE (BLS_PROGRESS_THREAD): the kernel gives it a
 * core only when no normal thread wants one.  Its job is the caller's absence, and what
 * matters there splits in two.  A caller sleeping or blocked (a delay, a wait, I/O) leaves its
 * core free: the thread runs at once and the data moves, as before.  A caller computing on a
 * machine where every core computes leaves no core free: at normal priority each poll then
 * preempted the computation (a wake-up, a switch, cold caches, at 2-3 polls per large block),
 * which cost bls-dlrm 3-6% against MPI_Alltoallv with every core busy; under SCHED_IDLE the
 * poll waits until the caller stops computing, and the caller's own rounds in bls_post and
 * bls_wait, which run next anyway, find the data.  On the delayed main job the figures are
 * unchanged (bench/RESULTS.md, issue 16).  BLS_PROGRESS_THREAD_NORMAL keeps the old priority.
 * One inversion is mended: a caller that blocks while the thread holds the engine (a round's
 * MPI calls run without the lock) would wait on a thread that gets no core while others
 * compute; the caller raises it to SCHED_OTHER, and the thread drops back after the round.
 *
 * Standby.  With more computing threads than cores (4 bls-dlrm processes on 2 busy cores) even
 * a SCHED_IDLE thread cost: it woke 0.5-1.3 times per post, its rounds rarely found anything,
 * they held the engine when the caller came back (raising it, see above), and the process
 * was 3-5% slower than with BLS_PROGRESS_CALLER, which beat MPI_Alltoallv.  Its naps measure
 * how late it gets a core (wake_late); once that exceeds the mean time between posts, the
 * caller's own next round comes before the thread's, so the thread stands by (thread_starved):
 * no rounds, 5 ms naps that only keep measuring, and posts do not wake it.  Callers' rounds
 * then defer nothing to it (caller_defers).  It resumes when its lateness falls below half the
 * time between posts, and at once when the caller is away: a post STANDBY_GAPS mean intervals
 * overdue means nobody else will move the bytes (test_progress --starved).  Only on a crowded
 * host, with more of the communicator's processes than the cores they may run on together
 * (find_copiers): with a core per process, a late thread still gets one whenever a process
 * here blocks, and there its rounds paid (2 processes on 2 busy cores: with standby there too,
 * bls:1 lost 1-3% against MPI_Alltoallv in three sets of runs).  Time in standby is reported
 * (bls_stats_t.progress_standby_seconds).
 *
 * Locking.  comm->lock guards the ring and all counters.  Every MPI request and held message
 * belongs to whoever holds the engine (engine_busy); MPI_Testsome and MPI_Improbe run without
 * the lock, MPI_Isend and MPI_Imrecv with it.
 */
#define _GNU_SOURCE
#include "bls_internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#define SPIN_ROUNDS 32   /* a blocked caller's yielding rounds before it naps */
#define IDLE_MAX_US 5000 /* the thread's longest nap while something is outstanding */
#define BIG_BYTES 16384  /* a block at least this large needs polling to move */
#define HUGE_BYTES 524288 /* a send this large moves in fragments its sender pushes */
#define PROBE_BYTES 65536 /* find_copiers' block: large (BIG_BYTES), not HUGE_BYTES */
#define PROBE_AWAY_S 0.01 /* how long its sender stays out of MPI */
#define DESTROY_GRACE_SECONDS 10.0
#define STANDBY_GAPS 4.0 /* a caller this many times the post interval late is away: no standby */

/* BLS mode's own state, behind comm->state.  lock guards it and the common ring and counters
 * while the progress thread runs. */
typedef struct {
    bls_iter_t n_issued;   /* sends and receives are issued for iterations < n_issued */
    bls_iter_t *next_from; /* [P] next iteration whose block from that peer is unprobed */
    MPI_Message *held;     /* [S*P] matched early block (iteration % S, peer), not received */
    size_t *held_count;    /* [S*P] its size in elements */
    unsigned char *held_issued; /* [S*P] the held block's iteration is issued (deferred) */
    unsigned char *send_later;  /* [S*P] the send (iteration % S, peer) is left to the thread */
    int *later_to;              /* [P] sends to that peer left to the thread */
    void **scratch;        /* [S*P] where a rejected block is received whole (bad input only:
                              a truncated receive would be fatal under MPICH) */
    MPI_Request *reqs;     /* receives [S*P], sends [S*P] (by ring entry), control sends [P] */
    unsigned char *big;    /* [nreqs] the request moves BIG_BYTES or more (in big_recvs/sends) */
    int nreqs;
    int *done_idx;
    MPI_Status *statuses;
    int64_t *peer_final; /* [P] -1 until the peer announced its count */
    int64_t final_out;
    int final_announced; /* bls_finish() has queued the announcement */
    int final_to_send;   /* the progress thread must send final_out to every peer */
    int final_sends_pending;
    int tag_cycle;

    int engine_busy;   /* a thread runs engine_round (its MPI calls drop the lock) */
    int big_recvs;     /* matched receives of BIG_BYTES or more, incomplete */
    int big_waiting;   /* a caller's round left a large arrival unmatched, for the thread */
    int deferred;      /* held large blocks of issued iterations, left to the thread */
    int sends_later;   /* sends of issued iterations left to the thread (send_later) */
    int big_sends;     /* issued sends of BIG_BYTES or more, incomplete */
    int pushed_sends;  /* ... of them, ones that move only while we poll (pushed_send) */
    unsigned char *copier; /* [P] the peer takes our large blocks by a single copy (probed) */
    int thread_asleep; /* the thread sleeps until woken (nothing was outstanding) */
    int thread_round;  /* the thread runs engine_round (it holds engine_busy) */
    int thread_aside;  /* the thread waits until no caller is blocked */
    int boosted;       /* a blocked caller raised the thread to normal priority for its round */
    int blocked;       /* callers inside wait_until: they run the rounds */
    double last_post;  /* bls_now() at the last post */
    double post_gap;   /* mean time between posts (seconds, moving average) */
    double gap_dev;    /* mean absolute deviation of the time between posts (s, the same) */
    double nap_until;  /* the thread's timed nap ends then (bls_now()); 0: not in one */
    double wake_late;  /* how late the thread wakes from its timed naps (s, moving average) */
    int standby;       /* the thread gets no core in time: it only checks that (thread_starved) */
    int crowded;       /* more of the communicator's processes on this host than our cores */
    double standby_s;  /* time the thread spent in standby naps (bls_stats_t) */
    bls_iter_t big_at; /* n_posted when a large block last went out or arrived; -1 never */
    bls_iter_t huge_at; /* ... one of HUGE_BYTES or more */

    pthread_t thread;
    int thread_started; /* 0 none, -1 lock and conditions exist, 1 thread runs */
    pthread_mutex_t lock;
    pthread_cond_t wake_progress; /* posts and stop wake the progress thread */
    pthread_cond_t wake_user;     /* completions wake waiting callers */
    int stop;
    bls_status_t fatal; /* BLS_ERR_MPI once the transport failed */
    char fatal_msg[BLS_MSG_LEN];
} lagged_t;

static lagged_t *state(const bls_comm_t *c)
{
    return c->state;
}

static size_t idx(const bls_comm_t *c, bls_iter_t k, int p)
{
    return (size_t)(k % c->nslots) * (size_t)c->size + (size_t)p;
}
static int tag_of(const bls_comm_t *c, bls_iter_t k)
{
    return (int)(k % state(c)->tag_cycle);
}
static int ctrl_tag(const bls_comm_t *c)
{
    return state(c)->tag_cycle;
}

/* Request layout: receives [S*P] and sends [S*P] by (iteration % S, peer), then P control. */
static MPI_Request *recv_req(bls_comm_t *c, bls_iter_t k, int p)
{
    return &state(c)->reqs[idx(c, k, p)];
}
static MPI_Request *send_req(bls_comm_t *c, bls_iter_t k, int q)
{
    lagged_t *g = c->state;
    return &g->reqs[(size_t)c->nslots * c->size + idx(c, k, q)];
}
static MPI_Request *ctrl_send_req(bls_comm_t *c, int q)
{
    lagged_t *g = c->state;
    return &g->reqs[2 * (size_t)c->nslots * c->size + q];
}

/* A block this large needs polling to move (BIG_BYTES). */
static int is_big(size_t bytes)
{
    return bytes >= BIG_BYTES;
}

/* Something a caller's round left to the thread, which must then run soon. */
static int left_to_thread(const bls_comm_t *c)
{
    const lagged_t *g = c->state;
    return g->big_waiting || g->deferred > 0 || g->sends_later > 0;
}

/* Whether a block noted at post count `at` (big_at, huge_at; -1 never) moved within the last
 * nslots posts, so more like it may follow. */
static int moved_lately(const bls_comm_t *c, bls_iter_t at)
{
    return at >= 0 && c->n_posted - at <= c->nslots;
}

/* Whether nobody needs the thread's polls soon (see "Progress"): posts come at a steady rhythm
 * (the mean deviation of the time between them under a tenth of the mean), every peer is a
 * copier, no block lately was HUGE_BYTES or more, nothing is pushed or left to send, and no
 * completion callback waits.  Lock held. */
static int steady_rhythm(const bls_comm_t *c)
{
    const lagged_t *g = c->state;
    return c->copy_peers == c->size - 1 && g->gap_dev < 0.1 * g->post_gap &&
           !moved_lately(c, g->huge_at) && g->sends_later == 0 && g->pushed_sends == 0 &&
           !c->notify;
}

/* Whether large arrivals a caller's round left may wait for the thread's next timed poll
 * instead of waking it: a steady rhythm, and a lag of 2 or more. */
static int steady_copies(const bls_comm_t *c)
{
    return c->lag >= 2 && steady_rhythm(c);
}

/* Whether the thread must run soon for what a caller's round left it. */
static int thread_due(const bls_comm_t *c)
{
    return left_to_thread(c) && !steady_copies(c);
}

/* The thread's standby (see "Standby"), updated after each timed nap from how late it woke on
 * average: entered beyond the mean time between posts, left below half of it.  Only on a crowded
 * host (more processes than cores). */
static void thread_starved(lagged_t *g)
{
    if (g->post_gap <= 0 || !g->crowded)
        return;
    if (g->wake_late > g->post_gap)
        g->standby = 1;
    else if (g->wake_late < g->post_gap / 2)
        g->standby = 0;
}

/* Whether the thread stands by now: it is starved (thread_starved) and the caller is not away
 * (its next post is not STANDBY_GAPS mean post intervals overdue).  Lock held. */
static int standing_by(const lagged_t *g)
{
    return g->standby && bls_now() - g->last_post < STANDBY_GAPS * g->post_gap;
}

/* Whether a large send to peer q moves only while we, its sender, poll.  A copier (a peer on
 * this host whose transport has CMA or XPMEM, see find_copiers) takes a block by a single copy
 * from our memory, so our polls only notice the end; a block of HUGE_BYTES or more, or one to
 * any other peer (TCP's rendezvous: the rest follows the receiver's answer), we push. */
static int pushed_send(const bls_comm_t *c, int q, size_t bytes)
{
    return bytes >= HUGE_BYTES || !state(c)->copier[q];
}

/* A block of `bytes` goes out or arrived now (big_at, huge_at).  Lock held. */
static void note_size(bls_comm_t *c, size_t bytes)
{
    lagged_t *g = c->state;
    if (is_big(bytes))
        g->big_at = c->n_posted;
    if (bytes >= HUGE_BYTES)
        g->huge_at = c->n_posted;
}

/* Request r was just issued for `bytes`: a large one makes the thread poll closely. */
static void count_big(bls_comm_t *c, MPI_Request *r, size_t bytes)
{
    lagged_t *g = c->state;
    note_size(c, bytes);
    if (!is_big(bytes))
        return;
    size_t i = (size_t)(r - g->reqs), SP = (size_t)c->nslots * c->size;
    int send = i >= SP;
    g->big[i] = send && pushed_send(c, (int)((i - SP) % (size_t)c->size), bytes) ? 2 : 1;
    *(send ? &g->big_sends : &g->big_recvs) += 1;
    g->pushed_sends += g->big[i] == 2;
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

/* Naps on wake_user for up to us microseconds, not past the deadline (0: none); returns 0
 * once the deadline has passed. */
static int nap_user(bls_comm_t *c, double deadline, long us)
{
    lagged_t *g = c->state;
    double now = bls_now(), until = now + 1e-6 * (double)us;
    if (deadline > 0 && now >= deadline)
        return 0;
    if (deadline > 0 && until > deadline)
        until = deadline;
    struct timespec ts;
    abs_timespec(&ts, until);
    pthread_cond_timedwait(&g->wake_user, &g->lock, &ts);
    return 1;
}

static void set_fatal(bls_comm_t *c, int mpi_rc, const char *what)
{
    lagged_t *g = c->state;
    if (g->fatal != BLS_OK)
        return;
    bls_mpi_error(mpi_rc, what);
    g->fatal = BLS_ERR_MPI;
    snprintf(g->fatal_msg, sizeof(g->fatal_msg), "rank %d: %s", c->rank, bls_last_error());
    pthread_cond_broadcast(&g->wake_user);
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
    lagged_t *g = c->state;
    if (!rec->done && rec->missing == 0 && rec->sends_pending == 0) {
        rec->done = 1;
        pthread_cond_broadcast(&g->wake_user);
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
    lagged_t *g = c->state;
    for (int s = 0; s < c->nslots; s++) {
        bls_iter_rec_t *rec = &c->ring[s];
        if (rec->iter < 0 || rec->done || rec->have[p] || rec->iter < g->peer_final[p])
            continue;
        rec_fail(rec, BLS_ERR_PEER_FINISHED,
                 "iteration %lld: peer %d finished after posting %lld iterations; its block for "
                 "this iteration will never arrive",
                 (long long)rec->iter, p, (long long)g->peer_final[p]);
        rec->missing = 0; /* reported at once; its sends are still tracked (see bls_post) */
        rec->done = 1;
        pthread_cond_broadcast(&g->wake_user);
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
    lagged_t *g = c->state;
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
        g->scratch[i] = reject ? dst : NULL; /* freed when the receive completes */
        rc = MPI_Imrecv(dst, (int)bytes, MPI_BYTE, msg, recv_req(c, k, p));
        if (rc == MPI_SUCCESS)
            count_big(c, recv_req(c, k, p), bytes);
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

/* A round of the caller's that leaves large receives (their copies) to the thread. */
static int defers(int defer, size_t bytes)
{
    return defer && is_big(bytes);
}

/* Starts iteration k's send to q (counted in its sends_pending already); 0 on failure. */
static int start_send(bls_comm_t *c, bls_iter_t k, int q)
{
    const bls_iter_rec_t *rec = &c->ring[k % c->nslots];
    size_t bytes = rec->sendcounts[q] * c->elem;
    int rc = MPI_Isend(rec->sendbuf + rec->sdispls[q] * c->elem, (int)bytes, MPI_BYTE, q,
                       tag_of(c, k), c->mpi, send_req(c, k, q));
    if (rc != MPI_SUCCESS) {
        set_fatal(c, rc, "MPI_Isend of a block");
        return 0;
    }
    count_big(c, send_req(c, k, q), bytes);
    return 1;
}

/* The sends a caller's round left to the thread, oldest iteration first (so each peer gets
 * its blocks in iteration order).  One whose iteration failed for good meanwhile is dropped,
 * as a send not yet issued always was: its buffer went back to the caller with the failure.
 * Lock held; the entries cannot have been reused (the pending send keeps them).  */
static int send_later_ones(bls_comm_t *c)
{
    lagged_t *g = c->state;
    int did = 0;
    bls_iter_t first = g->n_issued - c->nslots;
    for (bls_iter_t k = first < 0 ? 0 : first; k < g->n_issued && g->sends_later > 0; k++)
        for (int q = 0; q < c->size && g->fatal == BLS_OK; q++) {
            size_t i = idx(c, k, q);
            if (!g->send_later[i])
                continue;
            bls_iter_rec_t *rec = &c->ring[k % c->nslots];
            g->send_later[i] = 0;
            g->later_to[q]--;
            g->sends_later--;
            did = 1;
            if (rec->done) {
                rec->sends_pending--;
                continue;
            }
            if (!start_send(c, k, q))
                return did;
        }
    return did;
}

/* Issues the sends and the held receives of newly posted iterations (large held ones stay held
 * for the thread when the round defers: `deferred`).  Lock held. */
static int issue_posts(bls_comm_t *c, int defer)
{
    lagged_t *g = c->state;
    int did = 0;
    while (g->n_issued < c->n_posted && g->fatal == BLS_OK) {
        bls_iter_t k = g->n_issued;
        bls_iter_rec_t *rec = &c->ring[k % c->nslots];
        for (int q = 0; q < c->size && rec->iter == k && !rec->done; q++) {
            if (q == c->rank)
                continue;
            rec->sends_pending++;
            size_t bytes = rec->sendcounts[q] * c->elem;
            if (defer && (g->later_to[q] > 0 || (is_big(bytes) && pushed_send(c, q, bytes)))) {
                g->send_later[idx(c, k, q)] = 1; /* behind any earlier one: MPI's order */
                g->later_to[q]++;
                g->sends_later++;
                continue;
            }
            if (!start_send(c, k, q))
                return did;
        }
        for (int p = 0; p < c->size; p++) {
            size_t i = idx(c, k, p);
            if (p != c->rank && g->held[i] != MPI_MESSAGE_NULL) {
                if (defers(defer, g->held_count[i] * c->elem)) {
                    g->held_issued[i] = 1;
                    g->deferred++;
                    continue;
                }
                MPI_Message m = g->held[i];
                g->held[i] = MPI_MESSAGE_NULL;
                receive_block(c, k, p, &m, g->held_count[i]);
            }
        }
        g->n_issued++;
        did = 1;
    }
    if (g->final_to_send && g->fatal == BLS_OK) {
        for (int q = 0; q < c->size; q++) {
            if (q == c->rank)
                continue;
            int rc = MPI_Isend(&g->final_out, 1, MPI_INT64_T, q, ctrl_tag(c), c->mpi,
                               ctrl_send_req(c, q));
            if (rc != MPI_SUCCESS) {
                set_fatal(c, rc, "MPI_Isend of the final iteration count");
                return did;
            }
            g->final_sends_pending++;
        }
        g->final_to_send = 0;
        did = 1;
    }
    return did;
}

/* The deferred blocks of issued iterations (a held block keeps its iteration from completing,
 * so its ring entry cannot have been reused).  Lock held. */
static int receive_deferred(bls_comm_t *c)
{
    lagged_t *g = c->state;
    int did = 0;
    bls_iter_t first = g->n_issued - c->nslots;
    for (bls_iter_t k = first < 0 ? 0 : first; k < g->n_issued && g->deferred > 0; k++)
        for (int p = 0; p < c->size; p++) {
            size_t i = idx(c, k, p);
            if (g->held_issued[i]) { /* not an early block of k + S, held in the same place */
                MPI_Message m = g->held[i];
                g->held[i] = MPI_MESSAGE_NULL;
                g->held_issued[i] = 0;
                g->deferred--;
                receive_block(c, k, p, &m, g->held_count[i]);
                did = 1;
            }
        }
    return did;
}

/* Takes every block (and announcement) that has arrived.  A deferring round stops at the
 * first large block (a non-matching probe tells its size first) and leaves it to the thread.
 * Lock held; dropped around MPI. */
static int probe_arrivals(bls_comm_t *c, int defer)
{
    lagged_t *g = c->state;
    int did = 0;
    if (!defer)
        g->big_waiting = 0;
    for (;;) {
        int flag = 0, src = MPI_ANY_SOURCE, tag = MPI_ANY_TAG;
        MPI_Message msg = MPI_MESSAGE_NULL;
        MPI_Status st;
        pthread_mutex_unlock(&g->lock);
        int rc = MPI_SUCCESS;
        if (defer) {
            rc = MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, c->mpi, &flag, &st);
            int bytes = 0;
            if (rc == MPI_SUCCESS && flag)
                MPI_Get_count(&st, MPI_BYTE, &bytes);
            if (rc == MPI_SUCCESS && flag && st.MPI_TAG != ctrl_tag(c) &&
                defers(defer, (size_t)bytes)) {
                pthread_mutex_lock(&g->lock);
                g->big_waiting = 1;
                note_size(c, (size_t)bytes);
                return did;
            }
            src = st.MPI_SOURCE; /* that message: the first from src with that tag */
            tag = st.MPI_TAG;
        }
        if (rc == MPI_SUCCESS && (!defer || flag))
            rc = MPI_Improbe(src, tag, c->mpi, &flag, &msg, &st);
        pthread_mutex_lock(&g->lock);
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
            g->peer_final[p] = announced;
            fail_beyond_final(c, p);
            pthread_cond_broadcast(&g->wake_user);
            continue;
        }
        bls_iter_t k = g->next_from[p]++;
        if (st.MPI_TAG != tag_of(c, k)) {
            char what[160];
            snprintf(what, sizeof(what),
                     "protocol: peer %d sent tag %d where iteration %lld (tag %d) was due", p,
                     st.MPI_TAG, (long long)k, tag_of(c, k));
            set_fatal(c, MPI_ERR_TAG, what);
            return did;
        }
        size_t n = (size_t)bytes / c->elem;
        note_size(c, (size_t)bytes);
        if (k < g->n_issued) {
            receive_block(c, k, p, &msg, n);
        } else {
            size_t i = idx(c, k, p); /* early: at most L+1 per peer, see Credits */
            g->held[i] = msg;
            g->held_count[i] = n;
        }
    }
}

static int test_requests(bls_comm_t *c)
{
    lagged_t *g = c->state;
    int outcount = 0;
    pthread_mutex_unlock(&g->lock);
    int rc = MPI_Testsome(g->nreqs, g->reqs, &outcount, g->done_idx, g->statuses);
    pthread_mutex_lock(&g->lock);
    if (rc != MPI_SUCCESS && rc != MPI_ERR_IN_STATUS) {
        set_fatal(c, rc, "MPI_Testsome");
        return 0;
    }
    if (outcount == MPI_UNDEFINED)
        return 0;
    size_t SP = (size_t)c->nslots * c->size;
    for (int n = 0; n < outcount; n++) {
        size_t r = (size_t)g->done_idx[n];
        int err = rc == MPI_ERR_IN_STATUS ? g->statuses[n].MPI_ERROR : MPI_SUCCESS;
        if (g->big[r]) {
            g->pushed_sends -= g->big[r] == 2;
            g->big[r] = 0;
            *(r < SP ? &g->big_recvs : &g->big_sends) -= 1;
        }
        if (r < SP) {
            int p = (int)(r % c->size);
            bls_iter_rec_t *rec = &c->ring[r / c->size];
            free(g->scratch[r]);
            g->scratch[r] = NULL;
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
                snprintf(what, sizeof(what), "sending a block to peer %d",
                         (int)((r - SP) % c->size));
                set_fatal(c, err, what);
                return 0;
            }
            if (rec->sends_pending > 0) {
                rec->sends_pending--;
                rec_check_done(c, rec);
            }
        } else {
            if (--g->final_sends_pending == 0)
                pthread_cond_broadcast(&g->wake_user);
        }
    }
    return outcount > 0;
}

/* Anything this process is waiting for: a posted iteration not yet done, or an announcement. */
static int outstanding(const bls_comm_t *c)
{
    const lagged_t *g = c->state;
    for (int s = 0; s < c->nslots; s++)
        if (c->ring[s].iter >= 0 && !c->ring[s].done)
            return 1;
    return g->final_sends_pending > 0 || c->finishing;
}

/* Whether a caller's round may leave large receives to the thread: only when the thread gets
 * a core soon.  A thread that wakes late from its naps, or is overdue now (a SCHED_IDLE
 * thread while every core computes, or any thread on an oversubscribed machine), would leave
 * the copies until the caller blocks, later than the caller doing them at once.  Nor with lag
 * 1 at a steady rhythm (steady_rhythm): the caller copies them, as MPI_Alltoallv does, and no
 * wake-up is spent on them.  Lock held. */
static int caller_defers(const bls_comm_t *c)
{
    const lagged_t *g = c->state;
    if (g->thread_started != 1 || (c->lag == 1 && steady_rhythm(c)))
        return 0;
    double slack = g->post_gap / 8, floor_s = 1e-6 * (c->poll_max_us > 0 ? c->poll_max_us : 1);
    if (slack < floor_s)
        slack = floor_s;
    if (g->nap_until > 0 && bls_now() - g->nap_until > slack)
        return 0;
    return g->wake_late <= slack;
}

/*
 * One round of the engine, if no other thread is running one: issue new posts, match arrivals,
 * test requests.  With `defer` (a caller's round while the thread wakes on time:
 * caller_defers), large receives are left to the thread: their copies then overlap the
 * caller's work instead of lengthening its call.  Lock held (dropped around the probes and
 * MPI_Testsome); 1 if anything happened.
 */
static int engine_round(bls_comm_t *c, int defer)
{
    lagged_t *g = c->state;
    if (g->engine_busy || g->fatal != BLS_OK)
        return 0;
    g->engine_busy = 1;
    int did = defer ? 0 : send_later_ones(c);
    did |= issue_posts(c, defer);
    if (!defer)
        did |= receive_deferred(c);
    if (!defer || g->sends_later == 0) {
        did |= probe_arrivals(c, defer);
        did |= test_requests(c);
    }
    g->engine_busy = 0;
    return did;
}

/* poll_max_us, at least 1: the close naps' ceiling and the lazy ones' floor. */
static long close_nap_us(const bls_comm_t *c)
{
    return c->poll_max_us > 0 ? c->poll_max_us : 1;
}

/* The ceiling of the thread's naps while only our large sends are incomplete: twice the mean
 * time between posts, within [poll_max_us, IDLE_MAX_US]. */
static long lazy_nap_us(const bls_comm_t *c)
{
    const lagged_t *g = c->state;
    long floor_us = close_nap_us(c);
    double gap = 2e6 * g->post_gap;
    long nap = gap > IDLE_MAX_US ? IDLE_MAX_US : (long)gap;
    return nap > floor_us ? nap : floor_us;
}

/* The first nap while only our large sends are incomplete.  A pushed one (pushed_send) moves
 * only while we poll: poll_max_us.  The others complete at the receiver's copy, which a nap
 * cannot hasten; our next round only notices it, and a caller's post runs one anyway: a
 * quarter of the time between posts (an eighth of the lazy nap `lazy`, which progress_main
 * has just computed), no less than poll_max_us. */
static long first_send_nap_us(const bls_comm_t *c, long lazy)
{
    long close_us = close_nap_us(c), quarter = lazy / 8;
    return state(c)->pushed_sends > 0 || quarter < close_us ? close_us : quarter;
}

/* Whether the thread may leave its large sends alone after a productive round, napping as
 * after an idle one: none is pushed (pushed_send), and the lag is 2 or more.  A block that
 * arrives after a peer's post is then copied at that peer's next post at the latest, and its
 * send seen complete at our next one: an iteration later, within the lag, not on the path
 * of a caller who waits for iteration k-L after posting k.  With lag 1 that wait would
 * meet it, unless the rhythm is steady: then every caller copies its arrivals in its own
 * rounds (caller_defers), and the thread's polls only notice what the next post notices. */
static int slack_for_sends(const bls_comm_t *c)
{
    return state(c)->pushed_sends == 0 && (c->lag >= 2 || steady_rhythm(c));
}

/* The thread's scheduling policy (see "Priority"); a refusal (a sandbox) leaves it as it was. */
static void set_policy(pthread_t thread, int policy)
{
    struct sched_param sp = {0};
    (void)pthread_setschedparam(thread, policy, &sp);
}

/* The thread waits on wake_progress, its flag (thread_aside, thread_asleep) telling wakers why:
 * only a thread so flagged is woken by that event, never one in a timed nap.  Lock held. */
static void wait_woken(lagged_t *g, int *flag)
{
    *flag = 1;
    pthread_cond_wait(&g->wake_progress, &g->lock);
    *flag = 0;
}

/* The thread's timed nap of `us`, ended early by a signal; one that ends by its timer
 * measures how late the thread got its core back (wake_late, standby).  Lock held. */
static void timed_nap(lagged_t *g, long us)
{
    struct timespec ts;
    double until = bls_now() + 1e-6 * (double)us;
    abs_timespec(&ts, until);
    g->nap_until = until;
    if (pthread_cond_timedwait(&g->wake_progress, &g->lock, &ts) == ETIMEDOUT) {
        double late = bls_now() - until;
        g->wake_late = 0.75 * g->wake_late + 0.25 * (late > 0 ? late : 0);
        thread_starved(g);
    }
    g->nap_until = 0;
}

static void *progress_main(void *arg)
{
    bls_comm_t *c = arg;
    lagged_t *g = c->state;
    /* Short naps must be short: the default 50 us timer slack would stretch every poll. */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    /* Lowest priority (see "Priority" above); where the policy is refused (a sandbox) the
     * thread runs at the process's priority, as BLS_PROGRESS_THREAD_NORMAL. */
    if (c->progress == BLS_PROGRESS_THREAD)
        set_policy(pthread_self(), SCHED_IDLE);
    long nap_us = 0, close_us = close_nap_us(c);
    pthread_mutex_lock(&g->lock);
    while (!g->stop) {
        if (standing_by(g)) { /* no round: the caller's own ones come sooner (see "Standby") */
            double t0 = bls_now();
            timed_nap(g, IDLE_MAX_US);
            g->standby_s += bls_now() - t0;
            nap_us = 0;
            continue;
        }
        if (g->blocked > 0) { /* a blocked caller polls; two pollers would share its core */
            wait_woken(g, &g->thread_aside);
            nap_us = 0;
            continue;
        }
        /* While a large block moves, a productive round calls for another at once; with
         * small ones only, it does not mean that more is due soon.  Nor with large sends that
         * complete at the receiver's copy, once the lag leaves an iteration to spare (see
         * slack_for_sends). */
        g->thread_round = 1;
        int did = engine_round(c, 0);
        g->thread_round = 0;
        if (g->boosted) { /* back to the lowest priority after the round a caller awaited */
            set_policy(pthread_self(), SCHED_IDLE);
            g->boosted = 0;
        }
        if (did && (g->big_recvs > 0 || c->notify || (g->big_sends > 0 && !slack_for_sends(c)))) {
            nap_us = 0;
            continue;
        }
        /* The round dropped the lock for its MPI calls: a destroyer may have set stop and
         * signalled meanwhile, with nobody waiting yet.  Sleeping now would never end. */
        if (g->stop)
            break;
        if (g->fatal != BLS_OK || !outstanding(c)) {
            wait_woken(g, &g->thread_asleep); /* until a post, a failure's end or destruction */
            nap_us = 0;
            continue;
        }
        long lazy = lazy_nap_us(c);
        if (g->big_recvs > 0 || thread_due(c) || c->notify)
            /* our polls move it: doubling to poll_max_us */
            nap_us = nap_us <= 0             ? (close_us + 3) / 4
                     : 2 * nap_us > close_us ? close_us
                                             : 2 * nap_us;
        else if (g->big_sends > 0) /* the receiver's match comes first: doubling to lazy */
            nap_us = steady_rhythm(c)    ? lazy /* the next post notices the end */
                     : nap_us <= 0       ? first_send_nap_us(c, lazy)
                     : 2 * nap_us > lazy ? lazy
                                         : 2 * nap_us;
        else if (moved_lately(c, g->big_at))
            nap_us = lazy; /* large blocks lately: more may arrive, and need our polls */
        else /* small blocks only: nobody waits on our polls (see "Progress") */
            nap_us = IDLE_MAX_US;
        timed_nap(g, nap_us);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

/* Whether the processes of this host take a large block by a single copy from the sender's
 * memory (shared-memory transports with CMA or XPMEM: the sender's polls only notice the end)
 * or need the sender to push it (TCP over loopback; shared memory without a single-copy
 * mechanism, in fragments).  MPI does not say, so the node's process 0 sends PROBE_BYTES to its
 * process 1 and stays out of MPI for PROBE_AWAY_S, writing into the block when its absence
 * ends (CLOCK_MONOTONIC: one clock on one host).  A receive complete before then completed
 * without the sender.  A receiver that gets no core meanwhile answers no: the safe side,
 * close polls as for a remote peer.  The answer holds for the process's life (host_copies):
 * a later communicator whose processes here all know it skips the probe, and any "no" wins.
 * Collective over node (me: rank there, n: its size). */
static int probe_single_copy(MPI_Comm node, int me, int n)
{
    static int host_copies = -1; /* this process's answer; -1 before its first probe */
    if (n < 2)
        return 0;
    /* One allreduce agrees on both: whether every process here knows the answer (the MIN of
     * the answers, -1 if one does not) and whether the probe's two buffers exist. */
    char *buf = me < 2 ? calloc(PROBE_BYTES, 1) : NULL;
    int mine[2] = {__atomic_load_n(&host_copies, __ATOMIC_RELAXED), me >= 2 || buf};
    int all[2] = {-1, 0}, copies = 0;
    if (MPI_Allreduce(mine, all, 2, MPI_INT, MPI_MIN, node) != MPI_SUCCESS || all[0] >= 0 ||
        !all[1]) {
        free(buf);
        return all[0] > 0;
    }
    if (me == 0) {
        double back = bls_now() + PROBE_AWAY_S;
        memcpy(buf, &back, sizeof back);
        MPI_Request r;
        if (MPI_Isend(buf, PROBE_BYTES, MPI_BYTE, 1, 0, node, &r) == MPI_SUCCESS) {
            struct timespec ts;
            abs_timespec(&ts, back);
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
            MPI_Wait(&r, MPI_STATUS_IGNORE);
        }
    } else if (me == 1) {
        double back = 0;
        if (MPI_Recv(buf, PROBE_BYTES, MPI_BYTE, 0, 0, node, MPI_STATUS_IGNORE) == MPI_SUCCESS) {
            memcpy(&back, buf, sizeof back);
            copies = bls_now() < back;
        }
    }
    free(buf);
    if (MPI_Bcast(&copies, 1, MPI_INT, 1, node) != MPI_SUCCESS)
        return 0;
    __atomic_store_n(&host_copies, copies, __ATOMIC_RELAXED);
    return copies;
}

/* Marks the copiers: the peers on this host (MPI_COMM_TYPE_SHARED) if a probe finds that they
 * take large blocks by a single copy (probe_single_copy).  Collective: every process calls it,
 * whatever its progress setting.  If MPI cannot tell, every peer counts as remote (close
 * polls).  Returns how many peers it marked; *crowded_p: more processes here than the cores
 * they may run on together (see "Standby"). */
static int find_copiers(bls_comm_t *c, unsigned char *copier, int *crowded_p)
{
    MPI_Comm node = MPI_COMM_NULL;
    int n = 0, me = 0, marked = 0;
    *crowded_p = 0;
    if (MPI_Comm_split_type(c->mpi, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS)
        return 0;
    MPI_Comm_size(node, &n);
    /* The cores the processes here may run on, together (each may be bound to one). */
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof(cpus), &cpus) != 0)
        CPU_ZERO(&cpus);
    MPI_Allreduce(MPI_IN_PLACE, &cpus, (int)sizeof(cpus), MPI_BYTE, MPI_BOR, node);
    *crowded_p = CPU_COUNT(&cpus) > 0 && n > CPU_COUNT(&cpus);
    MPI_Comm_rank(node, &me);
    int copies = probe_single_copy(node, me, n); /* collective: before anything local */
    int *in = copies && copier ? malloc((size_t)n * sizeof(int)) : NULL;
    int *out = in ? malloc((size_t)n * sizeof(int)) : NULL;
    if (out) {
        MPI_Group all, here;
        MPI_Comm_group(c->mpi, &all);
        MPI_Comm_group(node, &here);
        for (int i = 0; i < n; i++)
            in[i] = i;
        MPI_Group_translate_ranks(here, n, in, all, out);
        for (int i = 0; i < n; i++)
            if (out[i] >= 0 && out[i] < c->size && out[i] != c->rank) {
                copier[out[i]] = 1;
                marked++;
            }
        MPI_Group_free(&here);
        MPI_Group_free(&all);
    }
    free(in);
    free(out);
    MPI_Comm_free(&node);
    return marked;
}

static bls_status_t lagged_start(bls_comm_t *c)
{
    lagged_t *g = c->state = calloc(1, sizeof(lagged_t));
    unsigned char *copier = calloc((size_t)c->size, 1);
    int crowded = 0;
    /* collective: before anything that returns early */
    c->copy_peers = find_copiers(c, copier, &crowded);
    if (!g || !copier) {
        free(copier);
        return bls_error(BLS_ERR_NOMEM, "bls_comm_create: out of memory");
    }
    g->copier = copier;
    g->crowded = crowded;
    size_t P = (size_t)c->size, S = (size_t)c->nslots;
    int tag_ub_flag = 0;
    int *tag_ub = NULL;
    MPI_Comm_get_attr(c->mpi, MPI_TAG_UB, &tag_ub, &tag_ub_flag);
    g->tag_cycle = 4 * c->nslots;
    g->big_at = g->huge_at = -1;
    if (tag_ub_flag && tag_ub && g->tag_cycle > *tag_ub)
        return bls_error(BLS_ERR_ARG,
                         "bls_comm_create: lag %d needs tags up to %d, but MPI's "
                         "MPI_TAG_UB is %d",
                         c->lag, g->tag_cycle, *tag_ub);
    g->next_from = calloc(P, sizeof(bls_iter_t));
    g->held = malloc(S * P * sizeof(MPI_Message));
    g->held_count = calloc(S * P, sizeof(size_t));
    g->held_issued = calloc(S * P, 1);
    g->send_later = calloc(S * P, 1);
    g->later_to = calloc(P, sizeof(int));
    g->scratch = calloc(S * P, sizeof(void *));
    g->nreqs = (int)(2 * S * P + P);
    g->reqs = malloc((size_t)g->nreqs * sizeof(MPI_Request));
    g->big = calloc((size_t)g->nreqs, 1);
    g->done_idx = calloc((size_t)g->nreqs, sizeof(int));
    g->statuses = calloc((size_t)g->nreqs, sizeof(MPI_Status));
    g->peer_final = calloc(P, sizeof(int64_t));
    if (!g->next_from || !g->held || !g->held_count || !g->held_issued || !g->send_later ||
        !g->later_to || !g->scratch || !g->reqs || !g->big || !g->done_idx || !g->statuses ||
        !g->peer_final)
        return bls_error(BLS_ERR_NOMEM, "bls_comm_create: out of memory");
    for (int r = 0; r < g->nreqs; r++)
        g->reqs[r] = MPI_REQUEST_NULL;
    for (size_t i = 0; i < S * P; i++)
        g->held[i] = MPI_MESSAGE_NULL;
    for (size_t q = 0; q < P; q++)
        g->peer_final[q] = -1;
    c->buffer_bytes +=
        sizeof(lagged_t) + P * (1 + sizeof(int)) +
        S * P *
            (sizeof(MPI_Message) + sizeof(size_t) + sizeof(void *) + 2 * sizeof(MPI_Request) + 4);

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->wake_progress, &ca);
    pthread_cond_init(&g->wake_user, &ca);
    pthread_condattr_destroy(&ca);
    g->thread_started = -1; /* mutex and conditions exist */
    if (c->progress == BLS_PROGRESS_CALLER)
        return BLS_OK;
    int err = pthread_create(&g->thread, NULL, progress_main, c);
    if (err != 0)
        return bls_error(BLS_ERR_NOMEM, "bls_comm_create: cannot start the progress thread: %s",
                         strerror(err));
    g->thread_started = 1;
    return BLS_OK;
}

static void lagged_stop(bls_comm_t *c)
{
    lagged_t *g = c->state;
    if (!g)
        return;
    if (g->thread_started == 1) {
        pthread_mutex_lock(&g->lock);
        g->stop = 1;
        pthread_cond_signal(&g->wake_progress);
        pthread_mutex_unlock(&g->lock);
        pthread_join(g->thread, NULL);
    }
    if (g->thread_started != 0) {
        pthread_mutex_destroy(&g->lock);
        pthread_cond_destroy(&g->wake_progress);
        pthread_cond_destroy(&g->wake_user);
    }
    /* After an orderly bls_finish nothing is left.  After errors: held blocks are received whole
     * into scratch memory and dropped; matched receives and sends cannot be cancelled, so they
     * get a grace period (their peers' data is already matched).  Whatever is still unfinished
     * then is released to MPI, and the memory it may still touch is deliberately not freed. */
    size_t SP = (size_t)c->nslots * c->size;
    size_t cap = g->reqs ? (size_t)g->nreqs + SP : 0;
    MPI_Request *left = cap ? malloc(cap * sizeof(MPI_Request)) : NULL;
    MPI_Status *lst = cap ? malloc(cap * sizeof(MPI_Status)) : NULL;
    void **held_buf = cap ? calloc(SP, sizeof(void *)) : NULL;
    int all = 1;
    if (left && lst && held_buf && g->held && g->scratch) {
        int n = 0;
        for (int r = 0; r < g->nreqs; r++)
            if (g->reqs[r] != MPI_REQUEST_NULL)
                left[n++] = g->reqs[r];
        for (size_t i = 0; i < SP; i++) {
            if (g->held[i] == MPI_MESSAGE_NULL)
                continue;
            size_t bytes = g->held_count[i] * c->elem;
            held_buf[i] = bytes ? malloc(bytes) : NULL;
            if ((!bytes || held_buf[i]) &&
                MPI_Imrecv(held_buf[i], (int)bytes, MPI_BYTE, &g->held[i], &left[n]) == MPI_SUCCESS)
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
        for (size_t i = 0; g->scratch && i < SP; i++)
            free(g->scratch[i]);
        free(g->scratch);
    }
    free(held_buf);
    free(left);
    free(lst);
    free(g->next_from);
    free(g->held);
    free(g->held_count);
    free(g->held_issued);
    free(g->send_later);
    free(g->later_to);
    free(g->reqs);
    free(g->big);
    free(g->done_idx);
    free(g->statuses);
    free(g->peer_final);
    free(g->copier);
    free(g);
    c->state = NULL;
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
        if (q != c->rank && (*send_req((bls_comm_t *)c, rec->iter, q) != MPI_REQUEST_NULL ||
                             state(c)->send_later[idx(c, rec->iter, q)])) {
            used += (size_t)snprintf(buf + used, len - used, "%s%d", n ? ", " : "", q);
            n++;
        }
    snprintf(buf + used, len - used, "%s", n ? " are still in flight" : "? (none pending)");
}

static void lagged_pending(bls_comm_t *c, bls_iter_t iter, char *buf, size_t len)
{
    lagged_t *g = c->state;
    pthread_mutex_lock(&g->lock);
    const bls_iter_rec_t *rec = &c->ring[iter % c->nslots];
    if (rec->done)
        snprintf(buf, len, "nothing");
    else
        missing_peers(c, rec, buf, len);
    pthread_mutex_unlock(&g->lock);
}

/* Caller holds the lock.  Fatal errors are reported to every later call. */
static bls_status_t check_fatal(bls_comm_t *c)
{
    lagged_t *g = c->state;
    if (g->fatal != BLS_OK)
        return bls_error(g->fatal, "%s", g->fatal_msg);
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

/*
 * The one wait loop of this mode (the lock held): until ready() holds, the communicator fails,
 * or the deadline (0: none) passes, in which case timed_out() writes the error.  The caller
 * moves the data itself meanwhile (see Progress at the top).
 */
typedef struct {
    const char *who;
    bls_iter_rec_t *rec;
    bls_iter_t iter;
} awaited_t;

static bls_status_t wait_until(bls_comm_t *c, int (*ready)(const bls_comm_t *, const awaited_t *),
                               bls_status_t (*timed_out)(bls_comm_t *, const awaited_t *),
                               const awaited_t *w, double deadline)
{
    lagged_t *g = c->state;
    bls_status_t st = BLS_OK;
    unsigned idle = 0;
    long nap_us = 1;
    g->blocked++;
    while (st == BLS_OK && !ready(c, w)) {
        st = check_fatal(c);
        if (st != BLS_OK)
            break;
        if (g->thread_round && !g->boosted && c->progress == BLS_PROGRESS_THREAD) {
            /* The thread holds the engine: under SCHED_IDLE on busy cores it might not get
             * one to finish its round while we wait on it.  Normal priority until it does. */
            set_policy(g->thread, SCHED_OTHER);
            g->boosted = 1;
        }
        if (engine_round(c, 0)) {
            idle = 0;
            nap_us = 1;
            continue;
        }
        if (deadline > 0 && bls_now() >= deadline) {
            st = timed_out(c, w);
        } else if (++idle < SPIN_ROUNDS && !g->engine_busy) {
            pthread_mutex_unlock(&g->lock);
            sched_yield();
            pthread_mutex_lock(&g->lock);
        } else {
            if (!nap_user(c, deadline, nap_us))
                st = timed_out(c, w);
            if (nap_us < close_nap_us(c))
                nap_us *= 2;
        }
    }
    if (--g->blocked == 0 && g->thread_aside)
        pthread_cond_signal(&g->wake_progress);
    return st == BLS_OK ? check_fatal(c) : st;
}

/* Iteration w->iter is done, or no longer in its ring entry (reported). */
static int iteration_done(const bls_comm_t *c, const awaited_t *w)
{
    (void)c;
    return w->rec->iter != w->iter || w->rec->done;
}

static bls_status_t iteration_timeout(bls_comm_t *c, const awaited_t *w)
{
    return timeout_error(c, w->who, w->rec);
}

/* The sends of the iteration that last used this entry (failed for good) are complete. */
static int sends_drained(const bls_comm_t *c, const awaited_t *w)
{
    (void)c;
    return w->rec->sends_pending == 0;
}

static bls_status_t sends_timeout(bls_comm_t *c, const awaited_t *w)
{
    return bls_error(BLS_ERR_TIMEOUT,
                     "bls_post (iteration %lld): the sends of failed iteration %lld are still in "
                     "flight after %.3g s (rank %d)",
                     (long long)w->iter, (long long)(w->iter - c->nslots), c->timeout, c->rank);
}

/* Iteration k's own block, which never touches MPI; the lock is held. */
static void post_own_block(bls_comm_t *c, bls_iter_rec_t *rec, const bls_post_args_t *a)
{
    size_t self = a->sendcounts[c->rank];
    rec->arrived[c->rank] = self;
    if (a->recvcounts && a->recvcounts[c->rank] != self)
        rec_fail(rec, BLS_ERR_COUNT,
                 "iteration %lld, peer %d (itself): expected %zu elements, received %zu",
                 (long long)rec->iter, c->rank, a->recvcounts[c->rank], self);
    else if (self > 0)
        memcpy((char *)a->recvbuf + a->rdispls[c->rank] * c->elem,
               (const char *)a->sendbuf + a->sdispls[c->rank] * c->elem, self * c->elem);
    rec_block_in(c, rec, c->rank);
}

static bls_status_t lagged_post(bls_comm_t *c, const bls_post_args_t *a, bls_iter_t *iter_p)
{
    lagged_t *g = c->state;
    bls_iter_t k = c->n_posted;
    double t0 = bls_now(), deadline = bls_deadline(c);
    bls_status_t st = BLS_OK;
    pthread_mutex_lock(&g->lock);
    /* The bound: every iteration <= k-L-1 done (k-L-1 and the entry k reuses, k-L-2). */
    for (bls_iter_t j = k - c->nslots; j <= k - c->lag - 1 && st == BLS_OK; j++) {
        awaited_t w = {"bls_post (lag bound)", &c->ring[j % c->nslots], j};
        if (j >= 0)
            st = wait_until(c, iteration_done, iteration_timeout, &w, deadline);
    }
    awaited_t w = {"bls_post", &c->ring[k % c->nslots], k}; /* after a failed-for-good one */
    if (st == BLS_OK)
        st = wait_until(c, sends_drained, sends_timeout, &w, deadline);
    bls_iter_rec_t *rec = NULL;
    if (st == BLS_OK)
        st = bls_free_entry(c, k, &rec);
    if (st == BLS_OK) {
        bls_rec_fill(c, rec, k, a);
        post_own_block(c, rec, a);
        for (int p = 0; p < c->size; p++)
            if (g->peer_final[p] >= 0)
                fail_beyond_final(c, p);
        c->n_posted = k + 1;
        *iter_p = k;
        double now = bls_now(), gap = now - g->last_post;
        double dev = gap > g->post_gap ? gap - g->post_gap : g->post_gap - gap;
        g->gap_dev = k <= 1 ? gap : 0.875 * g->gap_dev + 0.125 * dev;
        g->post_gap = k == 0 ? 0 : k == 1 ? gap : 0.875 * g->post_gap + 0.125 * gap;
        g->last_post = now;
        engine_round(c, caller_defers(c)); /* the sends leave now, from this thread */
        /* A sleeping thread must watch the new iteration, and a napping one take the large
         * blocks left to it, unless posts come steadily (steady_copies).  Otherwise it finds
         * the iteration on its next poll. */
        if (g->thread_asleep ||
            ((g->big_recvs > 0 || left_to_thread(c)) && !steady_copies(c) && !g->standby))
            pthread_cond_signal(&g->wake_progress);
    }
    pthread_mutex_unlock(&g->lock);
    c->post_wait_seconds += bls_now() - t0;
    return st;
}

static bls_status_t lagged_wait(bls_comm_t *c, bls_iter_t iter, int blocking, int *flag_p,
                                size_t *recvcounts_out)
{
    lagged_t *g = c->state;
    awaited_t w = {"bls_wait", &c->ring[iter % c->nslots], iter};
    double t0 = bls_now(), deadline = bls_deadline(c);
    pthread_mutex_lock(&g->lock);
    if (!blocking) { /* as bls_post: the large blocks this round left go to the thread now */
        engine_round(c, caller_defers(c));
        if (thread_due(c))
            pthread_cond_signal(&g->wake_progress);
    }
    bls_status_t st =
        blocking ? wait_until(c, iteration_done, iteration_timeout, &w, deadline) : check_fatal(c);
    if (st == BLS_OK && w.rec->done) {
        if (flag_p)
            *flag_p = 1;
        st = bls_report(c, w.rec, recvcounts_out);
    }
    pthread_mutex_unlock(&g->lock);
    if (blocking)
        c->wait_seconds += bls_now() - t0;
    return st;
}

/* The lowest unreported iteration that is done; else NULL, with *oldest_p the lowest
 * unreported one (NULL if none). */
static bls_iter_rec_t *first_done(const bls_comm_t *c, bls_iter_rec_t **oldest_p)
{
    *oldest_p = NULL;
    for (bls_iter_t k = c->n_posted - c->nslots; k < c->n_posted; k++) {
        bls_iter_rec_t *r = &c->ring[k % c->nslots];
        if (k < 0 || r->iter != k)
            continue;
        if (!*oldest_p)
            *oldest_p = r;
        if (r->done)
            return r;
    }
    return NULL;
}

static int any_done(const bls_comm_t *c, const awaited_t *w)
{
    (void)w;
    bls_iter_rec_t *oldest;
    return first_done(c, &oldest) != NULL || oldest == NULL;
}

static bls_status_t any_timeout(bls_comm_t *c, const awaited_t *w)
{
    bls_iter_rec_t *oldest;
    first_done(c, &oldest);
    return timeout_error(c, w->who, oldest);
}

static bls_status_t lagged_wait_any(bls_comm_t *c, bls_iter_t *iter_p, size_t *recvcounts_out)
{
    lagged_t *g = c->state;
    awaited_t w = {"bls_wait_any", NULL, -1};
    double t0 = bls_now(), deadline = bls_deadline(c);
    pthread_mutex_lock(&g->lock);
    bls_status_t st = wait_until(c, any_done, any_timeout, &w, deadline);
    bls_iter_rec_t *oldest, *found = first_done(c, &oldest);
    if (st == BLS_OK && !found)
        st = bls_error(BLS_ERR_STATE, "bls_wait_any: no posted iteration is unreported");
    if (st == BLS_OK) {
        *iter_p = found->iter;
        st = bls_report(c, found, recvcounts_out);
    }
    pthread_mutex_unlock(&g->lock);
    c->wait_seconds += bls_now() - t0;
    return st;
}

/* bls_finish's condition: every posted iteration done (or failed for good), every peer's
 * announcement in, ours sent. */
static int all_finished(const bls_comm_t *c, const awaited_t *w)
{
    (void)w;
    const lagged_t *g = c->state;
    for (int s = 0; s < c->nslots; s++)
        if (c->ring[s].iter >= 0 && !c->ring[s].done)
            return 0;
    for (int p = 0; p < c->size; p++)
        if (p != c->rank && g->peer_final[p] < 0)
            return 0;
    return !g->final_to_send && g->final_sends_pending == 0;
}

static bls_status_t finish_timeout(bls_comm_t *c, const awaited_t *w)
{
    const lagged_t *g = c->state;
    for (int s = 0; s < c->nslots; s++)
        if (c->ring[s].iter >= 0 && !c->ring[s].done)
            return timeout_error(c, w->who, &c->ring[s]);
    char peers[512] = "";
    size_t used = 0;
    for (int p = 0; p < c->size && used + 16 < sizeof(peers); p++)
        if (p != c->rank && g->peer_final[p] < 0)
            used +=
                (size_t)snprintf(peers + used, sizeof(peers) - used, "%s%d", used ? ", " : "", p);
    return bls_error(BLS_ERR_TIMEOUT, "bls_finish (rank %d): peers %s did not finish within %.3g s",
                     c->rank, peers[0] ? peers : "(none; own announcement unsent)", c->timeout);
}

/* Names the peers whose announced count differs from ours. */
static bls_status_t compare_finals(const bls_comm_t *c)
{
    const lagged_t *g = c->state;
    char diff[512] = "";
    size_t used = 0;
    for (int p = 0; p < c->size && used + 40 < sizeof(diff); p++)
        if (p != c->rank && g->peer_final[p] != c->n_posted)
            used += (size_t)snprintf(diff + used, sizeof(diff) - used, "%srank %d posted %lld",
                                     used ? ", " : "", p, (long long)g->peer_final[p]);
    if (!used)
        return BLS_OK;
    return bls_error(BLS_ERR_ITER_MISMATCH,
                     "bls_finish: this process (rank %d) posted %lld iterations, but %s", c->rank,
                     (long long)c->n_posted, diff);
}

static bls_status_t lagged_finish(bls_comm_t *c)
{
    lagged_t *g = c->state;
    awaited_t w = {"bls_finish", NULL, -1};
    double deadline = bls_deadline(c);
    pthread_mutex_lock(&g->lock);
    if (!g->final_announced) { /* a retry after a timeout must not announce twice */
        g->final_announced = 1;
        g->final_out = c->n_posted;
        g->final_to_send = c->size > 1;
    }
    bls_status_t st = wait_until(c, all_finished, finish_timeout, &w, deadline);
    if (st == BLS_OK)
        st = compare_finals(c);
    pthread_mutex_unlock(&g->lock);
    return st;
}

static bls_status_t lagged_progress(bls_comm_t *c)
{
    lagged_t *g = c->state;
    pthread_mutex_lock(&g->lock);
    engine_round(c, 0);
    bls_status_t st = check_fatal(c);
    pthread_mutex_unlock(&g->lock);
    return st;
}

static double lagged_standby(const bls_comm_t *c)
{
    lagged_t *g = c->state;
    if (g->thread_started == 0)
        return 0.0;
    pthread_mutex_lock(&g->lock);
    double s = g->standby_s;
    pthread_mutex_unlock(&g->lock);
    return s;
}

static double lagged_cpu(const bls_comm_t *c)
{
    const lagged_t *g = c->state;
    clockid_t cid;
    struct timespec ts;
    if (g->thread_started != 1 || pthread_getcpuclockid(g->thread, &cid) != 0 ||
        clock_gettime(cid, &ts) != 0)
        return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const bls_mode_ops_t bls_lagged_ops = {
    .mode = BLS_MODE_BLS,
    .name = "bls",
    .needs_thread_multiple = 1,
    .needs_recvcounts = 0,
    .start = lagged_start,
    .stop = lagged_stop,
    .post = lagged_post,
    .wait = lagged_wait,
    .wait_any = lagged_wait_any,
    .finish = lagged_finish,
    .pending = lagged_pending,
    .cpu = lagged_cpu,
    .standby = lagged_standby,
    .progress = lagged_progress,
};
