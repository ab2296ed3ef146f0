/*
 * Inside a bls communicator.  Three layers, each file including only what is beneath it:
 *   bls_comm.c      the public calls: creation, argument checks, then the mode's operation
 *   bls_lagged.c    BLS mode          \
 *   bls_sync.c      SYNC mode          | one algorithm per file; each binds its operations
 *   bls_ialltoallv.c IALLTOALLV mode   | once, at creation (bls_mode_ops_t), and keeps its
 *   bls_window.c    WINDOW mode       /  state in its own struct behind comm->state
 *   bls_base.c      errors, the clock, the ring of posted iterations, modes by name
 */
#ifndef BLS_INTERNAL_H
#define BLS_INTERNAL_H

#include "bls.h"

#include <stdarg.h>

#define BLS_MSG_LEN 1024

/*
 * One posted iteration as the receiver sees it.  Iteration k lives in ring[k % nslots] from
 * bls_post() until it is reported by bls_wait/bls_test/bls_wait_any; iter == -1 marks a free
 * entry.  The arrays point into storage allocated once at creation.
 */
typedef struct {
    bls_iter_t iter;
    int done; /* every block in recvbuf and every send complete, or failed for good */
    char *recvbuf;
    const char *sendbuf; /* lent by the caller until the iteration is reported */
    size_t *sendcounts;  /* [P] elements */
    size_t *sdispls;     /* [P] elements */
    int sends_pending;   /* sends issued and not complete */
    int counts_known;    /* expected[] holds the stated counts */
    size_t *expected;    /* [P] elements */
    size_t *rdispls;     /* [P] elements */
    size_t *arrived;     /* [P] elements that arrived */
    unsigned char *have; /* [P] 1 once that peer's block is in recvbuf (or rejected) */
    int missing;         /* peers whose block is not in yet */
    bls_status_t status; /* BLS_OK, BLS_ERR_COUNT or BLS_ERR_PEER_FINISHED */
    char msg[256];
} bls_iter_rec_t;

/* One bls_post()'s arguments, checked (bls_comm.c) before a mode sees them. */
typedef struct {
    const void *sendbuf;
    const size_t *sendcounts, *sdispls;
    void *recvbuf;
    const size_t *recvcounts, *rdispls; /* recvcounts may be NULL: counts unknown */
} bls_post_args_t;

/*
 * A mode's operations, bound at creation.  The public calls check their arguments and the
 * iteration's state first (bls_comm.c), then call these.
 *  start      after the common state exists: the mode's own state and threads
 *  stop       at destruction (also after a failed start)
 *  post       iteration c->n_posted; the mode fills its ring entry and advances n_posted
 *  wait       iteration iter, posted and unreported; blocking or a test (*flag_p)
 *  wait_any   the lowest complete unreported iteration
 *  finish     the collective end (c->finishing is set)
 *  pending    what iteration iter still waits for, as text
 *  cpu        CPU seconds of the mode's own threads
 *  standby    seconds its progress thread stood by, getting no core in time; NULL: none
 */
typedef struct bls_mode_ops {
    bls_mode_t mode;
    const char *name;
    int needs_thread_multiple;
    int needs_recvcounts; /* the mode cannot take NULL receive counts */
    bls_status_t (*start)(bls_comm_t *c);
    void (*stop)(bls_comm_t *c);
    bls_status_t (*post)(bls_comm_t *c, const bls_post_args_t *a, bls_iter_t *iter_p);
    bls_status_t (*wait)(bls_comm_t *c, bls_iter_t iter, int blocking, int *flag_p,
                         size_t *recvcounts_out);
    bls_status_t (*wait_any)(bls_comm_t *c, bls_iter_t *iter_p, size_t *recvcounts_out);
    bls_status_t (*finish)(bls_comm_t *c);
    void (*pending)(bls_comm_t *c, bls_iter_t iter, char *buf, size_t len);
    double (*cpu)(const bls_comm_t *c);
    double (*standby)(const bls_comm_t *c);
    bls_status_t (*progress)(bls_comm_t *c); /* bls_progress(); NULL: nothing to do */
} bls_mode_ops_t;

extern const bls_mode_ops_t bls_lagged_ops, bls_sync_ops, bls_ialltoallv_ops, bls_window_ops;

/* What every mode shares.  A mode's own state is behind `state`, private to its file. */
struct bls_comm {
    const bls_mode_ops_t *ops;
    void *state;
    MPI_Comm mpi; /* private duplicate; errors return instead of aborting */
    int rank, size;
    int lag;
    int nslots;             /* L + 2: ring entries (posted, unreported iterations) */
    size_t elem;            /* bytes per element of the datatype */
    MPI_Datatype elem_type; /* MPI_BYTE, or elem contiguous bytes (the unit of MPI calls) */
    double timeout;
    int poll_max_us;
    bls_progress_mode_t progress;
    size_t *max_send; /* [P] elements this process may send to each peer */
    size_t *max_recv; /* [P] elements each peer may send here (learned at creation) */

    bls_iter_rec_t *ring;
    bls_iter_t n_posted; /* next iteration id */
    int finishing;       /* bls_finish() started: no more posts */
    int finished;        /* bls_finish() returned (either way) */

    struct bls_range *ranges; /* scratch for argument checks */

    bls_notify_fn notify; /* completion callback, or NULL */
    void *notify_arg;

    /* Statistics. */
    int64_t n_completed;
    double post_wait_seconds, wait_seconds;
    size_t buffer_bytes;
    int copy_peers; /* BLS mode: peers that copy our large blocks themselves (bls_lagged.c) */
};

/* ---- bls_base.c ---- */

/* Records a message for bls_last_error() in this thread and returns status. */
bls_status_t bls_error(bls_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
bls_status_t bls_mpi_error(int mpi_rc, const char *what);

double bls_now(void);
/* Deadline for a wait that starts now; 0 means none. */
double bls_deadline(const bls_comm_t *c);

/* Fills a ring entry for iteration k at post time (arrays copied). */
void bls_rec_fill(bls_comm_t *c, bls_iter_rec_t *rec, bls_iter_t k, const bls_post_args_t *a);
/* The report step every mode shares: frees the ring entry, returns the iteration's status. */
bls_status_t bls_report(bls_comm_t *c, bls_iter_rec_t *rec, size_t *recvcounts_out);
/* BLS_OK if iteration iter is posted and not yet reported, else BLS_ERR_STATE naming who. */
bls_status_t bls_find_unreported(const bls_comm_t *c, bls_iter_t iter, const char *who);
/* The ring entry iteration k would use; BLS_ERR_STATE if k-L-2 still holds it unreported. */
bls_status_t bls_free_entry(bls_comm_t *c, bls_iter_t k, bls_iter_rec_t **rec_p);
/* The lowest posted, unreported iteration, or -1. */
bls_iter_t bls_oldest_unreported(const bls_comm_t *c);
/* bls_finish()'s count check for the modes whose peers cannot run ahead of the count
 * exchange: an MPI_Allgather of the posted counts, BLS_ERR_ITER_MISMATCH naming differences. */
bls_status_t bls_compare_counts(bls_comm_t *c, int64_t *scratch);
/* Converts P size_t counts to MPI's int, BLS_ERR_ARG if one exceeds INT_MAX. */
bls_status_t bls_to_int(const size_t *in, int *out, int n, const char *what, bls_iter_t k,
                        const char *mode);

#endif /* BLS_INTERNAL_H */
