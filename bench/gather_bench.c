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
            "  --help        this text\n");
}

static long parse_pos(const char *name, const char *v)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x <= 0) {
        fprintf(stderr, "bls-gather-bench: %s '%s': expected a positive integer\n", name, v);
        exit(2);
    }
    return x;
}

/* The plain loop: every bag summed row by row, no checks; with ahead > 0, the row `ahead`
 * lookups later is prefetched (what the best hand-written loop does). */
static void plain_gather(const float *const *tables, int n, int d, int B,
                         const int64_t *const *idx, const int64_t *const *off, float *out,
                         int ahead)
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

int main(int argc, char **argv)
{
    long n = 26, rows = 1000000, d = 16, B = 2048, K = 1, nb = 40, rounds = 7, seed = 1;
    const char *json = NULL;
    static const struct option opts[] = {
        {"tables", 1, 0, 't'}, {"rows", 1, 0, 'r'},   {"d", 1, 0, 'd'},
        {"batch", 1, 0, 'b'},  {"pooling", 1, 0, 'k'}, {"batches", 1, 0, 'n'},
        {"rounds", 1, 0, 'R'}, {"seed", 1, 0, 's'},    {"json", 1, 0, 'j'},
        {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 't': n = parse_pos("--tables", optarg); break;
        case 'r': rows = parse_pos("--rows", optarg); break;
        case 'd': d = parse_pos("--d", optarg); break;
        case 'b': B = parse_pos("--batch", optarg); break;
        case 'k': K = parse_pos("--pooling", optarg); break;
        case 'n': nb = parse_pos("--batches", optarg); break;
        case 'R': rounds = parse_pos("--rounds", optarg); break;
        case 's': seed = parse_pos("--seed", optarg); break;
        case 'j': json = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bls-gather-bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    /* A model whose MLPs are trivial: only its tables matter here. */
    char *sizes = harness_table_sizes(n, rows), bot[64];
    if (!sizes) {
        fprintf(stderr, "bls-gather-bench: out of memory\n");
        return 1;
    }
    snprintf(bot, sizeof(bot), "13-%ld", d);
    dlrm_config_t cfg;
    dlrm_model_t *m = NULL;
    if (dlrm_config_parse(bot, "1", sizes, (int)d, "dot", 0, &cfg) != DLRM_OK ||
        dlrm_model_init_random(&cfg, 3, NULL, 0, &m) != DLRM_OK) {
        fprintf(stderr, "bls-gather-bench: %s\n", dlrm_last_error());
        return 1;
    }
    free(sizes);
    const float **tables = malloc(sizeof(*tables) * (size_t)n);
    for (int t = 0; t < n; t++)
        tables[t] = dlrm_model_table(m, t);

    /* nb batches of indices: idx[batch][table] and shared offsets. */
    size_t per = (size_t)B * (size_t)K;
    int64_t *idx_all = malloc(sizeof(int64_t) * per * (size_t)n * (size_t)nb);
    int64_t *offs = malloc(sizeof(int64_t) * (size_t)(B + 1));
    const int64_t **idx = malloc(sizeof(*idx) * (size_t)n * (size_t)nb);
    const int64_t **offp = malloc(sizeof(*offp) * (size_t)n);
    float *out_e = malloc(sizeof(float) * (size_t)B * (size_t)n * (size_t)d);
    float *out_p = malloc(sizeof(float) * (size_t)B * (size_t)n * (size_t)d);
    if (!idx_all || !offs || !idx || !offp || !out_e || !out_p || !tables) {
        fprintf(stderr, "bls-gather-bench: out of memory\n");
        return 1;
    }
    uint64_t s = 0x9E3779B97F4A7C15ull ^ (uint64_t)seed;
    for (size_t i = 0; i < per * (size_t)n * (size_t)nb; i++)
        idx_all[i] = (int64_t)(splitmix64_next(&s) % (uint64_t)rows);
    for (long b = 0; b <= B; b++)
        offs[b] = b * K;
    for (long i = 0; i < n * nb; i++)
        idx[i] = idx_all + (size_t)i * per;
    for (long t = 0; t < n; t++)
        offp[t] = offs;

    double *te = malloc(sizeof(double) * (size_t)rounds), *tp = malloc(sizeof(double) * (size_t)rounds);
    double *tq = malloc(sizeof(double) * (size_t)rounds);
    long mismatches = 0;
    for (long r = -1; r < rounds; r++) { /* round -1 warms up */
        double t0 = harness_now();
        for (long k = 0; k < nb; k++) {
            dlrm_batch_t batch = {(int)B, NULL, idx + k * n, offp, NULL};
            if (dlrm_embed(m, &batch, NULL, (int)n, out_e) != DLRM_OK) {
                fprintf(stderr, "bls-gather-bench: %s\n", dlrm_last_error());
                return 1;
            }
        }
        double t1 = harness_now();
        for (long k = 0; k < nb; k++)
            plain_gather(tables, (int)n, (int)d, (int)B, idx + k * n, offp, out_p, 0);
        double t2 = harness_now();
        /* The last batch of each: the same sums in the same order, so the same bits. */
        mismatches += memcmp(out_e, out_p, sizeof(float) * (size_t)B * (size_t)n * (size_t)d) != 0;
        double t3 = harness_now();
        for (long k = 0; k < nb; k++)
            plain_gather(tables, (int)n, (int)d, (int)B, idx + k * n, offp, out_p, 16);
        double t4 = harness_now();
        mismatches += memcmp(out_e, out_p, sizeof(float) * (size_t)B * (size_t)n * (size_t)d) != 0;
        if (r >= 0) {
            te[r] = t1 - t0;
            tp[r] = t2 - t1;
            tq[r] = t4 - t3;
        }
    }
    harness_sort(te, (size_t)rounds);
    harness_sort(tp, (size_t)rounds);
    harness_sort(tq, (size_t)rounds);
    double gathered = (double)nb * (double)n * (double)per;
    double re = gathered / harness_percentile(te, (size_t)rounds, 0.5);
    double rp = gathered / harness_percentile(tp, (size_t)rounds, 0.5);
    double rq = gathered / harness_percentile(tq, (size_t)rounds, 0.5);
    printf("%ld tables x %ld rows x d %ld (%.0f MiB), batch %ld, pooling %ld, %ld batches, %ld rounds\n",
           n, rows, d, (double)n * (double)rows * (double)d * 4 / 1048576.0, B, K, nb, rounds);
    printf("engine dlrm_embed:          %6.1f M rows/s\n"
           "plain gather loop:          %6.1f M rows/s  (engine / plain %.3f)\n"
           "plain loop with prefetch:   %6.1f M rows/s  (engine / prefetched %.3f)\n",
           re / 1e6, rp / 1e6, re / rp, rq / 1e6, re / rq);
    if (mismatches)
        fprintf(stderr, "bls-gather-bench: the engine's output differs from the plain loop's\n");
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            fprintf(stderr, "bls-gather-bench: cannot write %s\n", json);
            return 1;
        }
        fprintf(f,
                "{\"tables\": %ld, \"rows\": %ld, \"d\": %ld, \"batch\": %ld, \"pooling\": %ld, "
                "\"batches\": %ld, \"rounds\": %ld, \"engine_rows_per_s\": %.6g, "
                "\"plain_rows_per_s\": %.6g, \"prefetched_rows_per_s\": %.6g, "
                "\"engine_over_plain\": %.6g, \"engine_over_prefetched\": %.6g, \"identical\": %s}\n",
                n, rows, d, B, K, nb, rounds, re, rp, rq, re / rp, re / rq,
                mismatches ? "false" : "true");
        fclose(f);
    }
    dlrm_model_free(m);
    dlrm_config_free(&cfg);
    free(tables);
    free(idx_all);
    free(offs);
    free(idx);
    free(offp);
    free(out_e);
    free(out_p);
    free(te);
    free(tp);
    free(tq);
    return mismatches ? 1 : 0;
}
