/*
 * The machinery of the modes without a progress thread (IALLTOALLV, WINDOW): each ring entry
 * holds the MPI requests its iteration issued; bytes move only while this process is inside
 * MPI, and completion is found by testing those requests from bls_post, bls_wait, bls_test
 * and bls_finish.  A mode supplies how an iteration is issued and what a completed request
 * means (bls_polled_alg_t); everything else is shared (bls_polled.c).
 */
#ifndef BLS_POLLED_H
#define BLS_POLLED_H

#include "bls_internal.h"

typedef struct bls_polled_alg {
    int (*requests)(int P); /* requests per iteration */
    /* Issues iteration rec->iter into reqs; ints ([4P]) stays valid until it completes. */
    bls_status_t (*issue)(bls_comm_t *c, bls_iter_rec_t *rec, int tag, MPI_Request *reqs,
                          int *ints);
    /* Request i of the iteration completed with status st. */
    void (*completed)(bls_comm_t *c, bls_iter_rec_t *rec, int i, const MPI_Status *st);
    /* What the iteration still waits for, given which requests are open. */
    void (*pending)(const bls_comm_t *c, const MPI_Request *reqs, char *buf, size_t len);
} bls_polled_alg_t;

bls_status_t bls_polled_start(bls_comm_t *c, const bls_polled_alg_t *alg);
void bls_polled_stop(bls_comm_t *c);
bls_status_t bls_polled_post(bls_comm_t *c, const bls_post_args_t *a, bls_iter_t *iter_p);
bls_status_t bls_polled_wait(bls_comm_t *c, bls_iter_t iter, int blocking, int *flag_p,
                             size_t *recvcounts_out);
bls_status_t bls_polled_wait_any(bls_comm_t *c, bls_iter_t *iter_p, size_t *recvcounts_out);
bls_status_t bls_polled_finish(bls_comm_t *c);
void bls_polled_pending(bls_comm_t *c, bls_iter_t iter, char *buf, size_t len);
double bls_polled_cpu(const bls_comm_t *c);

/* A polled mode's operations: its own start (binding its algorithm), the shared rest. */
#define BLS_POLLED_OPS(MODE, NAME, START)                                                          \
    {                                                                                              \
        .mode = (MODE), .name = (NAME), .needs_thread_multiple = 0, .needs_recvcounts = 1,         \
        .start = (START), .stop = bls_polled_stop, .post = bls_polled_post,                        \
        .wait = bls_polled_wait, .wait_any = bls_polled_wait_any, .finish = bls_polled_finish,     \
        .pending = bls_polled_pending, .cpu = bls_polled_cpu,                                      \
    }

#endif
