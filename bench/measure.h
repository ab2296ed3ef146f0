/* Measurement helpers shared by the benchmarks and bls-dlrm: a clock, percentiles, peak
 * memory, and the engine benchmarks' seeded numbers and table lists. */
#ifndef BLS_MEASURE_H
#define BLS_MEASURE_H

#include <stddef.h>
#include <stdint.h>

double bench_now(void);                  /* CLOCK_MONOTONIC, seconds */
void bench_sort(double *x, size_t n);    /* ascending */
/* The q-quantile (0 <= q <= 1) of n ascending values, nearest rank; 0 when n == 0. */
double bench_percentile(const double *sorted, size_t n, double q);
long bench_peak_rss_kib(void);           /* this process's peak resident set so far */
uint64_t bench_xorshift(uint64_t *s);    /* the next of a xorshift64 sequence (s != 0) */
/* "R-R-...-R", n times: the --arch-embedding-size of n tables of R rows; malloc'd, NULL when
 * out of memory. */
char *bench_table_sizes(long n, long rows);

#endif
