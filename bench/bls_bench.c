/*
 * bls-bench: the collective alone, synchronous vs bounded-lag, under seeded delays.
 *
 * Every mode runs the same loop: per iteration, work (a sleep of --work-us plus the injected
 * delay, identical for every mode because it is a function of seed, rank and iteration), then
 * the all-to-all.  Modes run interleaved (round r runs every mode once, in rotating order) so
 * ratios come from one run on a noisy machine.  The measured work trace of each mode gives its
 * ideal-model time; efficiency = T_ideal / measured.
 */
#define _GNU_SOURCE
#include "bls.h"
#include "ideal.h"
#include "measure.h"
#include "scenario.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

enum { MODE_SYNC, MODE_IALLTOALLV, MODE_WINDOW, MODE_BLS };

typedef struct {
    int kind;
    int lag;
    char name[32];
} mode_t_;

typedef struct {
    mode_t_ modes[16];
    int nmodes;
    long iters, rounds;
    size_t bytes;
    int skew_rank;
    double skew_factor;
    double work_us;
    int busy;
    bls_delay_t delay;
    double timeout;
    const char *json;
    int quiet;
    int default_lag; /* --lag: the lag of modes written without one ("bls", "window") */
} opts_t;

typedef struct { /* totals over rounds, on rank 0 */
    double measured, ideal, ideal0, ideal_inf, wait, cpu, progress_cpu;
    double *cpu_rank; /* [P] CPU seconds per process over all rounds */
    double *cycles; /* all ranks' iteration times, all rounds */
    size_t ncycles;
} result_t;

static int rank, nprocs;

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static size_t block_bytes(const opts_t *o, int from)
{
    return from == o->skew_rank ? (size_t)((double)o->bytes * o->skew_factor) : o->bytes;
}

static void die(const char *fmt, const char *arg)
{
    if (rank == 0) {
        fprintf(stderr, "bls-bench: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n");
    }
    MPI_Finalize();
    exit(2);
}

static void usage(void)
{
    printf(
        "usage: mpirun -np P bls-bench [options]\n"
        "Synchronous vs bounded-lag alltoallv under seeded delays; modes run interleaved.\n\n"
        "  --modes LIST       comma list of: sync (MPI_Alltoallv), ialltoallv (MPI_Ialltoallv\n"
        "                     waited in the same iteration), window:L (naive pipeline: MPI_Isend/\n"
        "                     MPI_Irecv per iteration, MPI_Waitall L iterations later, no\n"
        "                     progress thread), bls:L (libbls, lag L).  Plain 'bls' or\n"
        "                     'window' take the lag of --lag.\n"
        "                     Default: sync,bls:1,bls:4\n"
        "  --lag L            lag of modes given without one (default 4)\n"
        "  --iters N          iterations per mode per round (default 500)\n"
        "  --rounds R         rounds; each runs every mode once, order rotating (default 2)\n"
        "  --bytes B          bytes every process sends every peer per iteration (default 65536)\n"
        "  --skew R:F         rank R sends F times --bytes (heterogeneous sizes)\n"
        "  --work-us W        work per iteration in microseconds (default 1000)\n"
        "  --busy             the work spins instead of sleeping (competes for the CPU)\n"
        "  --delay SPEC       injected per-iteration delay, same trace for every mode:\n"
        "                       none | exp:MEAN_US | hiccup:PROB:US | straggler:RANK:US\n"
        "                     (default exp:1000)\n"
        "  --seed S           seed of the delay trace (default 1)\n"
        "  --timeout SEC      libbls timeout (default 60)\n"
        "  --json FILE        write every figure and the configuration as JSON\n"
        "  --quiet            no progress lines\n"
        "  --help             this text\n\n"
        "Columns: time = slowest process's loop time (s); ms/it; speedup = sync time / time;\n"
        "ideal = ideal-model time of this mode's measured work trace; eff = ideal / time;\n"
        "bound = T_ideal(0) / T_ideal(L), the most lag can give on this trace; p50/p99/max =\n"
        "iteration time percentiles (ms, all processes); wait = mean time per process inside\n"
        "the collective (s); cpu/it = CPU time per iteration per process (us, incl. threads).\n"
        "The JSON adds the progress thread's CPU per iteration (time moving data, BLS modes),\n"
        "p0..p100 of iteration times, and the peak memory of the largest process.\n");
}

static void parse(int argc, char **argv, opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->iters = 500;
    o->rounds = 2;
    o->bytes = 65536;
    o->skew_rank = -1;
    o->skew_factor = 1;
    o->work_us = 1000;
    o->delay = (bls_delay_t){BLS_DELAY_EXP, 1000, 0, 1};
    o->timeout = 60;
    o->default_lag = 4;
    const char *modes = "sync,bls:1,bls:4";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            if (rank == 0)
                usage();
            MPI_Finalize();
            exit(0);
        } else if (!strcmp(a, "--busy")) {
            o->busy = 1;
            takes = 0;
        } else if (!strcmp(a, "--quiet")) {
            o->quiet = 1;
            takes = 0;
        } else if (!v) {
            die("option %s needs a value (see --help)", a);
        } else if (!strcmp(a, "--modes")) {
            modes = v;
        } else if (!strcmp(a, "--iters")) {
            o->iters = atol(v);
        } else if (!strcmp(a, "--rounds")) {
            o->rounds = atol(v);
        } else if (!strcmp(a, "--bytes")) {
            o->bytes = (size_t)atoll(v);
        } else if (!strcmp(a, "--skew")) {
            if (sscanf(v, "%d:%lf", &o->skew_rank, &o->skew_factor) != 2 || o->skew_factor < 0)
                die("--skew takes RANK:FACTOR, got '%s'", v);
        } else if (!strcmp(a, "--work-us")) {
            o->work_us = atof(v);
        } else if (!strcmp(a, "--seed")) {
            o->delay.seed = (uint64_t)atoll(v);
        } else if (!strcmp(a, "--lag")) {
            o->default_lag = atoi(v);
            if (o->default_lag < 0)
                die("--lag must be >= 0, got '%s'", v);
        } else if (!strcmp(a, "--timeout")) {
            o->timeout = atof(v);
        } else if (!strcmp(a, "--json")) {
            o->json = v;
        } else if (!strcmp(a, "--delay")) {
            char err[200];
            if (bls_delay_parse(v, &o->delay, err, sizeof(err)) != 0)
                die("--delay: %s", err);
        } else {
            die("unknown option %s (see --help)", a);
        }
        i += takes;
    }
    if (o->iters < 1 || o->rounds < 1 || o->work_us < 0)
        die("--iters and --rounds must be >= 1 and --work-us >= 0%s", "");
    char *list = strdup(modes), *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->nmodes == 16)
            die("at most 16 modes%s", "");
        mode_t_ *m = &o->modes[o->nmodes++];
        if (!strcmp(t, "sync")) {
            m->kind = MODE_SYNC;
        } else if (!strcmp(t, "ialltoallv")) {
            m->kind = MODE_IALLTOALLV;
        } else if (!strcmp(t, "bls") || !strcmp(t, "window")) {
            m->kind = t[0] == 'b' ? MODE_BLS : MODE_WINDOW;
            m->lag = o->default_lag;
        } else if (sscanf(t, "bls:%d", &m->lag) == 1 && m->lag >= 0) {
            m->kind = MODE_BLS;
        } else if (sscanf(t, "window:%d", &m->lag) == 1 && m->lag >= 0) {
            m->kind = MODE_WINDOW;
        } else {
            die("unknown mode '%s' (sync, ialltoallv, window:L, bls:L)", t);
        }
        if (m->kind == MODE_BLS || m->kind == MODE_WINDOW)
            snprintf(m->name, sizeof(m->name), "%s:%d", m->kind == MODE_BLS ? "bls" : "window",
                     m->lag);
        else
            snprintf(m->name, sizeof(m->name), "%s", t);
    }
    free(list);
    if (o->nmodes == 0)
        die("--modes is empty%s", "");
}

/* One mode, one round: returns this process's loop time; fills w[k] and cyc[k]. */
static double run_mode(const opts_t *o, const mode_t_ *m, double *w, double *cyc, double *wait_p,
                       double *progress_cpu_p)
{
    int P = nprocs;
    size_t maxb = 0;
    for (int p = 0; p < P; p++)
        if (block_bytes(o, p) > maxb)
            maxb = block_bytes(o, p);
    int pipelined = m->kind == MODE_BLS || m->kind == MODE_WINDOW;
    int S = pipelined ? m->lag + 2 : 1;
    MPI_Request *wreq = m->kind == MODE_WINDOW ? malloc(sizeof(MPI_Request) * 2 * (size_t)P * (size_t)S) : NULL;
    MPI_Status *wst = m->kind == MODE_WINDOW ? malloc(sizeof(MPI_Status) * 2 * (size_t)P) : NULL;
    size_t *sc = calloc((size_t)P, sizeof(size_t)), *sd = calloc((size_t)P, sizeof(size_t));
    size_t *rc = calloc((size_t)P, sizeof(size_t)), *rd = calloc((size_t)P, sizeof(size_t));
    int *isc = calloc((size_t)P, sizeof(int)), *isd = calloc((size_t)P, sizeof(int));
    int *irc = calloc((size_t)P, sizeof(int)), *ird = calloc((size_t)P, sizeof(int));
    size_t soff = 0, roff = 0;
    for (int q = 0; q < P; q++) {
        sc[q] = block_bytes(o, rank);
        sd[q] = soff;
        soff += sc[q];
        rc[q] = block_bytes(o, q);
        rd[q] = roff;
        roff += rc[q];
        isc[q] = (int)sc[q];
        isd[q] = (int)sd[q];
        irc[q] = (int)rc[q];
        ird[q] = (int)rd[q];
    }
    char *sendbuf = malloc(soff + 1), *recvbuf = malloc(roff * (size_t)S + 1);
    memset(sendbuf, rank, soff + 1);
    memset(recvbuf, 0, roff * (size_t)S + 1);
    bls_comm_t *comm = NULL;
    if (m->kind == MODE_BLS) {
        bls_config_t cfg;
        bls_config_init(&cfg);
        cfg.lag = m->lag;
        cfg.max_block = block_bytes(o, rank);
        cfg.timeout = o->timeout;
        bls_status_t st = bls_comm_create(MPI_COMM_WORLD, &cfg, &comm);
        if (st != BLS_OK) {
            fprintf(stderr, "bls-bench: rank %d: %s\n", rank, bls_last_error());
            MPI_Abort(MPI_COMM_WORLD, 3);
        }
    }
    double waited = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = bench_now(), prev = t0;
    for (long k = 0; k < o->iters + (pipelined ? m->lag : 0); k++) {
        if (k < o->iters) {
            double ws = bench_now();
            bls_spend_us(o->work_us + bls_delay_us(&o->delay, rank, k), o->busy);
            double we = bench_now();
            w[k] = we - ws;
            bls_status_t st = BLS_OK;
            if (m->kind == MODE_SYNC) {
                MPI_Alltoallv(sendbuf, isc, isd, MPI_BYTE, recvbuf, irc, ird, MPI_BYTE,
                              MPI_COMM_WORLD);
            } else if (m->kind == MODE_IALLTOALLV) {
                MPI_Request req;
                MPI_Ialltoallv(sendbuf, isc, isd, MPI_BYTE, recvbuf, irc, ird, MPI_BYTE,
                               MPI_COMM_WORLD, &req);
                MPI_Wait(&req, MPI_STATUS_IGNORE);
            } else if (m->kind == MODE_WINDOW) {
                MPI_Request *r = wreq + (size_t)(k % S) * 2 * P;
                char *rb = recvbuf + (size_t)(k % S) * roff;
                for (int q = 0; q < P; q++) {
                    MPI_Irecv(rb + rd[q], irc[q], MPI_BYTE, q, (int)(k % S), MPI_COMM_WORLD, &r[q]);
                    MPI_Isend(sendbuf + sd[q], isc[q], MPI_BYTE, q, (int)(k % S), MPI_COMM_WORLD,
                              &r[P + q]);
                }
                if (k >= m->lag)
                    MPI_Waitall(2 * P, wreq + (size_t)((k - m->lag) % S) * 2 * P, wst);
            } else {
                bls_iter_t id;
                st = bls_post(comm, sendbuf, sc, sd, recvbuf + (size_t)(k % S) * roff, rc, rd,
                              &id);
            }
            if (st == BLS_OK && m->kind == MODE_BLS && k >= m->lag)
                st = bls_wait(comm, k - m->lag, NULL);
            if (st != BLS_OK) {
                fprintf(stderr, "bls-bench: rank %d, iteration %ld: %s\n", rank, k,
                        bls_last_error());
                MPI_Abort(MPI_COMM_WORLD, 3);
            }
            double te = bench_now();
            waited += te - we;
            cyc[k] = te - prev;
            prev = te;
        } else if (m->kind == MODE_WINDOW) {
            double ws = bench_now();
            MPI_Waitall(2 * P, wreq + (size_t)((k - m->lag) % S) * 2 * P, wst);
            waited += bench_now() - ws;
        } else {
            double ws = bench_now();
            bls_status_t st = bls_wait(comm, k - m->lag, NULL);
            if (st != BLS_OK) {
                fprintf(stderr, "bls-bench: rank %d: %s\n", rank, bls_last_error());
                MPI_Abort(MPI_COMM_WORLD, 3);
            }
            waited += bench_now() - ws;
        }
    }
    if (comm) {
        bls_status_t st = bls_finish(comm);
        if (st != BLS_OK) {
            fprintf(stderr, "bls-bench: rank %d: %s\n", rank, bls_last_error());
            MPI_Abort(MPI_COMM_WORLD, 3);
        }
    }
    double t1 = bench_now();
    *progress_cpu_p = 0;
    if (comm) {
        bls_stats_t bs;
        if (bls_comm_stats(comm, &bs) == BLS_OK)
            *progress_cpu_p = bs.progress_cpu_seconds;
    }
    bls_comm_destroy(comm);
    free(wreq);
    free(wst);
    free(sc);
    free(sd);
    free(rc);
    free(rd);
    free(isc);
    free(isd);
    free(irc);
    free(ird);
    free(sendbuf);
    free(recvbuf);
    *wait_p = waited;
    return t1 - t0;
}

static const char *delay_text(const opts_t *o, char *buf, size_t len)
{
    bls_delay_format(&o->delay, buf, len);
    return buf;
}

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
    opts_t o;
    parse(argc, argv, &o);
    if (provided != MPI_THREAD_MULTIPLE)
        die("MPI does not provide MPI_THREAD_MULTIPLE, which bls mode needs%s", "");
    int P = nprocs, M = o.nmodes;
    long K = o.iters;
    double *w = calloc((size_t)K, sizeof(double)), *cyc = calloc((size_t)K, sizeof(double));
    double *all_w = rank == 0 ? calloc((size_t)P * K, sizeof(double)) : NULL;
    double *all_c = rank == 0 ? calloc((size_t)P * K, sizeof(double)) : NULL;
    double *scratch = calloc((size_t)P + (size_t)K, sizeof(double));
    result_t *res = calloc((size_t)M, sizeof(result_t));
    double *cpu_all = calloc((size_t)P, sizeof(double));
    for (int m = 0; m < M; m++) {
        res[m].cycles = rank == 0 ? calloc((size_t)P * K * o.rounds, sizeof(double)) : NULL;
        res[m].cpu_rank = calloc((size_t)P, sizeof(double));
    }
    char dtext[64];
    if (rank == 0 && !o.quiet)
        printf("bls-bench: %d processes, %ld iterations x %ld rounds, %zu B per peer, work %g us "
               "(%s), delay %s, seed %llu\n",
               P, K, o.rounds, o.bytes, o.work_us, o.busy ? "busy" : "sleep",
               delay_text(&o, dtext, sizeof(dtext)), (unsigned long long)o.delay.seed);
    for (long r = 0; r < o.rounds; r++) {
        for (int i = 0; i < M; i++) {
            int m = (int)((i + r) % M); /* rotate the order so no mode always goes first */
            double wait = 0, pcpu = 0, pcpusum = 0, c0 = cpu_seconds();
            double t = run_mode(&o, &o.modes[m], w, cyc, &wait, &pcpu);
            double cpu = cpu_seconds() - c0, tmax = 0, waitsum = 0, cpusum = 0;
            MPI_Reduce(&pcpu, &pcpusum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
            MPI_Gather(&cpu, 1, MPI_DOUBLE, cpu_all, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
            MPI_Reduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
            MPI_Reduce(&wait, &waitsum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
            MPI_Reduce(&cpu, &cpusum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
            MPI_Gather(w, (int)K, MPI_DOUBLE, all_w, (int)K, MPI_DOUBLE, 0, MPI_COMM_WORLD);
            MPI_Gather(cyc, (int)K, MPI_DOUBLE, all_c, (int)K, MPI_DOUBLE, 0, MPI_COMM_WORLD);
            if (rank != 0)
                continue;
            result_t *x = &res[m];
            int lag = o.modes[m].lag; /* 0 for sync and ialltoallv */
            x->measured += tmax;
            x->ideal += bls_ideal_time(all_w, P, (int)K, lag, scratch);
            x->ideal0 += bls_ideal_time(all_w, P, (int)K, 0, scratch);
            x->ideal_inf += bls_ideal_time(all_w, P, (int)K, (int)K, scratch);
            x->wait += waitsum / P;
            x->cpu += cpusum / P;
            x->progress_cpu += pcpusum / P;
            for (int p = 0; p < P; p++)
                x->cpu_rank[p] += cpu_all[p];
            memcpy(x->cycles + x->ncycles, all_c, sizeof(double) * (size_t)P * K);
            x->ncycles += (size_t)P * K;
            if (!o.quiet)
                printf("  round %ld/%ld %-12s %8.3f s\n", r + 1, o.rounds, o.modes[m].name, tmax);
            fflush(stdout);
        }
    }
    long rss = bench_peak_rss_kib(), rss_max = 0;
    long *rss_all = calloc((size_t)P, sizeof(long));
    MPI_Reduce(&rss, &rss_max, 1, MPI_LONG, MPI_MAX, 0, MPI_COMM_WORLD);
    MPI_Gather(&rss, 1, MPI_LONG, rss_all, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    size_t total_bytes = 0; /* bytes all processes send per iteration, self blocks excluded */
    for (int p = 0; p < P; p++)
        total_bytes += block_bytes(&o, p) * (size_t)(P - 1);
    if (rank == 0) {
        double sync_time = 0;
        for (int m = 0; m < M; m++)
            if (o.modes[m].kind == MODE_SYNC)
                sync_time = res[m].measured;
        printf("\n%-12s %8s %7s %8s %8s %6s %6s %7s %7s %7s %8s %8s\n", "mode", "time", "ms/it",
               "speedup", "ideal", "eff", "bound", "p50", "p99", "max", "wait", "cpu/it");
        for (int m = 0; m < M; m++) {
            result_t *x = &res[m];
            bench_sort(x->cycles, x->ncycles);
            double per_it = 1e3 * x->measured / (double)(K * o.rounds);
            char speed[16] = "-";
            if (sync_time > 0)
                snprintf(speed, sizeof(speed), "%.3f", sync_time / x->measured);
            printf("%-12s %8.3f %7.3f %8s %8.3f %6.3f %6.3f %7.3f %7.3f %7.3f %8.3f %8.1f\n",
                   o.modes[m].name, x->measured, per_it, speed, x->ideal, x->ideal / x->measured,
                   x->ideal0 / x->ideal, 1e3 * bench_percentile(x->cycles, x->ncycles, 0.5),
                   1e3 * bench_percentile(x->cycles, x->ncycles, 0.99), 1e3 * x->cycles[x->ncycles - 1],
                   x->wait, 1e6 * x->cpu / (double)(K * o.rounds));
        }
        printf("\npeak memory: %.1f MiB on the largest process (whole run)\n", rss_max / 1024.0);
        double unlimited = res[0].ideal0 / res[0].ideal_inf;
        printf("\nideal model: unlimited lag could give at most %.3fx over synchronous on this "
               "trace.\n", unlimited);
        if (unlimited < 1.05)
            printf("note: nothing to mask here -- per-process totals are balanced, or one process "
                   "is persistently slower (max of sums = sum of maxima); lag absorbs jitter, "
                   "not a slower process.  Rebalance the work instead.\n");
        if (o.json) {
            FILE *f = fopen(o.json, "w");
            if (!f) {
                fprintf(stderr, "bls-bench: cannot write %s: %s\n", o.json, strerror(errno));
                MPI_Abort(MPI_COMM_WORLD, 4);
            }
            fprintf(f, "{\n  \"tool\": \"bls-bench\",\n  \"config\": {\"processes\": %d, "
                       "\"iters\": %ld, \"rounds\": %ld, \"bytes\": %zu, \"skew_rank\": %d, "
                       "\"skew_factor\": %g, \"work_us\": %g, \"busy\": %s, \"delay\": \"%s\", "
                       "\"seed\": %llu},\n  \"peak_rss_kib_max_rank\": %ld,\n  \"peak_rss_kib_per_rank\": [",
                    P, K, o.rounds, o.bytes, o.skew_rank, o.skew_factor, o.work_us,
                    o.busy ? "true" : "false", delay_text(&o, dtext, sizeof(dtext)),
                    (unsigned long long)o.delay.seed, rss_max);
            for (int p = 0; p < P; p++)
                fprintf(f, "%s%ld", p ? ", " : "", rss_all[p]);
            fprintf(f, "],\n  \"ideal_unlimited_speedup\": %.6f,\n  \"modes\": [", unlimited);
            for (int m = 0; m < M; m++) {
                result_t *x = &res[m];
                fprintf(f,
                        "%s\n    {\"mode\": \"%s\", \"lag\": %d, \"time_s\": %.6f, "
                        "\"ms_per_iter\": %.6f, \"iters_per_s\": %.3f, \"bytes_per_s\": %.1f, "
                        "\"speedup_vs_sync\": %.6f, \"ideal_s\": %.6f, "
                        "\"efficiency\": %.6f, \"bound\": %.6f, \"iter_ms_p50\": %.6f, "
                        "\"iter_ms_p99\": %.6f, \"iter_ms_max\": %.6f, \"wait_s\": %.6f, "
                        "\"cpu_us_per_iter\": %.3f, \"progress_thread_cpu_us_per_iter\": %.3f, "
                        "\"iter_ms_percentiles\": [",
                        m ? "," : "", o.modes[m].name,
                        o.modes[m].lag, x->measured,
                        1e3 * x->measured / (double)(K * o.rounds),
                        (double)(K * o.rounds) / x->measured,
                        (double)(K * o.rounds) * (double)total_bytes / x->measured,
                        sync_time > 0 ? sync_time / x->measured : 0.0, x->ideal,
                        x->ideal / x->measured, x->ideal0 / x->ideal,
                        1e3 * bench_percentile(x->cycles, x->ncycles, 0.5),
                        1e3 * bench_percentile(x->cycles, x->ncycles, 0.99),
                        1e3 * x->cycles[x->ncycles - 1], x->wait,
                        1e6 * x->cpu / (double)(K * o.rounds),
                        1e6 * x->progress_cpu / (double)(K * o.rounds));
                /* p0..p100 in steps of 1: enough to draw the distribution */
                for (int q = 0; q <= 100; q++)
                    fprintf(f, "%s%.4f", q ? ", " : "", 1e3 * bench_percentile(x->cycles, x->ncycles, q / 100.0));
                fprintf(f, "], \"cpu_s_per_rank\": [");
                for (int p = 0; p < P; p++)
                    fprintf(f, "%s%.6f", p ? ", " : "", x->cpu_rank[p]);
                fprintf(f, "]}");
            }
            fprintf(f, "\n  ]\n}\n");
            fclose(f);
        }
    }
    for (int m = 0; m < M; m++) {
        free(res[m].cycles);
        free(res[m].cpu_rank);
    }
    free(cpu_all);
    free(rss_all);
    free(res);
    free(w);
    free(cyc);
    free(all_w);
    free(all_c);
    free(scratch);
    MPI_Finalize();
    return 0;
}
