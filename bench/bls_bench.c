/*
 * bls-bench: the collective alone, synchronous vs bounded-lag, under seeded delays.
 *
 * Every mode is one of libbls's (sync, ialltoallv[:L], window:L, bls:L) and runs the same
 * loop: per iteration, work (a sleep of --work-us plus the injected delay, identical for every
 * mode because it is a function of seed, rank and iteration), then bls_post, then bls_wait of
 * iteration k-L.  Modes run interleaved (round r runs every mode once, in rotating order) so
 * ratios come from one run on a noisy machine.  The measured work trace of each mode gives its
 * ideal-model time; efficiency = T_ideal / measured.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "watchdog.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    harness_driver_t modes[HARNESS_MAX_DRIVERS];
    int nmodes;
    long iters, rounds;
    size_t bytes;
    int skew_rank;
    double skew_factor;
    double work_us;
    int busy;
    bls_progress_mode_t progress; /* --progress: who moves data outside the library's calls */
    double progress_every_us;     /* caller:US: bls_progress() every US of work (0: never) */
    harness_delay_t delay;
    double timeout;
    const char *json;
    int quiet;
} opts_t;

typedef struct { /* totals over rounds, on rank 0 */
    double measured, ideal, ideal0, ideal_inf, wait, cpu, progress_cpu;
    double bookkeeping; /* libbls's bookkeeping bytes, the largest process's */
    double copy_peers;  /* peers that copy large blocks themselves, the fewest of a process's */
    double *cpu_rank; /* [P] CPU seconds per process over all rounds */
    double *cycles;   /* all ranks' iteration times, all rounds */
    size_t ncycles;
} result_t;

/* One mode's round on this process. */
typedef struct {
    double loop, wait, progress_cpu, bookkeeping, copy_peers;
    double *w, *cyc; /* [K] work and iteration time */
} round_t;

static int rank, nprocs;

static size_t block_bytes(const opts_t *o, int from)
{
    return from == o->skew_rank ? (size_t)((double)o->bytes * o->skew_factor) : o->bytes;
}

static int die(const char *fmt, const char *arg)
{
    if (rank == 0) {
        fprintf(stderr, "bls-bench: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n");
    }
    return 2;
}

/* A failure on this process during a round: name it, end the job. */
static void abort_here(long k, const char *what)
{
    fprintf(stderr, "bls-bench: rank %d, iteration %ld: %s: %s\n", rank, k, what, bls_last_error());
    MPI_Abort(MPI_COMM_WORLD, 3);
}

static void out_of_memory(size_t bytes)
{
    fprintf(stderr, "bls-bench: rank %d: out of memory for %zu bytes of buffers (--bytes too large?)\n",
            rank, bytes);
    MPI_Abort(MPI_COMM_WORLD, 3);
}

static void usage(void)
{
    printf(
        "usage: mpirun -np P bls-bench [options]\n"
        "Synchronous vs bounded-lag alltoallv under seeded delays; modes run interleaved.\n\n"
        "  --modes LIST       comma list of libbls modes: sync (MPI_Alltoallv), ialltoallv\n"
        "                     (MPI_Ialltoallv waited in the same iteration; ialltoallv:L keeps\n"
        "                     L+1 in flight), window:L (naive pipeline: MPI_Isend/MPI_Irecv per\n"
        "                     iteration, completed L iterations later, no progress thread),\n"
        "                     bls:L (bounded lag L).  Plain 'bls' or 'window' take the lag of\n"
        "                     --lag.  Default: sync,bls:1,bls:4\n"
        "  --lag L            lag of modes given without one, 0 .. %d (default 4)\n"
        "  --iters N          iterations per mode per round (default 500)\n"
        "  --rounds R         rounds; each runs every mode once, order rotating (default 2)\n"
        "  --bytes B          bytes every process sends every peer per iteration (default 65536)\n"
        "  --skew R:F         rank R sends F times --bytes (heterogeneous sizes)\n"
        "  --work-us W        work per iteration in microseconds (default 1000)\n"
        "  --busy             the work spins instead of sleeping (competes for the CPU)\n"
        "  --progress P       bls modes' progress: thread (default: a progress thread at the\n"
        "                     lowest priority moves data while a core is free), thread-normal\n"
        "                     (the thread at normal priority: it preempts --busy work) or\n"
        "                     caller[:US] (no thread: data moves inside libbls's calls, and\n"
        "                     bls_progress() every US of work)\n"
        "  --delay SPEC       injected per-iteration delay, same trace for every mode:\n"
        "                       none | exp:MEAN_US | hiccup:PROB:US | straggler:RANK:US |\n"
        "                       lognormal:MEDIAN_US:SIGMA | cosched:PROB:US (every\n"
        "                       process late in the same iterations) |\n"
        "                       spike:RANK:ITER:US (once, in iteration ITER) |\n"
        "                       A/ITER/B (spec A before iteration ITER, B from it on)\n"
        "                     (default exp:1000)\n"
        "  --seed S           seed of the delay trace (default 1)\n"
        "  --timeout SEC      libbls timeout (default 60)\n"
        "  --json FILE        write every figure and the configuration as JSON\n"
        "  --quiet            no progress lines\n"
        "  --help             this text\n"
        "  --version          the version, of libbls and of the MPI library\n\n"
        "Columns: time = slowest process's loop time (s); ms/it; speedup = sync time / time;\n"
        "ideal = ideal-model time of this mode's measured work trace; eff = ideal / time;\n"
        "bound = T_ideal(0) / T_ideal(L), the most lag can give on this trace; p50/p99/max =\n"
        "iteration time percentiles (ms, all processes); wait = mean time per process inside\n"
        "the collective (s); cpu/it = CPU time per iteration per process (us, incl. threads).\n"
        "The JSON adds the progress thread's CPU per iteration (time moving data, BLS modes),\n"
        "libbls's bookkeeping bytes (the largest process's, allocated at creation), the\n"
        "fewest peers any process found to copy its large blocks themselves (copy_peers),\n"
        "p0..p100 of iteration times, and the peak memory of the largest process.\n"
        "Exit status: 0 done; 2 a bad option; 3 a failure during a run (named by its rank).\n",
        BLS_MAX_LAG);
}

/* A number option's value, checked; -1 when it is not one. */
static int number(const char *v, double min, double *out)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x >= min) || !isfinite(x))
        return -1;
    *out = x;
    return 0;
}

/* The largest value a number option takes: every one converts to its type without overflow. */
static double option_max(const char *a)
{
    if (!strcmp(a, "--bytes"))
        return 2147483648.0; /* a block; the buffers hold (lag + 2) x processes of them */
    if (!strcmp(a, "--seed"))
        return 9007199254740992.0;
    if (!strcmp(a, "--work-us") || !strcmp(a, "--timeout"))
        return 3.6e9;
    return 1e9; /* --iters, --rounds, --lag (then checked against BLS_MAX_LAG) */
}

/* One option with its value; 0, or the exit status. */
static int set_option(opts_t *o, const char *a, const char *v, const char **modes, double *lag)
{
    double x;
    char err[512];
    if (!strcmp(a, "--modes")) {
        *modes = v;
    } else if (!strcmp(a, "--skew")) {
        double r, f;
        char tail;
        if (sscanf(v, "%lf:%lf%c", &r, &f, &tail) != 2 || !(r >= 0) || r > 1e6 || r != floor(r) ||
            !(f >= 0) || f > 1000)
            return die("--skew takes RANK:FACTOR (0 <= FACTOR <= 1000), got '%s'", v);
        o->skew_rank = (int)r;
        o->skew_factor = f;
    } else if (!strcmp(a, "--delay")) {
        if (harness_delay_parse(v, &o->delay, err, sizeof(err)) != 0)
            return die("--delay: %s", err);
    } else if (!strcmp(a, "--json")) {
        o->json = v;
    } else if (!strcmp(a, "--progress")) {
        char tail;
        o->progress_every_us = 0;
        if (sscanf(v, "caller:%lf%c", &x, &tail) == 1 && x >= 0 && x <= 1e7) {
            o->progress = BLS_PROGRESS_CALLER;
            o->progress_every_us = x;
        } else if (bls_progress_parse(v, &o->progress) != BLS_OK) {
            return die("--progress takes thread, thread-normal, caller or caller:US (0 <= US <= "
                       "1e7), got '%s'",
                       v);
        }
    } else if (number(v, 0, &x) != 0 || x > option_max(a)) {
        char msg[128];
        snprintf(msg, sizeof(msg), "%s takes a number in [0, %g], got '%%s'", a, option_max(a));
        return die(msg, v);
    } else if (!strcmp(a, "--iters") || !strcmp(a, "--rounds")) {
        *(!strcmp(a, "--iters") ? &o->iters : &o->rounds) = (long)x;
    } else if (!strcmp(a, "--bytes")) {
        o->bytes = (size_t)x;
    } else if (!strcmp(a, "--work-us")) {
        o->work_us = x;
    } else if (!strcmp(a, "--seed")) {
        o->delay.seed = (uint64_t)x;
    } else if (!strcmp(a, "--lag")) {
        *lag = x;
    } else if (!strcmp(a, "--timeout")) {
        o->timeout = x;
    } else {
        return die("unknown option %s (see --help)", a);
    }
    return 0;
}

/* 0 to run; -1 after --help; else the exit status. */
static int parse(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.iters = 500,
                  .rounds = 2,
                  .bytes = 65536,
                  .skew_rank = -1,
                  .skew_factor = 1,
                  .work_us = 1000,
                  .delay = {.kind = HARNESS_DELAY_EXP, .a = 1000, .seed = 1},
                  .timeout = 60,
                  .progress = BLS_PROGRESS_THREAD};
    const char *modes = "sync,bls:1,bls:4";
    double lag = 4;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            if (rank == 0)
                usage();
            return -1;
        } else if (!strcmp(a, "--version")) {
            if (rank == 0)
                harness_print_version(stdout, "bls-bench");
            return -1;
        } else if (!strcmp(a, "--busy") || !strcmp(a, "--quiet")) {
            *(a[2] == 'b' ? &o->busy : &o->quiet) = 1;
            continue;
        } else if (!v) {
            return die("option %s needs a value (see --help)", a);
        }
        int rc = set_option(o, a, v, &modes, &lag);
        if (rc)
            return rc;
        i++;
    }
    if (o->iters < 1 || o->rounds < 1 || lag > BLS_MAX_LAG || lag != floor(lag))
        return die("--iters and --rounds must be >= 1, --lag an integer up to libbls's "
                   "BLS_MAX_LAG%s",
                   "");
    char err[256];
    o->nmodes =
        harness_drivers_parse(modes, (int)lag, 0, o->modes, HARNESS_MAX_DRIVERS, err, sizeof(err));
    if (o->nmodes < 0)
        return die("--modes: %s", err);
    for (int i = 0; i < o->nmodes; i++)
        if (o->modes[i].auto_lag)
            return die("--modes: %s: adaptive lag is bls-dlrm's (its policy needs the work of "
                       "every process); bls-bench runs fixed lags",
                       o->modes[i].name);
    return 0;
}

/* The communicator of one mode: counts and displacements of this process's blocks. */
static bls_comm_t *mode_comm(const opts_t *o, const harness_driver_t *m, size_t *sc, size_t *sd,
                             size_t *rc, size_t *rd, size_t *soff, size_t *roff)
{
    *soff = *roff = 0;
    for (int q = 0; q < nprocs; q++) {
        sc[q] = block_bytes(o, rank);
        sd[q] = *soff;
        *soff += sc[q];
        rc[q] = block_bytes(o, q);
        rd[q] = *roff;
        *roff += rc[q];
    }
    bls_config_t cfg;
    bls_config_init(&cfg);
    cfg.mode = m->mode;
    cfg.lag = m->lag;
    cfg.max_block = block_bytes(o, rank);
    cfg.timeout = o->timeout;
    cfg.progress = o->progress;
    bls_comm_t *comm = NULL;
    if (bls_comm_create(MPI_COMM_WORLD, &cfg, &comm) != BLS_OK)
        abort_here(-1, "creating the communicator");
    return comm;
}

/* One mode, one round: fills out (this process). */
static void run_mode(const opts_t *o, const harness_driver_t *m, round_t *out)
{
    int P = nprocs, L = m->lag, S = L + 2;
    size_t *sc = calloc((size_t)P, sizeof(size_t)), *sd = calloc((size_t)P, sizeof(size_t));
    size_t *rc = calloc((size_t)P, sizeof(size_t)), *rd = calloc((size_t)P, sizeof(size_t));
    size_t soff, roff;
    if (!sc || !sd || !rc || !rd)
        out_of_memory(4 * sizeof(size_t) * (size_t)P);
    bls_comm_t *comm = mode_comm(o, m, sc, sd, rc, rd, &soff, &roff);
    char *sendbuf = malloc(soff + 1), *recvbuf = calloc(roff * (size_t)S + 1, 1);
    if (!sendbuf || !recvbuf)
        out_of_memory(soff + 1 + roff * (size_t)S + 1);
    memset(sendbuf, rank, soff + 1);
    double waited = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = harness_now(), prev = t0;
    for (long k = 0; k < o->iters + L; k++) {
        if (k < o->iters) {
            double ws = harness_now();
            double us = o->work_us + harness_delay_us(&o->delay, rank, k);
            if (o->progress_every_us > 0) /* the caller's own polls, as it works */
                for (; us > o->progress_every_us; us -= o->progress_every_us) {
                    harness_spend_us(o->progress_every_us, o->busy);
                    if (bls_progress(comm) != BLS_OK)
                        abort_here(k, "progressing");
                }
            harness_spend_us(us, o->busy);
            double we = harness_now();
            out->w[k] = we - ws;
            bls_iter_t id;
            if (bls_post(comm, sendbuf, sc, sd, recvbuf + (size_t)(k % S) * roff, rc, rd, &id) !=
                BLS_OK)
                abort_here(k, "posting");
            if (k >= L && bls_wait(comm, k - L, NULL) != BLS_OK)
                abort_here(k - L, "waiting");
            double te = harness_now();
            waited += te - we;
            out->cyc[k] = te - prev;
            prev = te;
        } else {
            double ws = harness_now();
            if (bls_wait(comm, k - L, NULL) != BLS_OK)
                abort_here(k - L, "waiting");
            waited += harness_now() - ws;
        }
    }
    if (bls_finish(comm) != BLS_OK)
        abort_here(o->iters, "finishing");
    out->loop = harness_now() - t0;
    bls_stats_t bs;
    int have = bls_comm_stats(comm, &bs) == BLS_OK;
    out->progress_cpu = have ? bs.progress_cpu_seconds : 0;
    out->bookkeeping = have ? (double)bs.buffer_bytes : 0;
    out->copy_peers = have ? bs.copy_peers : 0;
    out->wait = waited;
    bls_comm_destroy(comm);
    free(sc);
    free(sd);
    free(rc);
    free(rd);
    free(sendbuf);
    free(recvbuf);
}

/* Adds one round of mode m (every process calls it) to x on rank 0. */
static void gather_round(const opts_t *o, const harness_driver_t *m, const round_t *rd, double cpu,
                         double *all_w, double *all_c, double *cpu_all, double *scratch,
                         result_t *x)
{
    int P = nprocs, K = (int)o->iters;
    double tmax = 0, waitsum = 0, cpusum = 0, pcpusum = 0;
    double book = 0, copy_peers = 0;
    MPI_Reduce(&rd->copy_peers, &copy_peers, 1, MPI_DOUBLE, MPI_MIN, 0, MPI_COMM_WORLD);
    MPI_Reduce(&rd->progress_cpu, &pcpusum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(&rd->bookkeeping, &book, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    MPI_Gather(&cpu, 1, MPI_DOUBLE, cpu_all, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Reduce(&rd->loop, &tmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    MPI_Reduce(&rd->wait, &waitsum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Reduce(&cpu, &cpusum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Gather(rd->w, K, MPI_DOUBLE, all_w, K, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Gather(rd->cyc, K, MPI_DOUBLE, all_c, K, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (rank != 0)
        return;
    x->measured += tmax;
    x->ideal += harness_ideal_time(all_w, P, K, m->lag, scratch);
    x->ideal0 += harness_ideal_time(all_w, P, K, 0, scratch);
    x->ideal_inf += harness_ideal_time(all_w, P, K, K, scratch);
    x->wait += waitsum / P;
    x->cpu += cpusum / P;
    x->progress_cpu += pcpusum / P;
    if (book > x->bookkeeping)
        x->bookkeeping = book;
    x->copy_peers = copy_peers;
    for (int p = 0; p < P; p++)
        x->cpu_rank[p] += cpu_all[p];
    memcpy(x->cycles + x->ncycles, all_c, sizeof(double) * (size_t)P * (size_t)K);
    x->ncycles += (size_t)P * (size_t)K;
}

/* Every round of every mode. */
static void run_rounds(const opts_t *o, result_t *res)
{
    int P = nprocs, M = o->nmodes;
    size_t K = (size_t)o->iters;
    round_t rd = {.w = calloc(K, sizeof(double)), .cyc = calloc(K, sizeof(double))};
    double *all_w = rank == 0 ? calloc((size_t)P * K, sizeof(double)) : NULL;
    double *all_c = rank == 0 ? calloc((size_t)P * K, sizeof(double)) : NULL;
    double *scratch = calloc((size_t)P + K, sizeof(double)),
           *cpu_all = calloc((size_t)P, sizeof(double));
    for (long r = 0; r < o->rounds; r++)
        for (int i = 0; i < M; i++) {
            int m = harness_round_driver((int)r, i, M);
            double c0 = harness_cpu_seconds(), before = res[m].measured;
            run_mode(o, &o->modes[m], &rd);
            gather_round(o, &o->modes[m], &rd, harness_cpu_seconds() - c0, all_w, all_c, cpu_all,
                         scratch, &res[m]);
            if (rank == 0 && !o->quiet)
                printf("  round %ld/%ld %-12s %8.3f s\n", r + 1, o->rounds, o->modes[m].name,
                       res[m].measured - before);
            fflush(stdout);
        }
    free(rd.w);
    free(rd.cyc);
    free(all_w);
    free(all_c);
    free(scratch);
    free(cpu_all);
}

static double sync_time(const opts_t *o, const result_t *res)
{
    for (int m = 0; m < o->nmodes; m++)
        if (o->modes[m].mode == BLS_MODE_SYNC)
            return res[m].measured;
    return 0;
}

static void print_table(const opts_t *o, result_t *res, long rss_max)
{
    double K = (double)(o->iters * o->rounds), sync = sync_time(o, res);
    printf("\n%-12s %8s %7s %8s %8s %6s %6s %7s %7s %7s %8s %8s\n", "mode", "time", "ms/it",
           "speedup", "ideal", "eff", "bound", "p50", "p99", "max", "wait", "cpu/it");
    for (int m = 0; m < o->nmodes; m++) {
        result_t *x = &res[m];
        harness_sort(x->cycles, x->ncycles);
        char speed[16] = "-";
        if (sync > 0)
            snprintf(speed, sizeof(speed), "%.3f", sync / x->measured);
        printf("%-12s %8.3f %7.3f %8s %8.3f %6.3f %6.3f %7.3f %7.3f %7.3f %8.3f %8.1f\n",
               o->modes[m].name, x->measured, 1e3 * x->measured / K, speed, x->ideal,
               x->ideal / x->measured, x->ideal0 / x->ideal,
               1e3 * harness_percentile(x->cycles, x->ncycles, 0.5),
               1e3 * harness_percentile(x->cycles, x->ncycles, 0.99),
               1e3 * x->cycles[x->ncycles - 1], x->wait, 1e6 * x->cpu / K);
    }
    printf("\npeak memory: %.1f MiB on the largest process (whole run)\n", rss_max / 1024.0);
    double unlimited = res[0].ideal0 / res[0].ideal_inf;
    printf("\nideal model: unlimited lag could give at most %.3fx over synchronous on this "
           "trace.\n",
           unlimited);
    if (unlimited < HARNESS_NOTHING_TO_MASK)
        printf("note: nothing to mask here -- per-process totals are balanced, or one process "
               "is persistently slower (max of sums = sum of maxima); lag absorbs jitter, "
               "not a slower process.  Rebalance the work instead.\n");
}

static cJSON *json_mode(const opts_t *o, const harness_driver_t *md, const result_t *x, double sync,
                        size_t total_bytes)
{
    double K = (double)(o->iters * o->rounds), pct[101];
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "mode", md->name);
    cJSON_AddNumberToObject(m, "lag", md->lag);
    cJSON_AddNumberToObject(m, "time_s", x->measured);
    cJSON_AddNumberToObject(m, "ms_per_iter", 1e3 * x->measured / K);
    cJSON_AddNumberToObject(m, "iters_per_s", K / x->measured);
    cJSON_AddNumberToObject(m, "bytes_per_s", K * (double)total_bytes / x->measured);
    cJSON_AddNumberToObject(m, "speedup_vs_sync", sync > 0 ? sync / x->measured : 0.0);
    cJSON_AddNumberToObject(m, "ideal_s", x->ideal);
    cJSON_AddNumberToObject(m, "efficiency", x->ideal / x->measured);
    cJSON_AddNumberToObject(m, "bound", x->ideal0 / x->ideal);
    cJSON_AddNumberToObject(m, "iter_ms_p50", 1e3 * harness_percentile(x->cycles, x->ncycles, 0.5));
    cJSON_AddNumberToObject(m, "iter_ms_p99",
                            1e3 * harness_percentile(x->cycles, x->ncycles, 0.99));
    cJSON_AddNumberToObject(m, "iter_ms_max", 1e3 * x->cycles[x->ncycles - 1]);
    cJSON_AddNumberToObject(m, "wait_s", x->wait);
    cJSON_AddNumberToObject(m, "cpu_us_per_iter", 1e6 * x->cpu / K);
    cJSON_AddNumberToObject(m, "progress_thread_cpu_us_per_iter", 1e6 * x->progress_cpu / K);
    cJSON_AddNumberToObject(m, "bookkeeping_bytes", x->bookkeeping);
    cJSON_AddNumberToObject(m, "copy_peers", x->copy_peers);
    for (int q = 0; q <= 100; q++) /* p0..p100 in steps of 1: enough to draw the distribution */
        pct[q] = 1e3 * harness_percentile(x->cycles, x->ncycles, q / 100.0);
    cJSON_AddItemToObject(m, "iter_ms_percentiles", harness_json_numbers(pct, 101));
    cJSON_AddItemToObject(m, "cpu_s_per_rank", harness_json_numbers(x->cpu_rank, (size_t)nprocs));
    return m;
}

static int write_json(const opts_t *o, const result_t *res, long rss_max, const long *rss_all)
{
    char dtext[64], err[300];
    size_t total_bytes = 0; /* bytes all processes send per iteration, self blocks excluded */
    for (int p = 0; p < nprocs; p++)
        total_bytes += block_bytes(o, p) * (size_t)(nprocs - 1);
    cJSON *root = cJSON_CreateObject(), *c = cJSON_AddObjectToObject(root, "config");
    cJSON_AddStringToObject(root, "tool", "bls-bench");
    cJSON_AddNumberToObject(c, "processes", nprocs);
    cJSON_AddNumberToObject(c, "iters", (double)o->iters);
    cJSON_AddNumberToObject(c, "rounds", (double)o->rounds);
    cJSON_AddNumberToObject(c, "bytes", (double)o->bytes);
    cJSON_AddNumberToObject(c, "skew_rank", o->skew_rank);
    cJSON_AddNumberToObject(c, "skew_factor", o->skew_factor);
    cJSON_AddNumberToObject(c, "work_us", o->work_us);
    cJSON_AddBoolToObject(c, "busy", o->busy);
    cJSON_AddStringToObject(c, "progress", bls_progress_name(o->progress));
    cJSON_AddNumberToObject(c, "progress_every_us", o->progress_every_us);
    harness_delay_format(&o->delay, dtext, sizeof(dtext));
    cJSON_AddStringToObject(c, "delay", dtext);
    cJSON_AddNumberToObject(c, "seed", (double)o->delay.seed);
    cJSON_AddNumberToObject(root, "peak_rss_kib_max_rank", (double)rss_max);
    cJSON *per = cJSON_AddArrayToObject(root, "peak_rss_kib_per_rank");
    for (int p = 0; p < nprocs; p++)
        cJSON_AddItemToArray(per, cJSON_CreateNumber((double)rss_all[p]));
    cJSON_AddNumberToObject(root, "ideal_unlimited_speedup", res[0].ideal0 / res[0].ideal_inf);
    cJSON *modes = cJSON_AddArrayToObject(root, "modes");
    for (int m = 0; m < o->nmodes; m++)
        cJSON_AddItemToArray(modes,
                             json_mode(o, &o->modes[m], &res[m], sync_time(o, res), total_bytes));
    int rc = harness_json_write(root, o->json, err, sizeof(err));
    cJSON_Delete(root);
    if (rc != 0)
        fprintf(stderr, "bls-bench: %s\n", err);
    return rc == 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
    opts_t o;
    int rc = parse(argc, argv, &o);
    if (rc == 0 && provided != MPI_THREAD_MULTIPLE)
        rc = die("MPI does not provide MPI_THREAD_MULTIPLE, which bls mode needs%s", "");
    if (rc != 0) {
        MPI_Finalize();
        return rc < 0 ? 0 : rc;
    }
    int P = nprocs, M = o.nmodes;
    result_t *res = calloc((size_t)M, sizeof(result_t));
    for (int m = 0; m < M; m++) {
        res[m].cycles = rank == 0
                            ? calloc((size_t)P * (size_t)o.iters * (size_t)o.rounds, sizeof(double))
                            : NULL;
        res[m].cpu_rank = calloc((size_t)P, sizeof(double));
    }
    char dtext[64];
    harness_delay_format(&o.delay, dtext, sizeof(dtext));
    if (rank == 0 && !o.quiet)
        printf("bls-bench: %d processes, %ld iterations x %ld rounds, %zu B per peer, work %g us "
               "(%s), delay %s, seed %llu\n",
               P, o.iters, o.rounds, o.bytes, o.work_us, o.busy ? "busy" : "sleep", dtext,
               (unsigned long long)o.delay.seed);
    run_rounds(&o, res);
    long rss = harness_peak_rss_kib(), rss_max = 0, *rss_all = calloc((size_t)P, sizeof(long));
    MPI_Reduce(&rss, &rss_max, 1, MPI_LONG, MPI_MAX, 0, MPI_COMM_WORLD);
    MPI_Gather(&rss, 1, MPI_LONG, rss_all, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        print_table(&o, res, rss_max);
        if (o.json)
            rc = write_json(&o, res, rss_max, rss_all);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    for (int m = 0; m < M; m++) {
        free(res[m].cycles);
        free(res[m].cpu_rank);
    }
    free(res);
    free(rss_all);
    watchdog_finalize("bls-bench", rc, WATCHDOG_FINALIZE_GRACE);
    MPI_Finalize();
    watchdog_stop();
    return rc;
}
