/*
 * Shared by the modes without a progress thread (see bls_polled.h).
 *
 * Bound.  bls_post(k) first completes every iteration <= k-L-1 by testing its requests until
 * they finish or the timeout passes.  Unlike BLS mode this waits on the peers' application:
 * a peer that is computing outside MPI does not progress its side of a rendezvous transfer,
 * which is exactly the weakness these modes exist to show next to BLS mode.
 *
 * Tags.  An iteration's messages carry k mod 4(L+2), as in BLS mode; receives are posted in
 * iteration order and MPI does not let messages of one sender and tag overtake each other.
 */
#include "bls_polled.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const bls_polled_alg_t *alg;
    int per;           /* requests per iteration */
    MPI_Request *reqs; /* [nslots][per] */
    int *ints;         /* [nslots][4P] counts and displacements in flight */
    int64_t *all;      /* [P] bls_finish's gathered counts */
    int tag_cycle;
} polled_t;

static MPI_Request *slot_reqs(const bls_comm_t *c, bls_iter_t k)
{
    const polled_t *s = c->state;
    return s->reqs + (size_t)(k % c->nslots) * (size_t)s->per;
}

bls_status_t bls_polled_start(bls_comm_t *c, const bls_polled_alg_t *alg)
{
    polled_t *s = calloc(1, sizeof(*s));
    c->state = s;
    if (!s)
        return bls_error(BLS_ERR_NOMEM, "bls_comm_create: out of memory");
    size_t S = (size_t)c->nslots, P = (size_t)c->size;
    s->alg = alg;
    s->per = alg->requests(c->size);
    s->reqs = malloc(S * (size_t)s->per * sizeof(MPI_Request));
    s->ints = calloc(S * 4 * P, sizeof(int));
    s->all = malloc(P * sizeof(int64_t));
    if (!s->reqs || !s->ints || !s->all)
        return bls_error(BLS_ERR_NOMEM, "bls_comm_create: out of memory");
    for (size_t i = 0; i < S * (size_t)s->per; i++)
        s->reqs[i] = MPI_REQUEST_NULL;
    int flag = 0, *tag_ub = NULL;
    MPI_Comm_get_attr(c->mpi, MPI_TAG_UB, &tag_ub, &flag);
    s->tag_cycle = 4 * c->nslots;
    if (flag && tag_ub && s->tag_cycle > *tag_ub)
        return bls_error(BLS_ERR_ARG,
                         "bls_comm_create: lag %d needs tags up to %d, but MPI's "
                         "MPI_TAG_UB is %d",
                         c->lag, s->tag_cycle, *tag_ub);
    c->buffer_bytes += S * (size_t)s->per * sizeof(MPI_Request) + S * 4 * P * sizeof(int);
    return BLS_OK;
}

void bls_polled_stop(bls_comm_t *c)
{
    polled_t *s = c->state;
    if (!s)
        return;
    /* Requests still open after errors are released to MPI; their buffers are the caller's. */
    for (size_t i = 0; s->reqs && i < (size_t)c->nslots * (size_t)s->per; i++)
        if (s->reqs[i] != MPI_REQUEST_NULL)
            MPI_Request_free(&s->reqs[i]);
    free(s->reqs);
    free(s->ints);
    free(s->all);
    free(s);
    c->state = NULL;
}

/* Tests iteration rec's open requests once; marks it done when none is left open. */
static bls_status_t test_iteration(bls_comm_t *c, bls_iter_rec_t *rec)
{
    polled_t *s = c->state;
    MPI_Request *reqs = slot_reqs(c, rec->iter);
    int open = 0;
    for (int i = 0; i < s->per; i++) {
        if (reqs[i] == MPI_REQUEST_NULL)
            continue;
        int flag = 0;
        MPI_Status st;
        int mrc = MPI_Test(&reqs[i], &flag, &st);
        if (mrc != MPI_SUCCESS)
            return bls_mpi_error(mrc, "MPI_Test");
        if (flag)
            s->alg->completed(c, rec, i, &st);
        else
            open++;
    }
    if (open == 0 && !rec->done) {
        rec->done = 1;
        if (c->notify)
            c->notify(c->notify_arg, rec->iter);
    }
    return BLS_OK;
}

static bls_status_t timeout_error(bls_comm_t *c, const char *who, const bls_iter_rec_t *rec)
{
    char what[512];
    polled_t *s = c->state;
    s->alg->pending(c, slot_reqs(c, rec->iter), what, sizeof(what));
    return bls_error(BLS_ERR_TIMEOUT,
                     "%s: iteration %lld still waits for %s after %.3g s (rank %d)", who,
                     (long long)rec->iter, what, c->timeout, c->rank);
}

/* Tests iteration rec until it is done, or the deadline (0: none) passes. */
static bls_status_t complete(bls_comm_t *c, bls_iter_rec_t *rec, double deadline, const char *who)
{
    for (;;) {
        bls_status_t st = test_iteration(c, rec);
        if (st != BLS_OK || rec->done)
            return st;
        if (deadline > 0 && bls_now() >= deadline)
            return timeout_error(c, who, rec);
    }
}

bls_status_t bls_polled_post(bls_comm_t *c, const bls_post_args_t *a, bls_iter_t *iter_p)
{
    polled_t *s = c->state;
    bls_iter_t k = c->n_posted;
    double t0 = bls_now(), deadline = bls_deadline(c);
    bls_status_t st = BLS_OK;
    for (bls_iter_t j = k - c->nslots; j <= k - c->lag - 1 && st == BLS_OK; j++) /* the bound */
        if (j >= 0 && c->ring[j % c->nslots].iter == j)
            st = complete(c, &c->ring[j % c->nslots], deadline, "bls_post (lag bound)");
    c->post_wait_seconds += bls_now() - t0;
    bls_iter_rec_t *rec = NULL;
    if (st == BLS_OK)
        st = bls_free_entry(c, k, &rec);
    if (st != BLS_OK)
        return st;
    bls_rec_fill(c, rec, k, a);
    int *ints = s->ints + (size_t)(k % c->nslots) * 4 * (size_t)c->size;
    st = s->alg->issue(c, rec, (int)(k % s->tag_cycle), slot_reqs(c, k), ints);
    if (st != BLS_OK) {
        rec->iter = -1;
        return st;
    }
    c->n_posted = k + 1;
    *iter_p = k;
    return test_iteration(c, rec); /* an iteration with nothing to move completes here */
}

bls_status_t bls_polled_wait(bls_comm_t *c, bls_iter_t iter, int blocking, int *flag_p,
                             size_t *recvcounts_out)
{
    bls_iter_rec_t *rec = &c->ring[iter % c->nslots];
    double t0 = bls_now();
    bls_status_t st =
        blocking ? complete(c, rec, bls_deadline(c), "bls_wait") : test_iteration(c, rec);
    if (blocking)
        c->wait_seconds += bls_now() - t0;
    if (st != BLS_OK || !rec->done)
        return st;
    if (flag_p)
        *flag_p = 1;
    return bls_report(c, rec, recvcounts_out);
}

bls_status_t bls_polled_wait_any(bls_comm_t *c, bls_iter_t *iter_p, size_t *recvcounts_out)
{
    bls_iter_t oldest = bls_oldest_unreported(c);
    if (oldest < 0)
        return bls_error(BLS_ERR_STATE, "bls_wait_any: no posted iteration is unreported");
    double t0 = bls_now(), deadline = bls_deadline(c);
    bls_status_t st = BLS_OK;
    for (;;) {
        for (bls_iter_t k = oldest; k < c->n_posted && st == BLS_OK; k++) {
            bls_iter_rec_t *rec = &c->ring[k % c->nslots];
            if (rec->iter != k)
                continue;
            st = test_iteration(c, rec);
            if (st == BLS_OK && rec->done) {
                c->wait_seconds += bls_now() - t0;
                *iter_p = k;
                return bls_report(c, rec, recvcounts_out);
            }
        }
        if (st == BLS_OK && deadline > 0 && bls_now() >= deadline)
            st = timeout_error(c, "bls_wait_any", &c->ring[oldest % c->nslots]);
        if (st != BLS_OK) {
            c->wait_seconds += bls_now() - t0;
            return st;
        }
    }
}

bls_status_t bls_polled_finish(bls_comm_t *c)
{
    double deadline = bls_deadline(c);
    for (bls_iter_t k = c->n_posted - c->nslots; k < c->n_posted; k++) {
        if (k < 0 || c->ring[k % c->nslots].iter != k)
            continue;
        bls_status_t st = complete(c, &c->ring[k % c->nslots], deadline, "bls_finish");
        if (st != BLS_OK)
            return st;
    }
    return bls_compare_counts(c, ((polled_t *)c->state)->all);
}

void bls_polled_pending(bls_comm_t *c, bls_iter_t iter, char *buf, size_t len)
{
    bls_iter_rec_t *rec = &c->ring[iter % c->nslots];
    if (test_iteration(c, rec) == BLS_OK && rec->done)
        snprintf(buf, len, "nothing");
    else
        ((polled_t *)c->state)->alg->pending(c, slot_reqs(c, iter), buf, len);
}

double bls_polled_cpu(const bls_comm_t *c)
{
    (void)c;
    return 0.0;
}
