/*
 * Adaptive lag in a run (dlrm_dist.h, bls:auto[:MAX]): each process decides before each batch
 * how far it runs ahead, at most MAX (the communicator's bound and the slots are MAX's), with
 * harness.h's lag policy.
 *
 * What the policy needs, every process's work per batch and when each posted, rides in the
 * exchange itself: each block of batch k a process sends ends with DIST_AUTO_TRAILER floats,
 * its work on batch k-1 and the moment it posts batch k on process 0's clock (the session's
 * offset; a double split into two floats, hi + lo).  So consuming batch k here gives every
 * process's work on batch k-1, and with batch k-1's own posts and the moment it was seen
 * complete here, the exchange's time for batch k-1 (seen minus the last post): the policy
 * learns batch k-1 with no message, no MPI call and no waiting of its own.  The price is a copy
 * of the send buffer per batch into a staging buffer with the trailers (the receive side skips
 * them while unpacking, dist_unpack_gap), and 12 bytes per block.
 *
 * An earlier version sent the figures on a second libbls communicator without a progress
 * thread, a message per peer every 4 batches: its MPI calls from the main thread cost 0.3-0.6
 * ms per batch with 4 processes on 2 cores (MPI's progress lock, shared with the progress
 * threads), 10-20% of a 1.6 ms batch.
 */
#include "dist_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct autolag {
    harness_lag_policy_t *pol;
    int P;
    double *work;     /* [P] the peers' work on the previous batch, from the current one */
    double last_post; /* the previous batch's last post, process 0's clock */
    double seen;      /* when the previous batch was seen complete here, likewise */
};

void autolag_free(run_t *x)
{
    if (!x->al)
        return;
    harness_lag_policy_free(x->al->pol);
    free(x->al->work);
    free(x->al);
    x->al = NULL;
}

dist_status_t autolag_begin(run_t *x)
{
    if (!x->drv->auto_lag)
        return DIST_OK;
    autolag_t *a = calloc(1, sizeof(*a));
    if (!a)
        return dist_error(DIST_ERR_NOMEM, "adaptive lag: out of memory");
    x->al = a;
    a->P = x->s->P;
    a->work = calloc((size_t)a->P, sizeof(double));
    a->pol = harness_lag_policy_new(a->P, x->drv->lag, DIST_AUTO_WINDOW, DIST_AUTO_TOLERANCE);
    if (!a->work || !a->pol)
        return dist_error(DIST_ERR_NOMEM, "adaptive lag: out of memory for %d processes", a->P);
    if (x->serving && x->opts)
        harness_lag_policy_bound(a->pol, x->opts->latency_bound);
    return DIST_OK;
}

int autolag_choose(run_t *x)
{
    return x->al ? harness_lag_choose(x->al->pol) : x->drv->lag;
}

/* Process 0's clock now. */
static double global_now(const run_t *x)
{
    return harness_now() - x->s->clock.offset;
}

void autolag_stamp(run_t *x, int64_t k, float *trailer)
{
    double now = global_now(x);
    float hi = (float)now;
    trailer[0] = k > 0 ? (float)x->r->work[k - 1] : 0.0f;
    trailer[1] = hi;
    trailer[2] = (float)(now - (double)hi);
}

void autolag_learn(run_t *x, int64_t k, const float *recv, const size_t *counts,
                   const size_t *displs)
{
    autolag_t *a = x->al;
    double last = -INFINITY, seen = global_now(x);
    for (int p = 0; p < a->P; p++) {
        const float *t = recv + displs[p] + counts[p] - DIST_AUTO_TRAILER;
        a->work[p] = t[0];
        last = fmax(last, (double)t[1] + (double)t[2]);
    }
    if (k > 0) /* batch k-1: everyone's work came now, its posts and completion before */
        harness_lag_observe(a->pol, a->work, a->seen - a->last_post,
                            x->arrivals ? x->arrivals[k - 1] : NAN);
    a->last_post = last;
    a->seen = seen;
}
