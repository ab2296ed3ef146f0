/*
 * bls-dlrm: DLRM inference on one process over a Criteo-format file or seeded synthetic data;
 * prints accuracy, ROC AUC, log loss, per-batch latency and throughput.  (The multi-process
 * drivers, synchronous and bounded-lag, build on this engine in the distributed tool.)
 */
#define _GNU_SOURCE
#include "dlrm.h"

#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *bot, *top, *emb, *op;
    int d, itself;
    const char *weights;
    uint64_t seed;
    const char *data;
    int strict;
    int64_t samples; /* synthetic samples */
    dlrm_synth_t synth;
    int batch;
    int64_t max_batches;
    const char *predictions, *json, *write_criteo;
    int threads, quiet;
} opts_t;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: bls-dlrm [options]\n"
        "DLRM inference on one process; the model options are the reference's own.\n\n"
        "Model:\n"
        "  --arch-mlp-bot S             bottom MLP widths, input first (default 13-512-256-64-16)\n"
        "  --arch-mlp-top S             top MLP widths after the interaction (default 512-256-1)\n"
        "  --arch-embedding-size S      rows per table (default 26 tables of 100000)\n"
        "  --arch-sparse-feature-size N embedding dimension d (default 16)\n"
        "  --arch-interaction-op OP     dot or cat (default dot)\n"
        "  --arch-interaction-itself    keep Z[i][i] in the dot interaction\n"
        "  --weights FILE               safetensors file with the reference's state_dict names\n"
        "                               (scripts/convert_checkpoint.py makes one); default: random\n"
        "  --seed N                     seed of the random weights (default 1)\n\n"
        "Data (default: synthetic):\n"
        "  --data FILE                  Criteo Kaggle train.txt format, streamed\n"
        "  --strict                     a malformed line is fatal (default: skipped and counted)\n"
        "  --synthetic-samples N        synthetic samples (default 65536)\n"
        "  --data-seed N                seed of the synthetic stream (default 7)\n"
        "  --zipf A                     synthetic indices follow a power law of exponent A\n"
        "                               (default 0: uniform)\n"
        "  --pooling K                  indices per bag (default 1)\n"
        "  --random-pooling             bags hold a uniform 1..K indices\n"
        "  --write-criteo FILE          write the synthetic samples as a Criteo file and exit\n"
        "                               (pooling 1; reading it back gives the same inputs)\n\n"
        "Run:\n"
        "  --batch-size B               samples per batch (default 128)\n"
        "  --max-batches N              stop after N batches (default: all data)\n"
        "  --threads N                  OpenBLAS threads (default 1)\n"
        "  --predictions FILE           write 'probability label' per sample\n"
        "  --json FILE                  write every figure and the configuration as JSON\n"
        "  --quiet                      no progress lines\n"
        "  --help                       this text\n");
}

static int die(const char *what, const char *detail)
{
    fprintf(stderr, "bls-dlrm: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    return 2;
}

static int parse_int64(const char *s, int64_t min, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno || v < min)
        return -1;
    *out = v;
    return 0;
}

static int parse(int argc, char **argv, opts_t *o, char *default_emb)
{
    char *p = default_emb;
    for (int t = 0; t < 26; t++)
        p += sprintf(p, "%s100000", t ? "-" : "");
    *o = (opts_t){.bot = "13-512-256-64-16", .top = "512-256-1", .emb = default_emb, .op = "dot",
                  .d = 16, .seed = 1, .samples = 65536, .batch = 128, .max_batches = -1,
                  .threads = 1};
    o->synth.seed = 7;
    o->synth.pooling = 1;
    enum { BOT = 256, TOP, EMB, D, OP, ITSELF, WEIGHTS, SEED, DATA, STRICT, SAMPLES, DSEED, ZIPF,
           POOL, RPOOL, BATCH, MAXB, THREADS, PRED, JSON, QUIET, HELP, WCRITEO };
    static const struct option longopts[] = {
        {"arch-mlp-bot", 1, 0, BOT}, {"arch-mlp-top", 1, 0, TOP},
        {"arch-embedding-size", 1, 0, EMB}, {"arch-sparse-feature-size", 1, 0, D},
        {"arch-interaction-op", 1, 0, OP}, {"arch-interaction-itself", 0, 0, ITSELF},
        {"weights", 1, 0, WEIGHTS}, {"seed", 1, 0, SEED}, {"data", 1, 0, DATA},
        {"strict", 0, 0, STRICT}, {"synthetic-samples", 1, 0, SAMPLES}, {"data-seed", 1, 0, DSEED},
        {"zipf", 1, 0, ZIPF}, {"pooling", 1, 0, POOL}, {"random-pooling", 0, 0, RPOOL},
        {"batch-size", 1, 0, BATCH}, {"max-batches", 1, 0, MAXB}, {"threads", 1, 0, THREADS},
        {"predictions", 1, 0, PRED}, {"json", 1, 0, JSON}, {"quiet", 0, 0, QUIET},
        {"help", 0, 0, HELP}, {"write-criteo", 1, 0, WCRITEO}, {0, 0, 0, 0}};
    int c;
    int64_t v;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case BOT: o->bot = optarg; break;
        case TOP: o->top = optarg; break;
        case EMB: o->emb = optarg; break;
        case OP: o->op = optarg; break;
        case ITSELF: o->itself = 1; break;
        case WEIGHTS: o->weights = optarg; break;
        case DATA: o->data = optarg; break;
        case STRICT: o->strict = 1; break;
        case RPOOL: o->synth.random_pooling = 1; break;
        case PRED: o->predictions = optarg; break;
        case JSON: o->json = optarg; break;
        case WCRITEO: o->write_criteo = optarg; break;
        case QUIET: o->quiet = 1; break;
        case HELP: usage(stdout); exit(0);
        case ZIPF: {
            char *end;
            o->synth.zipf_alpha = strtod(optarg, &end);
            if (*end || o->synth.zipf_alpha < 0)
                return die("--zipf takes an exponent >= 0, got", optarg);
            break;
        }
        case D: case SEED: case SAMPLES: case DSEED: case POOL: case BATCH: case MAXB: case THREADS:
            if (parse_int64(optarg, c == POOL ? 0 : 1, &v) != 0)
                return die("option needs a positive integer, got", optarg);
            if (c == D) o->d = (int)v;
            else if (c == SEED) o->seed = (uint64_t)v;
            else if (c == SAMPLES) o->samples = v;
            else if (c == DSEED) o->synth.seed = (uint64_t)v;
            else if (c == POOL) o->synth.pooling = (int)v;
            else if (c == BATCH) o->batch = (int)v;
            else if (c == MAXB) o->max_batches = v;
            else o->threads = (int)v;
            break;
        default:
            fprintf(stderr, "bls-dlrm: unknown or incomplete option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bls-dlrm: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (o->batch > 1 << 22)
        return die("--batch-size is larger than 4194304", NULL);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    opts_t o;
    char default_emb[26 * 8];
    int rc = parse(argc, argv, &o, default_emb);
    if (rc)
        return rc;
    openblas_set_num_threads(o.threads);
    dlrm_config_t cfg;
    if (dlrm_config_parse(o.bot, o.top, o.emb, o.d, o.op, o.itself, &cfg) != DLRM_OK)
        return die("bad model configuration", dlrm_last_error());
    if (o.write_criteo) {
        if (dlrm_synth_write_criteo(&o.synth, &cfg, o.samples, o.write_criteo) != DLRM_OK)
            return die("cannot write the Criteo file", dlrm_last_error());
        printf("wrote %lld synthetic samples to %s\n", (long long)o.samples, o.write_criteo);
        dlrm_config_free(&cfg);
        return 0;
    }
    dlrm_model_t *model;
    double t0 = now();
    dlrm_status_t st = o.weights ? dlrm_model_load(&cfg, o.weights, NULL, 0, &model)
                                 : dlrm_model_init_random(&cfg, o.seed, NULL, 0, &model);
    if (st != DLRM_OK)
        return die(o.weights ? "cannot load the weights" : "cannot build the model", dlrm_last_error());
    if (!o.quiet)
        fprintf(stderr, "bls-dlrm: model ready in %.2f s (%d tables, d = %d, %s interaction)\n",
                now() - t0, cfg.n_tables, cfg.d, o.op);
    dlrm_criteo_t *reader = NULL;
    if (o.data && dlrm_criteo_open(o.data, &cfg, o.strict, &reader) != DLRM_OK)
        return die("cannot read the data", dlrm_last_error());

    int B = o.batch, T = cfg.n_tables, m_den = cfg.bot[0];
    int pool_max = o.data ? 1 : (o.synth.pooling > 0 ? o.synth.pooling : 0);
    float *labels = malloc(sizeof(float) * (size_t)B), *dense = malloc(sizeof(float) * (size_t)B * m_den);
    float *pred = malloc(sizeof(float) * (size_t)B);
    int64_t **idx = calloc((size_t)T, sizeof(*idx)), **off = calloc((size_t)T, sizeof(*off));
    for (int t = 0; t < T; t++) {
        idx[t] = malloc(sizeof(int64_t) * ((size_t)B * (size_t)pool_max + 1));
        off[t] = malloc(sizeof(int64_t) * ((size_t)B + 1));
    }
    size_t cap = 1 << 16, n_all = 0, n_lat = 0, lat_cap = 1024;
    float *all_pred = malloc(sizeof(float) * cap), *all_lab = malloc(sizeof(float) * cap);
    double *lat = malloc(sizeof(double) * lat_cap);
    FILE *pf = o.predictions ? fopen(o.predictions, "w") : NULL;
    if (o.predictions && !pf)
        return die("cannot write the predictions file", strerror(errno));
    int64_t produced = 0, batches = 0;
    double compute = 0, last_report = now(), run0 = now();
    for (;;) {
        if (o.max_batches >= 0 && batches >= o.max_batches)
            break;
        int n = 0;
        if (reader) {
            dlrm_samples_t s = {labels, dense, idx};
            if (dlrm_criteo_read(reader, B, &s, &n) != DLRM_OK)
                return die("bad input", dlrm_last_error());
            for (int t = 0; t < T; t++)
                for (int b = 0; b <= n; b++)
                    off[t][b] = b;
        } else {
            n = (int)(o.samples - produced < B ? o.samples - produced : B);
            for (int b = 0; b < n; b++) {
                int64_t g = produced + b;
                labels[b] = dlrm_synth_label(&o.synth, g);
                dlrm_synth_dense(&o.synth, g, m_den, dense + (size_t)b * m_den);
            }
            for (int t = 0; t < T; t++) {
                int64_t k = 0;
                for (int b = 0; b < n; b++) {
                    off[t][b] = k;
                    int bag = dlrm_synth_bag(&o.synth, produced + b, t);
                    for (int j = 0; j < bag; j++)
                        idx[t][k++] = dlrm_synth_index(&o.synth, cfg.rows[t], produced + b, t, j);
                }
                off[t][n] = k;
            }
        }
        if (n == 0)
            break;
        dlrm_batch_t batch = {n, dense, (const int64_t *const *)idx, (const int64_t *const *)off, NULL};
        double b0 = now();
        if (dlrm_forward(model, &batch, pred) != DLRM_OK)
            return die("inference failed", dlrm_last_error());
        double dt = now() - b0;
        compute += dt;
        if (n_lat == lat_cap)
            lat = realloc(lat, sizeof(double) * (lat_cap *= 2));
        lat[n_lat++] = dt;
        while (n_all + (size_t)n > cap) {
            cap *= 2;
            all_pred = realloc(all_pred, sizeof(float) * cap);
            all_lab = realloc(all_lab, sizeof(float) * cap);
        }
        if (!all_pred || !all_lab || !lat)
            return die("out of memory for the predictions", NULL);
        memcpy(all_pred + n_all, pred, sizeof(float) * (size_t)n);
        memcpy(all_lab + n_all, labels, sizeof(float) * (size_t)n);
        n_all += (size_t)n;
        for (int b = 0; pf && b < n; b++)
            fprintf(pf, "%.9g %d\n", pred[b], (int)labels[b]);
        produced += n;
        batches++;
        if (!o.quiet && now() - last_report > 2.0) {
            last_report = now();
            fprintf(stderr, "bls-dlrm: %lld batches, %lld samples, %.0f samples/s\n",
                    (long long)batches, (long long)produced, (double)produced / (last_report - run0));
        }
        if (n < B)
            break;
    }
    double wall = now() - run0;
    if (pf && fclose(pf) != 0)
        return die("cannot write the predictions file", strerror(errno));
    if (n_all == 0)
        return die("no samples were read", reader ? dlrm_criteo_last_skip(reader) : NULL);
    dlrm_metrics_t m;
    dlrm_status_t ms = dlrm_metrics(all_pred, all_lab, (int64_t)n_all, &m);
    if (ms != DLRM_OK && !isnan(m.auc))
        return die("metrics", dlrm_last_error());
    qsort(lat, n_lat, sizeof(double), cmp_double);
    double p50 = lat[(size_t)(0.5 * (double)(n_lat - 1) + 0.5)], p99 = lat[(size_t)(0.99 * (double)(n_lat - 1) + 0.5)];
    int64_t skipped = reader ? dlrm_criteo_skipped(reader) : 0;
    printf("samples      %lld in %lld batches of %d%s\n", (long long)n_all, (long long)batches, B,
           reader ? "" : " (synthetic)");
    if (reader)
        printf("lines        %lld read, %lld malformed skipped%s%s\n",
               (long long)dlrm_criteo_lines(reader), (long long)skipped, skipped ? "; last: " : "",
               skipped ? dlrm_criteo_last_skip(reader) : "");
    printf("accuracy     %.6f\n", m.accuracy);
    printf("roc auc      %.6f\n", m.auc);
    printf("log loss     %.6f\n", m.logloss);
    printf("latency      p50 %.3f ms, p99 %.3f ms per batch (forward pass)\n", 1e3 * p50, 1e3 * p99);
    printf("throughput   %.0f samples/s (forward pass), %.0f samples/s (with input)\n",
           (double)n_all / compute, (double)n_all / wall);
    if (o.json) {
        FILE *f = fopen(o.json, "w");
        if (!f)
            return die("cannot write the JSON file", strerror(errno));
        char auc[32] = "null"; /* JSON has no NaN: AUC is undefined with one class */
        if (!isnan(m.auc))
            snprintf(auc, sizeof(auc), "%.9f", m.auc);
        fprintf(f, "{\"tool\": \"bls-dlrm\", \"processes\": 1, \"config\": {\"arch_mlp_bot\": \"%s\", "
                   "\"arch_mlp_top\": \"%s\", \"tables\": %d, \"d\": %d, \"op\": \"%s\", \"itself\": %s, "
                   "\"batch_size\": %d, \"data\": \"%s\", \"weights\": \"%s\"},\n"
                   " \"samples\": %lld, \"batches\": %lld, \"skipped_lines\": %lld, \"accuracy\": %.9f, "
                   "\"auc\": %s, \"logloss\": %.9f, \"latency_ms_p50\": %.6f, \"latency_ms_p99\": %.6f, "
                   "\"samples_per_s_forward\": %.3f, \"samples_per_s\": %.3f}\n",
                o.bot, o.top, T, o.d, o.op, o.itself ? "true" : "false", B,
                o.data ? o.data : "synthetic", o.weights ? o.weights : "random", (long long)n_all,
                (long long)batches, (long long)skipped, m.accuracy, auc,
                m.logloss, 1e3 * p50, 1e3 * p99, (double)n_all / compute, (double)n_all / wall);
        fclose(f);
    }
    for (int t = 0; t < T; t++) {
        free(idx[t]);
        free(off[t]);
    }
    free(idx);
    free(off);
    free(labels);
    free(dense);
    free(pred);
    free(all_pred);
    free(all_lab);
    free(lat);
    dlrm_criteo_close(reader);
    dlrm_model_free(model);
    dlrm_config_free(&cfg);
    return 0;
}
