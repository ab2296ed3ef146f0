/* Inside the distributed inference layer: errors, and the parts the files share. */
#ifndef DIST_INTERNAL_H
#define DIST_INTERNAL_H

#include "dlrm_dist.h"

/* Records a message for dist_last_error() in this thread and returns status. */
dist_status_t dist_error(dist_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Estimates every process's clock offset from process 0 (collective; serve.c). */
dist_status_t dist_clock_sync(dist_session_t *s);

/* The communicator of a session. */
MPI_Comm dist_session_comm(const dist_session_t *s);

/* ---- a run's machinery, shared by the offline loop (session.c) and the server loop (serve.c) */

struct dist_session {
    MPI_Comm comm;
    int rank, P;
    const dlrm_model_t *model;
    const dist_layout_t *L;
    int batch_max;
    const int *mine; /* this process's tables */
    int n_mine;
    bls_comm_t *failed; /* the communicator of a run that failed here, released at free */
    dist_clock_t clock;
};

/* One batch in flight: its buffers and what consuming it needs. */
typedef struct {
    float *send, *recv, *xbot, *labels;
    float *stage; /* bls:auto: the send buffer with a trailer after each block */
    int n;        /* samples in the batch */
    int64_t k;
    int64_t local_off; /* where its rows' predictions go in this process's record */
    double start;      /* when its latency starts: production (offline), arrival (server) */
} slot_t;

typedef struct autolag autolag_t; /* adaptive lag's state (autolag.c) */

/* A run's working state. */
typedef struct {
    dist_session_t *s;
    const harness_driver_t *drv;
    const dist_scenario_t *sc;
    bls_comm_t *comm;
    int S; /* slots: L + 1 */
    slot_t *slots;
    float *pooled;              /* [rows][T][d]: one batch, unpacked */
    size_t *sc_, *sd, *rc, *rd; /* the exchange's counts and displacements */
    dist_run_t *r;
    int64_t cap_b, cap_l; /* capacity of r's per-batch and per-row records */
    int64_t consumed;     /* batches < consumed are consumed, in order */
    double in_lib;        /* time inside libbls */
    int serving;          /* server run: per-query work and completion times */
    double t0;            /* server run: the schedule's start on this process's clock */
    double cpu0;          /* process CPU time at the run's start */
    const dist_run_opts_t *opts;
    autolag_t *al;          /* bls:auto: the policy and what it learned, else NULL */
    const double *arrivals; /* server run: the schedule's arrivals (the policy's open loop) */
    int cur_lag;            /* the run-ahead of the batch being produced */
} run_t;

/* Buffers, the driver's communicator, the source rewound; then a barrier. */
dist_status_t run_begin(run_t *x, dist_source_t *src, const dist_run_opts_t *opts);
/* Room in the records for batch k and rows up to need. */
dist_status_t run_grow(run_t *x, int64_t k, int64_t need);
/* Consumes batches in order up to `upto` (exclusive): waiting for them, or only those done. */
dist_status_t run_consume_upto(run_t *x, int64_t upto, int wait);
/* Batch k into its slot (bottom MLP, lookups, injected delay), then its exchange posted. */
dist_status_t run_produce_post(run_t *x, int64_t k, const dist_batch_t *b, slot_t *sl);
/* Every batch consumed, the communicator finished and released, the figures; st: the loop's
 * status (DIST_ERR_INPUT is every process's, the run still ends in order). */
dist_status_t run_end(run_t *x, double t0, dist_status_t st);

/* ---- adaptive lag (autolag.c): NULL state and the driver's lag for a fixed-lag driver ---- */
/* The policy, for a bls:auto driver. */
dist_status_t autolag_begin(run_t *x);
/* The run-ahead for the next batch: the driver's lag, or the policy's choice. */
int autolag_choose(run_t *x);
/* Batch k's trailer, DIST_AUTO_TRAILER floats ending each block this process sends. */
void autolag_stamp(run_t *x, int64_t k, float *trailer);
/* Batch k arrived (blocks at displs[p], counts[p] floats each, the last DIST_AUTO_TRAILER of
 * them the trailer): the policy learns batch k-1. */
void autolag_learn(run_t *x, int64_t k, const float *recv, const size_t *counts,
                   const size_t *displs);
void autolag_free(run_t *x);

/* dist_unpack for blocks that each end with `gap` more floats (layout.c). */
void dist_unpack_gap(const dist_layout_t *L, int q, int64_t n, const float *recv, size_t gap,
                     float *pooled);

#endif
