/*
 * The ideal model of bounded-lag execution (bls-semantics): given each process's measured work
 * w[p][k] outside the collective and zero communication cost,
 *   send(p,k)    = start(p,k) + w(p,k)
 *   done(k)      = max_p send(p,k)
 *   start(p,k+1) = max(send(p,k), done(k-L))      (done(j) = 0 for j < 0)
 *   T_ideal(L)   = done(K-1)
 * T_ideal(0) is the synchronous sum of maxima; a large L approaches the max of sums.
 */
#ifndef BLS_IDEAL_H
#define BLS_IDEAL_H

#include <stddef.h>

/* work is row-major [P][K] seconds.  scratch must hold P + K doubles.  Returns T_ideal(lag). */
double bls_ideal_time(const double *work, int P, int K, int lag, double *scratch);

#endif
