/*
 * bls-dlrm: DLRM inference on one process or many (mpirun), synchronous or bounded-lag.
 *
 * The tool is options (dlrm_options.c), the distributed inference layer (dist/, dlrm_dist.h:
 * layout, sources, sessions, drivers) and the report (dlrm_report.c).  Several drivers run in
 * one invocation, interleaved over rounds (round r runs every driver once, the order rotating),
 * so their ratio comes from the same minutes of a noisy machine; the scenarios are functions
 * of seeds, process and batch, so every driver sees the same trace.
 *
 * One error policy: a bad option, model, weights or data file is reported once and every
 * process exits 2 (the processes agree before going on); a failure on one process during a
 * run is reported by that process, which ends the job (exit 3): the others may be waiting for
 * it inside the exchange.  A stall where MPI cannot time out (MPI_Alltoallv, MPI_Init, the
 * set-up and final collectives) is ended by a watchdog (watchdog.h), also exit 3, after
 * --timeout (and a margin) without progress.
 */
#define _GNU_SOURCE
#include "dlrm_report.h"
#include "watchdog.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The state of one invocation on one process. */
typedef struct {
    int rank, P, provided;
    dlrm_opts_t o;
    dlrm_config_t cfg;
    int have_cfg;
    dist_layout_t L;
    dlrm_model_t *model;
    dist_source_t *src;
    dist_session_t *session;
    FILE *pf;
    double table_bytes;
    double load_s;      /* rank 0: the slowest process's model build (or load) */
    double *huge_share; /* rank 0: [P] share of each process's weights on 2 MiB pages */
    int *mapped;        /* rank 0: [P] 1 where a process's tables are mapped from the file */
} tool_t;

/* Every process reached the same verdict: rank 0 says it. */
static int bad_input(const tool_t *t, const char *msg)
{
    if (t->rank == 0)
        fprintf(stderr, "bls-dlrm: %s\n", msg);
    return 2;
}

/* A failure on this process alone: name it and end the job. */
static void abort_here(const tool_t *t, const char *msg)
{
    fprintf(stderr, "bls-dlrm: process %d: %s\n", t->rank, msg);
    watchdog_end_job(3);
}

/* Options, kernel, threads, model configuration: 0 to go on, else the exit status. */
static int configure(tool_t *t, int argc, char **argv)
{
    char err[600];
    opts_result_t r = dlrm_options_parse(argc, argv, t->P, &t->o, err, sizeof(err));
    if (r == OPTS_HELP && t->rank == 0)
        dlrm_options_usage(stdout);
    if (r == OPTS_VERSION && t->rank == 0)
        harness_print_version(stdout, "bls-dlrm");
    if (r != OPTS_RUN)
        return r == OPTS_BAD ? bad_input(t, err) : -1;
    if (t->o.kernel && !strcmp(t->o.kernel, "list")) {
        const char *names[8];
        int n = dlrm_kernels(names, 8);
        for (int i = 0; t->rank == 0 && i < n; i++)
            printf("%s\n", names[i]);
        return -1;
    }
    if (t->o.kernel && dlrm_set_kernel(t->o.kernel) != DLRM_OK) {
        snprintf(err, sizeof(err), "--%s", dlrm_last_error()); /* "--kernel 'x': why" */
        return bad_input(t, err);
    }
    if (dlrm_set_threads(t->o.threads) != t->o.threads && t->rank == 0)
        fprintf(stderr,
                "bls-dlrm: --threads %d: this engine was built without OpenMP; one thread "
                "per process\n",
                t->o.threads);
    for (int i = 0; i < t->o.ndrivers; i++)
        if (t->o.drivers[i].mode == BLS_MODE_BLS && t->provided < MPI_THREAD_MULTIPLE) {
            snprintf(err, sizeof(err),
                     "the bls driver needs MPI_THREAD_MULTIPLE; this MPI "
                     "provides level %d",
                     t->provided);
            return bad_input(t, err);
        }
    if (dlrm_config_parse(t->o.bot, t->o.top, t->o.emb, t->o.d, t->o.op, t->o.itself, &t->cfg) !=
        DLRM_OK) {
        snprintf(err, sizeof(err), "bad model configuration: %s", dlrm_last_error());
        return bad_input(t, err);
    }
    t->have_cfg = 1;
    return dlrm_options_apply(&t->o, &t->cfg, err, sizeof(err)) == 0 ? 0 : bad_input(t, err);
}

/* --write-criteo: rank 0 writes the synthetic samples as a Criteo file. */
static int write_criteo(tool_t *t)
{
    int ok = 1;
    watchdog_hold("writing the Criteo file"); /* the others wait for rank 0's local work */
    if (t->rank == 0 &&
        dlrm_synth_write_criteo(&t->o.synth, &t->cfg, t->o.samples, t->o.write_criteo) != DLRM_OK) {
        fprintf(stderr, "bls-dlrm: cannot write the Criteo file: %s\n", dlrm_last_error());
        ok = 0;
    } else if (t->rank == 0) {
        printf("wrote %lld synthetic samples to %s\n", (long long)t->o.samples, t->o.write_criteo);
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    watchdog_kick("finishing");
    return ok ? -1 : 2;
}

/* Placement, this process's tables, its source and the predictions file.  msg: why not. */
static void build(tool_t *t, char *msg, size_t len)
{
    int T = t->cfg.n_tables;
    double *cost = malloc(sizeof(double) * (size_t)T);
    for (int i = 0; cost && i < T; i++) /* rows x expected lookups per sample */
        cost[i] = (double)t->cfg.rows[i] * (t->o.data ? 1.0 : dlrm_synth_mean_bag(&t->o.synth, i));
    if (!cost || dist_layout_init(&t->L, t->P, T, t->cfg.d, t->o.placement, cost) != DIST_OK) {
        snprintf(msg, len, "%s", cost ? dist_last_error() : "out of memory");
        free(cost);
        return;
    }
    free(cost);
    const int *mine = t->L.tables + t->L.first[t->rank];
    int n_mine = t->L.first[t->rank + 1] - t->L.first[t->rank];
    for (int i = 0; i < n_mine; i++)
        t->table_bytes += (double)t->cfg.rows[mine[i]] * t->cfg.d * sizeof(float);
    const dlrm_opts_t *o = &t->o;
    watchdog_hold("building the model"); /* local work, as long as the tables are large */
    dlrm_status_t st =
        o->weights ? dlrm_model_load_held(&t->cfg, o->weights, mine, n_mine, o->hold, &t->model)
                   : dlrm_model_init_random(&t->cfg, o->seed, mine, n_mine, &t->model);
    watchdog_kick("setting up with the other processes");
    if (st != DLRM_OK) {
        snprintf(msg, len, "%s: %s",
                 o->weights ? "cannot load the weights" : "cannot build the model",
                 dlrm_last_error());
        return;
    }
    dist_status_t ds =
        o->data ? dist_source_criteo(&t->cfg, o->data, o->strict, o->batch, &t->L, t->rank, &t->src)
                : dist_source_synthetic(&t->cfg, &o->synth, o->samples, o->batch, &t->L, t->rank,
                                        &t->src);
    if (ds == DIST_OK)
        ds = dist_session_create(MPI_COMM_WORLD, t->model, &t->L, o->batch, &t->session);
    if (ds != DIST_OK)
        snprintf(msg, len, "cannot read the data: %s", dist_last_error());
    else if (t->rank == 0 && o->predictions && !(t->pf = fopen(o->predictions, "w")))
        snprintf(msg, len, "cannot write the predictions file %s: %s", o->predictions,
                 strerror(errno));
}

/* build() on every process; the first failing process's message is printed, once. */
static int setup(tool_t *t)
{
    double t0 = harness_now();
    char msg[600] = "";
    build(t, msg, sizeof(msg));
    int bad = msg[0] ? t->rank : t->P, first_bad;
    MPI_Allreduce(&bad, &first_bad, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first_bad < t->P) {
        if (t->rank == first_bad)
            fprintf(stderr, "bls-dlrm: %s%s\n", msg,
                    t->P > 1 && t->rank != 0 ? " (on this process)" : "");
        return 2;
    }
    double build_s = harness_now() - t0, build_max;
    MPI_Reduce(&build_s, &build_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    size_t bytes = 0, huge = 0;
    dlrm_model_memory(t->model, &bytes, &huge);
    double share = bytes ? (double)huge / (double)bytes : 0;
    int mapped = dlrm_model_hold(t->model) == DLRM_HOLD_MAP, any_mapped = 0;
    if (t->rank == 0 && (!(t->huge_share = calloc((size_t)t->P, sizeof(double))) ||
                         !(t->mapped = calloc((size_t)t->P, sizeof(int)))))
        abort_here(t, "out of memory");
    MPI_Gather(&share, 1, MPI_DOUBLE, t->huge_share, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Gather(&mapped, 1, MPI_INT, t->mapped, 1, MPI_INT, 0, MPI_COMM_WORLD);
    for (int p = 0; t->rank == 0 && p < t->P; p++)
        any_mapped += t->mapped[p];
    t->load_s = build_max;
    if (!t->o.quiet && t->rank == 0) {
        fprintf(stderr,
                "bls-dlrm: %d process%s, model ready in %.2f s (%d tables, d = %d, %s "
                "interaction, %s placement: tables per process",
                t->P, t->P > 1 ? "es" : "", build_max, t->cfg.n_tables, t->cfg.d, t->o.op,
                t->o.placement == DIST_PLACE_BALANCED ? "balanced" : "contiguous");
        for (int p = 0; p < t->P; p++)
            fprintf(stderr, "%s%d", p ? "," : " ", t->L.first[p + 1] - t->L.first[p]);
        fprintf(stderr, ")\nbls-dlrm: weights %s; share on 2 MiB pages per process",
                !t->o.weights        ? "random"
                : any_mapped == t->P ? "mapped from the file (tables on the file's pages)"
                : any_mapped         ? "read into memory, tables mapped from the file on some "
                                       "processes (--weights-hold auto found memory short)"
                                     : "read into memory");
        for (int p = 0; p < t->P; p++)
            fprintf(stderr, "%s%.0f%%", p ? "," : " ", 100 * t->huge_share[p]);
        fprintf(stderr, "\n");
    }
    return 0;
}

/* Progress lines on rank 0, every 2 s. */
typedef struct {
    const tool_t *t;
    const char *driver;
    int round;
    double last;
    int64_t queries; /* a server run's length (0: offline) */
} progress_t;

static void progress(void *arg, int64_t batches, int64_t samples, double seconds)
{
    progress_t *p = arg;
    watchdog_kick(p->queries > 0 ? "serving queries" : "an offline run");
    if (p->t->o.quiet || p->t->rank != 0 || seconds - p->last < 2.0)
        return;
    p->last = seconds;
    if (p->queries > 0)
        fprintf(stderr, "bls-dlrm: server %s round %d: %lld of %lld queries, %.1f s\n", p->driver,
                p->round + 1, (long long)batches, (long long)p->queries, seconds);
    else
        fprintf(stderr, "bls-dlrm: %s round %d: %lld batches, %lld samples, %.0f samples/s\n",
                p->driver, p->round + 1, (long long)batches, (long long)samples,
                (double)samples / seconds);
}

/* Progress without lines: the watchdog's kick; arg names the phase. */
static void kick(void *arg, int64_t batches, int64_t samples, double seconds)
{
    (void)batches, (void)samples, (void)seconds;
    watchdog_kick(arg);
}

/* The options every run of this tool shares (the timeout, the bls drivers' progress, the
 * latency bound that server runs' adaptive lag keeps), with what differs between runs. */
static dist_run_opts_t run_opts(const tool_t *t, int64_t max_batches,
                                void (*on_batch)(void *, int64_t, int64_t, double), void *arg)
{
    return (dist_run_opts_t){.max_batches = max_batches,
                             .timeout = t->o.timeout,
                             .bls_progress = t->o.bls_progress,
                             .progress = on_batch,
                             .progress_arg = arg,
                             .latency_bound = t->o.bound};
}

/* Every round of every driver, gathered; 0, or 2 after bad input met by every process. */
static int run_all(tool_t *t, driver_result_t *res)
{
    int lags[HARNESS_MAX_DRIVERS];
    for (int i = 0; i < t->o.ndrivers; i++)
        lags[i] = t->o.drivers[i].lag;
    for (int round = 0; round < t->o.rounds; round++)
        for (int i = 0; i < t->o.ndrivers; i++) {
            int di = harness_round_driver(round, i, t->o.ndrivers);
            progress_t pr = {t, t->o.drivers[di].name, round, 0, 0};
            dist_run_opts_t ro = run_opts(t, t->o.max_batches, progress, &pr);
            dist_run_t run;
            dist_status_t st = dist_session_run(t->session, &t->o.drivers[di], t->src, t->o.batch,
                                                &t->o.scenario, &ro, &run);
            if (st == DIST_ERR_INPUT) {
                char msg[1100];
                snprintf(msg, sizeof(msg), "bad input: %s", dist_last_error());
                dist_run_free(&run);
                return bad_input(t, msg);
            }
            if (st == DIST_OK)
                st = dist_gather(t->session, &run, lags[di], lags, t->o.ndrivers, res[di].ideal_at,
                                 &res[di].s);
            if (st != DIST_OK)
                abort_here(t, dist_last_error());
            dist_run_free(&run);
        }
    return 0;
}

/* The offline rate a --load multiplies, in queries of the mean size per second: the first
 * driver's offline run, or a closed-loop calibration run of it. */
static double reference_rate(tool_t *t, const driver_result_t *res, const char **from)
{
    double mean = harness_size_mean(&t->o.sizes), samples_per_s = 0;
    if (t->o.offline) {
        const dist_summary_t *s0 = &res[0].s;
        samples_per_s = t->rank == 0 ? (double)s0->samples * s0->rounds / s0->loop : 0;
        *from = "the first driver's offline rate";
    } else {
        int B = (int)fmin(fmax(round(mean), t->P), t->o.batch);
        int64_t n = t->o.probe_queries / 2 > 20 ? t->o.probe_queries / 2 : 20;
        dist_run_opts_t ro = run_opts(t, n, kick, "a calibration run");
        dist_run_t run;
        if (dist_session_run(t->session, &t->o.drivers[0], t->src, B, &t->o.scenario, &ro, &run) !=
            DIST_OK)
            abort_here(t, dist_last_error());
        double loop = 0;
        MPI_Reduce(&run.loop, &loop, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        samples_per_s = loop > 0 ? (double)run.samples / loop : 0;
        dist_run_free(&run);
        *from = "a closed-loop calibration of the first driver";
    }
    MPI_Bcast(&samples_per_s, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    return samples_per_s / mean;
}

/* Adds one gathered server run to a driver's pooled results (rank 0). */
static void pool_serve(const tool_t *t, serve_result_t *v, dist_serve_t *g,
                       const harness_schedule_t *sch)
{
    size_t K = (size_t)g->queries;
    v->lat = realloc(v->lat, sizeof(double) * (v->n + K + 1));
    v->ideal = realloc(v->ideal, sizeof(double) * (v->n + K + 1));
    v->queue = realloc(v->queue, sizeof(double) * (v->n + K + 1));
    if (!v->lat || !v->ideal || !v->queue)
        abort_here(t, "out of memory for the latencies");
    memcpy(v->lat + v->n, g->latency, sizeof(double) * K);
    memcpy(v->ideal + v->n, g->ideal, sizeof(double) * K);
    memcpy(v->queue + v->n, g->queue, sizeof(double) * K);
    v->n += K;
    v->queries += g->queries;
    v->samples += g->samples;
    v->last_done += g->completed_qps > 0 ? (double)K / g->completed_qps : 0;
    v->last_arrival += K > 0 ? sch->at[K - 1] : 0;
    v->wait += g->wait;
    v->copy_peers = g->copy_peers;
    v->stopped_early |= g->stopped_early;
    free(v->pred);
    free(v->labels);
    v->pred = g->pred, v->labels = g->labels, v->n_pred = g->samples;
    g->pred = g->labels = NULL;
    if (g->lag_hist_n > v->lag_hist_n) { /* the run-ahead: counts pooled, the last sequence */
        int64_t *h = realloc(v->lag_hist, sizeof(int64_t) * (size_t)g->lag_hist_n);
        if (!h)
            abort_here(t, "out of memory for the run-ahead counts");
        for (int l = v->lag_hist_n; l < g->lag_hist_n; l++)
            h[l] = 0;
        v->lag_hist = h;
        v->lag_hist_n = g->lag_hist_n;
    }
    for (int l = 0; l < g->lag_hist_n; l++)
        v->lag_hist[l] += g->lag_hist[l];
    free(v->lag_mean);
    v->lag_mean = g->lag_mean, v->n_lag_mean = g->queries;
    g->lag_mean = NULL;
}

/* One run's queries, a line each (--latency-out), on rank 0. */
static void write_latencies(FILE *f, const char *driver, int round, const dist_serve_t *g,
                            const harness_schedule_t *sch)
{
    for (int64_t k = 0; f && k < g->queries; k++)
        fprintf(f, "%s %d %lld %.6f %d %.6f %.6f %.6f\n", driver, round, (long long)k,
                1e3 * sch->at[k], sch->size[k], 1e3 * g->latency[k], 1e3 * g->queue[k],
                1e3 * g->ideal[k]);
}

/* Every round of every driver on the schedule; 0, or 2 after bad input. */
static int serve_all(tool_t *t, const harness_schedule_t *sch, FILE *lat_out, serving_t *sv)
{
    sv->res = calloc((size_t)t->o.ndrivers, sizeof(serve_result_t));
    if (!sv->res)
        abort_here(t, "out of memory");
    for (int round = 0; round < t->o.rounds; round++)
        for (int i = 0; i < t->o.ndrivers; i++) {
            int di = harness_round_driver(round, i, t->o.ndrivers);
            progress_t pr = {t, t->o.drivers[di].name, round, 0, sch->n};
            dist_run_opts_t ro = run_opts(t, -1, progress, &pr);
            dist_run_t run;
            dist_serve_t g;
            memset(&g, 0, sizeof(g));
            dist_status_t st = dist_session_serve(t->session, &t->o.drivers[di], t->src, sch,
                                                  &t->o.scenario, &ro, 0, &run);
            if (st == DIST_ERR_INPUT) {
                char msg[1100];
                snprintf(msg, sizeof(msg), "bad input: %s", dist_last_error());
                return bad_input(t, msg);
            }
            if (st == DIST_OK)
                st = dist_gather_serve(t->session, &run, sch, t->o.drivers[di].lag, &g);
            if (st != DIST_OK)
                abort_here(t, dist_last_error());
            if (t->rank == 0) {
                write_latencies(lat_out, t->o.drivers[di].name, round, &g, sch);
                pool_serve(t, &sv->res[di], &g, sch);
            }
            dist_serve_free(&g);
            dist_run_free(&run);
        }
    return 0;
}

/* Progress of the peak search, on rank 0. */
static void peak_progress(void *arg, const harness_driver_t *drv, const dist_probe_t *p)
{
    const tool_t *t = arg;
    if (t->rank == 0 && !t->o.quiet)
        fprintf(stderr,
                "bls-dlrm: peak %s at %.1f queries/s: p99 %.2f ms (ideal %.2f), completed "
                "%.1f/s, %s%s\n",
                drv->name, p->qps, 1e3 * p->p99, 1e3 * p->ideal_p99, p->completed_qps,
                p->valid ? "within the bound" : "NOT within the bound",
                p->stopped_early ? " (stopped early: the queue diverged)" : "");
}

static int find_peak(tool_t *t, serving_t *sv)
{
    sv->peak = calloc((size_t)t->o.ndrivers, sizeof(dist_peak_t));
    if (!sv->peak)
        abort_here(t, "out of memory");
    dist_peak_opts_t po = {t->o.schedule_seed,
                           &t->o.sizes,
                           t->P,
                           t->o.batch,
                           t->o.probe_queries,
                           t->o.bound,
                           sv->qps,
                           t->o.refine,
                           16,
                           peak_progress,
                           t};
    dist_run_opts_t ro = run_opts(t, -1, kick, "the peak search");
    dist_status_t st = dist_find_peak(t->session, t->o.drivers, t->o.ndrivers, t->src,
                                      &t->o.scenario, &ro, &po, sv->peak);
    if (st == DIST_ERR_INPUT) {
        char msg[1100];
        snprintf(msg, sizeof(msg), "bad input: %s", dist_last_error());
        return bad_input(t, msg);
    }
    if (st != DIST_OK)
        abort_here(t, dist_last_error());
    return 0;
}

/* The server scenario: the rate, the clocks, the runs or the peak search. */
static int serve(tool_t *t, const driver_result_t *res, serving_t *sv)
{
    const char *from = NULL;
    sv->qps = t->o.qps;
    sv->offline_identical = -1;
    if (sv->qps == 0) {
        sv->reference_qps = reference_rate(t, res, &from);
        sv->reference = from;
        sv->qps = t->o.load * sv->reference_qps;
    }
    dist_clock_t c = dist_session_clock(t->session);
    int shared = c.shared;
    MPI_Allreduce(&shared, &sv->all_shared, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&c.uncertainty, &sv->worst_uncertainty, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    double est[2] = {c.estimated, c.estimate_bound};
    sv->clock_estimates = t->rank == 0 ? calloc(2 * (size_t)t->P, sizeof(double)) : NULL;
    if (t->rank == 0 && !sv->clock_estimates)
        abort_here(t, "out of memory");
    MPI_Gather(est, 2, MPI_DOUBLE, sv->clock_estimates, 2, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (t->o.find_peak)
        return find_peak(t, sv);
    harness_schedule_t sch;
    char err[300];
    dist_status_t st = dist_schedule_make(t->session, t->o.schedule_seed, sv->qps, t->o.queries,
                                          &t->o.sizes, t->P, t->o.batch, &sch);
    if (st == DIST_ERR_ARG)
        return bad_input(t, dist_last_error());
    if (st != DIST_OK)
        abort_here(t, dist_last_error());
    int rc = 0;
    FILE *lat_out = NULL;
    if (t->rank == 0 && t->o.schedule_out &&
        harness_schedule_write(&sch, t->o.schedule_out, err, sizeof(err)) != 0)
        rc = bad_input(t, err);
    if (rc == 0 && t->rank == 0 && t->o.latency_out && !(lat_out = fopen(t->o.latency_out, "w"))) {
        snprintf(err, sizeof(err), "cannot write --latency-out %s: %s", t->o.latency_out,
                 strerror(errno));
        rc = bad_input(t, err);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rc == 0)
        rc = serve_all(t, &sch, lat_out, sv);
    if (lat_out && fclose(lat_out) != 0 && rc == 0) {
        snprintf(err, sizeof(err), "writing --latency-out %s failed: %s", t->o.latency_out,
                 strerror(errno));
        rc = bad_input(t, err);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rc == 0 && t->rank == 0 && t->o.offline && t->o.sizes.kind == HARNESS_SIZE_FIXED &&
        t->o.sizes.a == t->o.batch) { /* the same batches as the offline run: the same bits */
        int64_t n = sv->res[0].n_pred < res[0].s.samples ? sv->res[0].n_pred : res[0].s.samples;
        sv->offline_identical =
            n > 0 && memcmp(sv->res[0].pred, res[0].s.pred, sizeof(float) * (size_t)n) == 0;
    }
    harness_schedule_free(&sch);
    return rc;
}

static void serving_free(serving_t *sv, int n)
{
    for (int i = 0; sv->res && i < n; i++) {
        free(sv->res[i].lat);
        free(sv->res[i].ideal);
        free(sv->res[i].queue);
        free(sv->res[i].pred);
        free(sv->res[i].labels);
        free(sv->res[i].lag_hist);
        free(sv->res[i].lag_mean);
    }
    free(sv->res);
    free(sv->clock_estimates);
    dist_peak_free(sv->peak, n);
    free(sv->peak);
}

/* Rank 0: checks, prints and writes what the runs gave; the exit status. */
static int write_report(tool_t *t, report_t *r, driver_result_t *res)
{
    int rc = 0;
    char err[600];
    if (t->o.offline)
        rc = dlrm_report_check(r, res);
    if (r->serving && r->serving->res) {
        int src = dlrm_report_serve_check(r);
        rc = rc ? rc : src;
    }
    const float *pred = NULL, *labels = NULL;
    int64_t n = 0;
    if (t->o.offline) {
        pred = res[0].s.pred, labels = res[0].s.labels, n = res[0].s.samples;
    } else if (r->serving && r->serving->res) {
        pred = r->serving->res[0].pred, labels = r->serving->res[0].labels;
        n = r->serving->res[0].n_pred;
    }
    if (t->pf && dlrm_report_predictions(r, pred, labels, n, t->pf, err, sizeof(err)) != 0) {
        fprintf(stderr, "bls-dlrm: %s\n", err);
        rc = 2;
    }
    t->pf = NULL;
    if (t->o.offline)
        dlrm_report_print(r, res);
    if (r->serving)
        dlrm_report_serve_print(r);
    if (r->serving && r->serving->peak)
        dlrm_report_peak_print(r);
    if (t->o.json && dlrm_report_json(r, res, err, sizeof(err)) != 0) {
        fprintf(stderr, "bls-dlrm: %s\n", err);
        rc = 2;
    }
    return rc;
}

/* Gathers what the report shows about every process; rank 0 prints and writes it. */
static int report(tool_t *t, driver_result_t *res, serving_t *sv)
{
    int P = t->P, rc = 0;
    long rss = harness_peak_rss_kib(), *rss_all = calloc((size_t)P, sizeof(long));
    double *tb_all = calloc((size_t)P, sizeof(double));
    char kern[16] = {0}, (*kern_all)[16] = calloc((size_t)P, sizeof(kern));
    snprintf(kern, sizeof(kern), "%s", dlrm_kernel()); /* hosts may differ: ask every process */
    watchdog_kick("gathering the results");
    MPI_Gather(&rss, 1, MPI_LONG, rss_all, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    MPI_Gather(&t->table_bytes, 1, MPI_DOUBLE, tb_all, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Gather(kern, sizeof(kern), MPI_CHAR, kern_all, sizeof(kern), MPI_CHAR, 0, MPI_COMM_WORLD);
    watchdog_hold("writing the report"); /* process 0's local work, as long as the output */
    if (t->rank == 0 && t->o.offline && res[0].s.samples == 0) {
        const char *why = dist_source_last_skip(t->src);
        fprintf(stderr, "bls-dlrm: no samples were read%s%s\n", why ? ": " : "", why ? why : "");
        rc = 2;
    } else if (t->rank == 0) {
        report_t r = {&t->o,
                      &t->cfg,
                      &t->L,
                      P,
                      rss_all,
                      tb_all,
                      t->huge_share,
                      t->mapped,
                      t->load_s,
                      (const char(*)[16])kern_all,
                      dist_source_lines(t->src),
                      dist_source_skipped(t->src),
                      dist_source_last_skip(t->src),
                      t->o.server ? sv : NULL};
        rc = write_report(t, &r, res);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    watchdog_kick("finishing");
    free(rss_all);
    free(tb_all);
    free(kern_all);
    return rc;
}

/* --save-weights (one process, checked at parse). */
static int save_weights(tool_t *t)
{
    double t0 = harness_now();
    watchdog_hold("writing the weights");
    if (dlrm_model_save(t->model, t->o.save_weights) != DLRM_OK) {
        fprintf(stderr, "bls-dlrm: --save-weights: %s\n", dlrm_last_error());
        return 2;
    }
    watchdog_kick("weights written");
    if (!t->o.quiet)
        fprintf(stderr, "bls-dlrm: weights written to %s in %.2f s\n", t->o.save_weights,
                harness_now() - t0);
    return 0;
}

static void tool_free(tool_t *t)
{
    if (t->pf)
        fclose(t->pf);
    dist_session_free(t->session);
    dist_source_free(t->src);
    dlrm_model_free(t->model);
    free(t->huge_share);
    free(t->mapped);
    dist_layout_free(&t->L);
    if (t->have_cfg)
        dlrm_config_free(&t->cfg);
    dlrm_options_free(&t->o);
}

/* --timeout's value before the options are parsed (they need MPI up): MPI_Init can hang too. */
static double early_timeout(int argc, char **argv)
{
    double x = 60;
    for (int i = 1; i < argc; i++) {
        const char *v = !strcmp(argv[i], "--timeout") && i + 1 < argc ? argv[i + 1]
                        : !strncmp(argv[i], "--timeout=", 10)        ? argv[i] + 10
                                                                     : NULL;
        char *end;
        double y = v ? strtod(v, &end) : NAN;
        if (v && *end == '\0' && y >= 0 && y <= 1e9)
            x = y;
    }
    return x;
}

int main(int argc, char **argv)
{
    tool_t t = {0};
    double timeout = early_timeout(argc, argv);
    if (timeout > 0)
        watchdog_start("bls-dlrm", watchdog_limit(timeout));
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &t.provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &t.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &t.P);
    watchdog_set(t.rank, watchdog_limit(timeout));
    watchdog_kick("starting");
    int rc = configure(&t, argc, argv);
    if (rc == 0 && t.o.write_criteo)
        rc = write_criteo(&t);
    if (rc == 0)
        rc = setup(&t);
    if (rc == 0 && t.o.save_weights)
        rc = save_weights(&t);
    driver_result_t *res = calloc((size_t)t.o.ndrivers + 1, sizeof(driver_result_t));
    if (rc == 0 && !res)
        abort_here(&t, "out of memory");
    if (rc == 0 && t.o.offline)
        rc = run_all(&t, res);
    serving_t sv;
    memset(&sv, 0, sizeof(sv));
    if (rc == 0 && t.o.server)
        rc = serve(&t, res, &sv);
    if (rc == 0)
        rc = report(&t, res, &sv);
    for (int i = 0; res && i < t.o.ndrivers; i++)
        dist_summary_free(&res[i].s);
    free(res);
    serving_free(&sv, t.o.ndrivers);
    tool_free(&t);
    watchdog_finalize("bls-dlrm", rc < 0 ? 0 : rc, WATCHDOG_FINALIZE_GRACE);
    MPI_Finalize();
    watchdog_stop();
    return rc < 0 ? 0 : rc;
}
