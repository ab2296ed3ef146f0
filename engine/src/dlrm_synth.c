/*
 * Seeded synthetic samples.  Every value is a function of (seed, global sample number, table)
 * only, so any process can produce any slice of the same stream: exactly the columns of its own
 * tables, or the dense rows of its own samples.  Indices per table are uniform, or a bounded
 * power law (Zipf-like, exponent alpha > 0) drawn by inversion of the continuous CDF; bags hold
 * a fixed number of indices, or a uniform 1..pooling.  Dense values look like the reference's
 * log(1 + count) transform; labels are Bernoulli(0.25), independent of the features.
 */
#include "dlrm_internal.h"

#include <math.h>
#include <string.h>

static double u01(uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t h = dlrm_mix64(dlrm_mix64(dlrm_mix64(seed ^ 0x5bd1e995u) + a) ^ (b * 0x9e3779b97f4a7c15ULL + c));
    return ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

int64_t dlrm_synth_index(const dlrm_synth_t *s, int64_t rows, int64_t sample, int t, int k)
{
    double u = u01(s->seed, (uint64_t)sample, (uint64_t)t + 1000, (uint64_t)k);
    if (s->zipf_alpha <= 0)
        return (int64_t)(u * (double)rows) % rows;
    /* Inverse CDF of density ~ x^-alpha on [1, rows + 1): rank 0 is the hottest row. */
    double a = s->zipf_alpha, n1 = (double)rows + 1.0, x;
    if (fabs(a - 1.0) < 1e-9)
        x = exp(u * log(n1));
    else
        x = pow(1.0 + u * (pow(n1, 1.0 - a) - 1.0), 1.0 / (1.0 - a));
    int64_t r = (int64_t)x - 1;
    return r < 0 ? 0 : (r >= rows ? rows - 1 : r);
}

int dlrm_synth_bag(const dlrm_synth_t *s, int64_t sample, int t)
{
    if (!s->random_pooling || s->pooling <= 1)
        return s->pooling < 0 ? 0 : s->pooling;
    return 1 + (int)(u01(s->seed, (uint64_t)sample, (uint64_t)t + 5000, 0) * s->pooling) % s->pooling;
}

void dlrm_synth_dense(const dlrm_synth_t *s, int64_t sample, int m_den, float *out)
{
    for (int j = 0; j < m_den; j++) {
        double u = u01(s->seed, (uint64_t)sample, 77, (uint64_t)j);
        out[j] = logf(1.0f + (float)floor(-20.0 * log(u))); /* a count, then log(1 + x) */
    }
}

float dlrm_synth_label(const dlrm_synth_t *s, int64_t sample)
{
    return u01(s->seed, (uint64_t)sample, 99, 0) < 0.25 ? 1.0f : 0.0f;
}
