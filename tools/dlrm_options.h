/* bls-dlrm's options: parsed and checked before anything runs (tools/dlrm_options.c). */
#ifndef DLRM_OPTIONS_H
#define DLRM_OPTIONS_H

#include "dlrm.h"
#include "dlrm_dist.h"
#include "harness.h"

#include <stdio.h>

typedef struct {
    /* Model */
    const char *bot, *top, *emb, *op;
    int d, itself;
    const char *weights;
    dlrm_hold_t hold;         /* --weights-hold: how the tables read from --weights are held */
    const char *save_weights; /* write the model run to this safetensors file (one process) */
    uint64_t seed;
    /* Data */
    const char *data;
    int strict;
    int64_t samples;
    dlrm_synth_t synth;
    const char *hot_spec, *pool_spec, *burst_spec;
    const char *write_criteo;
    /* Distribution */
    harness_driver_t drivers[HARNESS_MAX_DRIVERS];
    int ndrivers;
    int rounds;
    dist_placement_t placement;
    double timeout;
    bls_progress_mode_t bls_progress; /* --progress: who moves the bls drivers' data */
    dist_scenario_t scenario;
    /* Scenario: offline (closed loop), server (queries on a schedule), or both in turn */
    int offline, server, scenario_given;
    double qps;  /* server: the arrival rate; 0: from --load */
    double load; /* server: the rate as a fraction of the first driver's offline rate
                    (measured by the offline scenario, or a short calibration run) */
    int64_t queries;
    harness_size_t sizes;
    const char *size_spec;
    uint64_t schedule_seed;
    const char *schedule_out;
    const char *latency_out; /* every server query's figures */
    double bound;            /* p99 latency bound, seconds (0: none given) */
    int find_peak;
    int64_t probe_queries;
    int refine;
    /* Run */
    int batch;
    int64_t max_batches;
    int threads;
    const char *kernel; /* NULL: the default; "list": print the kernels */
    const char *predictions, *json;
    int quiet;
    /* Owned: the default table sizes, and the per-table arrays of the synthetic hot spots. */
    char default_emb[26 * 8];
    double *table_alpha;
    int *table_pooling;
} dlrm_opts_t;

typedef enum { OPTS_RUN, OPTS_HELP, OPTS_VERSION, OPTS_BAD } opts_result_t;

/* Parses argv for P processes.  OPTS_BAD: err says what (a bad option is exit 2). */
opts_result_t dlrm_options_parse(int argc, char **argv, int P, dlrm_opts_t *o, char *err,
                                 size_t errlen);
/* What needs the model's table count: the hot spots' table lists.  0, or -1 with err. */
int dlrm_options_apply(dlrm_opts_t *o, const dlrm_config_t *cfg, char *err, size_t errlen);
void dlrm_options_free(dlrm_opts_t *o);
void dlrm_options_usage(FILE *f);

#endif
