/*
 * Adaptive lag (harness.h): the ideal model with an exchange cost against traces worked by
 * hand, and the lag policy's decisions on constructed traces of P = 8 processes:
 *   no delays: 0 when the exchange costs nothing, 1 when pipelining hides a real exchange cost;
 *   independent exponential delays: it grows;  a persistent straggler: no growth beyond 1;
 *   delays that stop half-way: it grows, then comes back down;
 *   an open loop: sparse arrivals without delays need no run-ahead; the latency bound is kept
 *   whenever the largest run-ahead keeps it (checked by re-running the model on the same
 *   window here).
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../engine/check.h"

enum { P = 8, W = 64, MAX = 8 };

static uint64_t rng = 12345;

static double uniform(void) /* (0, 1) */
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}

static double expo(double mean)
{
    return -mean * log(uniform());
}

static void check_ideal_comm(void)
{
    double sc[64];
    /* p0 = 1 3 1, p1 = 2 1 2, c = 0.5.  L=0: done 2.5, then both start at 2.5: sends (5.5,
     * 3.5) done 6; start 6: sends (7, 8) done 8.5 (the sum of maxima plus 3 c).
     * L=1: sends (1,2) done 2.5; (4,3) done 4.5; k2 starts at max(send, done0 = 2.5) = (4,3):
     * sends (5,5) done 5.5 (the max of sums plus one c). */
    const double a[] = {1, 3, 1, 2, 1, 2};
    CHECK(harness_ideal_time_comm(a, 2, 3, 0, 0.5, sc) == 8.5, "L=0 with c: %g",
          harness_ideal_time_comm(a, 2, 3, 0, 0.5, sc));
    CHECK(harness_ideal_time_comm(a, 2, 3, 1, 0.5, sc) == 5.5, "L=1 with c: %g",
          harness_ideal_time_comm(a, 2, 3, 1, 0.5, sc));
    CHECK(harness_ideal_time_comm(a, 2, 3, 1, 0, sc) == harness_ideal_time(a, 2, 3, 1, sc),
          "c = 0 is the plain model");
    double w[4 * 30], at0[30] = {0}, done[30];
    for (int i = 0; i < 4 * 30; i++)
        w[i] = uniform();
    for (int lag = 0; lag <= 4; lag++)
        CHECK(harness_ideal_open_comm(w, at0, 4, 30, lag, 0.25, done, sc) ==
                  harness_ideal_time_comm(w, 4, 30, lag, 0.25, sc),
              "lag %d: the open model with c at arrival 0 differs from the closed one", lag);
}

/* Feeds n batches of work from gen(p, k) with exchange cost comm, a choice per batch; returns
 * the last choice, and in *lo, *hi the range of the last 100. */
static int feed(harness_lag_policy_t *pol, int64_t from, int n, double (*gen)(int, int64_t),
                double comm, int *lo, int *hi)
{
    double w[P];
    int l = -1;
    *lo = MAX + 1;
    *hi = -1;
    for (int64_t k = from; k < from + n; k++) {
        for (int p = 0; p < P; p++)
            w[p] = gen(p, k);
        /* an exchange is seen complete when the process looks: its cost or later */
        harness_lag_observe(pol, w, comm + (uniform() < 0.5 ? 0 : expo(comm + 1e-4)), NAN);
        l = harness_lag_choose(pol);
        if (k >= from + n - 100) { /* the steady state: the last 100 choices */
            *lo = l < *lo ? l : *lo;
            *hi = l > *hi ? l : *hi;
        }
    }
    return l;
}

static double flat(int p, int64_t k)
{
    (void)p;
    (void)k;
    return 1e-3 * (1 + 0.002 * uniform()); /* 1 ms, jitter of 0.2% */
}

static double exp_delays(int p, int64_t k)
{
    (void)p;
    (void)k;
    return 1e-3 + expo(1e-3);
}

static double straggler(int p, int64_t k)
{
    (void)k;
    return 1e-3 * (1 + 0.1 * uniform()) + (p == 3 ? 1e-3 : 0);
}

static void check_closed_loop(void)
{
    int lo, hi;
    harness_lag_policy_t *pol = harness_lag_policy_new(P, MAX, W, 0.02);
    CHECK(pol != NULL, "a policy");
    if (!pol)
        return;
    CHECK(harness_lag_choose(pol) == MAX, "no observations yet: MAX");
    feed(pol, 0, 300, flat, 0, &lo, &hi);
    CHECK(lo == 0 && hi == 0, "no delays, a free exchange: 0 (chose %d .. %d)", lo, hi);
    harness_lag_policy_free(pol);

    pol = harness_lag_policy_new(P, MAX, W, 0.02);
    feed(pol, 0, 300, flat, 0.2e-3, &lo, &hi);
    CHECK(lo == 1 && hi == 1, "no delays, an exchange of 20%% of the work: 1 (chose %d .. %d)", lo,
          hi);
    CHECK(fabs(harness_lag_comm(pol) - 0.2e-3) < 1e-12, "c is the smallest sighting: %g",
          harness_lag_comm(pol));
    harness_lag_policy_free(pol);

    pol = harness_lag_policy_new(P, MAX, W, 0.02);
    feed(pol, 0, 400, exp_delays, 0.1e-3, &lo, &hi);
    CHECK(lo >= 2 && hi <= MAX, "exponential delays (mean = work, P = 8): grows (chose %d .. %d)",
          lo, hi);
    harness_lag_policy_free(pol);

    pol = harness_lag_policy_new(P, MAX, W, 0.02);
    feed(pol, 0, 400, straggler, 0.1e-3, &lo, &hi);
    CHECK(lo >= 0 && hi <= 1,
          "a persistent straggler: no run-ahead beyond hiding the exchange (chose %d .. %d)", lo,
          hi);
    harness_lag_policy_free(pol);

    /* Delays that stop half-way: up while they last, down once the window has forgotten them. */
    pol = harness_lag_policy_new(P, MAX, W, 0.02);
    int during = feed(pol, 0, 200, exp_delays, 0, &lo, &hi);
    CHECK(during >= 3, "delays in the first half: %d", during);
    feed(pol, 200, 200, flat, 0, &lo, &hi);
    CHECK(hi == 0, "after the delays stopped: 0 (chose %d .. %d)", lo, hi);
    harness_lag_policy_free(pol);

    /* Down one step per HARNESS_LAG_DECAY choices, up at once. */
    pol = harness_lag_policy_new(P, MAX, W, 0.02);
    feed(pol, 0, 300, flat, 0, &lo, &hi);
    int prev = harness_lag_choose(pol), top = 0;
    for (int64_t k = 300; k < 300 + W; k++) {
        double w[P];
        for (int p = 0; p < P; p++)
            w[p] = 1e-3 + (p == (int)(k % P) ? 20e-3 : 0); /* a big delay, on turns */
        harness_lag_observe(pol, w, 0, NAN);
        int l = harness_lag_choose(pol);
        top = l > top ? l : top;
        prev = l;
    }
    CHECK(top >= 6 && prev >= top - 1, "big delays on turns: up to %d, now %d", top, prev);
    int down = 0;
    for (int64_t k = 0; k < 3 * W; k++) {
        double w[P];
        for (int p = 0; p < P; p++)
            w[p] = 1e-3;
        harness_lag_observe(pol, w, 0, NAN);
        int l = harness_lag_choose(pol);
        CHECK(l >= prev - 1, "down by more than a step: %d after %d", l, prev);
        down += l < prev;
        prev = l;
    }
    CHECK(prev == 0 && down > 0, "back to 0 once the window forgot the delays (%d)", prev);
    harness_lag_policy_free(pol);

    pol = harness_lag_policy_new(P, 0, W, 0.02);
    feed(pol, 0, 100, exp_delays, 0, &lo, &hi);
    CHECK(lo == 0 && hi == 0, "MAX = 0: always 0");
    harness_lag_policy_free(pol);
}

static void check_open_loop(void)
{
    /* Sparse arrivals (10 ms apart, work 1 ms, no delays): nothing queues, and the capacity
     * needs no run-ahead either. */
    harness_lag_policy_t *pol = harness_lag_policy_new(P, MAX, W, 0.02);
    double w[P];
    for (int k = 0; k < 16 + (MAX + 1) * W; k++) { /* from MAX down, a step per window */
        for (int p = 0; p < P; p++)
            w[p] = flat(p, k);
        harness_lag_observe(pol, w, 0, 1.0 + 0.01 * k);
        harness_lag_choose(pol);
    }
    CHECK(harness_lag_choose(pol) == 0, "sparse arrivals: 0, chose %d", harness_lag_choose(pol));
    harness_lag_policy_free(pol);

    /* Dense arrivals with delays: whatever it chooses keeps the bound that MAX keeps.  The
     * window is kept here too and the model re-run on it. */
    for (int trial = 0; trial < 20; trial++) {
        double bound = 4e-3 + 1e-3 * trial, trace[P * W], at[W], done[W], sc[P + W];
        pol = harness_lag_policy_new(P, MAX, W, 0.05);
        harness_lag_policy_bound(pol, bound);
        double t = 0;
        for (int k = 0; k < W; k++) {
            t += expo(1.6e-3);
            for (int p = 0; p < P; p++)
                trace[p * W + k] = w[p] = 0.5e-3 + expo(0.5e-3);
            at[k] = t;
            harness_lag_observe(pol, w, 0, t);
        }
        int l = harness_lag_choose(pol);
        for (int k = W - 1; k >= 0; k--)
            at[k] -= at[0];
        double worst[2] = {0, 0};
        for (int j = 0; j < 2; j++) {
            harness_ideal_open_comm(trace, at, P, W, j ? MAX : l, 0, done, sc);
            for (int k = 0; k < W; k++)
                worst[j] = fmax(worst[j], done[k] - at[k]);
        }
        CHECK(worst[0] <= worst[1] * 1.05 + 1e-15, "trial %d: lag %d's worst %g vs MAX's %g", trial,
              l, worst[0], worst[1]);
        CHECK(worst[1] > bound || worst[0] <= bound, "trial %d: lag %d breaks the bound %g (%g)",
              trial, l, bound, worst[0]);
        harness_lag_policy_free(pol);
    }
}

static void check_arguments(void)
{
    CHECK(harness_lag_policy_new(0, 4, 64, 0.02) == NULL, "P = 0 refused");
    CHECK(harness_lag_policy_new(4, -1, 64, 0.02) == NULL, "a negative MAX refused");
    CHECK(harness_lag_policy_new(4, BLS_MAX_LAG + 1, 64, 0.02) == NULL, "MAX too large refused");
    CHECK(harness_lag_policy_new(4, 4, 3, 0.02) == NULL, "a window of 3 refused");
    CHECK(harness_lag_policy_new(4, 4, 64, 1.0) == NULL, "a tolerance of 1 refused");
    CHECK(harness_lag_policy_new(4, 4, 64, NAN) == NULL, "a NaN tolerance refused");
}

int main(void)
{
    check_ideal_comm();
    check_closed_loop();
    check_open_loop();
    check_arguments();
    printf("test_lag: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
