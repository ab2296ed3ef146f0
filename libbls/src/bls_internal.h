/* Internal state of a bls communicator; shared by the common code and the two modes. */
#ifndef BLS_INTERNAL_H
#define BLS_INTERNAL_H

#include "bls.h"

#include <pthread.h>
#include <stdarg.h>

#define BLS_MAX_LAG 4096
#define BLS_MSG_LEN 1024

/*
 * One posted iteration as the receiver sees it.  Iteration k lives in ring[k % nslots] from
 * bls_post() until it is reported by bls_wait/bls_test/bls_wait_any; iter == -1 marks a free
 * entry.  The arrays point into storage allocated once at creation.
 */
typedef struct {
    bls_iter_t iter;
    int done;           /* every block in recvbuf and every send complete, or failed for good */
    char *recvbuf;
    const char *sendbuf;  /* lent by the caller until the iteration is reported */
    size_t *sendcounts;   /* [P] elements */
    size_t *sdispls;      /* [P] elements */
    int sends_pending;    /* sends issued and not complete */
    int counts_known;   /* expected[] holds the stated counts */
    size_t *expected;   /* [P] elements */
    size_t *rdispls;    /* [P] elements */
    size_t *arrived;    /* [P] elements that arrived */
    unsigned char *have; /* [P] 1 once that peer's block is in recvbuf (or rejected) */
    int missing;        /* peers whose block is not in yet */
    bls_status_t status; /* BLS_OK, BLS_ERR_COUNT or BLS_ERR_PEER_FINISHED */
    char msg[256];
} bls_iter_rec_t;

struct bls_comm {
    MPI_Comm mpi; /* private duplicate; errors return instead of aborting */
    int rank, size;
    bls_mode_t mode;
    int lag;
    int nslots; /* L + 2: ring entries (posted, unreported iterations) */
    size_t elem; /* bytes per element of the datatype */
    MPI_Datatype elem_type; /* MPI_BYTE, or elem contiguous bytes (SYNC mode's unit) */
    double timeout;
    int poll_max_us;
    size_t *max_send; /* [P] elements this process may send to each peer */
    size_t *max_recv; /* [P] elements each peer may send here (learned at creation) */

    bls_iter_rec_t *ring;
    bls_iter_t n_posted;   /* next iteration id */
    int finishing;         /* bls_finish() started: no more posts */
    int finished;          /* bls_finish() returned (either way) */

    /* Scratch for argument checks. */
    struct bls_range *ranges;

    /* --- BLS mode only --- */
    bls_iter_t n_issued;    /* sends and receives are issued for iterations < n_issued */
    bls_iter_t *next_from;  /* [P] next iteration whose block from that peer is unprobed */
    MPI_Message *held;      /* [S*P] matched early block (iteration % S, peer), not received */
    size_t *held_count;     /* [S*P] its size in elements */
    void **scratch;         /* [S*P] where a rejected block is received whole (bad input only:
                               a truncated receive would be fatal under MPICH) */
    MPI_Request *reqs;      /* receives [S*P], sends [S*P] (by ring entry), control sends [P] */
    int nreqs;
    int *done_idx;
    MPI_Status *statuses;
    int64_t *peer_final;    /* [P] -1 until the peer announced its count */
    int64_t final_out;
    int final_announced;    /* bls_finish() has queued the announcement */
    int final_to_send;      /* the progress thread must send final_out to every peer */
    int final_sends_pending;
    int tag_cycle;

    pthread_t thread;
    int thread_started;
    pthread_mutex_t lock;
    pthread_cond_t wake_progress; /* posts, waiters and stop wake the progress thread */
    pthread_cond_t wake_user;     /* completions wake waiting callers */
    int stop;
    int waiters;
    bls_status_t fatal;  /* BLS_ERR_MPI once the transport failed */
    char fatal_msg[BLS_MSG_LEN];

    bls_notify_fn notify; /* completion callback, or NULL */
    void *notify_arg;

    /* Statistics. */
    int64_t n_completed;
    double post_wait_seconds, wait_seconds;
    size_t buffer_bytes;
};

/* Records a message for bls_last_error() in this thread and returns status. */
bls_status_t bls_error(bls_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
bls_status_t bls_mpi_error(int mpi_rc, const char *what);

double bls_now(void);
/* Deadline for a wait that starts now; 0 means none. */
double bls_deadline(const bls_comm_t *c);

/* The report step shared by both modes: frees the ring entry, returns its status. */
bls_status_t bls_report(bls_comm_t *c, bls_iter_rec_t *rec, size_t *recvcounts_out);
/* Fills a ring entry for iteration k at post time (arrays copied). */
void bls_rec_fill(bls_comm_t *c, bls_iter_rec_t *rec, bls_iter_t k, const void *sendbuf,
                  const size_t *sendcounts, const size_t *sdispls, void *recvbuf,
                  const size_t *recvcounts, const size_t *rdispls);

/* Mode entry points. */
bls_status_t bls_lagged_start(bls_comm_t *c);
void bls_lagged_stop(bls_comm_t *c);
bls_status_t bls_lagged_post(bls_comm_t *c, const void *sendbuf, const size_t *sendcounts,
                             const size_t *sdispls, void *recvbuf, const size_t *recvcounts,
                             const size_t *rdispls, bls_iter_t *iter_p);
bls_status_t bls_lagged_wait(bls_comm_t *c, bls_iter_t iter, int blocking, int *flag_p,
                             size_t *recvcounts_out);
bls_status_t bls_lagged_wait_any(bls_comm_t *c, bls_iter_t *iter_p, size_t *recvcounts_out);
bls_status_t bls_lagged_finish(bls_comm_t *c);
void bls_lagged_pending_peers(bls_comm_t *c, bls_iter_t iter, char *buf, size_t len);
double bls_lagged_cpu_seconds(const bls_comm_t *c);

bls_status_t bls_sync_post(bls_comm_t *c, const void *sendbuf, const size_t *sendcounts,
                           const size_t *sdispls, void *recvbuf, const size_t *recvcounts,
                           const size_t *rdispls, bls_iter_t *iter_p);
bls_status_t bls_sync_finish(bls_comm_t *c);

#endif /* BLS_INTERNAL_H */
