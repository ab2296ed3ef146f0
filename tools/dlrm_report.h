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

/* Everything else the report shows. */
typedef struct {
    const dlrm_opts_t *o;
    const dlrm_config_t *cfg;
    const dist_layout_t *L;
    int P;
    const long *rss_kib;       /* [P] peak resident set */
    const double *table_bytes; /* [P] tables held */
    const char (*kernels)[16]; /* [P] the engine's kernel per process */
    int64_t lines, skipped;    /* Criteo input */
    const char *last_skip;
} report_t;

/* Metrics of every driver and whether its predictions equal the first's.  Returns the exit
 * status so far: 0, 1 when a driver's predictions differ, 2 when metrics failed. */
int dlrm_report_check(const report_t *r, driver_result_t *res);
void dlrm_report_print(const report_t *r, const driver_result_t *res);
/* 0, or -1 with err. */
int dlrm_report_json(const report_t *r, const driver_result_t *res, char *err, size_t len);
/* One "probability label" line per sample, in input order; 0, or -1 with err. */
int dlrm_report_predictions(const report_t *r, const driver_result_t *res, FILE *f, char *err,
                            size_t len);

#endif
