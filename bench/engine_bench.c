/*
 * bls-engine-bench: the engine's forward pass against the limit its MLPs' flops allow at the
 * sgemm rate OpenBLAS reaches on the same shapes, measured in the same process, interleaved.
 *
 * Each batch, from distinct pre-generated ones (uniform indices into the tables, so lookups
 * miss the caches as in serving), goes (A) through dlrm_forward, and a batch of the same size
 * goes (B) through the MLPs' layers alone: one cblas_sgemm per layer, x[B, in] times W^T into
 * y[B, out], with no bias, activation, lookup or interaction, at full batch.  A and B
 * alternate batch by batch.  B's samples/s is the limit; the figure is the median over the
 * pairs of time(B) / time(A), the engine's fraction of the limit, with its quartiles.  One
 * thread (OpenBLAS set to one).
 *
 * Usage: bls-engine-bench [--arch-mlp-bot S] [--arch-mlp-top S] [--tables N] [--rows R]
 *                         [--d D] [--batches LIST] [--samples N] [--rounds R] [--layers]
 *                         [--json FILE]
 */
#include "dlrm.h"
#include "harness.h"
#include "splitmix64.h"

#include <cblas.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIZES 16

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bls-engine-bench [options]\n"
            "The engine's forward pass vs the limit its MLPs allow at OpenBLAS's sgemm rate on\n"
            "the same shapes, measured interleaved in one process, one thread.  DLRM_KERNEL\n"
            "chooses the engine's kernel; OPENBLAS_CORETYPE OpenBLAS's.\n\n"
            "  --arch-mlp-bot S   bottom MLP (default 13-512-256-64-16)\n"
            "  --arch-mlp-top S   top MLP (default 512-256-1)\n"
            "  --tables N         embedding tables (default 26)\n"
            "  --rows R           rows per table (default 1000000)\n"
            "  --d D              embedding dimension (default 16)\n"
            "  --batches LIST     batch sizes, comma-separated (default 128,512,2048)\n"
            "  --samples N        samples per measurement and batch size (default 16384)\n"
            "  --rounds R         passes over the samples; figures are medians (default 7)\n"
            "  --layers           also each Linear layer alone: the engine's kernel (bias and\n"
            "                     ReLU fused) against OpenBLAS's sgemm, GFLOP/s, interleaved\n"
            "  --json FILE        write the figures as JSON\n"
            "  --help             this text\n");
}

static long parse_pos(const char *name, const char *v)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x <= 0 || x > 100000000) {
        fprintf(stderr, "bls-engine-bench: %s '%s': expected a positive integer\n", name, v);
        exit(2);
    }
    return x;
}

static int parse_list(const char *v, long *out)
{
    int n = 0;
    const char *p = v;
    while (*p) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x <= 0 || x > 1000000 || (*end != ',' && *end != '\0') || n == MAX_SIZES) {
            fprintf(stderr, "bls-engine-bench: --batches '%s': expected up to %d positive "
                            "integers separated by commas\n", v, MAX_SIZES);
            exit(2);
        }
        out[n++] = x;
        p = *end == ',' ? end + 1 : end;
    }
    if (n == 0) {
        fprintf(stderr, "bls-engine-bench: --batches is empty\n");
        exit(2);
    }
    return n;
}

/* The layer widths of both MLPs, in order: layer l maps w[l][0] -> w[l][1]. */
typedef struct {
    int n, w[2 * DLRM_MAX_LAYERS][2];
    const float *W[2 * DLRM_MAX_LAYERS];
} layers_t;

static double mlp_flops_per_sample(const layers_t *L)
{
    double f = 0;
    for (int l = 0; l < L->n; l++)
        f += 2.0 * L->w[l][0] * L->w[l][1];
    return f;
}

/* (B): the layers alone, as sgemm, on `batches` batches of B rows. */
static void sgemm_chain(const layers_t *L, int B, long batches, const float *in, float *a,
                        float *b)
{
    for (long k = 0; k < batches; k++) {
        const float *x = in;
        for (int l = 0; l < L->n; l++) {
            float *y = l % 2 == 0 ? a : b;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, L->w[l][1], L->w[l][0], 1.0f,
                        x, L->w[l][0], L->W[l], L->w[l][0], 0.0f, y, L->w[l][1]);
            x = y;
        }
    }
}

/*
 * --layers: each Linear layer of the MLPs (those with more than one output: the engine computes
 * a width-1 layer as dot products) through the engine, as a one-layer model's dlrm_bottom (bias
 * and ReLU fused, 256-row chunks), against cblas_sgemm on the same [B, K] x [K, N] with no bias
 * or activation, alternating call by call.  Median GFLOP/s of each, and the median ratio.
 */
static int layers_report(const layers_t *L, const long *sizes, int n_sizes, long rounds, FILE *json)
{
    printf("\n| layer | batch | engine GFLOP/s (bias, ReLU) | OpenBLAS sgemm GFLOP/s | engine / "
           "sgemm (quartiles) |\n| --- | --- | --- | --- | --- |\n");
    if (json)
        fprintf(json, ", \"layers\": [");
    long reps = 15 * rounds;
    double *te = malloc(sizeof(double) * (size_t)reps), *tb = malloc(sizeof(double) * (size_t)reps);
    double *ratio = malloc(sizeof(double) * (size_t)reps);
    int first = 1;
    for (int l = 0; l < L->n; l++) {
        int K = L->w[l][0], N = L->w[l][1];
        if (N == 1)
            continue;
        char bot[32];
        snprintf(bot, sizeof(bot), "%d-%d", K, N);
        dlrm_config_t c;
        dlrm_model_t *m;
        if (dlrm_config_parse(bot, "1", "1", N, "cat", 0, &c) != DLRM_OK ||
            dlrm_model_init_random(&c, 3, NULL, 0, &m) != DLRM_OK) {
            fprintf(stderr, "bls-engine-bench: layer %s: %s\n", bot, dlrm_last_error());
            return 1;
        }
        for (int i = 0; i < n_sizes; i++) {
            int B = (int)sizes[i];
            float *x = malloc(sizeof(float) * (size_t)B * K), *y = malloc(sizeof(float) * (size_t)B * N);
            for (size_t j = 0; j < (size_t)B * K; j++)
                x[j] = (float)(j % 97) / 97.0f;
            for (long r = -2; r < reps; r++) { /* two warm-up pairs */
                double t0 = harness_now();
                dlrm_bottom(m, B, x, y);
                double t1 = harness_now();
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, N, K, 1.0f, x, K, L->W[l],
                            K, 0.0f, y, N);
                double t2 = harness_now();
                if (r >= 0) {
                    te[r] = t1 - t0;
                    tb[r] = t2 - t1;
                    ratio[r] = tb[r] / te[r];
                }
            }
            harness_sort(te, (size_t)reps);
            harness_sort(tb, (size_t)reps);
            harness_sort(ratio, (size_t)reps);
            double flop = 2.0 * B * K * N, ge = flop / harness_percentile(te, (size_t)reps, 0.5) / 1e9,
                   gb = flop / harness_percentile(tb, (size_t)reps, 0.5) / 1e9;
            double q = harness_percentile(ratio, (size_t)reps, 0.5),
                   q25 = harness_percentile(ratio, (size_t)reps, 0.25),
                   q75 = harness_percentile(ratio, (size_t)reps, 0.75);
            printf("| %d-%d | %d | %.1f | %.1f | %.3f (%.3f-%.3f) |\n", K, N, B, ge, gb, q, q25, q75);
            if (json)
                fprintf(json, "%s{\"in\": %d, \"out\": %d, \"batch\": %d, \"engine_gflops\": %.2f, "
                              "\"sgemm_gflops\": %.2f, \"engine_over_sgemm\": %.4f, "
                              "\"engine_over_sgemm_p25\": %.4f, \"engine_over_sgemm_p75\": %.4f}",
                        first ? "" : ", ", K, N, B, ge, gb, q, q25, q75);
            first = 0;
            free(x);
            free(y);
        }
        dlrm_model_free(m);
        dlrm_config_free(&c);
    }
    if (json)
        fprintf(json, "]");
    free(te);
    free(tb);
    free(ratio);
    return 0;
}

int main(int argc, char **argv)
{
    const char *bot = "13-512-256-64-16", *top = "512-256-1", *json = NULL;
    long n = 26, rows = 1000000, d = 16, samples = 16384, rounds = 7, sizes[MAX_SIZES];
    int n_sizes = parse_list("128,512,2048", sizes);
    static const struct option opts[] = {
        {"arch-mlp-bot", 1, 0, 'B'}, {"arch-mlp-top", 1, 0, 'T'}, {"tables", 1, 0, 't'},
        {"rows", 1, 0, 'r'},         {"d", 1, 0, 'd'},            {"batches", 1, 0, 'b'},
        {"samples", 1, 0, 'n'},      {"rounds", 1, 0, 'R'},       {"json", 1, 0, 'j'},
        {"help", 0, 0, 'h'},         {"layers", 0, 0, 'L'},       {0, 0, 0, 0}};
    int layers = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'B': bot = optarg; break;
        case 'T': top = optarg; break;
        case 't': n = parse_pos("--tables", optarg); break;
        case 'r': rows = parse_pos("--rows", optarg); break;
        case 'd': d = parse_pos("--d", optarg); break;
        case 'b': n_sizes = parse_list(optarg, sizes); break;
        case 'n': samples = parse_pos("--samples", optarg); break;
        case 'R': rounds = parse_pos("--rounds", optarg); break;
        case 'j': json = optarg; break;
        case 'L': layers = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bls-engine-bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    long maxB = 0;
    for (int i = 0; i < n_sizes; i++)
        maxB = sizes[i] > maxB ? sizes[i] : maxB;
    if (samples < maxB) {
        fprintf(stderr, "bls-engine-bench: --samples %ld is less than the largest batch %ld\n",
                samples, maxB);
        return 2;
    }
    openblas_set_num_threads(1);

    char *emb = harness_table_sizes(n, rows);
    if (!emb) {
        fprintf(stderr, "bls-engine-bench: out of memory\n");
        return 1;
    }
    dlrm_config_t cfg;
    dlrm_model_t *m = NULL;
    if (dlrm_config_parse(bot, top, emb, (int)d, "dot", 0, &cfg) != DLRM_OK) {
        fprintf(stderr, "bls-engine-bench: %s\n", dlrm_last_error());
        return 2;
    }
    free(emb);
    fprintf(stderr, "bls-engine-bench: initialising %ld tables x %ld rows...\n", n, rows);
    if (dlrm_model_init_random(&cfg, 5, NULL, 0, &m) != DLRM_OK) {
        fprintf(stderr, "bls-engine-bench: %s\n", dlrm_last_error());
        return 1;
    }

    /* The MLPs' layers with weights of the same shapes (values do not change sgemm's time). */
    layers_t L = {0};
    int widest = 1;
    for (int l = 0; l + 1 < cfg.n_bot; l++, L.n++) {
        L.w[L.n][0] = cfg.bot[l];
        L.w[L.n][1] = cfg.bot[l + 1];
    }
    for (int l = 0; l < cfg.n_top; l++, L.n++) {
        L.w[L.n][0] = cfg.top[l]; /* top[0]: the interaction's width */
        L.w[L.n][1] = cfg.top[l + 1];
    }
    float *wbuf[2 * DLRM_MAX_LAYERS] = {0};
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (int l = 0; l < L.n; l++) {
        size_t cnt = (size_t)L.w[l][0] * (size_t)L.w[l][1];
        if (!(wbuf[l] = malloc(sizeof(float) * cnt))) {
            fprintf(stderr, "bls-engine-bench: out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < cnt; i++)
            wbuf[l][i] = (float)(splitmix64_next(&s) >> 40) / 16777216.0f - 0.5f;
        L.W[l] = wbuf[l];
        for (int j = 0; j < 2; j++)
            widest = L.w[l][j] > widest ? L.w[l][j] : widest;
    }

    /* `samples` samples: dense inputs, one uniform index per bag. */
    float *dense = malloc(sizeof(float) * (size_t)samples * (size_t)cfg.bot[0]);
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)samples * (size_t)n);
    int64_t *offs = malloc(sizeof(int64_t) * (size_t)(maxB + 1));
    const int64_t **idxp = malloc(sizeof(*idxp) * (size_t)n);
    const int64_t **offp = malloc(sizeof(*offp) * (size_t)n);
    float *pred = malloc(sizeof(float) * (size_t)maxB);
    float *act_a = malloc(sizeof(float) * (size_t)maxB * (size_t)widest);
    float *act_b = malloc(sizeof(float) * (size_t)maxB * (size_t)widest);
    float *act_in = malloc(sizeof(float) * (size_t)maxB * (size_t)widest);
    long minB = maxB;
    for (int i = 0; i < n_sizes; i++)
        minB = sizes[i] < minB ? sizes[i] : minB;
    size_t max_pairs = (size_t)rounds * (size_t)(samples / minB); /* per batch size */
    double *te = malloc(sizeof(double) * max_pairs * (size_t)n_sizes);
    double *tl = malloc(sizeof(double) * max_pairs * (size_t)n_sizes);
    double *ratio = malloc(sizeof(double) * max_pairs);
    if (!dense || !idx || !offs || !idxp || !offp || !pred || !act_a || !act_b || !act_in ||
        !te || !tl || !ratio) {
        fprintf(stderr, "bls-engine-bench: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)samples * (size_t)cfg.bot[0]; i++)
        dense[i] = (float)(splitmix64_next(&s) >> 40) / 16777216.0f * 4.0f;
    for (size_t i = 0; i < (size_t)samples * (size_t)n; i++)
        idx[i] = (int64_t)(splitmix64_next(&s) % (uint64_t)rows);
    for (size_t i = 0; i < (size_t)maxB * (size_t)widest; i++)
        act_in[i] = (float)(splitmix64_next(&s) >> 40) / 16777216.0f;
    for (long b = 0; b <= maxB; b++)
        offs[b] = b;
    for (long t = 0; t < n; t++)
        offp[t] = offs;

    double flops = mlp_flops_per_sample(&L);
    /* Engine and limit alternate batch by batch (which goes first alternates too), so both
     * see the same machine; each pair gives one ratio. */
    for (long r = -1; r < rounds; r++) { /* round -1 warms up */
        for (int i = 0; i < n_sizes; i++) {
            int B = (int)sizes[i];
            long batches = samples / B;
            for (long j = 0; j < batches; j++) {
                double t[2];
                for (int k = 0; k < 2; k++) {
                    int engine = (k + (int)j) % 2 == 0;
                    double t0 = harness_now();
                    if (engine) {
                        for (long tt = 0; tt < n; tt++) /* table-major slices of batch j */
                            idxp[tt] = idx + (size_t)tt * (size_t)samples + (size_t)j * B;
                        dlrm_batch_t batch = {B, dense + (size_t)j * B * cfg.bot[0], idxp, offp,
                                              NULL};
                        if (dlrm_forward(m, &batch, pred) != DLRM_OK) {
                            fprintf(stderr, "bls-engine-bench: %s\n", dlrm_last_error());
                            return 1;
                        }
                    } else {
                        sgemm_chain(&L, B, 1, act_in, act_a, act_b);
                    }
                    t[engine ? 0 : 1] = (harness_now() - t0) / B;
                }
                if (r >= 0) {
                    size_t at = (size_t)i * max_pairs + (size_t)r * batches + (size_t)j;
                    te[at] = t[0];
                    tl[at] = t[1];
                }
            }
        }
        if (r >= 0)
            fprintf(stderr, "bls-engine-bench: round %ld of %ld\n", r + 1, rounds);
    }

    printf("bot %s, top %s, %ld tables x %ld rows x d %ld, one index per bag, %ld rounds, "
           "%.3f MFLOP of MLP per sample\n", bot, top, n, rows, d, rounds, flops / 1e6);
    printf("| batch | engine samples/s | MLP limit samples/s | sgemm GFLOP/s | engine / limit "
           "(quartiles) |\n"
           "| --- | --- | --- | --- | --- |\n");
    FILE *f = NULL;
    if (json && !(f = fopen(json, "w"))) {
        fprintf(stderr, "bls-engine-bench: cannot write %s\n", json);
        return 1;
    }
    if (f)
        fprintf(f, "{\"arch_mlp_bot\": \"%s\", \"arch_mlp_top\": \"%s\", \"tables\": %ld, "
                   "\"rows\": %ld, \"d\": %ld, \"samples\": %ld, \"rounds\": %ld, "
                   "\"mlp_flops_per_sample\": %.0f, \"sizes\": [", bot, top, n, rows, d, samples,
                rounds, flops);
    for (int i = 0; i < n_sizes; i++) {
        double *e = te + (size_t)i * max_pairs, *l = tl + (size_t)i * max_pairs;
        size_t np = (size_t)rounds * (size_t)(samples / sizes[i]);
        for (size_t p = 0; p < np; p++)
            ratio[p] = l[p] / e[p];
        harness_sort(e, np);
        harness_sort(l, np);
        harness_sort(ratio, np);
        double es = 1.0 / harness_percentile(e, np, 0.5);
        double ls = 1.0 / harness_percentile(l, np, 0.5);
        double q = harness_percentile(ratio, np, 0.5), q25 = harness_percentile(ratio, np, 0.25),
               q75 = harness_percentile(ratio, np, 0.75);
        printf("| %ld | %.0f | %.0f | %.1f | %.3f (%.3f-%.3f) |\n", sizes[i], es, ls,
               ls * flops / 1e9, q, q25, q75);
        if (f)
            fprintf(f, "%s{\"batch\": %ld, \"engine_samples_per_s\": %.1f, "
                       "\"limit_samples_per_s\": %.1f, \"sgemm_gflops\": %.2f, "
                       "\"pairs\": %zu, \"engine_over_limit\": %.4f, "
                       "\"engine_over_limit_p25\": %.4f, \"engine_over_limit_p75\": %.4f}",
                    i ? ", " : "", sizes[i], es, ls, ls * flops / 1e9, np, q, q25, q75);
    }
    if (f)
        fprintf(f, "]");
    if (layers && layers_report(&L, sizes, n_sizes, rounds, f) != 0)
        return 1;
    printf("\nkernel: %s (the engine's Linear layers)\n", dlrm_kernel());
    if (f) {
        fprintf(f, ", \"kernel\": \"%s\"}\n", dlrm_kernel());
        fclose(f);
    }
    dlrm_model_free(m);
    dlrm_config_free(&cfg);
    for (int l = 0; l < L.n; l++)
        free(wbuf[l]);
    free(dense);
    free(idx);
    free(offs);
    free(idxp);
    free(offp);
    free(pred);
    free(act_a);
    free(act_b);
    free(act_in);
    free(te);
    free(tl);
    free(ratio);
    return 0;
}
