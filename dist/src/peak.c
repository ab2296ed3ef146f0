/*
 * The peak (dlrm_dist.h): per driver, the highest Poisson rate whose p99 latency stays within
 * the bound.  Probes double the rate from the start until one fails, then bisect between the
 * last that passed and the first that failed.  The verdicts come from rank 0's figures,
 * broadcast by dist_gather_serve, so every process takes the same next step.
 */
#include "dist_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One driver's search: where it stands. */
typedef struct {
    double pass, fail; /* the highest rate that passed, the lowest that failed (0: none yet) */
    int refined, done;
    dist_probe_t *probes;
    int n;
} search_t;

static double next_rate(const search_t *x, const dist_peak_opts_t *o)
{
    if (x->n == 0)
        return o->start_qps;
    if (x->fail == 0)
        return x->pass * 2;
    if (x->pass == 0)
        return x->fail / 2; /* even the first probe failed: halve */
    return (x->pass + x->fail) / 2;
}

static void record(search_t *x, const dist_probe_t *p, const dist_peak_opts_t *o)
{
    x->probes[x->n++] = *p;
    if (p->valid)
        x->pass = fmax(x->pass, p->qps);
    else
        x->fail = x->fail == 0 ? p->qps : fmin(x->fail, p->qps);
    if (x->pass > 0 && x->fail > 0)
        x->refined++;
    /* Done: bisected enough, out of probes, or nothing passes even far below the start. */
    x->done = x->refined > o->refine || x->n >= o->max_probes ||
              (x->pass == 0 && x->fail > 0 && x->fail < o->start_qps / 64);
}

/* One probe of one driver at rate qps; the figures every process agrees on. */
static dist_status_t probe(dist_session_t *s, const harness_driver_t *drv, dist_source_t *src,
                           const dist_scenario_t *sc, const dist_run_opts_t *opts,
                           const dist_peak_opts_t *o, double qps, dist_probe_t *out)
{
    harness_schedule_t sched;
    dist_status_t st =
        dist_schedule_make(s, o->seed, qps, o->queries, o->sizes, o->min_size, o->max_size, &sched);
    if (st != DIST_OK)
        return st;
    dist_run_t run;
    dist_serve_t v;
    memset(&v, 0, sizeof(v));
    st = dist_session_serve(s, drv, src, &sched, sc, opts, 10 * o->bound, &run);
    if (st == DIST_OK)
        st = dist_gather_serve(s, &run, &sched, drv->lag, &v);
    *out = (dist_probe_t){
        qps, 0, v.p50, v.p99, v.ideal_p99, v.completed_qps, v.queries, v.stopped_early};
    out->valid = st == DIST_OK && !v.stopped_early && v.queries == o->queries &&
                 v.p99 <= o->bound && v.completed_qps >= DIST_KEEP_UP * v.scheduled_qps;
    dist_run_free(&run);
    dist_serve_free(&v);
    harness_schedule_free(&sched);
    return st;
}

dist_status_t dist_find_peak(dist_session_t *s, const harness_driver_t *drivers, int n,
                             dist_source_t *src, const dist_scenario_t *sc,
                             const dist_run_opts_t *opts, const dist_peak_opts_t *o,
                             dist_peak_t *out)
{
    if (!o || !(o->start_qps > 0) || !(o->bound > 0) || o->max_probes < 1 || n < 1)
        return dist_error(DIST_ERR_ARG, "peak search: a start rate > 0, a bound > 0 and at "
                                        "least one probe per driver are needed");
    search_t *x = calloc((size_t)n, sizeof(search_t));
    dist_status_t st = x ? DIST_OK : dist_error(DIST_ERR_NOMEM, "peak search: out of memory");
    for (int i = 0; i < n && st == DIST_OK; i++)
        if (!(x[i].probes = calloc((size_t)o->max_probes, sizeof(dist_probe_t))))
            st = dist_error(DIST_ERR_NOMEM, "peak search: out of memory");
    for (int round = 0, busy = 1; st == DIST_OK && busy; round++) {
        busy = 0;
        for (int j = 0; j < n && st == DIST_OK; j++) { /* interleaved, the order rotating */
            int i = harness_round_driver(round, j, n);
            if (x[i].done)
                continue;
            busy = 1;
            dist_probe_t p;
            st = probe(s, &drivers[i], src, sc, opts, o, next_rate(&x[i], o), &p);
            if (st == DIST_OK) {
                record(&x[i], &p, o);
                if (o->progress)
                    o->progress(o->progress_arg, &drivers[i], &p);
            }
        }
    }
    for (int i = 0; x && i < n; i++)
        out[i] = (dist_peak_t){x[i].pass, x[i].probes, x[i].n};
    free(x);
    return st;
}

void dist_peak_free(dist_peak_t *p, int n)
{
    for (int i = 0; p && i < n; i++) {
        free(p[i].probes);
        p[i].probes = NULL;
    }
}
