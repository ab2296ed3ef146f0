/*
 * A session's runs (dlrm_dist.h): the driver loop of distributed inference.
 *
 * Per batch k a process produces (bottom MLP of its rows, lookups of its tables for all rows,
 * then the scenario's injected delay), posts the exchange of batch k, and consumes whatever
 * batches completed, oldest first: unpack what arrived into table order, interaction and top
 * MLP, predictions at their local place.  Before producing batch k it consumes batch k-L-1,
 * waiting for it if it is not complete (S = L+1 slots of buffers): that, and libbls's own
 * bound, keep at most L+1 batches in flight.  With bls:auto[:MAX] the communicator's bound
 * and the slots are MAX's, and L is chosen per batch (autolag.c).  With sync (L = 0) each
 * batch is consumed right after its MPI_Alltoallv.  Nothing is gathered per batch.
 *
 * Latency of a batch here: from the start of its production on a process to its predictions
 * there.  Work (the ideal model's w): the batch's time outside the collective.
 */
#include "dist_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dist_status_t dist_session_create(MPI_Comm comm, const dlrm_model_t *model, const dist_layout_t *L,
                                  int batch_max, dist_session_t **s_p)
{
    *s_p = NULL;
    int rank, P;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &P);
    if (!model || !L || L->P != P || batch_max < P)
        return dist_error(DIST_ERR_ARG,
                          "session: the layout is for %d processes, the "
                          "communicator has %d; batches of %d samples must give each a row",
                          L ? L->P : 0, P, batch_max);
    dist_session_t *s = calloc(1, sizeof(*s));
    if (!s)
        return dist_error(DIST_ERR_NOMEM, "session: out of memory");
    *s = (dist_session_t){.comm = comm,
                          .rank = rank,
                          .P = P,
                          .model = model,
                          .L = L,
                          .batch_max = batch_max,
                          .mine = L->tables + L->first[rank],
                          .n_mine = L->first[rank + 1] - L->first[rank],
                          .clock = {.shared = 1}};
    *s_p = s;
    return dist_clock_sync(s);
}

MPI_Comm dist_session_comm(const dist_session_t *s)
{
    return s->comm;
}

void dist_session_free(dist_session_t *s)
{
    if (!s)
        return;
    bls_comm_destroy(s->failed);
    free(s);
}

static void run_free_buffers(run_t *x)
{
    for (int i = 0; x->slots && i < x->S; i++) {
        free(x->slots[i].send);
        free(x->slots[i].stage);
        free(x->slots[i].recv);
        free(x->slots[i].xbot);
        free(x->slots[i].labels);
    }
    free(x->slots);
    free(x->pooled);
    free(x->sc_);
    free(x->sd);
    free(x->rc);
    free(x->rd);
}

/* S slots of buffers for batches of up to batch_max samples, and the exchange's arrays. */
static dist_status_t run_alloc(run_t *x)
{
    const dist_session_t *s = x->s;
    size_t P = (size_t)s->P, T = (size_t)s->L->T, d = (size_t)s->L->d;
    size_t rows = (size_t)s->batch_max / P + 1; /* the largest slice of any batch */
    size_t trailers = x->drv->auto_lag ? DIST_AUTO_TRAILER * P : 0;
    x->S = x->drv->lag + 1;
    x->slots = calloc((size_t)x->S, sizeof(slot_t));
    x->pooled = malloc(sizeof(float) * (rows * T * d + 1));
    x->sc_ = calloc(P, sizeof(size_t));
    x->sd = calloc(P, sizeof(size_t));
    x->rc = calloc(P, sizeof(size_t));
    x->rd = calloc(P, sizeof(size_t));
    int ok = x->slots && x->pooled && x->sc_ && x->sd && x->rc && x->rd;
    for (int i = 0; ok && i < x->S; i++) {
        slot_t *sl = &x->slots[i];
        size_t out = (size_t)s->batch_max * (size_t)s->n_mine * d;
        sl->send = malloc(sizeof(float) * (out + 1));
        sl->stage = trailers ? malloc(sizeof(float) * (out + trailers)) : NULL;
        sl->recv = malloc(sizeof(float) * (rows * T * d + trailers + 1));
        sl->xbot = malloc(sizeof(float) * (rows * d + 1));
        sl->labels = malloc(sizeof(float) * rows);
        sl->k = -1;
        ok = sl->send && sl->recv && sl->xbot && sl->labels && (!trailers || sl->stage);
    }
    return ok ? DIST_OK
              : dist_error(DIST_ERR_NOMEM,
                           "session: out of memory for %d batch "
                           "buffers",
                           x->S);
}

/* The communicator of the driver: its mode and lag, blocks of up to a slice of our tables. */
static dist_status_t run_comm(run_t *x, const dist_run_opts_t *opts)
{
    const dist_session_t *s = x->s;
    bls_config_t bc;
    bls_config_init(&bc);
    bc.mode = x->drv->mode;
    bc.lag = x->drv->lag;
    bc.datatype = MPI_FLOAT;
    bc.max_block = ((size_t)s->batch_max / (size_t)s->P + 1) * (size_t)s->n_mine * (size_t)s->L->d +
                   (x->drv->auto_lag ? DIST_AUTO_TRAILER : 0);
    bc.timeout = opts->timeout;
    bc.progress = opts->bls_progress;
    if (bls_comm_create(s->comm, &bc, &x->comm) != BLS_OK)
        return dist_error(DIST_ERR_COMM, "cannot create the %s communicator: %s", x->drv->name,
                          bls_last_error());
    return DIST_OK;
}

/* Room in r's records for batch k and rows up to need. */
dist_status_t run_grow(run_t *x, int64_t k, int64_t need)
{
    dist_run_t *r = x->r;
    if (k >= x->cap_b) {
        x->cap_b = x->cap_b * 2 + 64;
        r->batch_n = realloc(r->batch_n, sizeof(int64_t) * (size_t)x->cap_b);
        r->lat = realloc(r->lat, sizeof(double) * (size_t)x->cap_b);
        r->work = realloc(r->work, sizeof(double) * (size_t)x->cap_b);
        r->lag = realloc(r->lag, sizeof(int) * (size_t)x->cap_b);
        if (x->serving) {
            r->done = realloc(r->done, sizeof(double) * (size_t)x->cap_b);
            r->begun = realloc(r->begun, sizeof(double) * (size_t)x->cap_b);
        }
    }
    if (need > x->cap_l) {
        while (x->cap_l < need)
            x->cap_l = x->cap_l * 2 + 1024;
        r->pred = realloc(r->pred, sizeof(float) * (size_t)x->cap_l);
        r->labels = realloc(r->labels, sizeof(float) * (size_t)x->cap_l);
    }
    if (!r->batch_n || !r->lat || !r->work || !r->lag || !r->pred || !r->labels ||
        (x->serving && (!r->done || !r->begun)))
        return dist_error(DIST_ERR_NOMEM, "session: out of memory for the per-batch records");
    return DIST_OK;
}

static dist_status_t comm_error(bls_status_t st, const char *what, int64_t k)
{
    return dist_error(DIST_ERR_COMM, "%s of batch %lld failed: %s: %s", what, (long long)k,
                      bls_strerror(st), bls_last_error());
}

/* bls:auto's layout: each block DIST_AUTO_TRAILER floats longer (its trailer after it), so
 * block p moves by p trailers. */
static void with_trailers(size_t *counts, size_t *displs, int P)
{
    for (int p = 0; p < P; p++) {
        counts[p] += DIST_AUTO_TRAILER;
        displs[p] += DIST_AUTO_TRAILER * (size_t)p;
    }
}

/* Interaction and top MLP of a slot's batch, its exchange complete. */
static dist_status_t consume(run_t *x, slot_t *sl)
{
    const dist_session_t *s = x->s;
    int rows = (int)dist_slice_rows(s->rank, s->P, sl->n);
    double t0 = harness_now();
    if (x->al) { /* the blocks' trailers, then the blocks without them */
        dist_recv_layout(s->L, s->rank, sl->n, x->rc, x->rd);
        with_trailers(x->rc, x->rd, s->P);
        autolag_learn(x, sl->k, sl->recv, x->rc, x->rd);
    }
    dist_unpack_gap(s->L, s->rank, sl->n, sl->recv, x->al ? DIST_AUTO_TRAILER : 0, x->pooled);
    if (dlrm_interact_top(s->model, rows, sl->xbot, x->pooled, x->r->pred + sl->local_off) !=
        DLRM_OK)
        return dist_error(DIST_ERR_ENGINE, "batch %lld: %s", (long long)sl->k, dlrm_last_error());
    memcpy(x->r->labels + sl->local_off, sl->labels, sizeof(float) * (size_t)rows);
    double t1 = harness_now();
    x->r->compute += t1 - t0;
    x->r->lat[sl->k] = t1 - sl->start;
    if (x->serving) { /* the query's own work, and when it was ready on process 0's clock */
        x->r->work[sl->k] += t1 - t0;
        x->r->done[sl->k] = t1 - x->t0;
    }
    return DIST_OK;
}

/* Consumes batches in order up to `upto` (exclusive), waiting for them if wait, else only
 * those already complete. */
dist_status_t run_consume_upto(run_t *x, int64_t upto, int wait)
{
    while (x->consumed < upto) {
        int64_t j = x->consumed;
        int flag = 1;
        double t0 = harness_now();
        bls_status_t st = wait ? bls_wait(x->comm, j, NULL) : bls_test(x->comm, j, &flag, NULL);
        x->in_lib += harness_now() - t0;
        if (st != BLS_OK)
            return comm_error(st, wait ? "waiting for the exchange" : "testing the exchange", j);
        if (!flag)
            return DIST_OK;
        dist_status_t ds = consume(x, &x->slots[j % x->S]);
        if (ds != DIST_OK)
            return ds;
        x->consumed++;
    }
    return DIST_OK;
}

/* Batch k into its slot: bottom MLP of our rows, lookups of our tables, the injected delay. */
static dist_status_t produce(run_t *x, int64_t k, const dist_batch_t *b, slot_t *sl)
{
    const dist_session_t *s = x->s;
    int rows = (int)dist_slice_rows(s->rank, s->P, b->n);
    sl->n = b->n;
    sl->k = k;
    sl->local_off = x->r->n_local;
    memcpy(sl->labels, b->labels, sizeof(float) * (size_t)rows);
    double c0 = harness_now();
    if (dlrm_bottom(s->model, rows, b->dense, sl->xbot) != DLRM_OK ||
        dlrm_embed(s->model, &b->emb, s->mine, s->n_mine, sl->send) != DLRM_OK)
        return dist_error(DIST_ERR_ENGINE, "batch %lld: %s", (long long)k, dlrm_last_error());
    double compute = harness_now() - c0;
    x->r->compute += compute;
    const dist_scenario_t *sc = x->sc;
    if (sc && s->rank == sc->hetero_rank)
        harness_spend_us(1e6 * compute * (sc->hetero_factor - 1), 0);
    if (sc)
        harness_spend_us(harness_delay_us(&sc->delay, s->rank, (long)k), sc->busy);
    x->r->n_local += rows;
    return DIST_OK;
}

/* Posts batch k's exchange. */
static dist_status_t post(run_t *x, int64_t k, slot_t *sl)
{
    const dist_session_t *s = x->s;
    dist_send_layout(s->L, s->rank, sl->n, x->sc_, x->sd);
    dist_recv_layout(s->L, s->rank, sl->n, x->rc, x->rd);
    const float *send = sl->send;
    if (x->al) { /* bls:auto: every block gets the trailer, the policy's figures */
        float trailer[DIST_AUTO_TRAILER];
        autolag_stamp(x, k, trailer);
        for (int q = 0; q < s->P; q++) {
            float *at = sl->stage + x->sd[q] + DIST_AUTO_TRAILER * (size_t)q;
            memcpy(at, sl->send + x->sd[q], sizeof(float) * x->sc_[q]);
            memcpy(at + x->sc_[q], trailer, sizeof(trailer));
        }
        with_trailers(x->sc_, x->sd, s->P);
        with_trailers(x->rc, x->rd, s->P);
        send = sl->stage;
    }
    bls_iter_t it;
    double t0 = harness_now();
    bls_status_t st = bls_post(x->comm, send, x->sc_, x->sd, sl->recv, x->rc, x->rd, &it);
    x->in_lib += harness_now() - t0;
    return st == BLS_OK ? DIST_OK : comm_error(st, "posting the exchange", k);
}

dist_status_t run_produce_post(run_t *x, int64_t k, const dist_batch_t *b, slot_t *sl)
{
    dist_status_t st = run_grow(x, k, x->r->n_local + dist_slice_rows(x->s->rank, x->s->P, b->n));
    if (st == DIST_OK)
        st = produce(x, k, b, sl);
    if (st == DIST_OK)
        st = post(x, k, sl);
    if (st == DIST_OK) {
        x->r->lag[k] = x->cur_lag;
        x->r->batch_n[k] = b->n;
        x->r->batches = k + 1;
        x->r->samples += b->n;
    }
    return st;
}

/* One batch: the bound (the driver's lag, or bls:auto's choice, at most the slots allow),
 * produce, post, consume what completed.  *ended once the data ends. */
static dist_status_t step(run_t *x, dist_source_t *src, int batch, int64_t k, int *ended)
{
    dist_run_t *r = x->r;
    double it0 = harness_now(), lib0 = x->in_lib;
    x->cur_lag = autolag_choose(x);
    dist_status_t st = run_consume_upto(x, k - x->cur_lag, 1); /* k-L-1 done: k's slot free */
    slot_t *sl = &x->slots[k % x->S];
    sl->start = harness_now();
    dist_batch_t b;
    if (st == DIST_OK)
        st = dist_source_next(src, batch, &b);
    if (st != DIST_OK || b.n == 0) {
        *ended = 1;
        return st;
    }
    st = run_produce_post(x, k, &b, sl);
    if (st == DIST_OK)
        st = run_consume_upto(x, k + 1, 0);
    if (st != DIST_OK)
        return st;
    r->work[k] = (harness_now() - it0) - (x->in_lib - lib0);
    *ended = b.n < batch;
    return DIST_OK;
}

dist_status_t run_begin(run_t *x, dist_source_t *src, const dist_run_opts_t *opts)
{
    dist_status_t st = run_alloc(x);
    if (st == DIST_OK)
        st = run_comm(x, opts);
    if (st == DIST_OK)
        st = autolag_begin(x);
    if (st == DIST_OK)
        st = dist_source_rewind(src); /* opened when made: cannot fail here alone */
    if (st == DIST_OK)
        MPI_Barrier(x->s->comm);
    x->cpu0 = harness_cpu_seconds();
    return st;
}

/* Every batch consumed, the communicator finished, the figures. */
static dist_status_t finish(run_t *x, double t0)
{
    dist_status_t st = run_consume_upto(x, x->r->batches, 1);
    bls_status_t bs = st == DIST_OK ? bls_finish(x->comm) : BLS_OK;
    if (bs != BLS_OK)
        st = dist_error(DIST_ERR_COMM, "ending the %s run: %s", x->drv->name, bls_last_error());
    x->r->loop = harness_now() - t0;
    bls_stats_t stats;
    bls_comm_stats(x->comm, &stats);
    x->r->wait = stats.wait_seconds + stats.post_wait_seconds;
    x->r->progress_cpu = stats.progress_cpu_seconds;
    x->r->progress_standby = stats.progress_standby_seconds;
    x->r->cpu = harness_cpu_seconds() - x->cpu0;
    x->r->buffer_bytes = stats.buffer_bytes;
    x->r->copy_peers = stats.copy_peers;
    return st;
}

dist_status_t run_end(run_t *x, double t0, dist_status_t st)
{
    dist_status_t input = st == DIST_ERR_INPUT ? st : DIST_OK; /* every process, same batch */
    char input_msg[1024] = "";
    if (input != DIST_OK)
        snprintf(input_msg, sizeof(input_msg), "%s", dist_last_error());
    if (x->comm && (st == DIST_OK || input != DIST_OK))
        st = finish(x, t0);
    if (st != DIST_OK && x->comm) /* the others may wait in the exchange: keep it for free */
        x->s->failed = x->comm;
    else
        bls_comm_destroy(x->comm);
    x->comm = NULL;
    autolag_free(x);
    run_free_buffers(x);
    if (st == DIST_OK && input != DIST_OK)
        return dist_error(input, "%s", input_msg);
    return st;
}

dist_status_t dist_session_run(dist_session_t *s, const harness_driver_t *drv, dist_source_t *src,
                               int batch, const dist_scenario_t *sc, const dist_run_opts_t *opts,
                               dist_run_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!s || !drv || !src || !opts || batch < s->P || batch > s->batch_max)
        return dist_error(DIST_ERR_ARG,
                          "dist_session_run: batches of %d samples, outside [%d, "
                          "%d]",
                          batch, s ? s->P : 0, s ? s->batch_max : 0);
    run_t x = {.s = s, .drv = drv, .sc = sc, .r = out};
    dist_status_t st = run_begin(&x, src, opts);
    double t0 = harness_now();
    int ended = 0;
    for (int64_t k = 0; st == DIST_OK && !ended; k++) {
        if (opts->max_batches >= 0 && k >= opts->max_batches)
            break;
        st = step(&x, src, batch, k, &ended);
        if (st == DIST_OK && opts->progress)
            opts->progress(opts->progress_arg, out->batches, out->samples, harness_now() - t0);
    }
    return run_end(&x, t0, st);
}

void dist_run_free(dist_run_t *r)
{
    free(r->done);
    free(r->begun);
    free(r->batch_n);
    free(r->lat);
    free(r->work);
    free(r->lag);
    free(r->pred);
    free(r->labels);
    memset(r, 0, sizeof(*r));
}
