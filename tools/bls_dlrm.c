/*
 * bls-dlrm: DLRM inference on one process or many (mpirun), synchronous or bounded-lag.
 *
 * Layout, as in the reference's distributed forward: embedding tables are model-parallel (each
 * process holds and looks up its own tables for the whole global batch), the MLPs are
 * data-parallel (process q runs the bottom MLP, the interaction and the top MLP for its slice
 * of every batch).  One alltoallv per batch moves the pooled vectors: p sends q the vectors of
 * p's tables for q's slice.  It goes through libbls, in one of two drivers:
 *   sync      MPI_Alltoallv per batch (libbls SYNC mode), as the reference does;
 *   bls:L     batch k is posted as soon as it is pooled, and batch k-L-1 is consumed
 *             (interaction + top MLP) before batch k is produced: up to L+1 batches in flight.
 * Predictions are never gathered per batch; they are gathered once at the end for the metrics.
 * Every driver computes the same bits: the engine is batch-invariant, and pooling and the top
 * MLP see the same inputs whatever the number of processes or the lag.
 *
 * Several drivers run in one invocation, interleaved over rounds (round r runs every driver
 * once, the order rotating), so their ratio comes from the same minutes of a noisy machine.
 * Scenarios (injected delays, hot tables, lookup bursts, a slower process) are functions of
 * seeds, process and batch, so every driver sees the same trace.
 */
#define _GNU_SOURCE
#include "bls.h"
#include "dlrm.h"
#include "ideal.h"
#include "measure.h"
#include "scenario.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DRV_SYNC, DRV_BLS };
#define MAX_DRIVERS 8

typedef struct {
    int kind, lag;
    char name[24];
} driver_t;

typedef struct {
    const char *bot, *top, *emb, *op;
    int d, itself;
    const char *weights;
    uint64_t seed;
    const char *data;
    int strict;
    int64_t samples; /* synthetic samples */
    dlrm_synth_t synth;
    const char *hot_spec, *pool_spec, *burst_spec;
    int batch;
    int64_t max_batches;
    const char *predictions, *json, *write_criteo;
    int threads, quiet;
    driver_t drivers[MAX_DRIVERS];
    int ndrivers;
    int rounds;
    int balanced;
    bls_delay_t delay;
    int busy;
    int hetero_rank;
    double hetero_factor;
    double timeout;
} opts_t;

static int rank, nprocs;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: bls-dlrm [options]                     (one process)\n"
        "       mpirun -np P bls-dlrm [options]        (P processes)\n"
        "DLRM inference: tables model-parallel, MLPs data-parallel, one alltoallv of pooled\n"
        "vectors per batch, synchronous or bounded-lag.  The model options are the reference's.\n\n"
        "Model:\n"
        "  --arch-mlp-bot S             bottom MLP widths, input first (default 13-512-256-64-16)\n"
        "  --arch-mlp-top S             top MLP widths after the interaction (default 512-256-1)\n"
        "  --arch-embedding-size S      rows per table (default 26 tables of 100000)\n"
        "  --arch-sparse-feature-size N embedding dimension d (default 16)\n"
        "  --arch-interaction-op OP     dot or cat (default dot)\n"
        "  --arch-interaction-itself    keep Z[i][i] in the dot interaction\n"
        "  --weights FILE               safetensors file with the reference's state_dict names\n"
        "                               (tools/convert_checkpoint.py makes one); default: random\n"
        "                               weights, each process building only its own tables\n"
        "  --seed N                     seed of the random weights (default 1)\n\n"
        "Data (default: synthetic):\n"
        "  --data FILE                  Criteo Kaggle train.txt format, streamed by every process\n"
        "                               (every field is checked, so all agree on skipped lines;\n"
        "                               each keeps its own tables' columns and its slice's rows)\n"
        "  --strict                     a malformed line is fatal (default: skipped and counted)\n"
        "  --synthetic-samples N        synthetic samples (default 65536)\n"
        "  --data-seed N                seed of the synthetic stream (default 7)\n"
        "  --zipf A                     synthetic indices follow a power law of exponent A\n"
        "                               (default 0: uniform)\n"
        "  --pooling K                  indices per bag (default 1)\n"
        "  --random-pooling             bags hold a uniform 1..K indices\n"
        "  --hot-tables LIST:A          tables in LIST (e.g. 0-6,9) use exponent A instead\n"
        "  --table-pooling LIST:K       tables in LIST have K indices per bag instead\n"
        "  --bursts PROB:F              in every batch, each table independently has F times\n"
        "                               its pooling with probability PROB (lookup work then\n"
        "                               varies per process and batch)\n"
        "  --write-criteo FILE          write the synthetic samples as a Criteo file and exit\n"
        "                               (pooling 1; reading it back gives the same inputs)\n\n"
        "Distribution:\n"
        "  --driver LIST                comma list of sync (MPI_Alltoallv per batch) and bls:L\n"
        "                               (bounded lag L; plain 'bls' takes --lag); several run\n"
        "                               interleaved and are compared (default sync)\n"
        "  --lag L                      lag of a plain 'bls' (default 4)\n"
        "  --rounds R                   rounds; each runs every driver once (default 1)\n"
        "  --placement P                contiguous (the reference's blocks: the first T mod P\n"
        "                               processes get one table more) or balanced (greedy, by\n"
        "                               rows x expected lookups per sample) (default contiguous)\n"
        "  --timeout SEC                a wait longer than this is an error naming the missing\n"
        "                               processes (bls driver; default 60)\n\n"
        "Scenarios (the same trace for every driver):\n"
        "  --delay SPEC                 per-process, per-batch delay: none | exp:MEAN_US |\n"
        "                               hiccup:PROB:US | straggler:RANK:US (default none)\n"
        "  --delay-seed N               seed of the delay trace (default 1)\n"
        "  --busy                       delays spin on the CPU instead of sleeping\n"
        "  --hetero RANK:F              process RANK computes F times slower (it idles F-1 times\n"
        "                               its compute time after each batch)\n\n"
        "Run:\n"
        "  --batch-size B               global samples per batch (default 128); process q gets\n"
        "                               samples [q*B/P, (q+1)*B/P) of each\n"
        "  --max-batches N              stop after N batches (default: all data)\n"
        "  --threads N                  threads per process (default 1): the engine's OpenMP\n"
        "                               threads share out each batch's chunks (an engine\n"
        "                               built without OpenMP runs one and says so)\n"
        "  --kernel NAME                the engine's Linear kernel: avx512, avx2 or generic (all\n"
        "                               give the same bits; default the fastest this CPU runs,\n"
        "                               or DLRM_KERNEL); 'list' prints those this CPU runs\n"
        "  --predictions FILE           write 'probability label' per sample, in input order\n"
        "                               (of the first driver)\n"
        "  --json FILE                  write every figure and the configuration as JSON\n"
        "  --quiet                      no progress lines\n"
        "  --help                       this text\n\n"
        "Output: per driver, ms per batch and samples/s (slowest process's loop), speedup over\n"
        "the first driver, batch latency p50/p99 (from a batch's start on a process to its\n"
        "predictions there, all processes), mean time per process waiting in the collective,\n"
        "the ideal model (bls-semantics) on the measured work: ideal time, efficiency = ideal /\n"
        "measured, bound = T_ideal(0) / T_ideal(L) on the first driver's work trace (the most\n"
        "lag L can give over it); accuracy, ROC AUC, log loss, and whether the\n"
        "predictions are bit-identical to the first driver's.\n");
}

/* A message from rank 0 only (every rank reached the same verdict), then exit 2. */
static int fail_all(const char *fmt, ...)
{
    if (rank == 0) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "bls-dlrm: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
    MPI_Finalize();
    exit(2);
}

/* An error on this process only: say which, end the job. */
static void fail_here(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bls-dlrm: process %d: ", rank);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    MPI_Abort(MPI_COMM_WORLD, 3);
    exit(3);
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

/* "0-6,9:1.2" -> flags[t] for the listed tables, and the value after the colon. */
static int parse_table_list(const char *spec, int T, unsigned char *flags, double *value)
{
    const char *colon = strrchr(spec, ':');
    char *end;
    if (!colon || colon == spec)
        return -1;
    *value = strtod(colon + 1, &end);
    if (*end || end == colon + 1)
        return -1;
    memset(flags, 0, (size_t)T);
    const char *p = spec;
    while (p < colon) {
        long a = strtol(p, &end, 10), b = a;
        if (end == p)
            return -1;
        p = end;
        if (*p == '-') {
            b = strtol(p + 1, &end, 10);
            if (end == p + 1)
                return -1;
            p = end;
        }
        if (a < 0 || b < a || b >= T)
            return -1;
        for (long t = a; t <= b; t++)
            flags[t] = 1;
        if (*p == ',')
            p++;
        else if (p != colon)
            return -1;
    }
    return 0;
}

static void parse(int argc, char **argv, opts_t *o, char *default_emb)
{
    char *p = default_emb;
    for (int t = 0; t < 26; t++)
        p += sprintf(p, "%s100000", t ? "-" : "");
    *o = (opts_t){.bot = "13-512-256-64-16", .top = "512-256-1", .emb = default_emb, .op = "dot",
                  .d = 16, .seed = 1, .samples = 65536, .batch = 128, .max_batches = -1,
                  .threads = 1, .rounds = 1, .hetero_rank = -1, .hetero_factor = 1,
                  .timeout = 60};
    o->synth.seed = 7;
    o->synth.pooling = 1;
    o->delay = (bls_delay_t){BLS_DELAY_NONE, 0, 0, 1};
    const char *drivers = "sync";
    int64_t lag = 4;
    enum { BOT = 256, TOP, EMB, D, OP, ITSELF, WEIGHTS, SEED, DATA, STRICT, SAMPLES, DSEED, ZIPF,
           POOL, RPOOL, BATCH, MAXB, THREADS, PRED, JSON, QUIET, HELP, WCRITEO, DRIVER, LAG,
           ROUNDS, PLACE, TIMEOUT, DELAY, DELAYSEED, BUSY, HETERO, HOT, TPOOL, BURSTS, KERNEL };
    static const struct option longopts[] = {
        {"arch-mlp-bot", 1, 0, BOT}, {"arch-mlp-top", 1, 0, TOP},
        {"arch-embedding-size", 1, 0, EMB}, {"arch-sparse-feature-size", 1, 0, D},
        {"arch-interaction-op", 1, 0, OP}, {"arch-interaction-itself", 0, 0, ITSELF},
        {"weights", 1, 0, WEIGHTS}, {"seed", 1, 0, SEED}, {"data", 1, 0, DATA},
        {"strict", 0, 0, STRICT}, {"synthetic-samples", 1, 0, SAMPLES}, {"data-seed", 1, 0, DSEED},
        {"zipf", 1, 0, ZIPF}, {"pooling", 1, 0, POOL}, {"random-pooling", 0, 0, RPOOL},
        {"batch-size", 1, 0, BATCH}, {"max-batches", 1, 0, MAXB}, {"threads", 1, 0, THREADS},
        {"predictions", 1, 0, PRED}, {"json", 1, 0, JSON}, {"quiet", 0, 0, QUIET},
        {"help", 0, 0, HELP}, {"write-criteo", 1, 0, WCRITEO}, {"driver", 1, 0, DRIVER},
        {"drivers", 1, 0, DRIVER}, {"lag", 1, 0, LAG}, {"rounds", 1, 0, ROUNDS},
        {"placement", 1, 0, PLACE}, {"timeout", 1, 0, TIMEOUT}, {"delay", 1, 0, DELAY},
        {"delay-seed", 1, 0, DELAYSEED}, {"busy", 0, 0, BUSY}, {"hetero", 1, 0, HETERO},
        {"hot-tables", 1, 0, HOT}, {"table-pooling", 1, 0, TPOOL}, {"bursts", 1, 0, BURSTS},
        {"kernel", 1, 0, KERNEL}, {0, 0, 0, 0}};
    int c;
    int64_t v;
    char err[256];
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
        case BUSY: o->busy = 1; break;
        case DRIVER: drivers = optarg; break;
        case HOT: o->hot_spec = optarg; break;
        case TPOOL: o->pool_spec = optarg; break;
        case BURSTS: o->burst_spec = optarg; break;
        case HELP:
            if (rank == 0)
                usage(stdout);
            MPI_Finalize();
            exit(0);
        case KERNEL:
            if (!strcmp(optarg, "list")) {
                const char *names[8];
                int n = dlrm_kernels(names, 8);
                for (int i = 0; rank == 0 && i < n; i++)
                    printf("%s\n", names[i]);
                MPI_Finalize();
                exit(0);
            }
            if (dlrm_set_kernel(optarg) != DLRM_OK)
                fail_all("--%s", dlrm_last_error()); /* "--kernel 'x': why" */
            break;
        case PLACE:
            if (strcmp(optarg, "contiguous") && strcmp(optarg, "balanced"))
                fail_all("--placement is contiguous or balanced, got '%s'", optarg);
            o->balanced = optarg[0] == 'b';
            break;
        case DELAY:
            if (bls_delay_parse(optarg, &o->delay, err, sizeof(err)) != 0)
                fail_all("--delay: %s", err);
            break;
        case HETERO:
            if (sscanf(optarg, "%d:%lf", &o->hetero_rank, &o->hetero_factor) != 2 ||
                o->hetero_rank < 0 || o->hetero_factor < 1)
                fail_all("--hetero takes RANK:FACTOR with FACTOR >= 1, got '%s'", optarg);
            break;
        case ZIPF: case TIMEOUT: {
            char *end;
            double x = strtod(optarg, &end);
            if (*end || end == optarg || x < 0)
                fail_all("--%s takes a number >= 0, got '%s'", c == ZIPF ? "zipf" : "timeout",
                         optarg);
            if (c == ZIPF)
                o->synth.zipf_alpha = x;
            else
                o->timeout = x;
            break;
        }
        case D: case SEED: case SAMPLES: case DSEED: case POOL: case BATCH: case MAXB:
        case THREADS: case LAG: case ROUNDS: case DELAYSEED:
            if (parse_int64(optarg, c == POOL || c == LAG || c == DELAYSEED ? 0 : 1, &v) != 0)
                fail_all("option %s needs a%s integer, got '%s'", argv[optind - 1],
                         c == POOL || c == LAG || c == DELAYSEED ? " non-negative" : " positive",
                         optarg);
            if (c == D) o->d = (int)v;
            else if (c == SEED) o->seed = (uint64_t)v;
            else if (c == SAMPLES) o->samples = v;
            else if (c == DSEED) o->synth.seed = (uint64_t)v;
            else if (c == POOL) o->synth.pooling = (int)v;
            else if (c == BATCH) o->batch = v > (1 << 22) ? -1 : (int)v;
            else if (c == MAXB) o->max_batches = v;
            else if (c == LAG) lag = v;
            else if (c == ROUNDS) o->rounds = (int)v;
            else if (c == DELAYSEED) o->delay.seed = (uint64_t)v;
            else o->threads = (int)v;
            break;
        default:
            fail_all("unknown or incomplete option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (optind < argc)
        fail_all("unexpected argument '%s' (see --help)", argv[optind]);
    if (o->batch < 0)
        fail_all("--batch-size is larger than 4194304");
    if (o->batch < nprocs)
        fail_all("--batch-size %d gives some of the %d processes no samples", o->batch, nprocs);
    if (lag > 1000000)
        fail_all("--lag %lld is too large", (long long)lag);
    if (o->hetero_rank >= nprocs)
        fail_all("--hetero names process %d of %d", o->hetero_rank, nprocs);
    if (o->delay.kind == BLS_DELAY_STRAGGLER && o->delay.a >= nprocs)
        fail_all("--delay straggler names process %d of %d", (int)o->delay.a, nprocs);
    char *list = strdup(drivers), *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->ndrivers == MAX_DRIVERS)
            fail_all("--driver: at most %d drivers", MAX_DRIVERS);
        driver_t *dr = &o->drivers[o->ndrivers++];
        char tail;
        if (!strcmp(t, "sync")) {
            dr->kind = DRV_SYNC;
        } else if (!strcmp(t, "bls")) {
            dr->kind = DRV_BLS;
            dr->lag = (int)lag;
        } else if (sscanf(t, "bls:%d%c", &dr->lag, &tail) == 1 && dr->lag >= 0 && dr->lag <= 1000000) {
            dr->kind = DRV_BLS;
        } else {
            fail_all("--driver: unknown driver '%s' (sync, bls, bls:L)", t);
        }
        if (dr->kind == DRV_SYNC)
            snprintf(dr->name, sizeof(dr->name), "sync");
        else
            snprintf(dr->name, sizeof(dr->name), "bls:%d", dr->lag);
    }
    free(list);
    if (o->ndrivers == 0)
        fail_all("--driver is empty");
}

/* ---- placement -------------------------------------------------------------------------- */

/* owner[t] for every table.  Contiguous: the reference's blocks.  Balanced: tables by
 * decreasing cost (rows x expected lookups per sample), each to the least loaded process. */
static void place_tables(const dlrm_config_t *cfg, const dlrm_synth_t *s, int use_synth,
                         int balanced, int P, int *owner)
{
    int T = cfg->n_tables;
    if (!balanced) {
        int base = T / P, extra = T % P, t = 0;
        for (int p = 0; p < P; p++)
            for (int i = 0; i < base + (p < extra); i++)
                owner[t++] = p;
        return;
    }
    double *cost = malloc(sizeof(double) * (size_t)T), *load = calloc((size_t)P, sizeof(double));
    int *order = malloc(sizeof(int) * (size_t)T);
    for (int t = 0; t < T; t++) {
        cost[t] = (double)cfg->rows[t] * (use_synth ? dlrm_synth_mean_bag(s, t) : 1.0);
        order[t] = t;
    }
    for (int i = 1; i < T; i++) /* insertion sort, stable: by cost descending, then table id */
        for (int j = i; j > 0 && cost[order[j]] > cost[order[j - 1]]; j--) {
            int x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    for (int i = 0; i < T; i++) {
        int best = 0;
        for (int p = 1; p < P; p++)
            if (load[p] < load[best])
                best = p;
        owner[order[i]] = best;
        load[best] += cost[order[i]];
    }
    free(cost);
    free(load);
    free(order);
}

/* ---- input ------------------------------------------------------------------------------ */

static int64_t slice_lo(int q, int64_t n)
{
    return (int64_t)q * n / nprocs;
}

/* The batch source of one process: the whole batch's indices for its own tables, the dense
 * rows and labels of its slice. */
typedef struct {
    const opts_t *o;
    const dlrm_config_t *cfg;
    const int *mine;
    int n_mine;
    dlrm_criteo_t *reader;
    dlrm_samples_t s; /* file batches (all columns are checked; ours are used) */
    int64_t **idx, **off; /* [T], our tables: synthetic indices; bag offsets (a file's bags
                             hold one index each, so its offsets are 0..B, filled once) */
    float *dense, *labels; /* synthetic slice */
    int64_t produced;
} source_t;

static void source_open(source_t *src, const opts_t *o, const dlrm_config_t *cfg, const int *mine,
                        int n_mine)
{
    memset(src, 0, sizeof(*src));
    src->o = o;
    src->cfg = cfg;
    src->mine = mine;
    src->n_mine = n_mine;
    int B = o->batch, T = cfg->n_tables, m_den = cfg->bot[0];
    src->idx = calloc((size_t)T, sizeof(int64_t *));
    src->off = calloc((size_t)T, sizeof(int64_t *));
    for (int i = 0; i < n_mine; i++) {
        int t = mine[i];
        if (!o->data)
            src->idx[t] = malloc(sizeof(int64_t) *
                                 ((size_t)B * (size_t)dlrm_synth_max_bag(&o->synth, t) + 1));
        src->off[t] = malloc(sizeof(int64_t) * ((size_t)B + 1));
        if ((!o->data && !src->idx[t]) || !src->off[t])
            fail_here("out of memory for the indices of table %d", t);
        for (int b = 0; o->data && b <= B; b++)
            src->off[t][b] = b;
    }
    if (o->data) {
        src->s.labels = malloc(sizeof(float) * (size_t)B);
        src->s.dense = malloc(sizeof(float) * (size_t)B * m_den);
        src->s.indices = calloc((size_t)T, sizeof(int64_t *));
        for (int t = 0; t < T; t++)
            src->s.indices[t] = malloc(sizeof(int64_t) * (size_t)B);
    } else {
        src->dense = malloc(sizeof(float) * (size_t)B * m_den);
        src->labels = malloc(sizeof(float) * (size_t)B);
    }
}

/* Opens the file for a run; every process checks, and all fail alike. */
static dlrm_status_t source_rewind(source_t *src)
{
    src->produced = 0;
    dlrm_criteo_close(src->reader);
    src->reader = NULL;
    if (!src->o->data)
        return DLRM_OK;
    return dlrm_criteo_open(src->o->data, src->cfg, src->o->strict, &src->reader);
}

/* Batch k: *n_p global samples (0 at the end), the embedding input for our tables in *emb,
 * our slice's dense rows and labels. */
static dlrm_status_t source_next(source_t *src, int64_t k, int *n_p, dlrm_batch_t *emb,
                                 const float **dense_p, const float **labels_p)
{
    const opts_t *o = src->o;
    int B = o->batch, m_den = src->cfg->bot[0];
    *n_p = 0;
    if (o->max_batches >= 0 && k >= o->max_batches)
        return DLRM_OK;
    int n;
    if (src->reader) {
        dlrm_status_t st = dlrm_criteo_read(src->reader, B, &src->s, &n);
        if (st != DLRM_OK)
            return st;
        int64_t lo = slice_lo(rank, n);
        *dense_p = src->s.dense + lo * m_den;
        *labels_p = src->s.labels + lo;
    } else {
        n = (int)(o->samples - src->produced < B ? o->samples - src->produced : B);
        int64_t base = src->produced, lo = slice_lo(rank, n), hi = slice_lo(rank + 1, n);
        for (int64_t b = lo; b < hi; b++) {
            src->labels[b - lo] = dlrm_synth_label(&o->synth, base + b);
            dlrm_synth_dense(&o->synth, base + b, m_den, src->dense + (b - lo) * m_den);
        }
        for (int i = 0; i < src->n_mine; i++) {
            int t = src->mine[i];
            int64_t j = 0;
            for (int b = 0; b < n; b++) {
                src->off[t][b] = j;
                int bag = dlrm_synth_bag(&o->synth, base + b, t);
                for (int q = 0; q < bag; q++)
                    src->idx[t][j++] = dlrm_synth_index(&o->synth, src->cfg->rows[t], base + b, t, q);
            }
            src->off[t][n] = j;
        }
        *dense_p = src->dense;
        *labels_p = src->labels;
    }
    src->produced += n;
    *n_p = n;
    *emb = (dlrm_batch_t){n, NULL, (const int64_t *const *)(src->reader ? src->s.indices : src->idx),
                          (const int64_t *const *)src->off, NULL};
    return DLRM_OK;
}

static void source_close(source_t *src)
{
    int T = src->cfg->n_tables;
    for (int t = 0; t < T; t++) {
        free(src->idx[t]);
        free(src->off[t]);
        if (src->s.indices)
            free(src->s.indices[t]);
    }
    free(src->idx);
    free(src->off);
    free(src->s.indices);
    free(src->s.labels);
    free(src->s.dense);
    free(src->dense);
    free(src->labels);
    dlrm_criteo_close(src->reader);
}

/* ---- one run of one driver -------------------------------------------------------------- */

typedef struct {
    int64_t batches, samples;   /* global */
    int64_t *batch_n;           /* [batches] global size of each batch */
    double loop;                /* this process's loop time */
    double *lat, *work;         /* [batches] this process */
    double wait;                /* in the collective */
    double compute;             /* in the engine: bottom MLP, pooling, interaction, top MLP */
    double progress_cpu;
    float *pred, *labels;       /* this process's slices, in batch order */
    int64_t n_local;
    int64_t lines, skipped;
    char input_error[512];      /* a data error every process met at the same batch */
    size_t buffer_bytes;
} run_t;

typedef struct {
    float *send, *recv, *xbot, *labels;
    int n;          /* global size of the batch in this slot */
    int64_t k;
    double start;
} slot_t;

typedef struct {
    const opts_t *o;
    const dlrm_config_t *cfg;
    const dlrm_model_t *model;
    const int *owner;       /* [T] */
    const int *mine;
    int n_mine;
    int *tabs_of;           /* tables of process p at tabs_of[first[p] .. first[p+1]) */
    int *first;             /* [P + 1] */
} ctx_t;

static void grow(run_t *r, int64_t k, int64_t need_local, int64_t *cap_b, int64_t *cap_l)
{
    if (k >= *cap_b) {
        *cap_b = *cap_b * 2 + 64;
        r->batch_n = realloc(r->batch_n, sizeof(int64_t) * (size_t)*cap_b);
        r->lat = realloc(r->lat, sizeof(double) * (size_t)*cap_b);
        r->work = realloc(r->work, sizeof(double) * (size_t)*cap_b);
    }
    if (need_local > *cap_l) {
        while (*cap_l < need_local)
            *cap_l = *cap_l * 2 + 1024;
        r->pred = realloc(r->pred, sizeof(float) * (size_t)*cap_l);
        r->labels = realloc(r->labels, sizeof(float) * (size_t)*cap_l);
    }
    if (!r->batch_n || !r->lat || !r->work || !r->pred || !r->labels)
        fail_here("out of memory for the per-batch records");
}

/* Interaction and top MLP of the batch in a slot; predictions land at their local place. */
static void consume(const ctx_t *c, slot_t *sl, float *pooled, run_t *r, int64_t local_off)
{
    int T = c->cfg->n_tables, d = c->cfg->d;
    int64_t lo = slice_lo(rank, sl->n), Bs = slice_lo(rank + 1, sl->n) - lo;
    double t0 = bench_now();
    const float *src = sl->recv;
    for (int p = 0; p < nprocs; p++) {
        int np = c->first[p + 1] - c->first[p];
        const int *tabs = c->tabs_of + c->first[p];
        for (int64_t b = 0; b < Bs; b++)
            for (int j = 0; j < np; j++)
                memcpy(pooled + ((size_t)b * T + (size_t)tabs[j]) * d,
                       src + ((size_t)b * np + (size_t)j) * d, sizeof(float) * (size_t)d);
        src += (size_t)Bs * np * d;
    }
    if (dlrm_interact_top(c->model, (int)Bs, sl->xbot, pooled, r->pred + local_off) != DLRM_OK)
        fail_here("batch %lld: %s", (long long)sl->k, dlrm_last_error());
    memcpy(r->labels + local_off, sl->labels, sizeof(float) * (size_t)Bs);
    double t1 = bench_now();
    r->compute += t1 - t0;
    r->lat[sl->k] = t1 - sl->start;
}

static void bls_fail(bls_status_t st, const char *what, int64_t k)
{
    fail_here("%s of batch %lld failed: %s: %s", what, (long long)k, bls_strerror(st),
              bls_last_error());
}

static void run_driver(const ctx_t *c, const driver_t *dr, source_t *src, int round,
                       const char *label, run_t *r)
{
    const opts_t *o = c->o;
    const dlrm_config_t *cfg = c->cfg;
    int P = nprocs, T = cfg->n_tables, d = cfg->d, B = o->batch;
    int S = dr->kind == DRV_BLS ? dr->lag + 1 : 1;
    size_t Bs_max = (size_t)(slice_lo(rank + 1, B) - slice_lo(rank, B) + 1);
    size_t Bs_any = (size_t)B / (size_t)P + 1; /* largest slice of any process */
    memset(r, 0, sizeof(*r));
    slot_t *slots = calloc((size_t)S, sizeof(slot_t));
    for (int s = 0; s < S; s++) {
        slots[s].send = malloc(sizeof(float) * ((size_t)B * c->n_mine * d + 1));
        slots[s].recv = malloc(sizeof(float) * (Bs_max * (size_t)T * d + 1));
        slots[s].xbot = malloc(sizeof(float) * (Bs_max * (size_t)d + 1));
        slots[s].labels = malloc(sizeof(float) * Bs_max);
        slots[s].k = -1;
        if (!slots[s].send || !slots[s].recv || !slots[s].xbot || !slots[s].labels)
            fail_here("out of memory for %d batch buffers", S);
    }
    float *pooled = malloc(sizeof(float) * (Bs_max * (size_t)T * d + 1));
    size_t *sc = calloc((size_t)P, sizeof(size_t)), *sd = calloc((size_t)P, sizeof(size_t));
    size_t *rc = calloc((size_t)P, sizeof(size_t)), *rd = calloc((size_t)P, sizeof(size_t));

    bls_config_t bc;
    bls_config_init(&bc);
    bc.mode = dr->kind == DRV_BLS ? BLS_MODE_BLS : BLS_MODE_SYNC;
    bc.lag = dr->kind == DRV_BLS ? dr->lag : 0;
    bc.datatype = MPI_FLOAT;
    bc.max_block = Bs_any * (size_t)c->n_mine * d;
    bc.timeout = o->timeout;
    bls_comm_t *comm;
    bls_status_t st = bls_comm_create(MPI_COMM_WORLD, &bc, &comm);
    if (st != BLS_OK)
        fail_here("cannot create the %s communicator: %s", dr->name, bls_last_error());
    if (source_rewind(src) != DLRM_OK) /* opened at start-up already: this cannot fail alone */
        fail_here("cannot reopen the data: %s", dlrm_last_error());

    int64_t cap_b = 0, cap_l = 0, slice_full = slice_lo(rank + 1, B) - slice_lo(rank, B);
    int64_t consumed_upto = 0; /* batches < this are consumed, in order */
    int64_t posted = 0;
    int ended = 0;
    double in_lib = 0, t_report = bench_now();
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = bench_now();
    for (int64_t k = 0; !ended; k++) {
        double it0 = bench_now(), lib0 = in_lib;
        /* The bound: batch k-L-1 (its slot is k's) must be consumed before k is produced. */
        if (k - S >= consumed_upto) {
            for (int64_t j = consumed_upto; j <= k - S; j++) {
                slot_t *sl = &slots[j % S];
                double w0 = bench_now();
                if ((st = bls_wait(comm, j, NULL)) != BLS_OK)
                    bls_fail(st, "waiting for the exchange", j);
                in_lib += bench_now() - w0;
                consume(c, sl, pooled, r, j * slice_full);
            }
            consumed_upto = k - S + 1;
        }
        slot_t *sl = &slots[k % S];
        sl->start = bench_now();
        int n;
        dlrm_batch_t emb;
        const float *dense, *labels;
        dlrm_status_t ds = source_next(src, k, &n, &emb, &dense, &labels);
        if (ds != DLRM_OK) { /* every process reads the same lines: all stop at batch k */
            snprintf(r->input_error, sizeof(r->input_error), "%s", dlrm_last_error());
            n = 0;
        }
        if (n == 0) {
            ended = 1;
            break;
        }
        grow(r, k, (k + 1) * slice_full, &cap_b, &cap_l);
        r->batch_n[k] = n;
        int64_t lo = slice_lo(rank, n), Bs = slice_lo(rank + 1, n) - lo;
        sl->n = n;
        sl->k = k;
        memcpy(sl->labels, labels, sizeof(float) * (size_t)Bs);
        double c0 = bench_now();
        if (dlrm_bottom(c->model, (int)Bs, dense, sl->xbot) != DLRM_OK ||
            dlrm_embed(c->model, &emb, c->mine, c->n_mine, sl->send) != DLRM_OK)
            fail_here("batch %lld: %s", (long long)k, dlrm_last_error());
        double compute = bench_now() - c0;
        r->compute += compute;
        if (rank == o->hetero_rank)
            bls_spend_us(1e6 * compute * (o->hetero_factor - 1), 0);
        bls_spend_us(bls_delay_us(&o->delay, rank, (long)k), o->busy);
        for (int q = 0; q < P; q++) {
            int64_t qlo = slice_lo(q, n), qn = slice_lo(q + 1, n) - qlo;
            sc[q] = (size_t)qn * c->n_mine * d;
            sd[q] = (size_t)qlo * c->n_mine * d;
        }
        size_t off = 0;
        for (int p = 0; p < P; p++) {
            rc[p] = (size_t)Bs * (size_t)(c->first[p + 1] - c->first[p]) * d;
            rd[p] = off;
            off += rc[p];
        }
        bls_iter_t it;
        double p0 = bench_now();
        if ((st = bls_post(comm, sl->send, sc, sd, sl->recv, rc, rd, &it)) != BLS_OK)
            bls_fail(st, "posting the exchange", k);
        posted++;
        if (dr->kind == DRV_SYNC) {
            if ((st = bls_wait(comm, it, NULL)) != BLS_OK)
                bls_fail(st, "waiting for the exchange", k);
        }
        in_lib += bench_now() - p0;
        if (dr->kind == DRV_SYNC) {
            consume(c, sl, pooled, r, k * slice_full);
            consumed_upto = k + 1;
        } else { /* consume whatever completed, oldest first, without waiting */
            while (consumed_upto <= k) {
                int flag = 0;
                double q0 = bench_now();
                if ((st = bls_test(comm, consumed_upto, &flag, NULL)) != BLS_OK)
                    bls_fail(st, "testing the exchange", consumed_upto);
                in_lib += bench_now() - q0;
                if (!flag)
                    break;
                consume(c, &slots[consumed_upto % S], pooled, r, consumed_upto * slice_full);
                consumed_upto++;
            }
        }
        r->work[k] = (bench_now() - it0) - (in_lib - lib0);
        r->batches = k + 1;
        r->samples += n;
        if (n < B)
            ended = 1;
        if (!o->quiet && rank == 0 && bench_now() - t_report > 2.0) {
            t_report = bench_now();
            fprintf(stderr, "bls-dlrm: %s%s round %d: %lld batches, %lld samples, %.0f samples/s\n",
                    label, dr->name, round + 1, (long long)r->batches, (long long)r->samples,
                    (double)r->samples / (t_report - t0));
        }
    }
    for (; consumed_upto < posted; consumed_upto++) {
        double w0 = bench_now();
        if ((st = bls_wait(comm, consumed_upto, NULL)) != BLS_OK)
            bls_fail(st, "waiting for the exchange", consumed_upto);
        in_lib += bench_now() - w0;
        consume(c, &slots[consumed_upto % S], pooled, r, consumed_upto * slice_full);
    }
    if ((st = bls_finish(comm)) != BLS_OK)
        fail_here("ending the %s run: %s", dr->name, bls_last_error());
    r->loop = bench_now() - t0;
    bls_stats_t stats;
    bls_comm_stats(comm, &stats);
    r->wait = stats.wait_seconds + stats.post_wait_seconds;
    r->progress_cpu = stats.progress_cpu_seconds;
    r->buffer_bytes = stats.buffer_bytes;
    bls_comm_destroy(comm);
    r->n_local = 0;
    for (int64_t k = 0; k < r->batches; k++)
        r->n_local += slice_lo(rank + 1, r->batch_n[k]) - slice_lo(rank, r->batch_n[k]);
    if (src->reader) {
        r->lines = dlrm_criteo_lines(src->reader);
        r->skipped = dlrm_criteo_skipped(src->reader);
    }
    for (int s = 0; s < S; s++) {
        free(slots[s].send);
        free(slots[s].recv);
        free(slots[s].xbot);
        free(slots[s].labels);
    }
    free(slots);
    free(pooled);
    free(sc);
    free(sd);
    free(rc);
    free(rd);
}

static void run_free(run_t *r)
{
    free(r->batch_n);
    free(r->lat);
    free(r->work);
    free(r->pred);
    free(r->labels);
    memset(r, 0, sizeof(*r));
}

/* ---- results ------------------------------------------------------------------------------ */

typedef struct { /* one driver, summed over rounds (rank 0) */
    double loop, compute, ideal, ideal0, ideal_inf, wait, progress_cpu;
    double ideal_at[MAX_DRIVERS]; /* this trace's ideal time at every driver's lag */
    double *lat;
    size_t nlat;
    int64_t batches, samples;
    float *pred, *labels; /* global order, from the last round */
    dlrm_metrics_t m;
    int identical; /* to the first driver's predictions */
} summary_t;

/* Gathers one run's figures to rank 0 and adds them to *sum. */
static void collect(const run_t *r, const driver_t *dr, const opts_t *o, summary_t *sum)
{
    int P = nprocs;
    int64_t K = r->batches;
    double loop_max, wait_sum, prog_sum, compute_max;
    MPI_Reduce(&r->loop, &loop_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    MPI_Reduce(&r->compute, &compute_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    MPI_Reduce(&r->wait, &wait_sum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(&r->progress_cpu, &prog_sum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    double *work = rank == 0 ? malloc(sizeof(double) * ((size_t)P * (size_t)K + 1)) : NULL;
    double *lat = rank == 0 ? malloc(sizeof(double) * ((size_t)P * (size_t)K + 1)) : NULL;
    MPI_Gather(r->work, (int)K, MPI_DOUBLE, work, (int)K, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Gather(r->lat, (int)K, MPI_DOUBLE, lat, (int)K, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    int nl = (int)r->n_local, *counts = NULL, *displs = NULL;
    float *pred = NULL, *lab = NULL;
    if (rank == 0) {
        counts = malloc(sizeof(int) * (size_t)P);
        displs = malloc(sizeof(int) * (size_t)P);
    }
    MPI_Gather(&nl, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        int64_t tot = 0;
        for (int p = 0; p < P; p++) {
            displs[p] = (int)tot;
            tot += counts[p];
        }
        pred = malloc(sizeof(float) * ((size_t)tot + 1));
        lab = malloc(sizeof(float) * ((size_t)tot + 1));
    }
    MPI_Gatherv(r->pred, nl, MPI_FLOAT, pred, counts, displs, MPI_FLOAT, 0, MPI_COMM_WORLD);
    MPI_Gatherv(r->labels, nl, MPI_FLOAT, lab, counts, displs, MPI_FLOAT, 0, MPI_COMM_WORLD);
    if (rank != 0)
        return;
    double *scratch = malloc(sizeof(double) * ((size_t)P + (size_t)K + 1));
    sum->loop += loop_max;
    sum->compute += compute_max;
    sum->wait += wait_sum / P;
    sum->progress_cpu += prog_sum / P;
    sum->ideal += bls_ideal_time(work, P, (int)K, dr->kind == DRV_BLS ? dr->lag : 0, scratch);
    sum->ideal0 += bls_ideal_time(work, P, (int)K, 0, scratch);
    sum->ideal_inf += bls_ideal_time(work, P, (int)K, (int)K, scratch);
    for (int i = 0; i < o->ndrivers; i++)
        sum->ideal_at[i] += bls_ideal_time(work, P, (int)K,
                                           o->drivers[i].kind == DRV_BLS ? o->drivers[i].lag : 0,
                                           scratch);
    sum->lat = realloc(sum->lat, sizeof(double) * (sum->nlat + (size_t)P * (size_t)K + 1));
    memcpy(sum->lat + sum->nlat, lat, sizeof(double) * (size_t)P * (size_t)K);
    sum->nlat += (size_t)P * (size_t)K;
    sum->batches = K;
    sum->samples = r->samples;
    /* Back to input order: process p's slice of batch k follows its slices of batches < k. */
    free(sum->pred);
    free(sum->labels);
    sum->pred = malloc(sizeof(float) * ((size_t)r->samples + 1));
    sum->labels = malloc(sizeof(float) * ((size_t)r->samples + 1));
    int64_t *at = calloc((size_t)P, sizeof(int64_t)), g = 0;
    for (int64_t k = 0; k < K; k++) {
        int64_t n = r->batch_n[k];
        for (int p = 0; p < P; p++) {
            int64_t cnt = slice_lo(p + 1, n) - slice_lo(p, n);
            memcpy(sum->pred + g, pred + displs[p] + at[p], sizeof(float) * (size_t)cnt);
            memcpy(sum->labels + g, lab + displs[p] + at[p], sizeof(float) * (size_t)cnt);
            at[p] += cnt;
            g += cnt;
        }
    }
    free(at);
    free(scratch);
    free(work);
    free(lat);
    free(counts);
    free(displs);
    free(pred);
    free(lab);
}

static double mib(double bytes)
{
    return bytes / 1048576.0;
}

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
    int P = nprocs;
    opts_t o;
    char default_emb[26 * 8];
    parse(argc, argv, &o, default_emb);
    if (dlrm_set_threads(o.threads) != o.threads && rank == 0)
        fprintf(stderr, "bls-dlrm: --threads %d: this engine was built without OpenMP; one thread "
                        "per process\n", o.threads);
    for (int i = 0; i < o.ndrivers; i++)
        if (o.drivers[i].kind == DRV_BLS && provided < MPI_THREAD_MULTIPLE)
            fail_all("the bls driver needs MPI_THREAD_MULTIPLE; this MPI provides level %d",
                     provided);
    dlrm_config_t cfg;
    if (dlrm_config_parse(o.bot, o.top, o.emb, o.d, o.op, o.itself, &cfg) != DLRM_OK)
        fail_all("bad model configuration: %s", dlrm_last_error());
    int T = cfg.n_tables;
    unsigned char *flags = malloc((size_t)T);
    double *alpha = NULL;
    int *tpool = NULL;
    double x;
    if (o.hot_spec) {
        if (parse_table_list(o.hot_spec, T, flags, &x) != 0 || x < 0)
            fail_all("--hot-tables takes LIST:EXPONENT with tables in 0..%d (e.g. 0-6,9:1.2), "
                     "got '%s'", T - 1, o.hot_spec);
        alpha = malloc(sizeof(double) * (size_t)T);
        for (int t = 0; t < T; t++)
            alpha[t] = flags[t] ? x : o.synth.zipf_alpha;
        o.synth.table_alpha = alpha;
    }
    if (o.pool_spec) {
        if (parse_table_list(o.pool_spec, T, flags, &x) != 0 || x < 0 || x != floor(x) || x > 1e6)
            fail_all("--table-pooling takes LIST:K with tables in 0..%d and K >= 0 (e.g. "
                     "0-6:4), got '%s'", T - 1, o.pool_spec);
        tpool = malloc(sizeof(int) * (size_t)T);
        for (int t = 0; t < T; t++)
            tpool[t] = flags[t] ? (int)x : o.synth.pooling;
        o.synth.table_pooling = tpool;
    }
    if (o.burst_spec) {
        char tail;
        if (sscanf(o.burst_spec, "%lf:%d%c", &o.synth.burst_prob, &o.synth.burst_factor, &tail) != 2 ||
            o.synth.burst_prob < 0 || o.synth.burst_prob > 1 || o.synth.burst_factor < 1 ||
            o.synth.burst_factor > 100000)
            fail_all("--bursts takes PROB:FACTOR (0 <= PROB <= 1, FACTOR >= 1), got '%s'",
                     o.burst_spec);
        o.synth.burst_len = o.batch;
    }
    if (o.write_criteo) {
        int ok = 1;
        if (rank == 0 && dlrm_synth_write_criteo(&o.synth, &cfg, o.samples, o.write_criteo) != DLRM_OK)
            ok = 0;
        if (rank == 0 && !ok)
            fprintf(stderr, "bls-dlrm: cannot write the Criteo file: %s\n", dlrm_last_error());
        else if (rank == 0)
            printf("wrote %lld synthetic samples to %s\n", (long long)o.samples, o.write_criteo);
        MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
        MPI_Finalize();
        return ok ? 0 : 2;
    }
    if (o.data && (o.hot_spec || o.pool_spec || o.burst_spec || o.synth.zipf_alpha > 0 ||
                   o.synth.pooling != 1 || o.synth.random_pooling))
        fail_all("--zipf, --pooling, --random-pooling, --hot-tables, --table-pooling and "
                 "--bursts shape synthetic data; they do not apply to --data");

    int *owner = malloc(sizeof(int) * (size_t)T), *first = calloc((size_t)P + 1, sizeof(int));
    int *tabs_of = malloc(sizeof(int) * (size_t)T);
    place_tables(&cfg, &o.synth, !o.data, o.balanced, P, owner);
    for (int t = 0; t < T; t++)
        first[owner[t] + 1]++;
    for (int p = 0; p < P; p++)
        first[p + 1] += first[p];
    int *fill = calloc((size_t)P, sizeof(int));
    for (int t = 0; t < T; t++) /* each process's tables in increasing order */
        tabs_of[first[owner[t]] + fill[owner[t]]++] = t;
    free(fill);
    const int *mine = tabs_of + first[rank];
    int n_mine = first[rank + 1] - first[rank];

    /* Start-up checks on every process; the first failing process's message is printed. */
    double t0 = bench_now();
    dlrm_model_t *model = NULL;
    dlrm_status_t st = o.weights ? dlrm_model_load(&cfg, o.weights, mine, n_mine, &model)
                                 : dlrm_model_init_random(&cfg, o.seed, mine, n_mine, &model);
    char msg[600] = "";
    if (st != DLRM_OK)
        snprintf(msg, sizeof(msg), "%s: %s",
                 o.weights ? "cannot load the weights" : "cannot build the model", dlrm_last_error());
    source_t src;
    source_open(&src, &o, &cfg, mine, n_mine);
    if (!msg[0] && source_rewind(&src) != DLRM_OK)
        snprintf(msg, sizeof(msg), "cannot read the data: %s", dlrm_last_error());
    FILE *pf = NULL;
    if (!msg[0] && rank == 0 && o.predictions && !(pf = fopen(o.predictions, "w")))
        snprintf(msg, sizeof(msg), "cannot write the predictions file %s: %s", o.predictions,
                 strerror(errno));
    int bad = msg[0] ? rank : P, first_bad;
    MPI_Allreduce(&bad, &first_bad, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first_bad < P) {
        if (rank == first_bad)
            fprintf(stderr, "bls-dlrm: %s%s\n", msg, P > 1 && rank != 0 ? " (on this process)" : "");
        MPI_Finalize();
        return 2;
    }
    double table_bytes = 0;
    for (int i = 0; i < n_mine; i++)
        table_bytes += (double)cfg.rows[mine[i]] * cfg.d * sizeof(float);
    double build_s = bench_now() - t0, build_max;
    MPI_Reduce(&build_s, &build_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (!o.quiet && rank == 0) {
        fprintf(stderr, "bls-dlrm: %d process%s, model ready in %.2f s (%d tables, d = %d, %s "
                "interaction, %s placement: tables per process", P, P > 1 ? "es" : "", build_max,
                T, cfg.d, o.op, o.balanced ? "balanced" : "contiguous");
        for (int p = 0; p < P; p++)
            fprintf(stderr, "%s%d", p ? "," : " ", first[p + 1] - first[p]);
        fprintf(stderr, ")\n");
    }

    ctx_t ctx = {&o, &cfg, model, owner, mine, n_mine, tabs_of, first};
    summary_t *sum = calloc((size_t)o.ndrivers, sizeof(summary_t));
    run_t run;
    char input_error[512] = "";
    int64_t lines = 0, skipped = 0;
    const char *last_skip = NULL;
    for (int round = 0; round < o.rounds && !input_error[0]; round++)
        for (int i = 0; i < o.ndrivers && !input_error[0]; i++) {
            int di = (i + round) % o.ndrivers;
            run_driver(&ctx, &o.drivers[di], &src, round, "", &run);
            if (run.input_error[0]) {
                snprintf(input_error, sizeof(input_error), "%s", run.input_error);
                run_free(&run);
                break;
            }
            lines = run.lines;
            skipped = run.skipped;
            if (src.reader)
                last_skip = dlrm_criteo_last_skip(src.reader);
            collect(&run, &o.drivers[di], &o, &sum[di]);
            run_free(&run);
        }
    if (input_error[0])
        fail_all("bad input: %s", input_error);

    long rss = bench_peak_rss_kib(), *rss_all = rank == 0 ? malloc(sizeof(long) * (size_t)P) : NULL;
    double *tb_all = rank == 0 ? malloc(sizeof(double) * (size_t)P) : NULL;
    MPI_Gather(&rss, 1, MPI_LONG, rss_all, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    MPI_Gather(&table_bytes, 1, MPI_DOUBLE, tb_all, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    char kern[16] = {0}, *kern_all = rank == 0 ? calloc((size_t)P, sizeof(kern)) : NULL;
    snprintf(kern, sizeof(kern), "%s", dlrm_kernel()); /* hosts may differ: ask every process */
    MPI_Gather(kern, sizeof(kern), MPI_CHAR, kern_all, sizeof(kern), MPI_CHAR, 0, MPI_COMM_WORLD);
    int rc = 0;
    if (rank == 0) {
        summary_t *s0 = &sum[0];
        if (s0->samples == 0) {
            fprintf(stderr, "bls-dlrm: no samples were read%s%s\n", last_skip ? ": " : "",
                    last_skip ? last_skip : "");
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
        for (int i = 0; i < o.ndrivers; i++) {
            summary_t *s = &sum[i];
            if (dlrm_metrics(s->pred, s->labels, s->samples, &s->m) != DLRM_OK && !isnan(s->m.auc)) {
                fprintf(stderr, "bls-dlrm: metrics: %s\n", dlrm_last_error());
                rc = 2;
            }
            s->identical = s->samples == s0->samples &&
                           memcmp(s->pred, s0->pred, sizeof(float) * (size_t)s->samples) == 0;
            if (!s->identical) {
                fprintf(stderr, "bls-dlrm: driver %s's predictions differ from %s's\n",
                        o.drivers[i].name, o.drivers[0].name);
                rc = 1;
            }
            bench_sort(s->lat, s->nlat);
        }
        for (int64_t g = 0; pf && g < s0->samples; g++)
            fprintf(pf, "%.9g %d\n", s0->pred[g], (int)s0->labels[g]);
        if (pf && fclose(pf) != 0) {
            fprintf(stderr, "bls-dlrm: cannot write the predictions file: %s\n", strerror(errno));
            rc = 2;
        }
        int64_t want = o.max_batches;
        printf("samples      %lld in %lld batches of %d%s on %d process%s\n", (long long)s0->samples,
               (long long)s0->batches, o.batch, o.data ? "" : " (synthetic)", P, P > 1 ? "es" : "");
        if (o.data)
            printf("lines        %lld read, %lld malformed skipped%s%s\n", (long long)lines,
                   (long long)skipped, skipped ? "; last: " : "", skipped && last_skip ? last_skip : "");
        if (want >= 0 && s0->batches < want)
            printf("note         the data ended after %lld of the %lld batches asked for\n",
                   (long long)s0->batches, (long long)want);
        char auc[32] = "undefined (one class)";
        if (!isnan(s0->m.auc))
            snprintf(auc, sizeof(auc), "%.6f", s0->m.auc);
        printf("accuracy     %.6f\n", s0->m.accuracy);
        printf("roc auc      %s\n", auc);
        printf("log loss     %.6f\n", s0->m.logloss);
        printf("latency      p50 %.3f ms, p99 %.3f ms per batch (%s)\n", 1e3 * bench_percentile(s0->lat, s0->nlat, 0.5),
               1e3 * bench_percentile(s0->lat, s0->nlat, 0.99), o.drivers[0].name);
        printf("throughput   %.0f samples/s (%s); %.0f samples/s in the engine alone (forward "
               "pass of the busiest process)\n", (double)s0->samples * o.rounds / s0->loop,
               o.drivers[0].name, (double)s0->samples * o.rounds / s0->compute);
        printf("memory       peak RSS per process (MiB):");
        for (int p = 0; p < P; p++)
            printf(" %.0f", rss_all[p] / 1024.0);
        printf("; tables held (MiB):");
        for (int p = 0; p < P; p++)
            printf(" %.0f", mib(tb_all[p]));
        printf("\nkernel      ");
        int same = 1;
        for (int p = 1; p < P; p++)
            same &= strcmp(kern_all, kern_all + sizeof(kern) * p) == 0;
        for (int p = 0; p < (same ? 1 : P); p++)
            printf(" %s", kern_all + sizeof(kern) * p);
        printf(same ? " (%s)\n\n" : " (per process; all give the same bits)\n\n",
               P > 1 ? "every process" : "the engine's Linear layers");
        printf("%-10s %9s %10s %8s %8s %8s %8s %8s %6s %6s %10s %9s\n", "driver", "ms/batch",
               "samples/s", "speedup", "p50 ms", "p99 ms", "wait s", "ideal s", "eff", "bound",
               "auc", "identical");
        for (int i = 0; i < o.ndrivers; i++) {
            summary_t *s = &sum[i];
            double ms_b = 1e3 * s->loop / (double)(s->batches * o.rounds);
            printf("%-10s %9.3f %10.0f %8.3f %8.3f %8.3f %8.3f %8.3f %6.3f %6.3f %10.6f %9s\n",
                   o.drivers[i].name, ms_b, (double)s->samples * o.rounds / s->loop,
                   s0->loop / s->loop, 1e3 * bench_percentile(s->lat, s->nlat, 0.5),
                   1e3 * bench_percentile(s->lat, s->nlat, 0.99), s->wait / o.rounds, s->ideal / o.rounds,
                   s->ideal / s->loop, s0->ideal0 / s0->ideal_at[i], s->m.auc,
                   s->identical ? "yes" : "NO");
        }
        double bound_inf = s0->ideal0 / s0->ideal_inf;
        printf("\nideal model: unlimited lag could give at most %.3fx over synchronous on this "
               "trace.\n", bound_inf);
        if (bound_inf < 1.02)
            printf("note: nothing to mask here -- the processes' work is balanced batch by batch, "
                   "or one process is persistently slower; lag absorbs jitter, not a slower "
                   "process.  Rebalance the tables instead (--placement balanced).\n");
        if (o.json) {
            FILE *f = fopen(o.json, "w");
            if (!f) {
                fprintf(stderr, "bls-dlrm: cannot write %s: %s\n", o.json, strerror(errno));
                rc = 2;
            } else {
                char dtext[64], a0[32] = "null";
                bls_delay_format(&o.delay, dtext, sizeof(dtext));
                if (!isnan(s0->m.auc))
                    snprintf(a0, sizeof(a0), "%.9f", s0->m.auc);
                fprintf(f, "{\"tool\": \"bls-dlrm\", \"processes\": %d,\n \"config\": {"
                        "\"arch_mlp_bot\": \"%s\", \"arch_mlp_top\": \"%s\", \"tables\": %d, "
                        "\"d\": %d, \"op\": \"%s\", \"itself\": %s, \"batch_size\": %d, "
                        "\"data\": \"%s\", \"weights\": \"%s\", \"placement\": \"%s\", "
                        "\"delay\": \"%s\", \"delay_seed\": %llu, \"busy\": %s, \"hetero\": "
                        "\"%d:%g\", \"zipf\": %g, \"hot_tables\": \"%s\", \"pooling\": %d, "
                        "\"table_pooling\": \"%s\", \"bursts\": \"%s\", \"rounds\": %d},\n",
                        P, o.bot, o.top, T, cfg.d, o.op, o.itself ? "true" : "false", o.batch,
                        o.data ? o.data : "synthetic", o.weights ? o.weights : "random",
                        o.balanced ? "balanced" : "contiguous", dtext,
                        (unsigned long long)o.delay.seed, o.busy ? "true" : "false", o.hetero_rank,
                        o.hetero_factor, o.synth.zipf_alpha, o.hot_spec ? o.hot_spec : "",
                        o.synth.pooling, o.pool_spec ? o.pool_spec : "",
                        o.burst_spec ? o.burst_spec : "", o.rounds);
                fprintf(f, " \"kernels\": [");
                for (int p = 0; p < P; p++)
                    fprintf(f, "%s\"%s\"", p ? ", " : "", kern_all + sizeof(kern) * p);
                fprintf(f, "],\n \"owner\": [");
                for (int t = 0; t < T; t++)
                    fprintf(f, "%s%d", t ? ", " : "", owner[t]);
                fprintf(f, "],\n \"peak_rss_mib_per_process\": [");
                for (int p = 0; p < P; p++)
                    fprintf(f, "%s%.1f", p ? ", " : "", rss_all[p] / 1024.0);
                fprintf(f, "],\n \"table_mib_per_process\": [");
                for (int p = 0; p < P; p++)
                    fprintf(f, "%s%.1f", p ? ", " : "", mib(tb_all[p]));
                fprintf(f, "],\n \"samples\": %lld, \"batches\": %lld, \"lines\": %lld, "
                        "\"skipped_lines\": %lld,\n \"accuracy\": %.9f, \"auc\": %s, "
                        "\"logloss\": %.9f, \"samples_per_s\": %.3f, "
                        "\"samples_per_s_forward\": %.3f,\n \"drivers\": [\n",
                        (long long)s0->samples, (long long)s0->batches, (long long)lines,
                        (long long)skipped, s0->m.accuracy, a0, s0->m.logloss,
                        (double)s0->samples * o.rounds / s0->loop,
                        (double)s0->samples * o.rounds / s0->compute);
                for (int i = 0; i < o.ndrivers; i++) {
                    summary_t *s = &sum[i];
                    char ai[32] = "null";
                    if (!isnan(s->m.auc))
                        snprintf(ai, sizeof(ai), "%.9f", s->m.auc);
                    fprintf(f, "  {\"name\": \"%s\", \"lag\": %d, \"seconds\": %.6f, "
                            "\"ms_per_batch\": %.6f, \"samples_per_s\": %.3f, \"speedup\": %.6f, "
                            "\"latency_ms_p50\": %.6f, \"latency_ms_p99\": %.6f, "
                            "\"wait_s_mean\": %.6f, \"progress_cpu_s_mean\": %.6f, "
                            "\"ideal_s\": %.6f, \"ideal0_s\": %.6f, \"ideal_inf_s\": %.6f, "
                            "\"efficiency\": %.6f, \"bound\": %.6f, \"bound_own_trace\": %.6f, "
                            "\"accuracy\": %.9f, "
                            "\"auc\": %s, \"logloss\": %.9f, \"identical\": %s}%s\n",
                            o.drivers[i].name, o.drivers[i].kind == DRV_BLS ? o.drivers[i].lag : 0,
                            s->loop / o.rounds, 1e3 * s->loop / (double)(s->batches * o.rounds),
                            (double)s->samples * o.rounds / s->loop, s0->loop / s->loop,
                            1e3 * bench_percentile(s->lat, s->nlat, 0.5), 1e3 * bench_percentile(s->lat, s->nlat, 0.99),
                            s->wait / o.rounds, s->progress_cpu / o.rounds, s->ideal / o.rounds,
                            s->ideal0 / o.rounds, s->ideal_inf / o.rounds, s->ideal / s->loop,
                            s0->ideal0 / s0->ideal_at[i], s->ideal0 / s->ideal, s->m.accuracy, ai, s->m.logloss,
                            s->identical ? "true" : "false", i + 1 < o.ndrivers ? "," : "");
                }
                fprintf(f, " ]}\n");
                if (fclose(f) != 0)
                    rc = 2;
            }
        }
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    for (int i = 0; i < o.ndrivers; i++) {
        free(sum[i].lat);
        free(sum[i].pred);
        free(sum[i].labels);
    }
    free(sum);
    free(rss_all);
    free(tb_all);
    free(kern_all);
    source_close(&src);
    dlrm_model_free(model);
    free(owner);
    free(first);
    free(tabs_of);
    free(flags);
    free(alpha);
    free(tpool);
    dlrm_config_free(&cfg);
    MPI_Finalize();
    return rc;
}
