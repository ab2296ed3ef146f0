/*
 * Serving (dlrm_dist.h): queries on a schedule, latency as a client sees it, clocks.
 *
 * The loop of a process, per query k of the schedule: consume query k-L-1 (the bound, waiting
 * if it is not complete; L the driver's lag or bls:auto's choice for k), read k's samples (a
 * request carries its data), wait for k's arrival while consuming whatever completes, then produce
 * k and post its exchange, and consume what completed.  A query's work here (for the ideal model)
 * is the time spent producing and consuming it; its latency here runs from its arrival to its
 * predictions; gathered, a client's latency is the largest over the processes.
 */
#include "dist_internal.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { TAG_PING = 0x7c10, TAG_CLOCK = 0x7c11, PINGS = 32 };

/* Process 0's side of the ping-pong with process p: p's offset, and half the best round trip. */
static void ping(MPI_Comm comm, int p, double out[2])
{
    double best = INFINITY, offset = 0;
    for (int i = 0; i < PINGS; i++) {
        double t1 = harness_now(), tp;
        MPI_Send(&t1, 1, MPI_DOUBLE, p, TAG_PING, comm);
        MPI_Recv(&tp, 1, MPI_DOUBLE, p, TAG_PING, comm, MPI_STATUS_IGNORE);
        double t2 = harness_now();
        if (t2 - t1 < best) { /* the shortest round trip bounds the error best */
            best = t2 - t1;
            offset = tp - (t1 + t2) / 2;
        }
    }
    out[0] = offset;
    out[1] = best / 2;
}

dist_status_t dist_clock_sync(dist_session_t *s)
{
    char host[MPI_MAX_PROCESSOR_NAME] = "", host0[MPI_MAX_PROCESSOR_NAME] = "";
    int len = 0;
    MPI_Get_processor_name(host, &len);
    memcpy(host0, host, sizeof(host));
    MPI_Bcast(host0, sizeof(host0), MPI_CHAR, 0, s->comm);
    double est[2] = {0, 0};
    for (int p = 1; p < s->P; p++) {
        if (s->rank == 0) {
            ping(s->comm, p, est);
            MPI_Send(est, 2, MPI_DOUBLE, p, TAG_CLOCK, s->comm);
        } else if (s->rank == p) {
            for (int i = 0; i < PINGS; i++) {
                double t;
                MPI_Recv(&t, 1, MPI_DOUBLE, 0, TAG_PING, s->comm, MPI_STATUS_IGNORE);
                t = harness_now();
                MPI_Send(&t, 1, MPI_DOUBLE, 0, TAG_PING, s->comm);
            }
            MPI_Recv(est, 2, MPI_DOUBLE, 0, TAG_CLOCK, s->comm, MPI_STATUS_IGNORE);
        }
    }
    int shared = strcmp(host, host0) == 0;
    s->clock = (dist_clock_t){shared, shared ? 0 : est[0], shared ? 0 : est[1], est[0], est[1]};
    return DIST_OK;
}

dist_clock_t dist_session_clock(const dist_session_t *s)
{
    return s->clock;
}

dist_status_t dist_schedule_make(dist_session_t *s, uint64_t seed, double qps, int64_t n,
                                 const harness_size_t *sizes, int min_size, int max_size,
                                 harness_schedule_t *out)
{
    char err[300] = "";
    int ok = 1;
    memset(out, 0, sizeof(*out));
    if (n > INT_MAX / 2)
        return dist_error(DIST_ERR_ARG, "a schedule of %lld queries is too long", (long long)n);
    if (s->rank == 0)
        ok = harness_schedule_make(seed, qps, n, sizes, min_size, max_size, out, err,
                                   sizeof(err)) == 0;
    MPI_Bcast(&ok, 1, MPI_INT, 0, s->comm);
    if (!ok) {
        MPI_Bcast(err, sizeof(err), MPI_CHAR, 0, s->comm);
        return dist_error(DIST_ERR_ARG, "%s", err);
    }
    if (s->rank != 0) {
        out->n = n;
        out->qps = qps;
        out->at = malloc(sizeof(double) * (size_t)n);
        out->size = malloc(sizeof(int) * (size_t)n);
        if (!out->at || !out->size) /* the job cannot go on without this process */
            return dist_error(DIST_ERR_NOMEM, "out of memory for a schedule of %lld queries",
                              (long long)n);
    }
    MPI_Bcast(out->at, (int)n, MPI_DOUBLE, 0, s->comm);
    MPI_Bcast(out->size, (int)n, MPI_INT, 0, s->comm);
    return DIST_OK;
}

/* The schedule's start: a moment of process 0's clock a little ahead, on this one's clock. */
static double agree_start(dist_session_t *s)
{
    double t0 = harness_now() + 0.02;
    MPI_Bcast(&t0, 1, MPI_DOUBLE, 0, s->comm);
    return t0 + s->clock.offset;
}

/* Waits for query k's arrival, consuming what completes meanwhile. */
static dist_status_t await_arrival(run_t *x, int64_t k, double due)
{
    dist_status_t st = DIST_OK;
    double told = harness_now();
    for (double now = told; st == DIST_OK && now < due; now = harness_now()) {
        int64_t before = x->consumed;
        st = run_consume_upto(x, k, 0);
        if (st == DIST_OK && x->consumed == before) /* nothing completed: a short nap */
            harness_spend_us(fmin(100.0, (due - now) * 1e6), 0);
        if (x->opts->progress && now - told >= 0.5) { /* a long gap is no stall: say so */
            told = now;
            x->opts->progress(x->opts->progress_arg, x->r->batches, x->r->samples, now - x->t0);
        }
    }
    return st;
}

/* The early stop's agreement: at checkpoint j every process starts an allreduce of "a query
 * waited too long since the last checkpoint", completed at checkpoint j+1, which ends the run
 * if it is set.  No process waits for another at a checkpoint but for that request, which its
 * peers started a whole checkpoint earlier. */
typedef struct {
    MPI_Request req;
    int mine, any;
    double worst; /* the longest wait to start since the last checkpoint */
} stop_t;

static int checkpoint(dist_session_t *s, stop_t *c, double stop_wait)
{
    int stop = 0;
    if (c->req != MPI_REQUEST_NULL) {
        MPI_Wait(&c->req, MPI_STATUS_IGNORE);
        stop = c->any;
    }
    c->mine = c->worst > stop_wait;
    c->worst = 0;
    MPI_Iallreduce(&c->mine, &c->any, 1, MPI_INT, MPI_MAX, s->comm, &c->req);
    return stop;
}

/* Query k: the bound, its data (the request carries it: read before it arrives), its arrival,
 * production and exchange, what completed. */
static dist_status_t serve_query(run_t *x, dist_source_t *src, const harness_schedule_t *sch,
                                 int64_t k, stop_t *c)
{
    x->cur_lag = autolag_choose(x); /* the driver's lag, or bls:auto's choice */
    dist_status_t st = run_consume_upto(x, k - x->cur_lag, 1); /* the bound */
    double due = x->t0 + sch->at[k];
    dist_batch_t b;
    if (st == DIST_OK)
        st = dist_source_next(src, sch->size[k], &b);
    if (st == DIST_OK && b.n < sch->size[k])
        return dist_error(DIST_ERR_INPUT,
                          "the data ended at query %lld of %lld: %d of its %d "
                          "samples were left",
                          (long long)k, (long long)sch->n, b.n, sch->size[k]);
    if (st == DIST_OK)
        st = await_arrival(x, k, due);
    if (st != DIST_OK)
        return st;
    slot_t *sl = &x->slots[k % x->S];
    double begin = harness_now(), lib0 = x->in_lib;
    c->worst = fmax(c->worst, begin - due);
    st = run_produce_post(x, k, &b, sl); /* grows the records for k first */
    if (st == DIST_OK)
        x->r->begun[k] = begin - x->t0;
    sl->start = due;     /* the client's clock starts at the arrival */
    if (st == DIST_OK) { /* work outside the collective; consuming the query adds the rest */
        x->r->work[k] = harness_now() - begin - (x->in_lib - lib0);
        x->r->done[k] = NAN;
        st = run_consume_upto(x, k + 1, 0);
    }
    return st;
}

dist_status_t dist_session_serve(dist_session_t *s, const harness_driver_t *drv, dist_source_t *src,
                                 const harness_schedule_t *sched, const dist_scenario_t *sc,
                                 const dist_run_opts_t *opts, double stop_wait, dist_run_t *out)
{
    memset(out, 0, sizeof(*out));
    for (int64_t k = 0; sched && k < sched->n; k++)
        if (sched->size[k] < 1 || sched->size[k] > s->batch_max || sched->size[k] < s->P)
            return dist_error(DIST_ERR_ARG,
                              "query %lld has %d samples: a query must give each "
                              "of the %d processes a row and fit the session's %d",
                              (long long)k, sched->size[k], s->P, s->batch_max);
    if (!drv || !src || !sched || !opts)
        return dist_error(DIST_ERR_ARG, "dist_session_serve: driver, source, schedule and "
                                        "options are required");
    run_t x = {
        .s = s, .drv = drv, .sc = sc, .r = out, .serving = 1, .opts = opts, .arrivals = sched->at};
    dist_status_t st = run_begin(&x, src, opts);
    stop_t c = {MPI_REQUEST_NULL, 0, 0, 0};
    x.t0 = st == DIST_OK ? agree_start(s) : harness_now();
    for (int64_t k = 0; st == DIST_OK && k < sched->n; k++) {
        if (stop_wait > 0 && k > 0 && k % DIST_CHECKPOINT == 0 && checkpoint(s, &c, stop_wait)) {
            out->stopped_early = 1;
            break;
        }
        st = serve_query(&x, src, sched, k, &c);
        if (st == DIST_OK && opts->progress)
            opts->progress(opts->progress_arg, out->batches, out->samples, harness_now() - x.t0);
    }
    if (c.req != MPI_REQUEST_NULL)
        MPI_Wait(&c.req, MPI_STATUS_IGNORE); /* every process started it */
    return run_end(&x, x.t0, st);
}
