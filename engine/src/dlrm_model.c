/*
 * Model weights: seeded random initialisation with the reference's distributions, the parts
 * every model shares (allocation, the packed layers, freeing); safetensors files are
 * dlrm_safetensors.c.
 *
 * Random values come from a counter-based generator: value i of tensor s is a function of
 * (seed, s, i) alone, so any process can build any subset of the tables and agree with every
 * other process bit for bit, and a table is filled without generating what precedes it.
 */
#define _GNU_SOURCE
#include "dlrm_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Uniform in (0, 1). */
static double unit(uint64_t seed, uint64_t stream, uint64_t i)
{
    uint64_t h =
        splitmix64_mix(splitmix64_mix(seed ^ splitmix64_mix(stream + SPLITMIX64_GAMMA)) + i);
    return splitmix64_unit(h);
}

static void fill_uniform(float *x, size_t n, float bound, uint64_t seed, uint64_t stream)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((2.0 * unit(seed, stream, i) - 1.0) * bound);
}

static void fill_normal(float *x, size_t n, double sd, uint64_t seed, uint64_t stream)
{
    for (size_t i = 0; i < n; i++) { /* Box-Muller on two counters per value */
        double u1 = unit(seed, stream, 2 * i), u2 = unit(seed, stream, 2 * i + 1);
        x[i] = (float)(sd * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

enum { STREAM_BOT = 1000, STREAM_TOP = 2000, STREAM_TABLE = 1000000 };

/* m may be NULL (sizes only).  dlrm_model_save reads through a const model's views. */
void dlrm_mlp_views(const dlrm_config_t *cfg, const dlrm_model_t *m, mlp_view_t v[2])
{
    dlrm_model_t *mm = (dlrm_model_t *)m;
    v[0] = (mlp_view_t){"bot_l",
                        cfg->bot,
                        cfg->n_bot - 1,
                        mm ? mm->bot_w : NULL,
                        mm ? mm->bot_b : NULL,
                        STREAM_BOT,
                        mm ? mm->bot_lin : NULL};
    v[1] = (mlp_view_t){"top_l",
                        cfg->top,
                        cfg->n_top,
                        mm ? mm->top_w : NULL,
                        mm ? mm->top_b : NULL,
                        STREAM_TOP,
                        mm ? mm->top_lin : NULL};
}

dlrm_status_t dlrm_model_prepare(dlrm_model_t *m)
{
    dlrm_status_t st = dlrm_kernel_check();
    if (st != DLRM_OK)
        return st;
    mlp_view_t v[2];
    dlrm_mlp_views(&m->cfg, m, v);
    size_t total = 0;
    for (int j = 0; j < 2; j++)
        for (int l = 0; l < v[j].layers; l++)
            if (v[j].w[l + 1] > 1)
                total += dlrm_linear_floats(v[j].w[l], v[j].w[l + 1]);
    if (total == 0)
        return DLRM_OK;
    float *p = m->derived = aligned_alloc(64, sizeof(float) * total);
    if (!p)
        return dlrm_error(DLRM_ERR_NOMEM, "model: out of memory for the packed weights");
    for (int j = 0; j < 2; j++)
        for (int l = 0; l < v[j].layers; l++) {
            int fi = v[j].w[l], fo = v[j].w[l + 1];
            if (fo == 1)
                continue; /* a dot product per sample (dlrm_forward.c) */
            dlrm_linear_pack(v[j].W[l], v[j].b[l], fi, fo, p, &v[j].lin[l]);
            p += dlrm_linear_floats(fi, fo);
        }
    return DLRM_OK;
}

dlrm_status_t dlrm_model_alloc(const dlrm_config_t *cfg, dlrm_model_t **model_p)
{
    if (!cfg || !model_p || !cfg->rows || cfg->n_tables < 1)
        return dlrm_error(DLRM_ERR_ARG, "model: configuration is missing or has no tables");
    dlrm_model_t *m = calloc(1, sizeof(*m));
    if (!m)
        return dlrm_error(DLRM_ERR_NOMEM, "model: out of memory");
    m->cfg = *cfg;
    m->cfg.rows = malloc(sizeof(int64_t) * (size_t)cfg->n_tables);
    m->tables = calloc((size_t)cfg->n_tables, sizeof(float *));
    if (!m->cfg.rows || !m->tables) {
        free(m->cfg.rows);
        free(m->tables);
        free(m);
        return dlrm_error(DLRM_ERR_NOMEM, "model: out of memory");
    }
    memcpy(m->cfg.rows, cfg->rows, sizeof(int64_t) * (size_t)cfg->n_tables);
    *model_p = m;
    return DLRM_OK;
}

/* Expands a table list (NULL: every table) into want[n_tables] flags, checking every entry. */
dlrm_status_t dlrm_table_set(const dlrm_config_t *cfg, const int *tables, int n,
                             unsigned char *want)
{
    memset(want, tables ? 0 : 1, (size_t)cfg->n_tables);
    if (!tables)
        return DLRM_OK;
    if (n < 0)
        return dlrm_error(DLRM_ERR_ARG, "table list length %d is negative", n);
    for (int i = 0; i < n; i++) {
        if (tables[i] < 0 || tables[i] >= cfg->n_tables)
            return dlrm_error(DLRM_ERR_ARG,
                              "table list entry %d: table %d is not within the "
                              "model's %d tables",
                              i, tables[i], cfg->n_tables);
        if (want[tables[i]])
            return dlrm_error(DLRM_ERR_ARG, "table list entry %d: table %d is listed twice", i,
                              tables[i]);
        want[tables[i]] = 1;
    }
    return DLRM_OK;
}

dlrm_status_t dlrm_model_own(dlrm_model_t *m, const unsigned char *want)
{
    const dlrm_config_t *cfg = &m->cfg;
    mlp_view_t v[2];
    dlrm_mlp_views(cfg, NULL, v);
    size_t total = 0;
    for (int j = 0; j < 2; j++)
        for (int l = 0; l < v[j].layers; l++)
            total += (size_t)v[j].w[l + 1] * ((size_t)v[j].w[l] + 1);
    for (int t = 0; t < cfg->n_tables; t++) {
        if (!want[t])
            continue;
        if ((uint64_t)cfg->rows[t] > (SIZE_MAX / sizeof(float) - total) / (size_t)cfg->d)
            return dlrm_error(DLRM_ERR_ARG, "table %d: %lld rows x %d do not fit in memory", t,
                              (long long)cfg->rows[t], cfg->d);
        total += (size_t)cfg->rows[t] * (size_t)cfg->d;
    }
    /* Lookups hit random rows of tables far larger than the caches: with 4 KiB pages nearly
     * every one also misses the TLB and walks the page tables.  2 MiB pages (transparent huge
     * pages, asked for with madvise since Debian's default is "madvise") cut that: the
     * lookup rate went from 7-12 to 14-20 M rows/s (bench/RESULTS.md).  Without THP the hint
     * is ignored and the pages are normal ones. */
    m->owned_len = total * sizeof(float) + 1;
    m->owned = mmap(NULL, m->owned_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m->owned == MAP_FAILED) {
        m->owned = NULL;
        return dlrm_error(DLRM_ERR_NOMEM, "model: cannot allocate %zu MiB of weights",
                          total * sizeof(float) >> 20);
    }
    (void)madvise(m->owned, m->owned_len, MADV_HUGEPAGE);
    float *p = m->owned;
    dlrm_mlp_views(cfg, m, v);
    for (int j = 0; j < 2; j++)
        for (int l = 0; l < v[j].layers; l++) {
            v[j].W[l] = p;
            p += (size_t)v[j].w[l + 1] * (size_t)v[j].w[l];
            v[j].b[l] = p;
            p += v[j].w[l + 1];
        }
    for (int t = 0; t < cfg->n_tables; t++)
        if (want[t]) {
            m->tables[t] = p;
            p += (size_t)cfg->rows[t] * (size_t)cfg->d;
        }
    return DLRM_OK;
}

dlrm_hold_t dlrm_model_hold(const dlrm_model_t *m)
{
    return m && m->file_map ? DLRM_HOLD_MAP : DLRM_HOLD_COPY;
}

dlrm_status_t dlrm_model_memory(const dlrm_model_t *m, size_t *bytes, size_t *huge_bytes)
{
    if (!m || !bytes || !huge_bytes)
        return dlrm_error(DLRM_ERR_ARG,
                          "dlrm_model_memory: model, bytes and huge_bytes are required");
    *bytes = (m->owned ? m->owned_len : 0) + m->file_table_bytes;
    *huge_bytes = 0;
    FILE *f = m->owned ? fopen("/proc/self/smaps", "r") : NULL;
    if (!f)
        return DLRM_OK;
    /* The mappings that overlap the weights (one, unless the kernel split it), each one's
     * AnonHugePages line. */
    uintptr_t lo = (uintptr_t)m->owned, hi = lo + m->owned_len;
    int inside = 0;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        unsigned long a, b, kib;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' '))
            inside = a < hi && b > lo;
        else if (inside && sscanf(line, "AnonHugePages: %lu kB", &kib) == 1)
            *huge_bytes += (size_t)kib * 1024;
    }
    fclose(f);
    return DLRM_OK;
}

dlrm_status_t dlrm_model_init_random(const dlrm_config_t *cfg, uint64_t seed, const int *tables,
                                     int n_tables, dlrm_model_t **model_p)
{
    if (!cfg || !model_p || !cfg->rows || cfg->n_tables < 1)
        return dlrm_error(DLRM_ERR_ARG, "dlrm_model_init_random: cfg and model_p are required");
    unsigned char *want = malloc((size_t)cfg->n_tables);
    if (!want)
        return dlrm_error(DLRM_ERR_NOMEM, "model: out of memory");
    dlrm_status_t st = dlrm_table_set(cfg, tables, n_tables, want);
    if (st != DLRM_OK) {
        free(want);
        return st;
    }
    dlrm_model_t *m = NULL;
    if ((st = dlrm_model_alloc(cfg, &m)) != DLRM_OK || (st = dlrm_model_own(m, want)) != DLRM_OK) {
        free(want);
        dlrm_model_free(m);
        return st;
    }
    mlp_view_t v[2];
    dlrm_mlp_views(cfg, m, v); /* the pointers into m->owned that dlrm_model_own set */
    for (int j = 0; j < 2; j++)
        for (int l = 0; l < v[j].layers; l++) {
            int in = v[j].w[l], out = v[j].w[l + 1];
            uint64_t stream = v[j].stream + 2 * (uint64_t)l;
            fill_normal((float *)v[j].W[l], (size_t)out * in, sqrt(2.0 / (in + out)), seed, stream);
            fill_normal((float *)v[j].b[l], (size_t)out, sqrt(1.0 / out), seed, stream + 1);
        }
    for (int t = 0; t < cfg->n_tables; t++)
        if (want[t])
            fill_uniform((float *)m->tables[t], (size_t)cfg->rows[t] * (size_t)cfg->d,
                         (float)sqrt(1.0 / (double)cfg->rows[t]), seed,
                         STREAM_TABLE + (uint64_t)t);
    free(want);
    if ((st = dlrm_model_prepare(m)) != DLRM_OK) {
        dlrm_model_free(m);
        return st;
    }
    *model_p = m;
    return DLRM_OK;
}

void dlrm_model_free(dlrm_model_t *m)
{
    if (!m)
        return;
    if (m->owned)
        munmap(m->owned, m->owned_len);
    if (m->file_map)
        munmap(m->file_map, m->file_map_len);
    free(m->derived);
    free(m->tables);
    free(m->cfg.rows);
    free(m);
}

const dlrm_config_t *dlrm_model_config(const dlrm_model_t *m)
{
    return m ? &m->cfg : NULL;
}

const float *dlrm_model_table(const dlrm_model_t *m, int t)
{
    return m && t >= 0 && t < m->cfg.n_tables ? m->tables[t] : NULL;
}
