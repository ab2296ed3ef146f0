/*
 * The ideal model against traces computed by hand (the recurrence written out step by step in
 * the comments), plus its two closed forms: L = 0 is the sum of per-iteration maxima and a lag
 * of at least K-1 is the maximum of per-process sums.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int passed, failed;

static void expect(const char *what, double got, double want)
{
    if (fabs(got - want) < 1e-12) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAIL %s: got %.9g, want %.9g\n", what, got, want);
    }
}

int main(void)
{
    double scratch[64];
    /* P=2, K=3: p0 = 1 3 1, p1 = 2 1 2.
     * L=0: done = 2, 5, 7 -> 7 (= 2+3+2).  L=1: sends (1,2) (4,3) (5,5) -> 5 (= max(5,5)). */
    const double a[] = {1, 3, 1, 2, 1, 2};
    expect("trace a, L=0", harness_ideal_time(a, 2, 3, 0, scratch), 7);
    expect("trace a, L=1", harness_ideal_time(a, 2, 3, 1, scratch), 5);
    /* P=2, K=4: p0 = 4 1 1 1, p1 = 1 1 1 4: the bound bites.
     * L=1: k0 send (4,1) done 4; k1 send (5,2) done 5, p1 starts k2 at done0 = 4;
     *      k2 send (6,5) done 6, p1 starts k3 at done1 = 5; k3 send (7,9) -> 9.
     * L=2: k2: p1 starts at done0 = 4, send (6,5); k3: p1 starts at done1 = 5... -> 8.
     * L=3: -> 7 = max of sums. */
    const double b[] = {4, 1, 1, 1, 1, 1, 1, 4};
    expect("trace b, L=0", harness_ideal_time(b, 2, 4, 0, scratch), 10);
    expect("trace b, L=1", harness_ideal_time(b, 2, 4, 1, scratch), 9);
    expect("trace b, L=2", harness_ideal_time(b, 2, 4, 2, scratch), 8);
    expect("trace b, L=3", harness_ideal_time(b, 2, 4, 3, scratch), 7);
    expect("trace b, L=100", harness_ideal_time(b, 2, 4, 100, scratch), 7);
    /* Random traces: the closed forms, and monotone in L. */
    srand(5);
    for (int t = 0; t < 50; t++) {
        int P = 1 + rand() % 6, K = 1 + rand() % 40;
        double w[6 * 40], sum_max = 0, max_sum = 0;
        for (int i = 0; i < P * K; i++)
            w[i] = (double)(rand() % 1000) / 1000.0;
        for (int k = 0; k < K; k++) {
            double m = 0;
            for (int p = 0; p < P; p++)
                m = fmax(m, w[p * K + k]);
            sum_max += m;
        }
        for (int p = 0; p < P; p++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += w[p * K + k];
            max_sum = fmax(max_sum, s);
        }
        expect("random, L=0 is the sum of maxima", harness_ideal_time(w, P, K, 0, scratch), sum_max);
        expect("random, L=K is the max of sums", harness_ideal_time(w, P, K, K, scratch), max_sum);
        double prev = INFINITY;
        for (int L = 0; L <= K; L++) {
            double x = harness_ideal_time(w, P, K, L, scratch);
            if (x > prev + 1e-12) {
                failed++;
                fprintf(stderr, "FAIL random trace %d: T(%d) = %g > T(%d) = %g\n", t, L, x, L - 1,
                        prev);
            } else {
                passed++;
            }
            prev = x;
        }
    }
    printf("test_ideal: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
