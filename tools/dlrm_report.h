/* bls-dlrm's report: the text table and the JSON (tools/dlrm_report.c), on rank 0. */
#ifndef DLRM_REPORT_H
#define DLRM_REPORT_H

#include "dlrm_options.h"

/* One driver's results over all rounds. */
typedef struct {
    dist_summary_t s;
    double ideal_at[HARNESS_MAX_DRIVERS]; /* T_ideal at every driver's lag, on this trace */
    dlrm_metrics_t m;
    int identical; /* predictions bit for bit the first driver's */
} driver_result_t;

/* One driver's server runs, pooled over rounds. */
typedef struct {
    double *lat, *ideal; /* every query's client and ideal latency, seconds */
    double *queue;       /* every query's wait until the last process began it */
    size_t n;
    int64_t queries, samples;
    double last_done, last_arrival; /* summed over rounds: completed and scheduled spans */
    double wait;
    int copy_peers; /* the fewest of any process (bls_stats_t), the last round */
    int stopped_early;
    float *pred, *labels; /* input order, the last round */
    int64_t n_pred;
    int identical; /* predictions bit for bit the first driver's */
    int valid;
    int64_t *lag_hist; /* queries x processes at each run-ahead, all rounds */
    int lag_hist_n;
    double *lag_mean; /* [queries of the last round] run-ahead, mean over the processes */
    int64_t n_lag_mean;
} serve_result_t;

/* The serving part of a run: the rate, the schedule, the clock, the results. */
typedef struct {
    double qps;
    double reference_qps;  /* the offline rate a --load multiplied (0: --qps) */
    const char *reference; /* where it came from */
    double worst_uncertainty;
    double *clock_estimates; /* [P][2] each process's ping-pong offset estimate and its bound */
    int all_shared;
    serve_result_t *res;   /* [drivers], NULL when no server run */
    dist_peak_t *peak;     /* [drivers], NULL without --find-peak */
    int offline_identical; /* -1: not compared; server predictions equal the offline's */
} serving_t;

/* Everything else the report shows. */
typedef struct {
    const dlrm_opts_t *o;
    const dlrm_config_t *cfg;
    const dist_layout_t *L;
    int P;
    const long *rss_kib;       /* [P] peak resident set */
    const double *table_bytes; /* [P] tables held */
    const double *huge_share;  /* [P] share of the weights on 2 MiB pages */
    const int *mapped;         /* [P] 1 where the tables are mapped from the weights file */
    double load_s;             /* the slowest process's model build or load */
    const char (*kernels)[16]; /* [P] the engine's kernel per process */
    int64_t lines, skipped;    /* Criteo input */
    const char *last_skip;
    serving_t *serving; /* NULL without --scenario server or --find-peak */
} report_t;

/* Metrics of every driver and whether its predictions equal the first's.  Returns the exit
 * status so far: 0, 1 when a driver's predictions differ, 2 when metrics failed. */
int dlrm_report_check(const report_t *r, driver_result_t *res);
void dlrm_report_print(const report_t *r, const driver_result_t *res);
/* 0, or -1 with err. */
int dlrm_report_json(const report_t *r, const driver_result_t *res, char *err, size_t len);
/* Server runs: latencies sorted, validity and identity decided; the exit status so far. */
int dlrm_report_serve_check(const report_t *r);
void dlrm_report_serve_print(const report_t *r);
void dlrm_report_peak_print(const report_t *r);
/* The "server" object of the JSON. */
cJSON *dlrm_report_serve_json(const report_t *r);

/* The run-ahead a driver's batches were produced with (bls:auto's choices): one line for the
 * table, and the JSON object {"mean", "p50", "max", "histogram", "per_batch_mean"}. */
void dlrm_report_lag_line(const char *name, const int64_t *hist, int n);
cJSON *dlrm_report_lag_json(const int64_t *hist, int n, const double *seq, int64_t nseq);

/* One "probability label" line per sample, in input order; 0, or -1 with err. */
int dlrm_report_predictions(const report_t *r, const float *pred, const float *labels, int64_t n,
                            FILE *f, char *err, size_t len);

#endif
