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
 * it inside the exchange.
 */
#define _GNU_SOURCE
#include "dlrm_report.h"

#include <errno.h>
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
    MPI_Abort(MPI_COMM_WORLD, 3);
}

/* Options, kernel, threads, model configuration: 0 to go on, else the exit status. */
static int configure(tool_t *t, int argc, char **argv)
{
    char err[600];
    opts_result_t r = dlrm_options_parse(argc, argv, t->P, &t->o, err, sizeof(err));
    if (r == OPTS_HELP && t->rank == 0)
        dlrm_options_usage(stdout);
    if (r != OPTS_RUN)
        return r == OPTS_HELP ? -1 : bad_input(t, err);
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
    if (t->rank == 0 &&
        dlrm_synth_write_criteo(&t->o.synth, &t->cfg, t->o.samples, t->o.write_criteo) != DLRM_OK) {
        fprintf(stderr, "bls-dlrm: cannot write the Criteo file: %s\n", dlrm_last_error());
        ok = 0;
    } else if (t->rank == 0) {
        printf("wrote %lld synthetic samples to %s\n", (long long)t->o.samples, t->o.write_criteo);
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
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
    dlrm_status_t st = o->weights
                           ? dlrm_model_load(&t->cfg, o->weights, mine, n_mine, &t->model)
                           : dlrm_model_init_random(&t->cfg, o->seed, mine, n_mine, &t->model);
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
    if (!t->o.quiet && t->rank == 0) {
        fprintf(stderr,
                "bls-dlrm: %d process%s, model ready in %.2f s (%d tables, d = %d, %s "
                "interaction, %s placement: tables per process",
                t->P, t->P > 1 ? "es" : "", build_max, t->cfg.n_tables, t->cfg.d, t->o.op,
                t->o.placement == DIST_PLACE_BALANCED ? "balanced" : "contiguous");
        for (int p = 0; p < t->P; p++)
            fprintf(stderr, "%s%d", p ? "," : " ", t->L.first[p + 1] - t->L.first[p]);
        fprintf(stderr, ")\n");
    }
    return 0;
}

/* Progress lines on rank 0, every 2 s. */
typedef struct {
    const tool_t *t;
    const char *driver;
    int round;
    double last;
} progress_t;

static void progress(void *arg, int64_t batches, int64_t samples, double seconds)
{
    progress_t *p = arg;
    if (p->t->o.quiet || p->t->rank != 0 || seconds - p->last < 2.0)
        return;
    p->last = seconds;
    fprintf(stderr, "bls-dlrm: %s round %d: %lld batches, %lld samples, %.0f samples/s\n",
            p->driver, p->round + 1, (long long)batches, (long long)samples,
            (double)samples / seconds);
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
            progress_t pr = {t, t->o.drivers[di].name, round, 0};
            dist_run_opts_t ro = {t->o.max_batches, t->o.timeout, progress, &pr};
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

/* Gathers what the report shows about every process; rank 0 prints and writes it. */
static int report(tool_t *t, driver_result_t *res)
{
    int P = t->P, rc = 0;
    long rss = harness_peak_rss_kib(), *rss_all = calloc((size_t)P, sizeof(long));
    double *tb_all = calloc((size_t)P, sizeof(double));
    char kern[16] = {0}, (*kern_all)[16] = calloc((size_t)P, sizeof(kern));
    snprintf(kern, sizeof(kern), "%s", dlrm_kernel()); /* hosts may differ: ask every process */
    MPI_Gather(&rss, 1, MPI_LONG, rss_all, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    MPI_Gather(&t->table_bytes, 1, MPI_DOUBLE, tb_all, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Gather(kern, sizeof(kern), MPI_CHAR, kern_all, sizeof(kern), MPI_CHAR, 0, MPI_COMM_WORLD);
    if (t->rank == 0 && res[0].s.samples == 0) {
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
                      (const char(*)[16])kern_all,
                      dist_source_lines(t->src),
                      dist_source_skipped(t->src),
                      dist_source_last_skip(t->src)};
        char err[600];
        rc = dlrm_report_check(&r, res);
        if (t->pf && dlrm_report_predictions(&r, res, t->pf, err, sizeof(err)) != 0) {
            fprintf(stderr, "bls-dlrm: %s\n", err);
            rc = 2;
        }
        t->pf = NULL;
        dlrm_report_print(&r, res);
        if (t->o.json && dlrm_report_json(&r, res, err, sizeof(err)) != 0) {
            fprintf(stderr, "bls-dlrm: %s\n", err);
            rc = 2;
        }
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    free(rss_all);
    free(tb_all);
    free(kern_all);
    return rc;
}

static void tool_free(tool_t *t)
{
    if (t->pf)
        fclose(t->pf);
    dist_session_free(t->session);
    dist_source_free(t->src);
    dlrm_model_free(t->model);
    dist_layout_free(&t->L);
    if (t->have_cfg)
        dlrm_config_free(&t->cfg);
    dlrm_options_free(&t->o);
}

int main(int argc, char **argv)
{
    tool_t t = {0};
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &t.provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &t.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &t.P);
    int rc = configure(&t, argc, argv);
    if (rc == 0 && t.o.write_criteo)
        rc = write_criteo(&t);
    if (rc == 0)
        rc = setup(&t);
    driver_result_t *res = calloc((size_t)t.o.ndrivers + 1, sizeof(driver_result_t));
    if (rc == 0 && !res)
        abort_here(&t, "out of memory");
    if (rc == 0)
        rc = run_all(&t, res);
    if (rc == 0)
        rc = report(&t, res);
    for (int i = 0; res && i < t.o.ndrivers; i++)
        dist_summary_free(&res[i].s);
    free(res);
    tool_free(&t);
    MPI_Finalize();
    return rc < 0 ? 0 : rc;
}
