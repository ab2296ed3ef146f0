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
 * thread (OpenBLAS set to one).  --layers adds each Linear layer alone, the engine's kernel
 * against sgemm.
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

typedef struct {
    const char *bot, *top, *json;
    long n, rows, d, samples, rounds, sizes[MAX_SIZES];
    int n_sizes, layers;
} opts_t;

/* The layer widths of both MLPs, in order: layer l maps w[l][0] -> w[l][1]. */
typedef struct {
    int n, w[2 * DLRM_MAX_LAYERS][2];
    float *W[2 * DLRM_MAX_LAYERS];
    int widest;
} layers_t;

/* Everything a measurement reads: the model, the limit's layers, the pre-generated inputs. */
typedef struct {
    dlrm_config_t cfg;
    dlrm_model_t *m;
    layers_t L;
    float *dense, *pred, *act_a, *act_b, *act_in;
    int64_t *idx, *offs;
    const int64_t **idxp, **offp;
    double flops; /* MLP flops per sample */
} bench_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: bls-engine-bench [options]\n"
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
               "  --help             this text\n"
               "  --version          the version\n"
               "Exit status: 0 done; 1 out of memory or the engine failed; 2 a bad option.\n");
}

static int fail(int rc, const char *what)
{
    fprintf(stderr, "bls-engine-bench: %s\n", what);
    return rc;
}

/* A positive integer option; -1 when it is not one. */
static long positive(const char *name, const char *v)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x <= 0 || x > 100000000) {
        fprintf(stderr, "bls-engine-bench: --%s '%s': expected a positive integer\n", name, v);
        return -1;
    }
    return x;
}

/* "128,512" into out; the count, or -1. */
static int parse_list(const char *v, long *out)
{
    int n = 0;
    for (const char *p = v; *p;) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x <= 0 || x > 1000000 || (*end != ',' && *end != '\0') || n == MAX_SIZES) {
            fprintf(stderr,
                    "bls-engine-bench: --batches '%s': expected up to %d positive "
                    "integers separated by commas\n",
                    v, MAX_SIZES);
            return -1;
        }
        out[n++] = x;
        p = *end == ',' ? end + 1 : end;
    }
    if (n == 0)
        fprintf(stderr, "bls-engine-bench: --batches is empty\n");
    return n ? n : -1;
}

/* 0 to run, -1 after --help, else the exit status. */
static int parse(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){"13-512-256-64-16", "512-256-1", NULL, 26, 1000000, 16, 16384, 7, {0}, 0, 0};
    o->n_sizes = parse_list("128,512,2048", o->sizes);
    static const struct option opts[] = {{"arch-mlp-bot", 1, 0, 'B'},
                                         {"arch-mlp-top", 1, 0, 'T'},
                                         {"tables", 1, 0, 't'},
                                         {"rows", 1, 0, 'r'},
                                         {"d", 1, 0, 'd'},
                                         {"batches", 1, 0, 'b'},
                                         {"samples", 1, 0, 'n'},
                                         {"rounds", 1, 0, 'R'},
                                         {"json", 1, 0, 'j'},
                                         {"help", 0, 0, 'h'},
                                         {"version", 0, 0, 'V'},
                                         {"layers", 0, 0, 'L'},
                                         {0, 0, 0, 0}};
    int c;
    long *x = NULL;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'B': o->bot = optarg; continue;
        case 'T': o->top = optarg; continue;
        case 'j': o->json = optarg; continue;
        case 'L': o->layers = 1; continue;
        case 'h': usage(stdout); return -1;
        case 'V': harness_print_version(stdout, "bls-engine-bench"); return -1;
        case 'b':
            if ((o->n_sizes = parse_list(optarg, o->sizes)) < 0)
                return 2;
            continue;
        case 't': x = &o->n; break;
        case 'r': x = &o->rows; break;
        case 'd': x = &o->d; break;
        case 'n': x = &o->samples; break;
        case 'R': x = &o->rounds; break;
        default: usage(stderr); return 2;
        }
        for (const struct option *p = opts; p->name; p++)
            if (p->val == c && (*x = positive(p->name, optarg)) < 0)
                return 2;
    }
    if (optind < argc)
        return fprintf(stderr, "bls-engine-bench: unexpected argument '%s'\n", argv[optind]), 2;
    for (int i = 0; i < o->n_sizes; i++)
        if (o->samples < o->sizes[i])
            return fprintf(stderr,
                           "bls-engine-bench: --samples %ld is less than the largest batch "
                           "%ld\n",
                           o->samples, o->sizes[i]),
                   2;
    return 0;
}

static long max_size(const opts_t *o)
{
    long m = 0;
    for (int i = 0; i < o->n_sizes; i++)
        m = o->sizes[i] > m ? o->sizes[i] : m;
    return m;
}

/* The model (random weights, tables on the engine's huge pages) and the limit's layers with
 * weights of the same shapes (values do not change sgemm's time); 0 or the exit status. */
static int build_model(const opts_t *o, bench_t *b, uint64_t *s)
{
    char *emb = harness_table_sizes(o->n, o->rows);
    if (!emb)
        return fail(1, "out of memory");
    dlrm_status_t st = dlrm_config_parse(o->bot, o->top, emb, (int)o->d, "dot", 0, &b->cfg);
    free(emb);
    if (st != DLRM_OK)
        return fail(2, dlrm_last_error());
    fprintf(stderr, "bls-engine-bench: initialising %ld tables x %ld rows...\n", o->n, o->rows);
    if (dlrm_model_init_random(&b->cfg, 5, NULL, 0, &b->m) != DLRM_OK)
        return fail(1, dlrm_last_error());
    layers_t *L = &b->L;
    L->widest = 1;
    for (int l = 0; l + 1 < b->cfg.n_bot; l++, L->n++)
        memcpy(L->w[L->n], (int[2]){b->cfg.bot[l], b->cfg.bot[l + 1]}, sizeof(L->w[0]));
    for (int l = 0; l < b->cfg.n_top; l++, L->n++) /* top[0]: the interaction's width */
        memcpy(L->w[L->n], (int[2]){b->cfg.top[l], b->cfg.top[l + 1]}, sizeof(L->w[0]));
    for (int l = 0; l < L->n; l++) {
        size_t cnt = (size_t)L->w[l][0] * (size_t)L->w[l][1];
        if (!(L->W[l] = malloc(sizeof(float) * cnt)))
            return fail(1, "out of memory");
        for (size_t i = 0; i < cnt; i++)
            L->W[l][i] = (float)(splitmix64_next(s) >> 40) / 16777216.0f - 0.5f;
        b->flops += 2.0 * L->w[l][0] * L->w[l][1];
        for (int j = 0; j < 2; j++)
            L->widest = L->w[l][j] > L->widest ? L->w[l][j] : L->widest;
    }
    return 0;
}

/* `samples` samples: dense inputs, one uniform index per bag; the limit's activations. */
static int build_inputs(const opts_t *o, bench_t *b, uint64_t *s)
{
    size_t S = (size_t)o->samples, T = (size_t)o->n, maxB = (size_t)max_size(o);
    size_t act = maxB * (size_t)b->L.widest;
    b->dense = malloc(sizeof(float) * S * (size_t)b->cfg.bot[0]);
    b->idx = malloc(sizeof(int64_t) * S * T);
    b->offs = malloc(sizeof(int64_t) * (maxB + 1));
    b->idxp = malloc(sizeof(*b->idxp) * T);
    b->offp = malloc(sizeof(*b->offp) * T);
    b->pred = malloc(sizeof(float) * maxB);
    b->act_a = malloc(sizeof(float) * act);
    b->act_b = malloc(sizeof(float) * act);
    b->act_in = malloc(sizeof(float) * act);
    if (!b->dense || !b->idx || !b->offs || !b->idxp || !b->offp || !b->pred || !b->act_a ||
        !b->act_b || !b->act_in)
        return fail(1, "out of memory");
    for (size_t i = 0; i < S * (size_t)b->cfg.bot[0]; i++)
        b->dense[i] = (float)(splitmix64_next(s) >> 40) / 16777216.0f * 4.0f;
    for (size_t i = 0; i < S * T; i++)
        b->idx[i] = (int64_t)(splitmix64_next(s) % (uint64_t)o->rows);
    for (size_t i = 0; i < act; i++)
        b->act_in[i] = (float)(splitmix64_next(s) >> 40) / 16777216.0f;
    for (size_t i = 0; i <= maxB; i++)
        b->offs[i] = (int64_t)i;
    for (size_t t = 0; t < T; t++)
        b->offp[t] = b->offs;
    return 0;
}

/* (B): the layers alone, as sgemm, on one batch of B rows. */
static void sgemm_chain(const layers_t *L, int B, const float *in, float *a, float *b)
{
    const float *x = in;
    for (int l = 0; l < L->n; l++) {
        float *y = l % 2 == 0 ? a : b;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, L->w[l][1], L->w[l][0], 1.0f, x,
                    L->w[l][0], L->W[l], L->w[l][0], 0.0f, y, L->w[l][1]);
        x = y;
    }
}

/* One pair for batch j of B: seconds per sample of the engine (t[0]) and the limit (t[1]),
 * in alternating order so that neither always goes first. */
static int measure_pair(const opts_t *o, bench_t *b, int B, long j, double t[2])
{
    for (int k = 0; k < 2; k++) {
        int engine = (k + (int)j) % 2 == 0;
        double t0 = harness_now();
        if (engine) {
            for (long tt = 0; tt < o->n; tt++) /* table-major slices of batch j */
                b->idxp[tt] = b->idx + (size_t)tt * (size_t)o->samples + (size_t)j * B;
            dlrm_batch_t batch = {B, b->dense + (size_t)j * B * b->cfg.bot[0], b->idxp, b->offp,
                                  NULL};
            if (dlrm_forward(b->m, &batch, b->pred) != DLRM_OK)
                return fail(1, dlrm_last_error());
        } else {
            sgemm_chain(&b->L, B, b->act_in, b->act_a, b->act_b);
        }
        t[engine ? 0 : 1] = (harness_now() - t0) / B;
    }
    return 0;
}

/* The table row and JSON entry of one batch size from its pairs (sorted here). */
static cJSON *report_size(long B, double *e, double *l, double *ratio, size_t np, double flops)
{
    for (size_t p = 0; p < np; p++)
        ratio[p] = l[p] / e[p];
    harness_sort(e, np);
    harness_sort(l, np);
    harness_sort(ratio, np);
    double es = 1.0 / harness_percentile(e, np, 0.5), ls = 1.0 / harness_percentile(l, np, 0.5);
    double q = harness_percentile(ratio, np, 0.5), q25 = harness_percentile(ratio, np, 0.25),
           q75 = harness_percentile(ratio, np, 0.75);
    printf("| %ld | %.0f | %.0f | %.1f | %.3f (%.3f-%.3f) |\n", B, es, ls, ls * flops / 1e9, q, q25,
           q75);
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "batch", (double)B);
    cJSON_AddNumberToObject(s, "engine_samples_per_s", es);
    cJSON_AddNumberToObject(s, "limit_samples_per_s", ls);
    cJSON_AddNumberToObject(s, "sgemm_gflops", ls * flops / 1e9);
    cJSON_AddNumberToObject(s, "pairs", (double)np);
    cJSON_AddNumberToObject(s, "engine_over_limit", q);
    cJSON_AddNumberToObject(s, "engine_over_limit_p25", q25);
    cJSON_AddNumberToObject(s, "engine_over_limit_p75", q75);
    return s;
}

/* Engine and limit, pair by pair, every batch size, rounds (-1 warms up); the table and the
 * JSON's "sizes". */
static int run_sizes(const opts_t *o, bench_t *b, cJSON *sizes)
{
    long minB = max_size(o);
    for (int i = 0; i < o->n_sizes; i++)
        minB = o->sizes[i] < minB ? o->sizes[i] : minB;
    size_t max_pairs = (size_t)o->rounds * (size_t)(o->samples / minB);
    double *te = malloc(sizeof(double) * max_pairs * (size_t)o->n_sizes);
    double *tl = malloc(sizeof(double) * max_pairs * (size_t)o->n_sizes);
    double *ratio = malloc(sizeof(double) * max_pairs);
    int rc = te && tl && ratio ? 0 : fail(1, "out of memory");
    for (long r = -1; r < o->rounds && !rc; r++) {
        for (int i = 0; i < o->n_sizes && !rc; i++) {
            long batches = o->samples / o->sizes[i];
            for (long j = 0; j < batches && !rc; j++) {
                double t[2];
                rc = measure_pair(o, b, (int)o->sizes[i], j, t);
                size_t at = (size_t)i * max_pairs + (size_t)(r < 0 ? 0 : r) * batches + (size_t)j;
                te[at] = t[0];
                tl[at] = t[1];
            }
        }
        if (r >= 0)
            fprintf(stderr, "bls-engine-bench: round %ld of %ld\n", r + 1, o->rounds);
    }
    printf("bot %s, top %s, %ld tables x %ld rows x d %ld, one index per bag, %ld rounds, "
           "%.3f MFLOP of MLP per sample\n",
           o->bot, o->top, o->n, o->rows, o->d, o->rounds, b->flops / 1e6);
    printf("| batch | engine samples/s | MLP limit samples/s | sgemm GFLOP/s | engine / limit "
           "(quartiles) |\n| --- | --- | --- | --- | --- |\n");
    for (int i = 0; i < o->n_sizes && !rc; i++)
        cJSON_AddItemToArray(
            sizes,
            report_size(o->sizes[i], te + (size_t)i * max_pairs, tl + (size_t)i * max_pairs, ratio,
                        (size_t)o->rounds * (size_t)(o->samples / o->sizes[i]), b->flops));
    free(te);
    free(tl);
    free(ratio);
    return rc;
}

/* One layer at one batch size: reps pairs of the engine's one-layer model and sgemm. */
static cJSON *layer_pairs(const dlrm_model_t *m, const float *W, int K, int N, int B, long reps,
                          double *te, double *tb, double *ratio)
{
    float *x = malloc(sizeof(float) * (size_t)B * K), *y = malloc(sizeof(float) * (size_t)B * N);
    for (size_t j = 0; x && y && j < (size_t)B * K; j++)
        x[j] = (float)(j % 97) / 97.0f;
    for (long r = -2; x && y && r < reps; r++) { /* two warm-up pairs */
        double t0 = harness_now();
        dlrm_bottom(m, B, x, y);
        double t1 = harness_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, N, K, 1.0f, x, K, W, K, 0.0f, y, N);
        double t2 = harness_now();
        if (r >= 0) {
            te[r] = t1 - t0;
            tb[r] = t2 - t1;
            ratio[r] = tb[r] / te[r];
        }
    }
    free(x);
    free(y);
    harness_sort(te, (size_t)reps);
    harness_sort(tb, (size_t)reps);
    harness_sort(ratio, (size_t)reps);
    double flop = 2.0 * B * K * N, ge = flop / harness_percentile(te, (size_t)reps, 0.5) / 1e9,
           gb = flop / harness_percentile(tb, (size_t)reps, 0.5) / 1e9;
    double q = harness_percentile(ratio, (size_t)reps, 0.5);
    double q25 = harness_percentile(ratio, (size_t)reps, 0.25);
    double q75 = harness_percentile(ratio, (size_t)reps, 0.75);
    printf("| %d-%d | %d | %.1f | %.1f | %.3f (%.3f-%.3f) |\n", K, N, B, ge, gb, q, q25, q75);
    cJSON *e = cJSON_CreateObject();
    double v[] = {K, N, B, ge, gb, q, q25, q75};
    const char *k[] = {"in",
                       "out",
                       "batch",
                       "engine_gflops",
                       "sgemm_gflops",
                       "engine_over_sgemm",
                       "engine_over_sgemm_p25",
                       "engine_over_sgemm_p75"};
    for (int i = 0; i < 8; i++)
        cJSON_AddNumberToObject(e, k[i], v[i]);
    return e;
}

/*
 * --layers: each Linear layer of the MLPs (those with more than one output: the engine computes
 * a width-1 layer as dot products) through the engine, as a one-layer model's dlrm_bottom (bias
 * and ReLU fused, 256-row chunks), against cblas_sgemm on the same [B, K] x [K, N] with no bias
 * or activation, alternating call by call.  Median GFLOP/s of each, and the median ratio.
 */
static int run_layers(const opts_t *o, const layers_t *L, cJSON *out)
{
    printf("\n| layer | batch | engine GFLOP/s (bias, ReLU) | OpenBLAS sgemm GFLOP/s | engine / "
           "sgemm (quartiles) |\n| --- | --- | --- | --- | --- |\n");
    long reps = 15 * o->rounds;
    double *te = malloc(sizeof(double) * (size_t)reps), *tb = malloc(sizeof(double) * (size_t)reps);
    double *ratio = malloc(sizeof(double) * (size_t)reps);
    int rc = te && tb && ratio ? 0 : fail(1, "out of memory");
    for (int l = 0; l < L->n && !rc; l++) {
        int K = L->w[l][0], N = L->w[l][1];
        char bot[32];
        snprintf(bot, sizeof(bot), "%d-%d", K, N);
        dlrm_config_t c;
        dlrm_model_t *m = NULL;
        if (N == 1)
            continue;
        if (dlrm_config_parse(bot, "1", "1", N, "cat", 0, &c) != DLRM_OK ||
            dlrm_model_init_random(&c, 3, NULL, 0, &m) != DLRM_OK)
            rc = fail(1, dlrm_last_error());
        for (int i = 0; i < o->n_sizes && !rc; i++)
            cJSON_AddItemToArray(
                out, layer_pairs(m, L->W[l], K, N, (int)o->sizes[i], reps, te, tb, ratio));
        dlrm_model_free(m);
        dlrm_config_free(&c);
    }
    free(te);
    free(tb);
    free(ratio);
    return rc;
}

static void bench_free(bench_t *b)
{
    dlrm_model_free(b->m);
    dlrm_config_free(&b->cfg);
    for (int l = 0; l < b->L.n; l++)
        free(b->L.W[l]);
    void *p[] = {b->dense, b->idx,   b->offs,  b->idxp,  b->offp,
                 b->pred,  b->act_a, b->act_b, b->act_in};
    for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
        free(p[i]);
}

/* The JSON file: the configuration, "sizes", "layers" (with --layers) and the kernel. */
static cJSON *json_root(const opts_t *o, const bench_t *b)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "arch_mlp_bot", o->bot);
    cJSON_AddStringToObject(root, "arch_mlp_top", o->top);
    cJSON_AddNumberToObject(root, "tables", (double)o->n);
    cJSON_AddNumberToObject(root, "rows", (double)o->rows);
    cJSON_AddNumberToObject(root, "d", (double)o->d);
    cJSON_AddNumberToObject(root, "samples", (double)o->samples);
    cJSON_AddNumberToObject(root, "rounds", (double)o->rounds);
    cJSON_AddNumberToObject(root, "mlp_flops_per_sample", b->flops);
    cJSON_AddStringToObject(root, "kernel", dlrm_kernel());
    return root;
}

int main(int argc, char **argv)
{
    opts_t o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    openblas_set_num_threads(1);
    bench_t b;
    memset(&b, 0, sizeof(b));
    uint64_t seed = SPLITMIX64_GAMMA;
    rc = build_model(&o, &b, &seed);
    if (!rc)
        rc = build_inputs(&o, &b, &seed);
    cJSON *root = rc ? NULL : json_root(&o, &b);
    if (!rc)
        rc = run_sizes(&o, &b, cJSON_AddArrayToObject(root, "sizes"));
    if (!rc && o.layers)
        rc = run_layers(&o, &b.L, cJSON_AddArrayToObject(root, "layers"));
    if (!rc)
        printf("\nkernel: %s (the engine's Linear layers)\n", dlrm_kernel());
    char err[300];
    if (!rc && o.json && harness_json_write(root, o.json, err, sizeof(err)) != 0)
        rc = fail(1, err);
    cJSON_Delete(root);
    bench_free(&b);
    return rc;
}
