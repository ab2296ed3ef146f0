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

#ifdef __cplusplus
extern "C" {
#endif

/* ---- clocks and statistics ---- */

double harness_now(void);               /* CLOCK_MONOTONIC, seconds */
void harness_sort(double *x, size_t n); /* ascending */
/* The q-quantile (0 <= q <= 1) of n ascending values, nearest rank; 0 when n == 0. */
double harness_percentile(const double *sorted, size_t n, double q);
long harness_peak_rss_kib(void); /* this process's peak resident set so far */
/* "R-R-...-R", n times: the --arch-embedding-size of n tables of R rows; malloc'd, NULL when
 * out of memory. */
char *harness_table_sizes(long n, long rows);

/* ---- injected delays ----
 * A delay is a function of (seed, process, iteration) only, so every mode or driver of one run
 * sees the same trace:
 *   none                 no delay
 *   exp:MEAN_US          exponential, mean MEAN_US, independent per process and iteration
 *   hiccup:PROB:US       US with probability PROB, else nothing
 *   straggler:RANK:US    process RANK is late by US every iteration (a persistently slower one)
 */
enum { HARNESS_DELAY_NONE, HARNESS_DELAY_EXP, HARNESS_DELAY_HICCUP, HARNESS_DELAY_STRAGGLER };

typedef struct {
    int kind;
    double a, b; /* exp: mean; hiccup: probability, us; straggler: rank, us */
    uint64_t seed;
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

/* ---- drivers: libbls modes by name, in lists ---- */

#define HARNESS_MAX_DRIVERS 16
typedef struct {
    bls_mode_t mode;
    int lag;       /* 0 for sync */
    char name[24]; /* "sync", "bls:4", "window:2", "ialltoallv" or "ialltoallv:2" */
} harness_driver_t;

/* Parses a comma-separated list of bls_mode_parse specs; a bare "bls" or "window" takes
 * default_lag.  Returns the count (1 .. max), or -1 with the reason in err. */
int harness_drivers_parse(const char *list, int default_lag, harness_driver_t *out, int max,
                          char *err, size_t errlen);

/* Which of n drivers runs at position i of round r: the order rotates, so that no driver
 * always goes first on a machine whose speed drifts. */
int harness_round_driver(int round, int i, int n);

/* ---- JSON ---- */

/* A JSON array of n numbers. */
cJSON *harness_json_numbers(const double *x, size_t n);
/* Writes root to path, pretty-printed; 0, or -1 with the reason in err. */
int harness_json_write(const cJSON *root, const char *path, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* HARNESS_H */
