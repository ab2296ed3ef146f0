/*
 * bls-gather-bench: the engine's embedding lookup (dlrm_embed) against a plain random-gather
 * loop over the same tables, the same indices and the same output -- once as written plainly,
 * once with the row 16 lookups ahead prefetched (the best such loop: the memory system's rate
 * for this access pattern).  All three run interleaved over the same pre-generated batches;
 * the figures are gathered rows per second, median over rounds, and the engine's ratio to
 * each.  The outputs must be equal bit for bit (the same sums in the same order), or the run
 * fails.
 *
 * Usage: bls-gather-bench [--tables N] [--rows R] [--d D] [--batch B] [--pooling K]
 *                         [--batches N] [--rounds R] [--seed S] [--json FILE]
 */
#include "dlrm.h"
#include "harness.h"
#include "splitmix64.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bls-gather-bench [options]\n"
            "The engine's embedding lookup vs a plain random-gather loop over the same memory.\n\n"
            "  --tables N    tables (default 26)\n"
            "  --rows R      rows per table (default 1000000)\n"
            "  --d D         embedding dimension (default 16)\n"
            "  --batch B     samples per batch (default 2048)\n"
            "  --pooling K   indices per bag, uniform over the rows (default 1)\n"
            "  --batches N   distinct batches, cycled (default 40)\n"
            "  --rounds R    interleaved rounds (default 7)\n"
            "  --seed S      seed of the indices (default 1)\n"
            "  --json FILE   write the figures as JSON\n"
            "  --help        this text\n"
            "  --version     the version\n");
}

typedef struct {
    long n, rows, d, B, K, nb, rounds, seed;
    const char *json;
} opts_t;

/* The tables (of a model whose MLPs are trivial) and nb batches of indices, idx[batch][table]
 * with offsets shared by all. */
typedef struct {
    dlrm_config_t cfg;
    dlrm_model_t *m;
    const float **tables;
    int64_t *idx_all, *offs;
    const int64_t **idx, **offp;
    float *out_e, *out_p;
} gather_t;

/* A positive integer option; -1 when it is not one. */
static long positive(const char *name, const char *v)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x <= 0) {
        fprintf(stderr, "bls-gather-bench: --%s '%s': expected a positive integer\n", name, v);
        return -1;
    }
    return x;
}

/* 0 to run, -1 after --help, else the exit status. */
static int parse(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){26, 1000000, 16, 2048, 1, 40, 7, 1, NULL};
    static const struct option opts[] = {
        {"tables", 1, 0, 't'},  {"rows", 1, 0, 'r'},    {"d", 1, 0, 'd'},      {"batch", 1, 0, 'b'},
        {"pooling", 1, 0, 'k'}, {"batches", 1, 0, 'n'}, {"rounds", 1, 0, 'R'}, {"seed", 1, 0, 's'},
        {"json", 1, 0, 'j'},    {"help", 0, 0, 'h'},    {"version", 0, 0, 'V'},
        {0, 0, 0, 0}};
    long *dst[] = {&o->n, &o->rows, &o->d, &o->B, &o->K, &o->nb, &o->rounds, &o->seed};
    int c, i;
    while ((c = getopt_long(argc, argv, "", opts, &i)) != -1) {
        if (c == 'j') {
            o->json = optarg;
        } else if (c == 'h') {
            usage(stdout);
            return -1;
        } else if (c == 'V') {
            harness_print_version(stdout, "bls-gather-bench");
            return -1;
        } else if (c == '?') {
            usage(stderr);
            return 2;
        } else {
            for (i = 0; opts[i].val != c; i++) {
            }
            if ((*dst[i] = positive(opts[i].name, optarg)) < 0)
                return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bls-gather-bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return 0;
}

/* The plain loop: every bag summed row by row, no checks; with ahead > 0, the row `ahead`
 * lookups later is prefetched (what the best hand-written loop does). */
static void plain_gather(const float *const *tables, int n, int d, int B, const int64_t *const *idx,
                         const int64_t *const *off, float *out, int ahead)
{
    for (int t = 0; t < n; t++)
        for (int b = 0; b < B; b++) {
            float *o = out + ((size_t)b * n + (size_t)t) * d;
            memset(o, 0, sizeof(float) * (size_t)d);
            for (int64_t k = off[t][b]; k < off[t][b + 1]; k++) {
                if (ahead > 0 && k + ahead < off[t][B]) {
                    const float *next_row = tables[t] + (size_t)idx[t][k + ahead] * d;
                    __builtin_prefetch(next_row);
                    __builtin_prefetch(next_row + d - 1);
                }
                const float *row = tables[t] + (size_t)idx[t][k] * d;
                for (int j = 0; j < d; j++)
                    o[j] += 1.0f * row[j];
            }
        }
}

/* 0, or the exit status. */
static int build(const opts_t *o, gather_t *g)
{
    char *sizes = harness_table_sizes(o->n, o->rows), bot[64];
    if (!sizes) {
        fprintf(stderr, "bls-gather-bench: out of memory\n");
        return 1;
    }
    snprintf(bot, sizeof(bot), "13-%ld", o->d);
    dlrm_status_t st = dlrm_config_parse(bot, "1", sizes, (int)o->d, "dot", 0, &g->cfg);
    free(sizes);
    if (st != DLRM_OK || dlrm_model_init_random(&g->cfg, 3, NULL, 0, &g->m) != DLRM_OK) {
        fprintf(stderr, "bls-gather-bench: %s\n", dlrm_last_error());
        return 1;
    }
    size_t n = (size_t)o->n, per = (size_t)o->B * (size_t)o->K,
           out = (size_t)o->B * n * (size_t)o->d;
    g->tables = malloc(sizeof(*g->tables) * n);
    g->idx_all = malloc(sizeof(int64_t) * per * n * (size_t)o->nb);
    g->offs = malloc(sizeof(int64_t) * (size_t)(o->B + 1));
    g->idx = malloc(sizeof(*g->idx) * n * (size_t)o->nb);
    g->offp = malloc(sizeof(*g->offp) * n);
    g->out_e = malloc(sizeof(float) * out);
    g->out_p = malloc(sizeof(float) * out);
    if (!g->idx_all || !g->offs || !g->idx || !g->offp || !g->out_e || !g->out_p || !g->tables) {
        fprintf(stderr, "bls-gather-bench: out of memory\n");
        return 1;
    }
    uint64_t s = SPLITMIX64_GAMMA ^ (uint64_t)o->seed;
    for (size_t i = 0; i < per * n * (size_t)o->nb; i++)
        g->idx_all[i] = (int64_t)(splitmix64_next(&s) % (uint64_t)o->rows);
    for (long b = 0; b <= o->B; b++)
        g->offs[b] = b * o->K;
    for (size_t i = 0; i < n * (size_t)o->nb; i++)
        g->idx[i] = g->idx_all + i * per;
    for (size_t t = 0; t < n; t++) {
        g->offp[t] = g->offs;
        g->tables[t] = dlrm_model_table(g->m, (int)t);
    }
    return 0;
}

/* One round: the engine, the plain loop, the prefetched loop, each over every batch (seconds
 * into t[0..2]); the number of outputs that differ from the engine's (0 or more). */
static long round_of(const opts_t *o, gather_t *g, double t[3])
{
    int n = (int)o->n;
    size_t bytes = sizeof(float) * (size_t)o->B * (size_t)o->n * (size_t)o->d;
    long mismatches = 0;
    double t0 = harness_now();
    for (long k = 0; k < o->nb; k++) {
        dlrm_batch_t batch = {(int)o->B, NULL, g->idx + k * n, g->offp, NULL};
        if (dlrm_embed(g->m, &batch, NULL, n, g->out_e) != DLRM_OK) {
            fprintf(stderr, "bls-gather-bench: %s\n", dlrm_last_error());
            return -1;
        }
    }
    t[0] = harness_now() - t0;
    for (int ahead = 0; ahead <= 16; ahead += 16) {
        double t1 = harness_now();
        for (long k = 0; k < o->nb; k++)
            plain_gather(g->tables, n, (int)o->d, (int)o->B, g->idx + k * n, g->offp, g->out_p,
                         ahead);
        t[ahead ? 2 : 1] = harness_now() - t1;
        /* The last batch of each: the same sums in the same order, so the same bits. */
        mismatches += memcmp(g->out_e, g->out_p, bytes) != 0;
    }
    return mismatches;
}

/* The figures: rows per second of each (median over rounds), printed and as JSON. */
static int report(const opts_t *o, double *tm[3], long mismatches)
{
    double rate[3], gathered = (double)o->nb * (double)o->n * (double)(o->B * o->K);
    for (int i = 0; i < 3; i++) {
        harness_sort(tm[i], (size_t)o->rounds);
        rate[i] = gathered / harness_percentile(tm[i], (size_t)o->rounds, 0.5);
    }
    printf("%ld tables x %ld rows x d %ld (%.0f MiB), batch %ld, pooling %ld, %ld batches, %ld "
           "rounds\n",
           o->n, o->rows, o->d, (double)o->n * (double)o->rows * (double)o->d * 4 / 1048576.0, o->B,
           o->K, o->nb, o->rounds);
    printf("engine dlrm_embed:          %6.1f M rows/s\n"
           "plain gather loop:          %6.1f M rows/s  (engine / plain %.3f)\n"
           "plain loop with prefetch:   %6.1f M rows/s  (engine / prefetched %.3f)\n",
           rate[0] / 1e6, rate[1] / 1e6, rate[0] / rate[1], rate[2] / 1e6, rate[0] / rate[2]);
    if (mismatches)
        fprintf(stderr, "bls-gather-bench: the engine's output differs from the plain loop's\n");
    if (!o->json)
        return 0;
    cJSON *r = cJSON_CreateObject();
    const char *keys[] = {"tables", "rows", "d", "batch", "pooling", "batches", "rounds"};
    double vals[] = {o->n, o->rows, o->d, o->B, o->K, o->nb, o->rounds};
    for (int i = 0; i < 7; i++)
        cJSON_AddNumberToObject(r, keys[i], vals[i]);
    cJSON_AddNumberToObject(r, "engine_rows_per_s", rate[0]);
    cJSON_AddNumberToObject(r, "plain_rows_per_s", rate[1]);
    cJSON_AddNumberToObject(r, "prefetched_rows_per_s", rate[2]);
    cJSON_AddNumberToObject(r, "engine_over_plain", rate[0] / rate[1]);
    cJSON_AddNumberToObject(r, "engine_over_prefetched", rate[0] / rate[2]);
    cJSON_AddBoolToObject(r, "identical", mismatches == 0);
    char err[300];
    int rc = harness_json_write(r, o->json, err, sizeof(err));
    cJSON_Delete(r);
    if (rc != 0)
        fprintf(stderr, "bls-gather-bench: %s\n", err);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    opts_t o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    gather_t g;
    memset(&g, 0, sizeof(g));
    double *tm[3];
    for (int i = 0; i < 3; i++)
        tm[i] = malloc(sizeof(double) * (size_t)o.rounds);
    rc = build(&o, &g);
    long mismatches = 0;
    for (long r = -1; r < o.rounds && !rc; r++) { /* round -1 warms up */
        double t[3] = {0, 0, 0};
        long mm = round_of(&o, &g, t);
        rc = mm < 0 ? 1 : 0;
        mismatches += mm > 0 ? mm : 0;
        for (int i = 0; r >= 0 && i < 3; i++)
            tm[i][r] = t[i];
    }
    if (!rc)
        rc = report(&o, tm, mismatches);
    if (!rc && mismatches)
        rc = 1;
    dlrm_model_free(g.m);
    if (g.m || g.tables)
        dlrm_config_free(&g.cfg);
    void *p[] = {g.tables, g.idx_all, g.offs, g.idx, g.offp, g.out_e, g.out_p, tm[0], tm[1], tm[2]};
    for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
        free(p[i]);
    return rc;
}
