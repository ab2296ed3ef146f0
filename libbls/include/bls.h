/*
 * bls.h: bounded-lag synchronous (BLS) alltoallv on MPI.
 *
 * P processes run the same loop of iterations k = 0, 1, 2, ...; in each one every process has a
 * block (possibly empty, sizes differ per pair and per iteration) for every process.  A
 * synchronous alltoallv lets nobody leave iteration k before everybody entered it.  A BLS
 * communicator with lag bound L lets a process post iterations k+1 .. k+L while iteration k is
 * still incomplete, so independent delays on different processes stop adding up.  Delivery is
 * exact: what q obtains for (k, p) is exactly what p posted for (k, q).
 *
 * Contract (see docs of the project, "bls-semantics"):
 *  - Bound: bls_post() of iteration k returns only after every iteration <= k-L-1 is complete
 *    at this process.  At most L+1 iterations are in flight.  L = 0 is a synchronous alltoallv.
 *  - No other waiting: inside the bound, posting never waits for a peer to reach an iteration,
 *    to post a receive, or to call this library.
 *  - Asynchronous progress: in BLS mode a progress thread owned by the communicator moves bytes
 *    while the caller computes or sleeps outside the library; its polls space out to 5 ms when
 *    only small blocks are in flight, and to the observed time between posts while posts come
 *    at a steady rhythm, and it sleeps when nothing is outstanding; it runs at the lowest
 *    scheduling priority, so it uses cores the computation leaves free and never preempts it.
 *    A caller blocked in bls_wait* or bls_post moves the data itself (as MPI's blocking calls
 *    do), backing off to short sleeps when nothing arrives.  With BLS_PROGRESS_CALLER there is
 *    no thread: data moves inside this library's calls.
 *  - Bounded memory, zero copy: blocks move straight between the caller's buffers (MPI_Isend
 *    from the send buffer, MPI_Imrecv into the receive buffer); the library holds no payload
 *    memory, only O((L+2) * P) bookkeeping allocated at creation that never grows.  A block
 *    that arrives before its iteration is posted here waits as a matched MPI message (small
 *    ones in MPI's eager buffer, large ones in the sender's buffer): the receiver's posted
 *    buffer is the credit, and a sender short of credit allocates nothing.
 *  - Counts: a receiver either states the counts it expects (a mismatch fails that iteration
 *    with BLS_ERR_COUNT naming iteration, peer, expected and actual) or passes NULL and learns
 *    the counts that arrived from bls_wait().
 *  - Errors, not hangs: every call returns a status; bls_last_error() gives a message with the
 *    context (iteration, peer, sizes).  Waits end with BLS_ERR_TIMEOUT naming the missing peers.
 *
 * Modes: BLS_MODE_BLS is the bounded-lag machinery above.  The others run the same API on the
 * algorithms BLS is compared with, so tools compare them through one loop:
 *  - BLS_MODE_SYNC calls MPI_Alltoallv inside bls_post() (MPI_Alltoall of the counts first
 *    when the receiver passes NULL counts).  The timeout cannot interrupt MPI's blocking
 *    collective: a stalled peer stalls everybody, as MPI_Alltoallv itself does, and a dead
 *    peer is handled by the MPI runtime.
 *  - BLS_MODE_IALLTOALLV posts an MPI_Ialltoallv per iteration, BLS_MODE_WINDOW an MPI_Irecv
 *    and an MPI_Isend per peer: up to L+1 iterations in flight, the same bound, but no
 *    progress thread, so data moves only while this process is inside MPI, and a peer busy
 *    outside MPI holds up large transfers.  Both need the receive counts.
 *
 * Threads: BLS mode with its progress thread needs MPI initialised with MPI_THREAD_MULTIPLE
 * (the thread calls MPI while the application may too); BLS_PROGRESS_CALLER does not.  One
 * communicator must be used by one application thread at a time.
 *
 * Buffers and counts: counts and displacements are in elements of the communicator's datatype
 * (MPI_BYTE by default; any contiguous datatype).
 *  - sendbuf and recvbuf are lent to the library from bls_post() until bls_wait()/bls_test()/
 *    bls_wait_any() reports that iteration (MPI_Ialltoallv's rule): do not write the send
 *    buffer or touch the receive buffer before.  With lag L, L+1 pairs of buffers suffice when
 *    iteration k is reported before k+L+1 is posted.  The count and displacement arrays are
 *    copied by bls_post() and may be reused at once.
 *
 * No function calls exit() or MPI_Abort().
 */
#ifndef BLS_H
#define BLS_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Version of this header (the project's; the build reads it from here).  bls_version() gives
 * the library's: they differ only when a program runs against another build than the one it
 * was compiled with.  The shared library's SONAME changes with the major version.
 */
#define BLS_VERSION_MAJOR 0
#define BLS_VERSION_MINOR 1
#define BLS_VERSION_PATCH 0
#define BLS_VERSION_STRING "0.1.0"
/* One number that compares in order: 10000 * major + 100 * minor + patch. */
#define BLS_VERSION (BLS_VERSION_MAJOR * 10000 + BLS_VERSION_MINOR * 100 + BLS_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with -fvisibility=hidden: what this header declares is what it exports. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

typedef enum {
    BLS_OK = 0,
    BLS_ERR_ARG,           /* invalid argument (the message names it) */
    BLS_ERR_NOMEM,         /* allocation failed */
    BLS_ERR_MPI,           /* an MPI call failed; the communicator is unusable afterwards */
    BLS_ERR_THREAD,        /* BLS mode needs MPI_THREAD_MULTIPLE */
    BLS_ERR_TOO_LARGE,     /* a block larger than the declared maximum for that peer */
    BLS_ERR_COUNT,         /* the block that arrived differs from the stated count */
    BLS_ERR_TIMEOUT,       /* a wait exceeded the timeout; nothing was lost, retry is allowed */
    BLS_ERR_PEER_FINISHED, /* a peer finished before posting an iteration this one waits for */
    BLS_ERR_ITER_MISMATCH, /* bls_finish(): processes posted different numbers of iterations */
    BLS_ERR_STATE,         /* call out of order (waiting an unposted iteration, ...) */
    BLS_ERR_CONFIG,        /* processes created the communicator with different settings */
} bls_status_t;

typedef enum {
    BLS_MODE_BLS = 0,        /* bounded-lag pipelined alltoallv with a progress thread */
    BLS_MODE_SYNC = 1,       /* plain MPI_Alltoallv per iteration */
    BLS_MODE_IALLTOALLV = 2, /* MPI_Ialltoallv per iteration, up to L+1 in flight (comparison) */
    BLS_MODE_WINDOW = 3      /* MPI_Isend/MPI_Irecv per peer, up to L+1 in flight (comparison) */
} bls_mode_t;

#define BLS_MAX_LAG 4096 /* the largest lag a communicator takes */

/*
 * Modes by name, as tools take them: "bls:L", "sync", "ialltoallv:L", "window:L".  A bare "bls"
 * or "window" gets default_lag; a bare "ialltoallv" lag 0 (MPI_Ialltoallv waited for in its
 * own iteration); sync takes no lag.  BLS_ERR_ARG names what is wrong (unknown name, a lag that
 * is not an integer or outside [0, BLS_MAX_LAG]).
 */
bls_status_t bls_mode_parse(const char *spec, int default_lag, bls_mode_t *mode_p, int *lag_p);
/* "bls", "sync", "ialltoallv", "window". */
const char *bls_mode_name(bls_mode_t mode);

/* Iteration ids are assigned by bls_post(): 0, 1, 2, ... per communicator. */
typedef int64_t bls_iter_t;

typedef struct bls_comm bls_comm_t;

/* Who moves BLS mode's data while the caller is outside this library. */
typedef enum {
    BLS_PROGRESS_THREAD = 0,       /* a progress thread of the communicator at the lowest
                                      scheduling priority (Linux SCHED_IDLE; default): it runs
                                      whenever a core is free -- the caller sleeps or waits, or a
                                      core is spare -- and never takes a core from a computing
                                      thread, so with every core computing it costs almost
                                      nothing */
    BLS_PROGRESS_CALLER = 1,       /* nobody: data moves inside this library's calls (bls_post,
                                      bls_test, bls_wait*, bls_progress), for runtimes that own
                                      their threads; MPI_THREAD_MULTIPLE is then not needed */
    BLS_PROGRESS_THREAD_NORMAL = 2 /* the thread at the process's own priority: its polls
                                preempt computing threads (the behaviour before SCHED_IDLE) */
} bls_progress_mode_t;

/*
 * Progress settings by name, as tools take them: "thread", "thread-normal", "caller".
 * BLS_ERR_ARG names an unknown one.
 */
bls_status_t bls_progress_parse(const char *name, bls_progress_mode_t *progress_p);
/* "thread", "thread-normal", "caller" ("unknown" for a value outside the enum). */
const char *bls_progress_name(bls_progress_mode_t progress);

typedef struct {
    bls_mode_t mode;         /* default BLS_MODE_BLS */
    int lag;                 /* L >= 0, same on every process; default 1 */
    MPI_Datatype datatype;   /* element type of counts/displacements; contiguous; MPI_BYTE */
    size_t max_block;        /* largest block (elements) this process sends to any one peer:
                                checked at post, and the room a receiver with unknown counts
                                must leave */
    const size_t *max_send;  /* optional [P]: largest block (elements) to each destination;
                                overrides max_block.  Receivers learn these at creation. */
    double timeout;          /* seconds a wait may take before BLS_ERR_TIMEOUT; <= 0 means
                                wait forever.  Default 60. */
    int poll_max_us;         /* progress thread: longest sleep between polls while a large
                                block (16 KiB or more) is in flight or a completion callback
                                is set, and the shortest idle one; default 50 */
    bls_progress_mode_t progress; /* BLS mode: default BLS_PROGRESS_THREAD; per process (may
                                     differ between processes) */
} bls_config_t;

/* Fill *cfg with the defaults above (max_block 0: only empty blocks). */
void bls_config_init(bls_config_t *cfg);

/*
 * Collective over comm: every process calls it with the same mode, lag and datatype size (a
 * difference is BLS_ERR_CONFIG on every process, naming the settings).  The communicator is
 * duplicated; comm may be freed afterwards.  On success *comm_p is the new communicator.
 */
bls_status_t bls_comm_create(MPI_Comm comm, const bls_config_t *cfg, bls_comm_t **comm_p);

/*
 * Releases everything.  Not collective and never blocks on peers: call bls_finish() first for
 * an orderly end; destroying with iterations in flight cancels them.  NULL is accepted.
 */
void bls_comm_destroy(bls_comm_t *comm);

/*
 * Posts the next iteration's blocks; *iter_p receives its id.  Arrays have P entries.
 * Both buffers are lent to the library until the iteration is reported.
 *  sendcounts[q], sdispls[q]: the block for q at sendbuf + sdispls[q] (elements).
 *  recvcounts: expected counts per source, or NULL to accept any count up to the source's
 *    declared maximum (then rdispls[p] must leave room for that maximum; bls_wait reports the
 *    counts that arrived).  rdispls[p]: where p's block lands in recvbuf.
 * Blocks while an iteration <= id-L-1 is incomplete (the lag bound), bounded by the timeout.
 * Errors: BLS_ERR_ARG (NULL buffer with non-zero counts, overlapping receive blocks),
 * BLS_ERR_TOO_LARGE (a block above the declared maximum), BLS_ERR_TIMEOUT (nothing was
 * posted; may be retried), BLS_ERR_STATE (iteration id-L-2 was never waited for).
 */
bls_status_t bls_post(bls_comm_t *comm, const void *sendbuf, const size_t *sendcounts,
                      const size_t *sdispls, void *recvbuf, const size_t *recvcounts,
                      const size_t *rdispls, bls_iter_t *iter_p);

/*
 * Waits until iteration iter is complete and reports it: its recvbuf belongs to the caller
 * again; recvcounts_out (optional, P entries) gets the counts that arrived.  Each iteration is
 * reported exactly once (by bls_wait, a successful bls_test, or bls_wait_any).  An iteration
 * whose blocks did not match the stated counts is reported with BLS_ERR_COUNT (the other
 * iterations are unaffected).  BLS_ERR_TIMEOUT leaves the iteration outstanding.
 */
bls_status_t bls_wait(bls_comm_t *comm, bls_iter_t iter, size_t *recvcounts_out);

/* Like bls_wait without blocking: *flag_p = 1 and the iteration is reported if complete. */
bls_status_t bls_test(bls_comm_t *comm, bls_iter_t iter, int *flag_p, size_t *recvcounts_out);

/* Waits for any posted, unreported iteration (the lowest complete one) and reports it. */
bls_status_t bls_wait_any(bls_comm_t *comm, bls_iter_t *iter_p, size_t *recvcounts_out);

/*
 * Collective end: waits for every posted iteration still in flight (unreported ones stay
 * reportable), tells the peers how many iterations this process posted and checks theirs.
 * Different counts are BLS_ERR_ITER_MISMATCH naming the processes and their counts.  After it,
 * only bls_wait/bls_test of unreported iterations and bls_comm_destroy are allowed.
 */
bls_status_t bls_finish(bls_comm_t *comm);

/*
 * Completion notification, for a runtime that completes its own request objects (the PyTorch
 * backend does).  fn(arg, iter) is called each time iteration iter becomes complete or fails
 * for good (it can then be reported with bls_test without blocking), and fn(arg, -1) once if
 * the communicator fails as a whole (BLS_ERR_MPI).  BLS mode calls it with the communicator's
 * lock held, from the progress thread or from inside bls_post (an iteration whose only block
 * is this process's own completes there); SYNC mode calls it inside bls_post.  So fn must return
 * quickly, must not call this library, and must not take a lock that is held around calls
 * into this library.  Set it before the first post; fn = NULL removes it.
 */
typedef void (*bls_notify_fn)(void *arg, bls_iter_t iter);
bls_status_t bls_comm_set_notify(bls_comm_t *comm, bls_notify_fn fn, void *arg);

/*
 * What posted, unreported iteration iter still waits for, as text for an error message
 * ("2, 3": the peers whose blocks are missing; "none, but its sends to peers 1 are still in
 * flight"; "nothing" once it is complete).  Never blocks.  SYNC mode iterations are complete
 * when posted.  BLS_ERR_STATE if iter is not posted or already reported.
 */
bls_status_t bls_pending_peers(bls_comm_t *comm, bls_iter_t iter, char *buf, size_t len);

/* Changes the timeout of later waits on this communicator (seconds; <= 0: forever). */
bls_status_t bls_comm_set_timeout(bls_comm_t *comm, double seconds);

/* Statistics of one communicator (this process). */
typedef struct {
    int64_t posted;           /* iterations posted */
    int64_t completed;        /* iterations reported complete */
    double post_wait_seconds; /* time bls_post spent waiting for the lag bound */
    double wait_seconds;      /* time blocked in bls_wait and bls_wait_any */
    double progress_cpu_seconds; /* CPU time of the progress thread (BLS mode) */
    double progress_standby_seconds; /* BLS mode: time the progress thread stood by, polling
                                        nothing, because on a host with more of the
                                        communicator's processes than cores it woke from its
                                        naps later on average than the time between posts
                                        (the caller's own calls move the data sooner) */
    size_t buffer_bytes;      /* bookkeeping bytes allocated at creation (no payload copies) */
    int copy_peers;           /* BLS mode: peers on this host found (by a 10 ms probe at a
                                 process's first creation) to take a large block by a single
                                 copy from this process's memory, so that sends to them need
                                 no polls from here; 0 when the transport needs the sender
                                 (TCP) and in other modes */
} bls_stats_t;

bls_status_t bls_comm_stats(const bls_comm_t *comm, bls_stats_t *stats_p);

/*
 * The library's version as "MAJOR.MINOR.PATCH"; each non-NULL pointer receives its part.  Needs
 * no MPI: callable before MPI_Init (for --version).
 */
const char *bls_version(int *major, int *minor, int *patch);

/*
 * One round of BLS mode's data movement in the calling thread: sends of posted iterations
 * issued, arrived blocks matched and received, completions noted.  Never waits.  With
 * BLS_PROGRESS_CALLER, call it now and then while computing between posts when blocks are
 * large (they move only inside calls); harmless with the thread.  Other modes: BLS_OK, nothing
 * done (MPI progresses them inside their own calls).
 */
bls_status_t bls_progress(bls_comm_t *comm);

/* Name of a status ("BLS_ERR_TIMEOUT") and its one-line meaning. */
const char *bls_strerror(bls_status_t status);

/*
 * Message of the last failed call made by this thread, with its context (iteration, peer,
 * expected and actual sizes, missing peers).  Valid until the thread's next failing call.
 */
const char *bls_last_error(void);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* BLS_H */
