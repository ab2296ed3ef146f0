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
    dist_scenario_t scenario;
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

typedef enum { OPTS_RUN, OPTS_HELP, OPTS_BAD } opts_result_t;

/* Parses argv for P processes.  OPTS_BAD: err says what (a bad option is exit 2). */
opts_result_t dlrm_options_parse(int argc, char **argv, int P, dlrm_opts_t *o, char *err,
                                 size_t errlen);
/* What needs the model's table count: the hot spots' table lists.  0, or -1 with err. */
int dlrm_options_apply(dlrm_opts_t *o, const dlrm_config_t *cfg, char *err, size_t errlen);
void dlrm_options_free(dlrm_opts_t *o);
void dlrm_options_usage(FILE *f);

#endif
