/* Clocks, CPU time, percentiles and peak memory (harness.h). */
#define _GNU_SOURCE
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

double harness_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void harness_sort(double *x, size_t n)
{
    if (n > 1)
        qsort(x, n, sizeof(double), cmp_double);
}

double harness_percentile(const double *sorted, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

long harness_peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

double harness_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *harness_table_sizes(long n, long rows)
{
    size_t len = (size_t)n * 24 + 1, used = 0;
    char *s = malloc(len);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (long t = 0; t < n; t++)
        used += (size_t)snprintf(s + used, len - used, "%s%ld", t ? "-" : "", rows);
    return s;
}
