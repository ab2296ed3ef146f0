/*
 * harness.h: what the tools and the benchmarks measure with, written once.
 *   - clocks, percentiles, peak memory
 *   - injected delays: the scenarios every driver of a run sees alike
 *   - the ideal model of bounded-lag execution (bls-semantics), and the one threshold under
 *     which there is "nothing to mask"
 *   - driver lists ("sync,bls:1,bls:4") and the interleaved rounds that compare them
 *   - JSON files through cJSON, so user strings are escaped
 * Nothing here calls exit(); functions that can fail return 0 or -1 with a message in err.
 */
#ifndef HARNESS_H
#define HARNESS_H

#include "bls.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with -fvisibility=hidden: what this header declares is what it exports. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---- versions ---- */

/*
 * For --version: "TOOL (bls) VERSION", then libbls's version, the MPI it was compiled for and
 * the MPI library it runs on (MPI_Get_library_version's first line; callable before MPI_Init).
 */
void harness_print_version(FILE *out, const char *tool);

/* ---- clocks and statistics ---- */

double harness_now(void);               /* CLOCK_MONOTONIC, seconds */
void harness_sort(double *x, size_t n); /* ascending */
/* The q-quantile (0 <= q <= 1) of n ascending values, nearest rank; 0 when n == 0. */
double harness_percentile(const double *sorted, size_t n, double q);
long harness_peak_rss_kib(void); /* this process's peak resident set so far */
double harness_cpu_seconds(void); /* CPU time of this process so far, every thread */
/* "R-R-...-R", n times: the --arch-embedding-size of n tables of R rows; malloc'd, NULL when
 * out of memory. */
char *harness_table_sizes(long n, long rows);

/* ---- injected delays ----
 * A delay is a function of (seed, process, iteration) only, so every mode or driver of one run
 * sees the same trace:
 *   none                 no delay
 *   exp:MEAN_US          exponential, mean MEAN_US, independent per process and iteration
 *   hiccup:PROB:US       US with probability PROB, else nothing
 *   lognormal:MEDIAN_US:SIGMA  log-normal, median MEDIAN_US, SIGMA the deviation of its log
 *                        (heavy-tailed service times)
 *   cosched:PROB:US      US with probability PROB, for every process in the same iterations
 *                        (co-scheduled noise: a machine-wide event; lag cannot mask it)
 *   straggler:RANK:US    process RANK is late by US every iteration (a persistently slower one)
 *   spike:RANK:ITER:US   process RANK is late by US in iteration ITER only (one hiccup, placed)
 *   A/ITER/B             two phases: spec A before iteration ITER (>= 1), spec B from it on
 *                        (delays that change character part-way, e.g. exp:5000/100/none)
 */
enum {
    HARNESS_DELAY_NONE,
    HARNESS_DELAY_EXP,
    HARNESS_DELAY_HICCUP,
    HARNESS_DELAY_STRAGGLER,
    HARNESS_DELAY_SPIKE,
    HARNESS_DELAY_LOGNORMAL,
    HARNESS_DELAY_COSCHED
};

typedef struct {
    int kind;
    double a, b; /* exp: mean; hiccup, cosched: probability, us; lognormal: median us, sigma;
                    straggler: rank, us; spike: rank, us */
    uint64_t seed;
    long at; /* spike: the iteration */
    /* Two phases (A/ITER/B): the fields above are A's, until ITER; then B's: */
    long until; /* 0: one phase */
    int then_kind;
    double then_a, then_b;
    long then_at;
} harness_delay_t;

/* Parses SPEC (above) into *d, keeping d->seed. */
int harness_delay_parse(const char *spec, harness_delay_t *d, char *err, size_t errlen);
/* Microseconds process p waits in iteration k. */
double harness_delay_us(const harness_delay_t *d, int p, long k);
/* The spec back as text ("exp:1000"). */
void harness_delay_format(const harness_delay_t *d, char *buf, size_t len);
/* Spends us microseconds: asleep, or spinning on the CPU when busy. */
void harness_spend_us(double us, int busy);

/* ---- the ideal model (bls-semantics) ----
 * Given each process's measured work w[p][k] outside the collective and zero communication:
 *   send(p,k)    = start(p,k) + w(p,k)
 *   done(k)      = max_p send(p,k)
 *   start(p,k+1) = max(send(p,k), done(k-L))      (done(j) = 0 for j < 0)
 *   T_ideal(L)   = done(K-1)
 * T_ideal(0) is the synchronous sum of maxima; a large L approaches the max of sums.
 */
/* work is row-major [P][K] seconds; scratch holds P + K doubles.  Returns T_ideal(lag). */
double harness_ideal_time(const double *work, int P, int K, int lag, double *scratch);

/* Below this T_ideal(0) / T_ideal(unlimited), lag has nothing to mask on a trace: the work is
 * balanced batch by batch, or one process is persistently slower (max of sums = sum of
 * maxima).  Tools then say so. */
#define HARNESS_NOTHING_TO_MASK 1.05

/* ---- the ideal model for an open loop (serving) ----
 * Queries arrive at arrival[k] (seconds from the start).  With the same measured work w[p][k]
 * (everything process p did for query k: producing it and consuming its predictions) and zero
 * communication, a process starts query k when it has arrived, its own query k-1 is sent, and
 * query k-L-1 is done everywhere:
 *   start(p,k) = max(arrival(k), send(p,k-1), done(k-L-1));  send(p,k) = start(p,k) + w(p,k)
 *   done(k)    = max_p send(p,k)
 * done(k) - arrival(k) is the query's ideal latency: what no schedule of this work can beat.
 * With all arrivals at 0 this is the closed-loop model above.
 */
/* done: [K] out; scratch: P doubles.  Returns done(K-1). */
double harness_ideal_open(const double *work, const double *arrival, int P, int K, int lag,
                          double *done, double *scratch);

/* Both models with an exchange that takes `comm` seconds after its last block is sent, on no
 * process's CPU: done(k) = max_p send(p,k) + comm.  Lag hides it as it hides work: L = 0 pays
 * it every iteration, L >= 1 overlaps it with the next iteration's work. */
double harness_ideal_time_comm(const double *work, int P, int K, int lag, double comm,
                               double *scratch);
double harness_ideal_open_comm(const double *work, const double *arrival, int P, int K, int lag,
                               double comm, double *done, double *scratch);

/* ---- adaptive lag: how far a process runs ahead, chosen per batch ----
 * Any run-ahead within the communicator's lag bound MAX keeps results exact, so each process
 * decides alone.  The policy sees, batch by batch in order, every process's work w[p][j]
 * (outside the exchange) and the exchange's own time c_j (from the last process's post to the
 * batch's completion here; it can only be seen too late, never too early, so the window's
 * smallest is taken as the exchange's cost c).  On the last `window` batches it runs the
 * ideal model with comm = c for run-ahead 0..MAX and takes the smallest l whose time is within
 * `tolerance` of MAX's:
 *   closed loop: T_ideal(l) <= (1 + tolerance) T_ideal(MAX);
 *   open loop (arrivals given): that (the capacity, which decides the peak rate: a window
 *   simulated from an empty queue cannot see the backlog that builds near it), and the
 *   window's worst ideal latency, done(k) - arrival(k), within (1 + tolerance) of MAX's and
 *   within the latency bound whenever MAX's is.  In an open loop running ahead only serves
 *   queries that have arrived: it never delays one.
 * Both are non-increasing in l, so a bisection finds l in about log2(MAX) models of
 * window x P steps.  The choice is MAX until `window / 4` batches (at least 4) are seen, then
 * the model's; after that it rises to the model's at once and comes down one step per
 * HARNESS_LAG_DECAY choices
 * (per `window` choices in an open loop, whose figure, a p99, is a tail a window rarely holds):
 * a delay that struck once in the window is likely to strike again, and too little run-ahead
 * costs throughput where too much costs only latency (in an open loop, not even that: running
 * ahead only serves queries that have arrived).
 * What it buys: no delays, l settles at 0 (or 1 where the exchange costs more than the
 * tolerance of the work: pipelining hides it); independent delays, l stays as high as pays;
 * a persistent straggler (max of sums = sum of maxima), nothing beyond hiding c.
 */
#define HARNESS_LAG_DECAY 4
typedef struct harness_lag_policy harness_lag_policy_t;

/* NULL when out of memory or an argument is out of range (P >= 1, 0 <= max_lag <= BLS_MAX_LAG,
 * window >= 4, 0 <= tolerance < 1). */
harness_lag_policy_t *harness_lag_policy_new(int P, int max_lag, int window, double tolerance);
void harness_lag_policy_free(harness_lag_policy_t *pol);
/* Open loop: choices also keep the window's worst ideal latency within bound_s (0: none). */
void harness_lag_policy_bound(harness_lag_policy_t *pol, double bound_s);
/* The next batch's figures: work[P] seconds; comm seconds (< 0 or NaN: not seen);
 * arrival seconds in the open loop (NaN in a closed loop). */
void harness_lag_observe(harness_lag_policy_t *pol, const double *work, double comm,
                         double arrival);
/* The run-ahead for the next batch, 0 .. max_lag (call it once per batch). */
int harness_lag_choose(harness_lag_policy_t *pol);
/* Batches observed so far, and the exchange cost c the last choice used. */
int64_t harness_lag_observed(const harness_lag_policy_t *pol);
double harness_lag_comm(const harness_lag_policy_t *pol);

/* ---- query schedules (serving) ----
 * Query sizes: fixed:N, uniform:A:B (integers A..B, each equally likely), or
 * lognormal:MEAN:SIGMA (exp(mu + SIGMA z), z standard normal, mu chosen so the mean is MEAN;
 * rounded, at least 1).  MLPerf's DLRM-v2 queries aggregate roughly 100 to 700 samples.
 */
enum { HARNESS_SIZE_FIXED, HARNESS_SIZE_UNIFORM, HARNESS_SIZE_LOGNORMAL };
typedef struct {
    int kind;
    double a, b; /* fixed: N; uniform: A, B; lognormal: MEAN, SIGMA */
} harness_size_t;

int harness_size_parse(const char *spec, harness_size_t *s, char *err, size_t errlen);
void harness_size_format(const harness_size_t *s, char *buf, size_t len);
double harness_size_mean(const harness_size_t *s); /* before clamping */

/*
 * A serving schedule: query k arrives at at[k] seconds after the start and asks for size[k]
 * samples (clamped to [min_size, max_size]).  Arrivals are a Poisson process of rate qps: at[k] =
 * base[k] / qps, base the sums of unit-mean exponential gaps from SplitMix64 counters of
 * (seed, k), so every process and every driver of a run, and schedules of any rate from one
 * seed, share one trace (a rate only stretches it).  The PyTorch driver carries a copy
 * (torch_bls/dlrm_serving.py); tests/torch_bls/test_schedule.sh holds the two equal.
 */
typedef struct {
    int64_t n;
    double qps;
    double *at;
    int *size;
} harness_schedule_t;

int harness_schedule_make(uint64_t seed, double qps, int64_t n, const harness_size_t *sizes,
                          int min_size, int max_size, harness_schedule_t *s, char *err,
                          size_t errlen);
void harness_schedule_free(harness_schedule_t *s);
/* Writes "k arrival_seconds size" per query (%.17g), to compare or inspect. */
int harness_schedule_write(const harness_schedule_t *s, const char *path, char *err, size_t errlen);

/* ---- drivers: libbls modes by name, in lists ---- */

#define HARNESS_MAX_DRIVERS 16
typedef struct {
    bls_mode_t mode;
    int lag;       /* 0 for sync; with auto_lag the bound MAX */
    int auto_lag;  /* bls:auto[:MAX]: each process chooses its run-ahead per batch (lag policy) */
    char name[24]; /* "sync", "bls:4", "bls:auto:8", "window:2", "ialltoallv" or "ialltoallv:2" */
} harness_driver_t;

/* The lag bound of "bls:auto" without one. */
#define HARNESS_AUTO_LAG_MAX 8

/* Parses a comma-separated list of bls_mode_parse specs, or bls:auto[:MAX] (MAX default
 * HARNESS_AUTO_LAG_MAX); a bare "bls" or "window" takes default_lag, and a bare "bls" is
 * auto with default_auto (its MAX default_lag).  Returns the count (1 .. max), or -1 with the
 * reason in err. */
int harness_drivers_parse(const char *list, int default_lag, int default_auto,
                          harness_driver_t *out, int max, char *err, size_t errlen);

/* Which of n drivers runs at position i of round r: the order rotates, so that no driver
 * always goes first on a machine whose speed drifts. */
int harness_round_driver(int round, int i, int n);

/* ---- JSON ---- */

/* A JSON array of n numbers. */
cJSON *harness_json_numbers(const double *x, size_t n);
/* Writes root to path, pretty-printed; 0, or -1 with the reason in err. */
int harness_json_write(const cJSON *root, const char *path, char *err, size_t errlen);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* HARNESS_H */
