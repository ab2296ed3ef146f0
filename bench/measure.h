/* Measurement helpers shared by bls-bench and bls-dlrm: a clock, percentiles, peak memory. */
#ifndef BLS_MEASURE_H
#define BLS_MEASURE_H

#include <stddef.h>

double bench_now(void);                  /* CLOCK_MONOTONIC, seconds */
void bench_sort(double *x, size_t n);    /* ascending */
/* The q-quantile (0 <= q <= 1) of n ascending values, nearest rank; 0 when n == 0. */
double bench_percentile(const double *sorted, size_t n, double q);
long bench_peak_rss_kib(void);           /* this process's peak resident set so far */

#endif
