/*
 * Seeded synthetic samples.  Every value is a function of (seed, global sample number, table)
 * only, so any process can produce any slice of the same stream: exactly the columns of its own
 * tables, or the dense rows of its own samples.  Indices per table are uniform, or a bounded
 * power law (Zipf-like, exponent alpha > 0) drawn by inversion of the continuous CDF; bags hold
 * a fixed number of indices, or a uniform 1..pooling.  Dense values look like the reference's
 * log(1 + count) transform; labels are Bernoulli(0.25), independent of the features.  The same
 * stream can be written as a Criteo file whose reading gives back exactly these inputs.
 */
#include "dlrm_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static double u01(uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t h = splitmix64_mix(splitmix64_mix(splitmix64_mix(seed ^ 0x5bd1e995u) + a) ^
                                (b * SPLITMIX64_GAMMA + c));
    return splitmix64_unit(h);
}

int64_t dlrm_synth_index(const dlrm_synth_t *s, int64_t rows, int64_t sample, int t, int k)
{
    double u = u01(s->seed, (uint64_t)sample, (uint64_t)t + 1000, (uint64_t)k);
    double a = s->table_alpha ? s->table_alpha[t] : s->zipf_alpha;
    if (a <= 0)
        return (int64_t)(u * (double)rows) % rows;
    /* Inverse CDF of density ~ x^-alpha on [1, rows + 1): rank 0 is the hottest row. */
    double n1 = (double)rows + 1.0, x;
    if (fabs(a - 1.0) < 1e-9)
        x = exp(u * log(n1));
    else
        x = pow(1.0 + u * (pow(n1, 1.0 - a) - 1.0), 1.0 / (1.0 - a));
    /* Clamped before the conversion: an extreme alpha may round x to anything, even NaN. */
    if (!(x >= 1.0))
        return 0;
    if (x >= (double)rows)
        return rows - 1;
    return (int64_t)x - 1;
}

static int base_pooling(const dlrm_synth_t *s, int t)
{
    int k = s->table_pooling ? s->table_pooling[t] : s->pooling;
    return k < 0 ? 0 : k;
}

static int burst_factor(const dlrm_synth_t *s)
{
    return s->burst_len > 0 && s->burst_prob > 0 && s->burst_factor > 1 ? s->burst_factor : 1;
}

int dlrm_synth_bag(const dlrm_synth_t *s, int64_t sample, int t)
{
    int k = base_pooling(s, t);
    if (s->random_pooling && k > 1)
        k = 1 + (int)(u01(s->seed, (uint64_t)sample, (uint64_t)t + 5000, 0) * k) % k;
    if (burst_factor(s) > 1 &&
        u01(s->seed, (uint64_t)(sample / s->burst_len), (uint64_t)t + 9000, 1) < s->burst_prob)
        k *= s->burst_factor;
    return k;
}

int dlrm_synth_max_bag(const dlrm_synth_t *s, int t)
{
    return base_pooling(s, t) * burst_factor(s);
}

double dlrm_synth_mean_bag(const dlrm_synth_t *s, int t)
{
    int k = base_pooling(s, t);
    double mean = s->random_pooling && k > 1 ? (k + 1) / 2.0 : k;
    if (burst_factor(s) > 1)
        mean *= 1.0 + s->burst_prob * (s->burst_factor - 1);
    return mean;
}

int64_t dlrm_synth_count(const dlrm_synth_t *s, int64_t sample, int j)
{
    return (int64_t)floor(-20.0 * log(u01(s->seed, (uint64_t)sample, 77, (uint64_t)j)));
}

void dlrm_synth_dense(const dlrm_synth_t *s, int64_t sample, int m_den, float *out)
{
    for (int j = 0; j < m_den; j++) /* a count, then the reader's transform log(x + 1) */
        out[j] = logf((float)dlrm_synth_count(s, sample, j) + 1.0f);
}

dlrm_status_t dlrm_synth_write_criteo(const dlrm_synth_t *s, const dlrm_config_t *cfg,
                                      int64_t samples, const char *path)
{
    if (!s || !cfg || !path || samples < 0)
        return dlrm_error(DLRM_ERR_ARG, "dlrm_synth_write_criteo: bad arguments");
    if (cfg->bot[0] != 13 || cfg->n_tables != 26)
        return dlrm_error(DLRM_ERR_ARG,
                          "Criteo lines carry 13 dense and 26 categorical features; "
                          "the model takes %d and %d",
                          cfg->bot[0], cfg->n_tables);
    for (int t = 0; t < 26; t++)
        if (dlrm_synth_max_bag(s, t) != 1)
            return dlrm_error(DLRM_ERR_ARG,
                              "Criteo lines hold one index per feature: table %d "
                              "has bags of up to %d (use pooling 1, no bursts)",
                              t, dlrm_synth_max_bag(s, t));
    FILE *f = fopen(path, "w");
    if (!f)
        return dlrm_error(DLRM_ERR_IO, "%s: %s", path, strerror(errno));
    for (int64_t g = 0; g < samples; g++) {
        fprintf(f, "%d", (int)dlrm_synth_label(s, g));
        for (int j = 0; j < 13; j++)
            fprintf(f, "\t%lld", (long long)dlrm_synth_count(s, g, j));
        for (int t = 0; t < 26; t++) /* the index itself as the hash: index mod rows = index */
            fprintf(f, "\t%08llx", (unsigned long long)dlrm_synth_index(s, cfg->rows[t], g, t, 0));
        fputc('\n', f);
    }
    if (fclose(f) != 0)
        return dlrm_error(DLRM_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return DLRM_OK;
}

float dlrm_synth_label(const dlrm_synth_t *s, int64_t sample)
{
    return u01(s->seed, (uint64_t)sample, 99, 0) < 0.25 ? 1.0f : 0.0f;
}
