/* Injected delays (harness.h): the same trace for every driver of a run. */
#define _GNU_SOURCE
#include "harness.h"
#include "splitmix64.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Uniform in (0, 1), a function of (seed, process, iteration, stream) only. */
static double uniform(const harness_delay_t *d, int p, long k, int stream)
{
    uint64_t h = splitmix64_mix(splitmix64_mix(splitmix64_mix(d->seed) ^ (uint64_t)p * 7919u) ^
                                ((uint64_t)k * 31u + (uint64_t)stream));
    return splitmix64_unit(h);
}

double harness_delay_us(const harness_delay_t *d, int p, long k)
{
    if (d->until > 0 && k >= d->until) { /* the second phase: its spec, the same seed */
        harness_delay_t then = {.kind = d->then_kind,
                                .a = d->then_a,
                                .b = d->then_b,
                                .at = d->then_at,
                                .seed = d->seed};
        return harness_delay_us(&then, p, k);
    }
    switch (d->kind) {
    case HARNESS_DELAY_EXP: return -d->a * log(uniform(d, p, k, 1));
    case HARNESS_DELAY_HICCUP: return uniform(d, p, k, 2) < d->a ? d->b : 0.0;
    case HARNESS_DELAY_STRAGGLER: return p == (int)d->a ? d->b : 0.0;
    case HARNESS_DELAY_SPIKE: return p == (int)d->a && k == d->at ? d->b : 0.0;
    case HARNESS_DELAY_LOGNORMAL: { /* median a, log-space deviation b (Box-Muller) */
        double z =
            sqrt(-2.0 * log(uniform(d, p, k, 3))) * cos(6.283185307179586 * uniform(d, p, k, 4));
        return d->a * exp(d->b * z);
    }
    /* One draw per iteration, whatever the process: everyone is late together. */
    case HARNESS_DELAY_COSCHED: return uniform(d, 0, k, 5) < d->a ? d->b : 0.0;
    default: return 0.0;
    }
}

/* Delays are at most an hour and ranks and iterations whole numbers below 2^31: every value
 * converts to its integer type without overflow, and NaN fails every comparison. */
#define DELAY_MAX_US 3.6e9
#define DELAY_MAX_INDEX 2147483647.0

static int us_ok(double x)
{
    return x >= 0 && x <= DELAY_MAX_US;
}

static int index_ok(double x)
{
    return x >= 0 && x <= DELAY_MAX_INDEX && x == floor(x);
}

/* One phase's spec into *d (kind, a, b, at); -1 when it is not one. */
static int parse_phase(const char *v, harness_delay_t *d)
{
    double a = 0, b = 0, at = 0;
    char tail;
    if (!strcmp(v, "none")) {
        d->kind = HARNESS_DELAY_NONE;
    } else if (sscanf(v, "exp:%lf%c", &a, &tail) == 1 && us_ok(a)) {
        d->kind = HARNESS_DELAY_EXP;
    } else if (sscanf(v, "hiccup:%lf:%lf%c", &a, &b, &tail) == 2 && a >= 0 && a <= 1 && us_ok(b)) {
        d->kind = HARNESS_DELAY_HICCUP;
    } else if (sscanf(v, "lognormal:%lf:%lf%c", &a, &b, &tail) == 2 && us_ok(a) && b >= 0 &&
               b <= 4) {
        d->kind = HARNESS_DELAY_LOGNORMAL;
    } else if (sscanf(v, "cosched:%lf:%lf%c", &a, &b, &tail) == 2 && a >= 0 && a <= 1 && us_ok(b)) {
        d->kind = HARNESS_DELAY_COSCHED;
    } else if (sscanf(v, "straggler:%lf:%lf%c", &a, &b, &tail) == 2 && index_ok(a) && us_ok(b)) {
        d->kind = HARNESS_DELAY_STRAGGLER;
    } else if (sscanf(v, "spike:%lf:%lf:%lf%c", &a, &at, &b, &tail) == 3 && index_ok(a) &&
               index_ok(at) && us_ok(b)) {
        d->kind = HARNESS_DELAY_SPIKE;
        d->at = (long)at;
    } else {
        return -1;
    }
    d->a = a;
    d->b = b;
    return 0;
}

int harness_delay_parse(const char *v, harness_delay_t *d, char *err, size_t errlen)
{
    harness_delay_t first = {.seed = d->seed}, then = {0};
    char a[128] = "", b[128] = "";
    double until = 0;
    int n = -1, ok;
    const char *slash = strchr(v, '/');
    if (slash) { /* A/ITER/B: two phases */
        ok = sscanf(v, "%127[^/]/%lf/%127[^/]%n", a, &until, b, &n) == 3 && n > 0 && v[n] == '\0' &&
             index_ok(until) && until >= 1 && parse_phase(a, &first) == 0 &&
             parse_phase(b, &then) == 0;
    } else {
        ok = parse_phase(v, &first) == 0;
    }
    if (!ok) {
        snprintf(err, errlen,
                 "a delay is none, exp:MEAN_US, hiccup:PROB:US, cosched:PROB:US "
                 "(0 <= PROB <= 1), lognormal:MEDIAN_US:SIGMA (0 <= SIGMA <= 4), "
                 "straggler:RANK:US or spike:RANK:ITER:US (US at most 3.6e9, an hour), or two "
                 "of them as A/ITER/B (A before iteration ITER >= 1, B from it on); got '%s'",
                 v);
        return -1;
    }
    if (slash) {
        first.until = (long)until;
        first.then_kind = then.kind;
        first.then_a = then.a;
        first.then_b = then.b;
        first.then_at = then.at;
    }
    *d = first;
    return 0;
}

static void format_phase(int kind, double a, double b, long at, char *buf, size_t len)
{
    switch (kind) {
    case HARNESS_DELAY_EXP: snprintf(buf, len, "exp:%g", a); break;
    case HARNESS_DELAY_HICCUP: snprintf(buf, len, "hiccup:%g:%g", a, b); break;
    case HARNESS_DELAY_LOGNORMAL: snprintf(buf, len, "lognormal:%g:%g", a, b); break;
    case HARNESS_DELAY_COSCHED: snprintf(buf, len, "cosched:%g:%g", a, b); break;
    case HARNESS_DELAY_STRAGGLER: snprintf(buf, len, "straggler:%g:%g", a, b); break;
    case HARNESS_DELAY_SPIKE: snprintf(buf, len, "spike:%g:%ld:%g", a, at, b); break;
    default: snprintf(buf, len, "none");
    }
}

void harness_delay_format(const harness_delay_t *d, char *buf, size_t len)
{
    format_phase(d->kind, d->a, d->b, d->at, buf, len);
    if (d->until > 0) {
        char then[64];
        format_phase(d->then_kind, d->then_a, d->then_b, d->then_at, then, sizeof(then));
        size_t used = strlen(buf);
        if (used < len)
            snprintf(buf + used, len - used, "/%ld/%s", d->until, then);
    }
}

void harness_spend_us(double us, int busy)
{
    if (us <= 0)
        return;
    if (busy) {
        double end = harness_now() + us * 1e-6;
        while (harness_now() < end) {
        }
        return;
    }
    struct timespec ts = {(time_t)(us / 1e6), (long)(fmod(us, 1e6) * 1e3)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}
