/* Serving schedules and query sizes (harness.h). */
#define _GNU_SOURCE
#include "harness.h"
#include "splitmix64.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Streams of the schedule's counters: arrivals, sizes (two for a normal deviate). */
enum { STREAM_GAP = 1, STREAM_SIZE = 2, STREAM_SIZE2 = 3 };

/* Uniform in (0, 1), a function of (seed, stream, k) only.  torch_bls/dlrm_serving.py's unit()
 * is the same. */
static double unit(uint64_t seed, uint64_t stream, int64_t k)
{
    uint64_t h = splitmix64_mix(splitmix64_mix(seed ^ splitmix64_mix(stream)) + (uint64_t)k);
    return splitmix64_unit(h);
}

int harness_size_parse(const char *v, harness_size_t *s, char *err, size_t errlen)
{
    double a = 0, b = 0;
    char tail;
    /* Sizes convert to int: at most 2^30 (queries are clamped to the batch size anyway). */
    const double most = 1073741824.0;
    if (sscanf(v, "fixed:%lf%c", &a, &tail) == 1 && a >= 1 && a <= most && a == floor(a)) {
        *s = (harness_size_t){HARNESS_SIZE_FIXED, a, 0};
    } else if (sscanf(v, "uniform:%lf:%lf%c", &a, &b, &tail) == 2 && a >= 1 && b >= a &&
               b <= most && a == floor(a) && b == floor(b)) {
        *s = (harness_size_t){HARNESS_SIZE_UNIFORM, a, b};
    } else if (sscanf(v, "lognormal:%lf:%lf%c", &a, &b, &tail) == 2 && a >= 1 && a <= most &&
               b >= 0 && b <= 10) {
        *s = (harness_size_t){HARNESS_SIZE_LOGNORMAL, a, b};
    } else {
        snprintf(err, errlen,
                 "a query size is fixed:N, uniform:A:B (1 <= A <= B <= 2^30, integers) or "
                 "lognormal:MEAN:SIGMA (1 <= MEAN <= 2^30, 0 <= SIGMA <= 10); got '%s'",
                 v);
        return -1;
    }
    return 0;
}

void harness_size_format(const harness_size_t *s, char *buf, size_t len)
{
    if (s->kind == HARNESS_SIZE_UNIFORM)
        snprintf(buf, len, "uniform:%g:%g", s->a, s->b);
    else if (s->kind == HARNESS_SIZE_LOGNORMAL)
        snprintf(buf, len, "lognormal:%g:%g", s->a, s->b);
    else
        snprintf(buf, len, "fixed:%g", s->a);
}

double harness_size_mean(const harness_size_t *s)
{
    return s->kind == HARNESS_SIZE_UNIFORM ? (s->a + s->b) / 2 : s->a;
}

/* Query k's size, before clamping. */
static double draw_size(const harness_size_t *sz, uint64_t seed, int64_t k)
{
    double u = unit(seed, STREAM_SIZE, k);
    switch (sz->kind) {
    case HARNESS_SIZE_UNIFORM: return sz->a + floor(u * (sz->b - sz->a + 1));
    case HARNESS_SIZE_LOGNORMAL: {
        double z = sqrt(-2.0 * log(u)) * cos(6.283185307179586 * unit(seed, STREAM_SIZE2, k));
        double mu = log(sz->a) - 0.5 * sz->b * sz->b; /* E[exp(mu + s z)] = MEAN */
        return floor(exp(mu + sz->b * z) + 0.5);
    }
    default: return sz->a;
    }
}

int harness_schedule_make(uint64_t seed, double qps, int64_t n, const harness_size_t *sizes,
                          int min_size, int max_size, harness_schedule_t *s, char *err,
                          size_t errlen)
{
    memset(s, 0, sizeof(*s));
    if (!(qps > 0) || !isfinite(qps) || n < 1 || min_size < 1 || max_size < min_size) {
        snprintf(err, errlen,
                 "a schedule needs a rate > 0 (got %g), queries >= 1 (got %lld) and "
                 "sizes 1 <= smallest <= largest (got %d, %d)",
                 qps, (long long)n, min_size, max_size);
        return -1;
    }
    s->n = n;
    s->qps = qps;
    s->at = malloc(sizeof(double) * (size_t)n);
    s->size = malloc(sizeof(int) * (size_t)n);
    if (!s->at || !s->size) {
        harness_schedule_free(s);
        snprintf(err, errlen, "out of memory for a schedule of %lld queries", (long long)n);
        return -1;
    }
    double base = 0.0;
    for (int64_t k = 0; k < n; k++) {
        base += -log(unit(seed, STREAM_GAP, k)); /* unit-mean exponential gaps */
        s->at[k] = base / qps;
        double z = draw_size(sizes, seed, k);
        s->size[k] = z < min_size ? min_size : z > max_size ? max_size : (int)z;
    }
    return 0;
}

void harness_schedule_free(harness_schedule_t *s)
{
    free(s->at);
    free(s->size);
    memset(s, 0, sizeof(*s));
}

int harness_schedule_write(const harness_schedule_t *s, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    int ok = f != NULL;
    for (int64_t k = 0; ok && k < s->n; k++)
        ok = fprintf(f, "%lld %.17g %d\n", (long long)k, s->at[k], s->size[k]) > 0;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok)
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return ok ? 0 : -1;
}
