/*
 * dlrm_dist.h: DLRM inference across MPI processes, as the reference's distributed forward
 * lays it out: embedding tables model-parallel (each process holds and looks up its own
 * tables for the whole global batch), the MLPs data-parallel (process q runs the bottom MLP,
 * the interaction and the top MLP for its slice of every batch), and one alltoallv of pooled
 * vectors per batch, through libbls in any of its modes.
 *
 * Three parts, usable apart:
 *  - the layout (no MPI): which tables each process holds, which rows of a batch it owns, what
 *    it sends and receives in the exchange and how what arrives is put back in table order;
 *  - sources of batches, each process reading what its tables and its slice need;
 *  - a session over a communicator that runs a source through a driver and returns results.
 * A driver is a libbls mode and lag (harness_driver_t): sync is MPI_Alltoallv per batch, bls:L
 * posts batch k as soon as it is pooled and consumes (interaction, top MLP) whatever completed,
 * consuming batch k-L-1 before producing batch k; bls:auto[:MAX] (auto_lag) lets each process
 * choose that L per batch, at most MAX, with harness.h's lag policy (its figures ride in the
 * exchange: DIST_AUTO_TRAILER floats after each block).  Every driver computes the same bits:
 * the engine's predictions do not depend on the batch slice (dlrm.h, "Exactness").
 *
 * Errors: every call returns a status, and dist_last_error() says what and where.  Nothing
 * here exits or aborts: a failure on one process is returned to it, and the caller decides
 * how the others learn (bls-dlrm aborts the job; an input error is met by every process at the
 * same batch, so it is DIST_ERR_INPUT everywhere).
 */
#ifndef DLRM_DIST_H
#define DLRM_DIST_H

#include "bls.h"
#include "dlrm.h"
#include "harness.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with -fvisibility=hidden: what this header declares is what it exports. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

typedef enum {
    DIST_OK = 0,
    DIST_ERR_ARG,    /* invalid argument or configuration */
    DIST_ERR_NOMEM,  /* allocation failed */
    DIST_ERR_INPUT,  /* the data is bad at a batch every process reads alike (collective) */
    DIST_ERR_ENGINE, /* the engine failed on this process */
    DIST_ERR_COMM,   /* the exchange failed on this process (timeout, a peer gone, MPI) */
} dist_status_t;

const char *dist_last_error(void);
const char *dist_strerror(dist_status_t status);

/* ---- the layout (no MPI) ----------------------------------------------------------------
 *
 * Tables: owner[t] is the process holding table t; process p's tables, ascending, are
 * tables[first[p] .. first[p+1]).  CONTIGUOUS is the reference's blocks: the first T mod P
 * processes get ceil(T/P) tables, the rest floor(T/P).  BALANCED places tables by decreasing
 * cost (cost[t], e.g. rows x expected lookups per sample), each on the least loaded process
 * (ties: the lower rank, and among equal costs the lower table).
 *
 * Rows: process q owns rows [slice_lo(q, n), slice_lo(q + 1, n)) of a batch of n samples,
 * slice_lo(q, n) = floor(q n / P): contiguous, in rank order, sizes differing by at most 1.
 *
 * Exchange (in floats): p sends q the pooled vectors of p's tables for q's rows, sample-major
 * ([rows of q][tables of p][d], what dlrm_embed writes for p's table list), at displacement
 * slice_lo(q, n) n_p d of p's buffer.  q receives p's block at displacement
 * sum over p' < p of rows(q) n_p' d, and dist_unpack reorders what arrived into
 * [rows of q][T][d] in table order, the input of dlrm_interact_top.
 */

typedef enum { DIST_PLACE_CONTIGUOUS = 0, DIST_PLACE_BALANCED = 1 } dist_placement_t;

typedef struct {
    int P, T, d;
    int *owner;  /* [T] */
    int *first;  /* [P + 1] */
    int *tables; /* [T] process p's tables at tables[first[p] .. first[p+1]) */
} dist_layout_t;

/* cost: [T], used by BALANCED only (NULL there: every table costs its index order, 1). */
dist_status_t dist_layout_init(dist_layout_t *L, int P, int T, int d, dist_placement_t how,
                               const double *cost);
void dist_layout_free(dist_layout_t *L);
int64_t dist_slice_lo(int q, int P, int64_t n);
int64_t dist_slice_rows(int q, int P, int64_t n);
/* What process p sends each q (counts, displs: [P] floats) for a batch of n samples. */
void dist_send_layout(const dist_layout_t *L, int p, int64_t n, size_t *counts, size_t *displs);
/* What process q receives from each p for a batch of n samples. */
void dist_recv_layout(const dist_layout_t *L, int q, int64_t n, size_t *counts, size_t *displs);
/* q's received blocks (dist_recv_layout) into pooled [rows of q][T][d], table order. */
void dist_unpack(const dist_layout_t *L, int q, int64_t n, const float *recv, float *pooled);

/* ---- sources of batches ------------------------------------------------------------------
 *
 * A source gives every process the same sequence of batches, each process only what it needs:
 * the indices of its own tables for the whole batch, the dense rows and labels of its slice.
 * Synthetic data is generated per process for exactly those parts; a Criteo file is streamed
 * by every process, which checks every field, so all agree on the lines they skip.
 */

typedef struct dist_source dist_source_t;

typedef struct {
    int n;               /* samples in the batch (all processes); 0 at the end */
    dlrm_batch_t emb;    /* this process's tables' indices for all n (dense unused) */
    const float *dense;  /* [rows of this process][m_den] */
    const float *labels; /* [rows of this process] */
} dist_batch_t;

/* Synthetic: samples in all; batch_max is the largest batch asked for. */
dist_status_t dist_source_synthetic(const dlrm_config_t *cfg, const dlrm_synth_t *synth,
                                    int64_t samples, int batch_max, const dist_layout_t *L,
                                    int rank, dist_source_t **src_p);
/* A Criteo Kaggle file (dlrm.h), opened (and checked) now; strict: a malformed line is an
 * error at its batch, else skipped and counted. */
dist_status_t dist_source_criteo(const dlrm_config_t *cfg, const char *path, int strict,
                                 int batch_max, const dist_layout_t *L, int rank,
                                 dist_source_t **src_p);
/* Back to the first sample (a Criteo file is reopened). */
dist_status_t dist_source_rewind(dist_source_t *src);
/* The next batch of up to n samples (n <= batch_max): b->n < n only at the end of the data.
 * DIST_ERR_INPUT names file and line of a malformed line (strict), on every process alike. */
dist_status_t dist_source_next(dist_source_t *src, int n, dist_batch_t *b);
int64_t dist_source_lines(const dist_source_t *src);         /* Criteo lines read so far, else 0 */
int64_t dist_source_skipped(const dist_source_t *src);       /* malformed lines skipped so far */
const char *dist_source_last_skip(const dist_source_t *src); /* "file:line: why", or NULL */
void dist_source_free(dist_source_t *src);

/* ---- sessions ----------------------------------------------------------------------------- */

/* What the run injects, the same for every driver: a delay per process and batch (spent after
 * the batch is produced, asleep or busy), and a process computing `hetero_factor` times slower
 * (it idles hetero_factor - 1 times its compute time after each batch). */
typedef struct {
    harness_delay_t delay;
    int busy;
    int hetero_rank; /* -1: none */
    double hetero_factor;
} dist_scenario_t;

typedef struct {
    int64_t max_batches; /* stop after this many (< 0: all data) */
    double timeout;      /* seconds a wait may take (bls, ialltoallv and window drivers) */
    bls_progress_mode_t bls_progress; /* bls drivers' progress (bls.h; 0: the idle thread) */
    /* Called on every process after each batch it produced, and every 0.5 s while a server
     * run waits for an arrival (may be NULL). */
    void (*progress)(void *arg, int64_t batches, int64_t samples, double seconds);
    void *progress_arg;
    /* Server runs with bls:auto: the policy keeps its window's ideal latency within this
     * (seconds; 0: no bound). */
    double latency_bound;
} dist_run_opts_t;

/* bls:auto[:MAX] (harness.h's lag policy): the window of batches it models and how close to
 * MAX's ideal time the run-ahead it picks must come. */
#define DIST_AUTO_WINDOW 64
#define DIST_AUTO_TOLERANCE 0.01
/* Floats after each block of a bls:auto exchange: the sender's work on the previous batch and
 * when it posted this one (the policy's figures, carried with the data). */
#define DIST_AUTO_TRAILER 3

/* One run of one driver on this process. */
typedef struct {
    int64_t batches, samples; /* global */
    int64_t *batch_n;         /* [batches] samples in each batch */
    double loop;              /* this process's loop time, seconds */
    double *lat;              /* [batches] from producing a batch to its predictions, here */
    double *work;             /* [batches] time outside the collective (the ideal model's w) */
    double wait;              /* in the collective */
    double compute;           /* in the engine */
    double cpu;               /* CPU time of this process (every thread) during the run */
    double progress_cpu;      /* ... of it libbls's progress thread's */
    double progress_standby;  /* time that thread stood by, getting no core in time (bls_stats_t) */
    size_t buffer_bytes;      /* libbls's bookkeeping */
    int copy_peers;           /* libbls: peers found to copy large blocks from here themselves */
    float *pred, *labels;     /* this process's rows, in batch order */
    int64_t n_local;
    /* Server runs only (dist_session_serve): */
    double *done;      /* [batches] when the query's predictions were ready here,
                          seconds after the schedule's start, on process 0's clock */
    double *begun;     /* [batches] when this process began the query, likewise */
    int stopped_early; /* the run stopped at a divergence checkpoint */
    int *lag;          /* [batches] how far this process could run ahead of batch k when it
                          produced it: the driver's lag, or bls:auto's choice */
} dist_run_t;

typedef struct dist_session dist_session_t;

/*
 * A session of the processes of comm (all call it): the model (each process holding its own
 * tables, as L says), the layout, and batches of up to batch_max samples.  Buffers for every
 * driver's lag are allocated by the run that needs them.
 */
dist_status_t dist_session_create(MPI_Comm comm, const dlrm_model_t *model, const dist_layout_t *L,
                                  int batch_max, dist_session_t **s_p);
void dist_session_free(dist_session_t *s);

/*
 * Runs the source (rewound first) through the driver until it ends or opts->max_batches,
 * batches of batch samples; collective.  On DIST_OK *out holds this process's figures; on
 * DIST_ERR_INPUT (every process, same batch) *out holds the batches before it.  Other errors
 * are this process's alone: the others may be blocked in the exchange.
 */
dist_status_t dist_session_run(dist_session_t *s, const harness_driver_t *drv, dist_source_t *src,
                               int batch, const dist_scenario_t *sc, const dist_run_opts_t *opts,
                               dist_run_t *out);
void dist_run_free(dist_run_t *r);

/* ---- serving: queries arriving on a schedule ---------------------------------------------
 *
 * A server run is an open loop: query k of the schedule (harness.h) is one batch of size[k]
 * samples, and no process starts it before its arrival time.  Between queries a process
 * consumes whatever completed.  The latency of a query, as a client sees it, runs from its
 * arrival to the moment its last prediction is ready, on the slowest process.
 *
 * Clocks: processes on process 0's host share its CLOCK_MONOTONIC; a process elsewhere has its
 * offset from process 0 estimated when the session is made, by ping-pong (the exchange with
 * the shortest round trip of 32), with half that round trip as the uncertainty.  The schedule
 * starts at one moment of process 0's clock, broadcast, so all processes see the same
 * arrivals.
 */

typedef struct {
    int shared;            /* on process 0's host: its clock, offset 0 */
    double offset;         /* this process's clock minus process 0's, seconds */
    double uncertainty;    /* half the best round trip (0 when shared) */
    double estimated;      /* the ping-pong's estimate, also when shared (a check: on one host
                              |estimated| <= estimate_bound, the true offset being 0) */
    double estimate_bound; /* half the best round trip, also when shared */
} dist_clock_t;

dist_clock_t dist_session_clock(const dist_session_t *s);

/*
 * The schedule of a server run (harness_schedule_make's arguments), made by process 0 and
 * broadcast: every process serves the same arrivals and sizes bit for bit, even on hosts whose
 * C libraries round log() differently.  Collective; DIST_ERR_ARG on every process for bad
 * arguments.
 */
dist_status_t dist_schedule_make(dist_session_t *s, uint64_t seed, double qps, int64_t n,
                                 const harness_size_t *sizes, int min_size, int max_size,
                                 harness_schedule_t *out);

/* Queries between divergence checkpoints of a server run that may stop early. */
#define DIST_CHECKPOINT 200

/*
 * Runs the schedule (the source rewound first) through the driver; collective.  stop_wait > 0:
 * at every DIST_CHECKPOINT-th query the processes agree (a nonblocking allreduce, completed at
 * the next checkpoint, so the run does not synchronise) whether some query waited longer than
 * stop_wait seconds to start; if so the run ends at the next checkpoint (stopped_early).  The
 * figures are in *out as dist_session_run's, with work[k] the time this process spent on
 * query k (producing and consuming it) and lat[k] its latency here.
 */
dist_status_t dist_session_serve(dist_session_t *s, const harness_driver_t *drv, dist_source_t *src,
                                 const harness_schedule_t *sched, const dist_scenario_t *sc,
                                 const dist_run_opts_t *opts, double stop_wait, dist_run_t *out);

/* A server run's figures, on rank 0 (and its verdict's inputs broadcast to every process). */
typedef struct {
    int64_t queries, samples; /* completed */
    int stopped_early;
    double scheduled_qps; /* queries / the last arrival */
    double completed_qps; /* queries / the last completion */
    double samples_per_s; /* completed samples / the last completion */
    /* rank 0, [queries] in query order, seconds: */
    double *latency;            /* from arrival to the last process's predictions */
    double *queue;              /* from arrival until the last process began it */
    double *ideal;              /* the open-loop ideal model's latency */
    double p50, p99, ideal_p99; /* every process */
    double wait, progress_cpu;  /* per process, mean */
    int copy_peers;             /* the fewest of any process (bls_stats_t) */
    float *pred, *labels;       /* rank 0: input order */
    double *lag_mean;           /* rank 0, [queries]: run-ahead, mean over the processes */
    int64_t *lag_hist;          /* rank 0, [lag_hist_n]: queries x processes at each run-ahead */
    int lag_hist_n;
} dist_serve_t;

dist_status_t dist_gather_serve(dist_session_t *s, const dist_run_t *r,
                                const harness_schedule_t *sched, int lag, dist_serve_t *out);
void dist_serve_free(dist_serve_t *v);

/* ---- the peak: the highest rate served with p99 latency within a bound -------------------
 *
 * For each driver, probes of `queries` queries: the rate doubles from start_qps until a probe
 * fails, then `refine` bisections between the last rate that passed and the first that
 * failed.  A probe passes when its p99 is within the bound and its completed rate keeps up
 * with the scheduled one (at least DIST_KEEP_UP of it).  Every probe at rate q is the same
 * trace (one seed) stretched to q, for every driver; the drivers' probes interleave, the
 * order rotating.  A probe stops early once a query waits 10 bounds to start.
 */
#define DIST_KEEP_UP 0.95

typedef struct {
    double qps;
    int valid;
    double p50, p99, ideal_p99, completed_qps;
    int64_t queries;
    int stopped_early;
} dist_probe_t;

typedef struct {
    uint64_t seed;
    const harness_size_t *sizes;
    int min_size, max_size;
    int64_t queries; /* per probe */
    double bound;    /* p99 bound, seconds */
    double start_qps;
    int refine;
    int max_probes; /* per driver */
    void (*progress)(void *arg, const harness_driver_t *drv, const dist_probe_t *probe);
    void *progress_arg;
} dist_peak_opts_t;

typedef struct {
    double peak_qps; /* the highest rate that passed; 0 if none */
    dist_probe_t *probes;
    int n_probes;
} dist_peak_t;

dist_status_t dist_find_peak(dist_session_t *s, const harness_driver_t *drivers, int n,
                             dist_source_t *src, const dist_scenario_t *sc,
                             const dist_run_opts_t *opts, const dist_peak_opts_t *peak,
                             dist_peak_t *out);
void dist_peak_free(dist_peak_t *p, int n);

/* ---- results, gathered to rank 0 --------------------------------------------------------- */

/* One driver's figures summed over its rounds (rank 0; other ranks keep zeros). */
typedef struct {
    int rounds;
    double loop;              /* slowest process's loop time, summed */
    double compute;           /* busiest process's engine time, summed */
    double wait;              /* mean per process in the collective, summed */
    double cpu;               /* process CPU time, mean per process, summed */
    double progress_cpu;      /* mean per process, summed */
    double progress_standby;  /* mean per process, summed */
    double ideal;             /* T_ideal(this driver's lag) of each round's trace, summed */
    double ideal0, ideal_inf; /* T_ideal(0) and T_ideal(unlimited), summed */
    int copy_peers;           /* the fewest of any process (bls_stats_t), the last round */
    double *lat;              /* every process's batch latencies, all rounds */
    size_t nlat;
    int64_t batches, samples; /* of one round */
    float *pred, *labels;     /* input order, from the last round */
    /* The run-ahead each batch was produced with (the driver's lag, or bls:auto's choice): */
    double *lag_mean;  /* [batches] mean over the processes, the last round */
    int64_t *lag_hist; /* [lag_hist_n] batches x processes at each run-ahead, all rounds */
    int lag_hist_n;
} dist_summary_t;

/* Adds run r (every process calls it) to *sum on rank 0; lags[i] of n_lags also gets
 * T_ideal(lags[i]) of this trace added to ideal_at[i] (the bound of every driver's lag on one
 * driver's trace); ideal_at may be NULL. */
dist_status_t dist_gather(dist_session_t *s, const dist_run_t *r, int lag, const int *lags,
                          int n_lags, double *ideal_at, dist_summary_t *sum);
void dist_summary_free(dist_summary_t *sum);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* DLRM_DIST_H */
