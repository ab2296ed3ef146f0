/* Injected delays shared by bls-bench and bls-dlrm (see scenario.h). */
#define _GNU_SOURCE
#include "scenario.h"
#include "measure.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Uniform in (0, 1), a function of (seed, process, iteration, stream) only. */
static double uniform(const bls_delay_t *d, int p, long k, int stream)
{
    uint64_t h = mix(mix(mix(d->seed) ^ (uint64_t)p * 7919u) ^ ((uint64_t)k * 31u + (uint64_t)stream));
    return ((double)(h >> 11) + 0.5) / 9007199254740992.0;
}

double bls_delay_us(const bls_delay_t *d, int p, long k)
{
    switch (d->kind) {
    case BLS_DELAY_EXP: return -d->a * log(uniform(d, p, k, 1));
    case BLS_DELAY_HICCUP: return uniform(d, p, k, 2) < d->a ? d->b : 0.0;
    case BLS_DELAY_STRAGGLER: return p == (int)d->a ? d->b : 0.0;
    default: return 0.0;
    }
}

int bls_delay_parse(const char *v, bls_delay_t *d, char *err, size_t errlen)
{
    double a = 0, b = 0;
    char tail;
    if (!strcmp(v, "none")) {
        d->kind = BLS_DELAY_NONE;
    } else if (sscanf(v, "exp:%lf%c", &a, &tail) == 1 && a >= 0) {
        d->kind = BLS_DELAY_EXP;
    } else if (sscanf(v, "hiccup:%lf:%lf%c", &a, &b, &tail) == 2 && a >= 0 && a <= 1 && b >= 0) {
        d->kind = BLS_DELAY_HICCUP;
    } else if (sscanf(v, "straggler:%lf:%lf%c", &a, &b, &tail) == 2 && a >= 0 && b >= 0 &&
               a == floor(a)) {
        d->kind = BLS_DELAY_STRAGGLER;
    } else {
        snprintf(err, errlen, "a delay is none, exp:MEAN_US, hiccup:PROB:US (0 <= PROB <= 1) or "
                 "straggler:RANK:US; got '%s'", v);
        return -1;
    }
    d->a = a;
    d->b = b;
    return 0;
}

void bls_delay_format(const bls_delay_t *d, char *buf, size_t len)
{
    switch (d->kind) {
    case BLS_DELAY_EXP: snprintf(buf, len, "exp:%g", d->a); break;
    case BLS_DELAY_HICCUP: snprintf(buf, len, "hiccup:%g:%g", d->a, d->b); break;
    case BLS_DELAY_STRAGGLER: snprintf(buf, len, "straggler:%g:%g", d->a, d->b); break;
    default: snprintf(buf, len, "none");
    }
}

void bls_spend_us(double us, int busy)
{
    if (us <= 0)
        return;
    if (busy) {
        double end = bench_now() + us * 1e-6;
        while (bench_now() < end) {
        }
        return;
    }
    struct timespec ts = {(time_t)(us / 1e6), (long)(fmod(us, 1e6) * 1e3)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}
