/* bls-dlrm's options (dlrm_options.h): every value checked here, with a message that names it. */
#define _GNU_SOURCE
#include "dlrm_options.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void dlrm_options_usage(FILE *f)
{
    fprintf(
        f,
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
        "  --weights-hold H             how the tables read from --weights are held: copy\n"
        "                               (into memory on 2 MiB pages: the fastest lookups), map\n"
        "                               (the file mapped read-only: no copy, one page cache per\n"
        "                               host, slower lookups; the file must not change during\n"
        "                               the run) or auto (default: copy unless a process's\n"
        "                               tables exceed half of MemAvailable, then map)\n"
        "  --seed N                     seed of the random weights (default 1)\n"
        "  --save-weights FILE          write the model run (random or read) to FILE as\n"
        "                               safetensors, before the runs; one process only (a\n"
        "                               process holds only its tables): the same options on one\n"
        "                               process give the same weights as on many\n\n"
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
        "  --driver LIST                comma list of sync (MPI_Alltoallv per batch), bls:L\n"
        "                               (bounded lag L; plain 'bls' takes --lag), and libbls's\n"
        "                               comparison modes window:L (MPI_Isend/MPI_Irecv, L+1 in\n"
        "                               flight, no progress thread) and ialltoallv[:L]; several\n"
        "                               run interleaved and are compared (default sync);\n"
        "                               bls:auto[:MAX]: adaptive lag (each process picks its\n"
        "                               run-ahead per batch, at most MAX, default %d)\n"
        "  --lag L|auto[:MAX]           lag of a plain 'bls' or 'window', 0 .. %d (default 4);\n"
        "                               auto makes a plain 'bls' bls:auto:MAX (MAX default %d)\n"
        "  --rounds R                   rounds; each runs every driver once (default 1)\n"
        "  --placement P                contiguous (the reference's blocks: the first T mod P\n"
        "                               processes get one table more) or balanced (greedy, by\n"
        "                               rows x expected lookups per sample) (default contiguous)\n"
        "  --timeout SEC                a wait longer than this is an error naming the missing\n"
        "                               processes (bls drivers); where MPI cannot time out (the\n"
        "                               sync driver, start-up, the final exchanges) a watchdog\n"
        "                               ends the job after 1.25 SEC + 2 s without progress;\n"
        "                               0: wait forever (default 60)\n"
        "  --progress P                 who moves the bls drivers' data while a process\n"
        "                               computes: thread (default: libbls's progress thread at\n"
        "                               the lowest priority, running when a core is free),\n"
        "                               thread-normal (the thread at normal priority: it\n"
        "                               preempts the computation to poll) or caller (no thread:\n"
        "                               data moves inside libbls's calls)\n\n"
        "Scenarios (the same trace for every driver):\n"
        "  --delay SPEC                 per-process, per-batch delay: none | exp:MEAN_US |\n"
        "                               hiccup:PROB:US | straggler:RANK:US |\n"
        "                               lognormal:MEDIAN_US:SIGMA | cosched:PROB:US (every\n"
        "                               process late in the same batches) |\n"
        "                               spike:RANK:ITER:US (once, in batch/query ITER), or\n"
        "                               A/ITER/B: spec A before batch ITER, B from it on\n"
        "                               (default none)\n"
        "  --delay-seed N               seed of the delay trace (default 1)\n"
        "  --busy                       delays spin on the CPU instead of sleeping\n"
        "  --hetero RANK:F              process RANK computes F times slower (it idles F-1 times\n"
        "                               its compute time after each batch)\n\n"
        "Serving (--scenario server: queries arrive on a schedule, as a service sees them):\n"
        "  --scenario S                 offline (closed loop: each process starts the next batch\n"
        "                               as soon as the lag allows; the default), server (an open\n"
        "                               loop of queries), or offline,server (both in turn)\n"
        "  --qps Q                      server: Poisson arrivals at Q queries per second\n"
        "  --load F                     server: the rate as F times the first driver's offline\n"
        "                               queries/s (measured by the offline scenario when it runs,\n"
        "                               else by a closed-loop calibration of --probe-queries / 2\n"
        "                               queries of the mean size)\n"
        "  --queries N                  server: queries per run (default 1000)\n"
        "  --query-size SPEC            server: samples per query, one batch: fixed:N,\n"
        "                               uniform:A:B or lognormal:MEAN:SIGMA, clamped to\n"
        "                               [processes, --batch-size] (default fixed:--batch-size)\n"
        "  --schedule-seed N            seed of the arrivals and sizes (default 1): the same\n"
        "                               schedule on every process, for every driver, and in\n"
        "                               torch_bls/dlrm_infer.py\n"
        "  --schedule-out FILE          write the schedule ('query arrival_s size' per line)\n"
        "  --latency-out FILE           write every server query's figures: 'driver round\n"
        "                               query arrival_ms size latency_ms queue_ms ideal_ms'\n"
        "                               (queue: until the last process began it)\n"
        "  --latency-bound MS           a run is VALID when its p99 latency is within MS and it\n"
        "                               completes at least 0.95 of the scheduled rate\n"
        "                               (default 60, MLPerf's dlrm-v2 bound)\n"
        "  --find-peak                  per driver, the highest rate whose p99 is within the\n"
        "                               bound: probes of --probe-queries queries, the rate\n"
        "                               doubling from --qps (default: half the first driver's\n"
        "                               offline rate) until a probe fails, then --refine\n"
        "                               bisections; a probe stops once a query waits 10 bounds\n"
        "  --probe-queries N            queries per probe (default 600)\n"
        "  --refine N                   bisections after the first failed probe (default 4)\n\n"
        "Run:\n"
        "  --batch-size B               global samples per batch (default 128); process q gets\n"
        "                               samples [q*B/P, (q+1)*B/P) of each; with server, the\n"
        "                               largest query\n"
        "  --max-batches N              offline: stop after N batches (default: all data)\n"
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
        "  --help                       this text\n"
        "  --version                    the version, of libbls and of the MPI library\n\n"
        "Output: per driver, ms per batch and samples/s (slowest process's loop), speedup over\n"
        "the first driver, batch latency p50/p99 (from a batch's start on a process to its\n"
        "predictions there, all processes), mean time per process waiting in the collective,\n"
        "the ideal model (bls-semantics) on the measured work: ideal time, efficiency = ideal /\n"
        "measured, bound = T_ideal(0) / T_ideal(L) on the first driver's work trace (the most\n"
        "lag L can give over it); accuracy, ROC AUC, log loss, and whether the\n"
        "predictions are bit-identical to the first driver's.\n\n"
        "Exit status: 0 done; 1 the drivers' predictions differ; 2 a bad option, model, weights\n"
        "or data file (reported once, every process exits 2); 3 a failure on one process during\n"
        "the run (that process names it; the job is ended).\n",
        HARNESS_AUTO_LAG_MAX, BLS_MAX_LAG, HARNESS_AUTO_LAG_MAX);
}

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}

static int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* clang-format off: one option per entry, many to a line */
enum {
    BOT = 256,
    TOP,
    EMB,
    D,
    OP,
    ITSELF,
    WEIGHTS,
    SEED,
    DATA,
    STRICT,
    SAMPLES,
    DSEED,
    ZIPF,
    POOL,
    RPOOL,
    BATCH,
    MAXB,
    THREADS,
    PRED,
    JSON,
    QUIET,
    HELP,
    VERSION,
    WCRITEO,
    SAVEW,
    HOLD,
    PROGRESS,
    DRIVER,
    LAG,
    ROUNDS,
    PLACE,
    TIMEOUT,
    DELAY,
    DELAYSEED,
    BUSY,
    HETERO,
    HOT,
    TPOOL,
    BURSTS,
    KERNEL,
    SCENARIO,
    QPS,
    LOAD,
    QUERIES,
    QSIZE,
    SSEED,
    SOUT,
    LOUT,
    BOUND,
    PEAK,
    PROBEQ,
    REFINE
};

static const struct option longopts[] = {{"arch-mlp-bot", 1, 0, BOT},
                                         {"arch-mlp-top", 1, 0, TOP},
                                         {"arch-embedding-size", 1, 0, EMB},
                                         {"arch-sparse-feature-size", 1, 0, D},
                                         {"arch-interaction-op", 1, 0, OP},
                                         {"arch-interaction-itself", 0, 0, ITSELF},
                                         {"weights", 1, 0, WEIGHTS},
                                         {"seed", 1, 0, SEED},
                                         {"data", 1, 0, DATA},
                                         {"strict", 0, 0, STRICT},
                                         {"synthetic-samples", 1, 0, SAMPLES},
                                         {"data-seed", 1, 0, DSEED},
                                         {"zipf", 1, 0, ZIPF},
                                         {"pooling", 1, 0, POOL},
                                         {"random-pooling", 0, 0, RPOOL},
                                         {"batch-size", 1, 0, BATCH},
                                         {"max-batches", 1, 0, MAXB},
                                         {"threads", 1, 0, THREADS},
                                         {"predictions", 1, 0, PRED},
                                         {"json", 1, 0, JSON},
                                         {"quiet", 0, 0, QUIET},
                                         {"help", 0, 0, HELP},
                                         {"version", 0, 0, VERSION},
                                         {"write-criteo", 1, 0, WCRITEO},
                                         {"save-weights", 1, 0, SAVEW},
                                         {"weights-hold", 1, 0, HOLD},
                                         {"progress", 1, 0, PROGRESS},
                                         {"driver", 1, 0, DRIVER},
                                         {"drivers", 1, 0, DRIVER},
                                         {"lag", 1, 0, LAG},
                                         {"rounds", 1, 0, ROUNDS},
                                         {"placement", 1, 0, PLACE},
                                         {"timeout", 1, 0, TIMEOUT},
                                         {"delay", 1, 0, DELAY},
                                         {"delay-seed", 1, 0, DELAYSEED},
                                         {"busy", 0, 0, BUSY},
                                         {"hetero", 1, 0, HETERO},
                                         {"hot-tables", 1, 0, HOT},
                                         {"table-pooling", 1, 0, TPOOL},
                                         {"bursts", 1, 0, BURSTS},
                                         {"kernel", 1, 0, KERNEL},
                                         {"scenario", 1, 0, SCENARIO},
                                         {"qps", 1, 0, QPS},
                                         {"load", 1, 0, LOAD},
                                         {"queries", 1, 0, QUERIES},
                                         {"query-size", 1, 0, QSIZE},
                                         {"schedule-seed", 1, 0, SSEED},
                                         {"schedule-out", 1, 0, SOUT},
                                         {"latency-out", 1, 0, LOUT},
                                         {"latency-bound", 1, 0, BOUND},
                                         {"find-peak", 0, 0, PEAK},
                                         {"probe-queries", 1, 0, PROBEQ},
                                         {"refine", 1, 0, REFINE},
                                         {0, 0, 0, 0}};
/* clang-format on */

/* "--name" of an option's code. */
static const char *option_name(int c)
{
    static char name[48];
    for (const struct option *p = longopts; p->name; p++)
        if (p->val == c) {
            snprintf(name, sizeof(name), "--%s", p->name);
            return name;
        }
    return "an option";
}

static void set_defaults(dlrm_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    char *p = o->default_emb;
    for (int t = 0; t < 26; t++)
        p += sprintf(p, "%s100000", t ? "-" : "");
    o->bot = "13-512-256-64-16";
    o->top = "512-256-1";
    o->emb = o->default_emb;
    o->op = "dot";
    o->d = 16;
    o->seed = 1;
    o->samples = 65536;
    o->batch = 128;
    o->max_batches = -1;
    o->threads = 1;
    o->rounds = 1;
    o->timeout = 60;
    o->synth.seed = 7;
    o->synth.pooling = 1;
    o->scenario = (dist_scenario_t){{.kind = HARNESS_DELAY_NONE, .seed = 1}, 0, -1, 1};
    o->offline = 1;
    o->queries = 1000;
    o->schedule_seed = 1;
    o->probe_queries = 600;
    o->refine = 4;
}

/* An option whose value is an integer: which one, its bounds, where it goes. */
static int set_integer(dlrm_opts_t *o, int c, const char *name, const char *v, int64_t *lag,
                       char *err, size_t len)
{
    int64_t x;
    int nonneg = c == POOL || c == LAG || c == DELAYSEED || c == SEED || c == DSEED || c == SSEED ||
                 c == REFINE;
    int64_t max = c == BATCH ? (1 << 22) : c == LAG ? BLS_MAX_LAG : INT64_MAX / 2;
    if (c == D || c == POOL || c == THREADS || c == ROUNDS || c == REFINE)
        max = 1000000;
    if (c == QUERIES || c == PROBEQ)
        max = 100000000;
    if (parse_int64(v, nonneg ? 0 : 1, max, &x) != 0) {
        char most[64] = "";
        if (c == LAG || c == BATCH)
            snprintf(most, sizeof(most), " up to %lld%s", (long long)max,
                     c == LAG ? " (libbls's BLS_MAX_LAG)" : "");
        return fail(err, len, "%s needs %s integer%s, got '%s'", name,
                    nonneg ? "a non-negative" : "a positive", most, v);
    }
    switch (c) {
    case D: o->d = (int)x; break;
    case SEED: o->seed = (uint64_t)x; break;
    case SAMPLES: o->samples = x; break;
    case DSEED: o->synth.seed = (uint64_t)x; break;
    case POOL: o->synth.pooling = (int)x; break;
    case BATCH: o->batch = (int)x; break;
    case MAXB: o->max_batches = x; break;
    case LAG: *lag = x; break;
    case ROUNDS: o->rounds = (int)x; break;
    case DELAYSEED: o->scenario.delay.seed = (uint64_t)x; break;
    case QUERIES: o->queries = x; break;
    case SSEED: o->schedule_seed = (uint64_t)x; break;
    case PROBEQ: o->probe_queries = x; break;
    case REFINE: o->refine = (int)x; break;
    default: o->threads = (int)x; break;
    }
    return 0;
}

/* Options with a value that is not a plain integer. */
static int set_special(dlrm_opts_t *o, int c, const char *v, char *err, size_t len)
{
    char e[512];
    dist_scenario_t *sc = &o->scenario;
    switch (c) {
    case PLACE:
        if (strcmp(v, "contiguous") && strcmp(v, "balanced"))
            return fail(err, len, "--placement is contiguous or balanced, got '%s'", v);
        o->placement = v[0] == 'b' ? DIST_PLACE_BALANCED : DIST_PLACE_CONTIGUOUS;
        return 0;
    case PROGRESS:
        if (bls_progress_parse(v, &o->bls_progress) != BLS_OK)
            return fail(err, len, "--progress is thread, thread-normal or caller, got '%s'", v);
        return 0;
    case HOLD:
        if (strcmp(v, "auto") && strcmp(v, "copy") && strcmp(v, "map"))
            return fail(err, len, "--weights-hold is auto, copy or map, got '%s'", v);
        o->hold = v[0] == 'a' ? DLRM_HOLD_AUTO : v[0] == 'c' ? DLRM_HOLD_COPY : DLRM_HOLD_MAP;
        return 0;
    case DELAY:
        if (harness_delay_parse(v, &sc->delay, e, sizeof(e)) != 0)
            return fail(err, len, "--delay: %s", e);
        return 0;
    case SCENARIO:
        o->scenario_given = 1;
        o->offline = !strcmp(v, "offline") || !strcmp(v, "offline,server");
        o->server = !strcmp(v, "server") || !strcmp(v, "offline,server");
        if (!o->offline && !o->server)
            return fail(err, len, "--scenario is offline, server or offline,server, got '%s'", v);
        return 0;
    case QSIZE:
        o->size_spec = v;
        if (harness_size_parse(v, &o->sizes, e, sizeof(e)) != 0)
            return fail(err, len, "--query-size: %s", e);
        return 0;
    case HETERO:
    {
        double rank, factor;
        char tail;
        if (sscanf(v, "%lf:%lf%c", &rank, &factor, &tail) != 2 || !(rank >= 0) ||
            rank > 1e6 || rank != floor(rank) || !(factor >= 1) || factor > 1e6)
            return fail(err, len,
                        "--hetero takes RANK:FACTOR with 1 <= FACTOR <= 1e6, got '%s'", v);
        sc->hetero_rank = (int)rank;
        sc->hetero_factor = factor;
        return 0;
    }
    default: { /* ZIPF, TIMEOUT: >= 0; QPS, LOAD, BOUND: > 0 */
        char *end;
        double x = strtod(v, &end);
        int positive = c == QPS || c == LOAD || c == BOUND;
        if (*end || end == v || !(positive ? x > 0 : x >= 0) || !isfinite(x))
            return fail(err, len, "%s takes a number %s 0, got '%s'", option_name(c),
                        positive ? ">" : ">=", v);
        if (c == ZIPF)
            o->synth.zipf_alpha = x;
        else if (c == TIMEOUT)
            o->timeout = x;
        else if (c == QPS)
            o->qps = x;
        else if (c == LOAD)
            o->load = x;
        else
            o->bound = x / 1000;
        return 0;
    }
    }
}

/* --lag auto[:MAX]: kept in *lag as -1 - MAX (check_options tells the two apart). */
static int set_auto_lag(const char *name, const char *v, int64_t *lag, char *err, size_t len)
{
    int64_t max = HARNESS_AUTO_LAG_MAX;
    if (strcmp(v, "auto") != 0 &&
        (strncmp(v, "auto:", 5) != 0 || parse_int64(v + 5, 0, BLS_MAX_LAG, &max) != 0))
        return fail(err, len, "%s takes L (0 .. %d) or auto[:MAX] (MAX 0 .. %d), got '%s'", name,
                    BLS_MAX_LAG, BLS_MAX_LAG, v);
    *lag = -1 - max;
    return 0;
}

/* One option; 1 for --help, 2 for --version. */
static int set_option(dlrm_opts_t *o, int c, const char *v, const char *name, int64_t *lag,
                      const char **drivers, char *err, size_t len)
{
    switch (c) {
    case BOT: o->bot = v; return 0;
    case TOP: o->top = v; return 0;
    case EMB: o->emb = v; return 0;
    case OP: o->op = v; return 0;
    case ITSELF: o->itself = 1; return 0;
    case WEIGHTS: o->weights = v; return 0;
    case DATA: o->data = v; return 0;
    case STRICT: o->strict = 1; return 0;
    case RPOOL: o->synth.random_pooling = 1; return 0;
    case PRED: o->predictions = v; return 0;
    case JSON: o->json = v; return 0;
    case WCRITEO: o->write_criteo = v; return 0;
    case SAVEW: o->save_weights = v; return 0;
    case QUIET: o->quiet = 1; return 0;
    case BUSY: o->scenario.busy = 1; return 0;
    case DRIVER: *drivers = v; return 0;
    case HOT: o->hot_spec = v; return 0;
    case TPOOL: o->pool_spec = v; return 0;
    case BURSTS: o->burst_spec = v; return 0;
    case KERNEL: o->kernel = v; return 0;
    case SOUT: o->schedule_out = v; return 0;
    case LOUT: o->latency_out = v; return 0;
    case PEAK: o->find_peak = 1; return 0;
    case HELP: return 1;
    case VERSION: return 2;
    /* clang-format off */
    case PLACE: case HOLD: case PROGRESS: case DELAY: case HETERO: case ZIPF: case TIMEOUT: case SCENARIO: case QSIZE:
    case QPS: case LOAD: case BOUND:
        return set_special(o, c, v, err, len);
    case LAG:
        if (!strncmp(v, "auto", 4))
            return set_auto_lag(name, v, lag, err, len);
        return set_integer(o, c, name, v, lag, err, len);
    case D: case SEED: case SAMPLES: case DSEED: case POOL: case BATCH: case MAXB: case THREADS:
    case ROUNDS: case DELAYSEED: case QUERIES: case SSEED: case PROBEQ: case REFINE:
        return set_integer(o, c, name, v, lag, err, len);
    /* clang-format on */
    default: return fail(err, len, "unknown or incomplete option '%s' (see --help)", name);
    }
}

/* The serving options together: the scenario they need, a rate, sizes within the batch. */
static int check_serving(dlrm_opts_t *o, int P, int explicit_samples, char *err, size_t len)
{
    if (o->find_peak && !o->scenario_given) /* a peak search serves; offline only if asked */
        o->offline = 0;
    o->server |= o->find_peak;
    if (!o->server) {
        if (o->bound > 0)
            return fail(err, len, "--latency-bound applies to --scenario server or --find-peak");
        if (o->qps > 0 || o->load > 0 || o->size_spec || o->schedule_out || o->latency_out)
            return fail(err, len,
                        "--qps, --load, --query-size, --schedule-out and --latency-out "
                        "apply to --scenario server or --find-peak");
        return 0;
    }
    if (o->latency_out && o->find_peak)
        return fail(err, len,
                    "--latency-out writes the queries of --scenario server's runs, not "
                    "of --find-peak's probes");
    if (o->qps > 0 && o->load > 0)
        return fail(err, len, "--qps and --load both set the rate: give one");
    if (o->qps == 0 && o->load == 0 && !o->find_peak)
        return fail(err, len,
                    "--scenario server needs a rate: --qps Q, or --load F (a fraction "
                    "of the first driver's offline rate)");
    if (o->qps == 0 && o->load == 0)
        o->load = 0.5; /* the peak search's first probe */
    if (!o->size_spec)
        o->sizes = (harness_size_t){HARNESS_SIZE_FIXED, o->batch, 0};
    if ((o->sizes.kind == HARNESS_SIZE_FIXED ? o->sizes.a : o->sizes.b) > o->batch &&
        o->sizes.kind != HARNESS_SIZE_LOGNORMAL)
        return fail(err, len, "--query-size %s asks for more than --batch-size %d samples",
                    o->size_spec, o->batch);
    if ((o->sizes.kind != HARNESS_SIZE_LOGNORMAL && o->sizes.a < P))
        return fail(err, len, "--query-size %s gives some of the %d processes no samples",
                    o->size_spec ? o->size_spec : "", P);
    if (o->bound == 0)
        o->bound = 0.060;
    if (!explicit_samples && !o->data) /* enough synthetic samples for the whole schedule */
        o->samples = (int64_t)(o->find_peak ? o->probe_queries : o->queries) * o->batch;
    return 0;
}

/* Do two paths name one existing file (one inode), or the same string? */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (strcmp(a, b) == 0)
        return 1;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* An output that is an input would be truncated before it is read: refuse, naming both. */
static int check_outputs(const dlrm_opts_t *o, char *err, size_t len)
{
    const char *in[] = {o->data, o->weights}, *in_name[] = {"--data", "--weights"};
    const char *out[] = {o->predictions,  o->json,        o->write_criteo,
                         o->schedule_out, o->latency_out, o->save_weights};
    const char *out_name[] = {"--predictions",  "--json",        "--write-criteo",
                              "--schedule-out", "--latency-out", "--save-weights"};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 6; j++)
            if (in[i] && out[j] && same_file(in[i], out[j]))
                return fail(err, len, "%s %s is also the %s file: writing it would erase the input",
                            out_name[j], out[j], in_name[i]);
    return 0;
}

/* What only the whole set of options can tell. */
static int check_options(dlrm_opts_t *o, int P, const char *drivers, int64_t lag,
                         int explicit_samples, char *err, size_t len)
{
    char e[256];
    if (check_serving(o, P, explicit_samples, err, len) != 0 || check_outputs(o, err, len) != 0)
        return -1;
    if (o->batch < P)
        return fail(err, len, "--batch-size %d gives some of the %d processes no samples", o->batch,
                    P);
    if (o->hold != DLRM_HOLD_AUTO && !o->weights)
        return fail(err, len,
                    "--weights-hold copy or map needs --weights FILE (random tables "
                    "are always in memory)");
    if (o->save_weights && P > 1)
        return fail(err, len,
                    "--save-weights needs one process (each of the %d holds only its tables): "
                    "run bls-dlrm without mpirun with the same model options and --seed",
                    P);
    if (o->scenario.hetero_rank >= P)
        return fail(err, len, "--hetero names process %d of %d", o->scenario.hetero_rank, P);
    const harness_delay_t *dl = &o->scenario.delay;
    if (dl->kind == HARNESS_DELAY_STRAGGLER && dl->a >= P)
        return fail(err, len, "--delay straggler names process %d of %d", (int)dl->a, P);
    if (dl->until > 0 && dl->then_kind == HARNESS_DELAY_STRAGGLER && dl->then_a >= P)
        return fail(err, len, "--delay straggler (from batch %ld) names process %d of %d",
                    dl->until, (int)dl->then_a, P);
    int lag_auto = lag < 0; /* --lag auto[:MAX] */
    o->ndrivers = harness_drivers_parse(drivers, (int)(lag_auto ? -1 - lag : lag), lag_auto,
                                        o->drivers, HARNESS_MAX_DRIVERS, e, sizeof(e));
    if (o->ndrivers < 0)
        return fail(err, len, "--driver: %s", e);
    if (o->data && (o->hot_spec || o->pool_spec || o->burst_spec || o->synth.zipf_alpha > 0 ||
                    o->synth.pooling != 1 || o->synth.random_pooling))
        return fail(err, len,
                    "--zipf, --pooling, --random-pooling, --hot-tables, --table-pooling "
                    "and --bursts shape synthetic data; they do not apply to --data");
    return 0;
}

opts_result_t dlrm_options_parse(int argc, char **argv, int P, dlrm_opts_t *o, char *err,
                                 size_t errlen)
{
    set_defaults(o);
    const char *drivers = "sync";
    int64_t lag = 4;
    int c, help = 0, explicit_samples = 0;
    opterr = 0;
    optind = 0; /* GNU getopt: 0 re-initialises fully (parsed more than once: tests, fuzzing) */
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1 && !help) {
        const char *name = c == '?' ? argv[optind - 1] : option_name(c);
        explicit_samples |= c == SAMPLES;
        int r = set_option(o, c, optarg, name, &lag, &drivers, err, errlen);
        if (r < 0)
            return OPTS_BAD;
        help = r;
    }
    if (help)
        return help == 1 ? OPTS_HELP : OPTS_VERSION;
    if (optind < argc) {
        fail(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
        return OPTS_BAD;
    }
    return check_options(o, P, drivers, lag, explicit_samples, err, errlen) == 0 ? OPTS_RUN
                                                                                 : OPTS_BAD;
}

/* "0-6,9:1.2" -> flags[t] for the listed tables, and the value after the colon. */
static int parse_table_list(const char *spec, int T, unsigned char *flags, double *value)
{
    const char *colon = strrchr(spec, ':');
    char *end;
    if (!colon || colon == spec)
        return -1;
    *value = strtod(colon + 1, &end);
    if (*end || end == colon + 1 || !isfinite(*value))
        return -1;
    memset(flags, 0, (size_t)T);
    for (const char *p = spec; p < colon;) {
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

/* --hot-tables and --table-pooling: a value per table. */
static int apply_tables(dlrm_opts_t *o, int T, unsigned char *flags, char *err, size_t len)
{
    double x;
    if (o->hot_spec) {
        if (parse_table_list(o->hot_spec, T, flags, &x) != 0 || x < 0)
            return fail(err, len,
                        "--hot-tables takes LIST:EXPONENT with tables in 0..%d (e.g. "
                        "0-6,9:1.2), got '%s'",
                        T - 1, o->hot_spec);
        if (!(o->table_alpha = malloc(sizeof(double) * (size_t)T)))
            return fail(err, len, "out of memory");
        for (int t = 0; t < T; t++)
            o->table_alpha[t] = flags[t] ? x : o->synth.zipf_alpha;
        o->synth.table_alpha = o->table_alpha;
    }
    if (o->pool_spec) {
        if (parse_table_list(o->pool_spec, T, flags, &x) != 0 || x < 0 || x != floor(x) || x > 1e6)
            return fail(err, len,
                        "--table-pooling takes LIST:K with tables in 0..%d and K >= 0 "
                        "(e.g. 0-6:4), got '%s'",
                        T - 1, o->pool_spec);
        if (!(o->table_pooling = malloc(sizeof(int) * (size_t)T)))
            return fail(err, len, "out of memory");
        for (int t = 0; t < T; t++)
            o->table_pooling[t] = flags[t] ? (int)x : o->synth.pooling;
        o->synth.table_pooling = o->table_pooling;
    }
    return 0;
}

int dlrm_options_apply(dlrm_opts_t *o, const dlrm_config_t *cfg, char *err, size_t len)
{
    int T = cfg->n_tables;
    unsigned char *flags = malloc((size_t)T);
    if (!flags)
        return fail(err, len, "out of memory");
    int rc = apply_tables(o, T, flags, err, len);
    free(flags);
    if (rc != 0 || !o->burst_spec)
        return rc;
    char tail;
    double prob, factor;
    if (sscanf(o->burst_spec, "%lf:%lf%c", &prob, &factor, &tail) != 2 || !(prob >= 0) ||
        prob > 1 || !(factor >= 1) || factor > 100000 || factor != floor(factor))
        return fail(err, len,
                    "--bursts takes PROB:FACTOR (0 <= PROB <= 1, FACTOR an integer in 1..100000), "
                    "got '%s'",
                    o->burst_spec);
    o->synth.burst_prob = prob;
    o->synth.burst_factor = (int)factor;
    o->synth.burst_len = o->batch;
    return 0;
}

void dlrm_options_free(dlrm_opts_t *o)
{
    free(o->table_alpha);
    free(o->table_pooling);
    o->table_alpha = NULL;
    o->table_pooling = NULL;
}
