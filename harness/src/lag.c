/*
 * Adaptive lag (harness.h): the smallest run-ahead whose ideal time on the recent window is
 * within a tolerance of the largest's.
 *
 * The window is a ring of the last `window` batches: work [slot][P], the exchange's observed
 * time and the arrival.  A choice copies the window out in order as the ideal model's [P][K]
 * trace, takes c as the smallest observed exchange time in it (an exchange is seen complete
 * only when the process looks, so each observation is its cost or more), evaluates MAX, and
 * bisects 0..MAX on the model's monotone answer (a larger bound never delays any send).
 */
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct harness_lag_policy {
    int P, max_lag, window;
    double tolerance, bound;
    int64_t seen;    /* batches observed */
    double *work;    /* ring [window][P] */
    double *comm;    /* ring [window] */
    double *arrival; /* ring [window] */
    double *trace;   /* [P][window] for the model */
    double *arr;     /* [window] in order */
    double *done;    /* [window] */
    double *scratch; /* P + window */
    double c;        /* the exchange cost of the last choice */
    int last;        /* the last choice */
    int64_t calls;   /* choices made */
    int64_t lowered; /* the call that last lowered it */
    int decided;     /* the model has chosen once */
};

harness_lag_policy_t *harness_lag_policy_new(int P, int max_lag, int window, double tolerance)
{
    if (P < 1 || max_lag < 0 || max_lag > BLS_MAX_LAG || window < 4 || window > 1 << 20 ||
        !(tolerance >= 0 && tolerance < 1))
        return NULL;
    harness_lag_policy_t *pol = calloc(1, sizeof(*pol));
    if (!pol)
        return NULL;
    size_t W = (size_t)window, Pz = (size_t)P;
    *pol = (harness_lag_policy_t){
        .P = P, .max_lag = max_lag, .window = window, .tolerance = tolerance, .last = max_lag};
    pol->work = malloc(sizeof(double) * W * Pz);
    pol->comm = malloc(sizeof(double) * W);
    pol->arrival = malloc(sizeof(double) * W);
    pol->trace = malloc(sizeof(double) * W * Pz);
    pol->arr = malloc(sizeof(double) * W);
    pol->done = malloc(sizeof(double) * W);
    pol->scratch = malloc(sizeof(double) * (W + Pz));
    if (!pol->work || !pol->comm || !pol->arrival || !pol->trace || !pol->arr || !pol->done ||
        !pol->scratch) {
        harness_lag_policy_free(pol);
        return NULL;
    }
    return pol;
}

void harness_lag_policy_free(harness_lag_policy_t *pol)
{
    if (!pol)
        return;
    free(pol->work);
    free(pol->comm);
    free(pol->arrival);
    free(pol->trace);
    free(pol->arr);
    free(pol->done);
    free(pol->scratch);
    free(pol);
}

void harness_lag_policy_bound(harness_lag_policy_t *pol, double bound_s)
{
    pol->bound = bound_s > 0 ? bound_s : 0;
}

void harness_lag_observe(harness_lag_policy_t *pol, const double *work, double comm, double arrival)
{
    size_t i = (size_t)(pol->seen % pol->window);
    for (int p = 0; p < pol->P; p++)
        pol->work[i * (size_t)pol->P + (size_t)p] = isfinite(work[p]) && work[p] > 0 ? work[p] : 0;
    pol->comm[i] = isfinite(comm) && comm >= 0 ? comm : NAN;
    pol->arrival[i] = arrival;
    pol->seen++;
}

/* The window's figure for run-ahead l: T_ideal (closed loop) or the worst ideal latency. */
static double figure(harness_lag_policy_t *pol, int K, int open, int l)
{
    if (!open)
        return harness_ideal_time_comm(pol->trace, pol->P, K, l, pol->c, pol->scratch);
    harness_ideal_open_comm(pol->trace, pol->arr, pol->P, K, l, pol->c, pol->done, pol->scratch);
    double worst = 0;
    for (int k = 0; k < K; k++)
        worst = fmax(worst, pol->done[k] - pol->arr[k]);
    return worst;
}

/* The smallest run-ahead from `from` whose figure is within the tolerance of MAX's (and, open,
 * within the bound whenever MAX's is). */
static int smallest(harness_lag_policy_t *pol, int K, int open, int from)
{
    double best = figure(pol, K, open, pol->max_lag);
    double limit = best * (1 + pol->tolerance);
    if (open && pol->bound > 0 && best <= pol->bound && limit > pol->bound)
        limit = pol->bound;           /* MAX keeps the bound: so must the choice */
    int lo = from, hi = pol->max_lag; /* hi passes; find the smallest that does */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (figure(pol, K, open, mid) <= limit)
            hi = mid;
        else
            lo = mid + 1;
    }
    return hi;
}

/* The smallest run-ahead the window's model finds enough: for the closed loop's throughput,
 * and in an open loop also for the window's worst latency. */
static int model_choice(harness_lag_policy_t *pol, int K)
{
    /* The window in order, oldest first: the model's [P][K] trace. */
    int64_t first = pol->seen - K;
    int open = 1;
    pol->c = INFINITY;
    for (int k = 0; k < K; k++) {
        size_t i = (size_t)((first + k) % pol->window);
        for (int p = 0; p < pol->P; p++)
            pol->trace[(size_t)p * (size_t)K + (size_t)k] =
                pol->work[i * (size_t)pol->P + (size_t)p];
        pol->arr[k] = pol->arrival[i];
        open = open && isfinite(pol->arrival[i]);
        if (pol->comm[i] < pol->c) /* NaN (not seen) compares false */
            pol->c = pol->comm[i];
    }
    if (!isfinite(pol->c))
        pol->c = 0;
    if (open) /* the window's own clock: its first arrival at 0 */
        for (int k = K - 1; k >= 0; k--)
            pol->arr[k] -= pol->arr[0];
    int l = smallest(pol, K, 0, 0); /* the capacity: the closed loop's time */
    return open ? smallest(pol, K, 1, l) : l;
}

int harness_lag_choose(harness_lag_policy_t *pol)
{
    int K = pol->seen < pol->window ? (int)pol->seen : pol->window;
    int warm = pol->window / 4 > 4 ? pol->window / 4 : 4;
    pol->calls++;
    if (pol->max_lag == 0 || K < warm)
        return pol->last; /* MAX until the window can tell */
    int want = model_choice(pol, K);
    if (!pol->decided) { /* MAX was a default, not evidence: the first choice is the model's */
        pol->decided = 1;
        pol->last = want;
        pol->lowered = pol->calls;
        return want;
    }
    /* Down a step per HARNESS_LAG_DECAY batches; per window in an open loop, where the figure
     * that counts is a tail (p99: one query in a hundred) that a window rarely holds. */
    int64_t hold =
        isfinite(pol->arrival[(pol->seen - 1) % pol->window]) ? pol->window : HARNESS_LAG_DECAY;
    if (want >= pol->last) { /* up at once */
        pol->last = want;
    } else if (pol->calls - pol->lowered >= hold) {
        pol->last--;
        pol->lowered = pol->calls;
    }
    return pol->last;
}

int64_t harness_lag_observed(const harness_lag_policy_t *pol)
{
    return pol->seen;
}

double harness_lag_comm(const harness_lag_policy_t *pol)
{
    return pol->c;
}
