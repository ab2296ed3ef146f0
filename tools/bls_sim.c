/*
 * bls-sim: what bounded lag gives at scales this machine cannot run, from the ideal model
 * (harness.h, bls-semantics) on synthetic traces.
 *
 * For each process count P it draws every process's work per iteration, w(p,k) = WORK + the
 * delay model's draw for (p, k) (the same delay models, and for the same seed the same draws,
 * as bls-bench and bls-dlrm inject), and runs the model:
 *   offline: T(L) for the synchronous collective (L = 0), each lag and unlimited lag; the
 *            speedup T(0) / T(L) is what BLS can give over MPI_Alltoallv on that trace.
 *   server:  Poisson arrivals (the serving schedule of bls-dlrm, --queries of them); the
 *            highest rate whose p99 latency (arrival to done on every process) stays within
 *            --bound-ms, for L = 0 and each lag, found by bisection: scaling every arrival
 *            time by one factor can only delay completions, so p99 rises with the rate.
 * An exchange cost per iteration (--comm) is added after each iteration's last send, on no
 * process's CPU: (P - 1) x (latency + bytes / bandwidth), one peer after another, a pairwise
 * alltoallv over one link per process.  Lag overlaps it with the next iteration's work.
 *
 * Law it must meet (tests/tools/test_sim.sh): with exponential delays of mean m the synchronous
 * cost per iteration is WORK + m H_P (H_P the P-th harmonic number: the mean of the largest of P
 * exponentials), and unlimited lag tends to WORK + m.  What it leaves out: the library's own
 * overheads (measured at P = 2..32 in bench/RESULTS.md against bls-bench), contention between
 * messages, and a network whose speed changes.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIST 64
#define MAX_CELLS 400000000.0 /* P x K doubles: 3.2 GB */

typedef struct {
    int procs[MAX_LIST], nprocs;
    long lags[MAX_LIST]; /* -1: unlimited */
    int nlags;
    long iters;
    double work_us;
    harness_delay_t delay;
    double comm_lat_us, comm_bytes, comm_gbps; /* --comm; comm_fixed_us < 0 when per peer */
    double comm_fixed_us;
    int offline, server;
    double bound_ms;
    long queries;
    const char *json;
    int quiet;
    /* The network model (--hosts): links that carry each host's blocks at a rate, optionally
     * changing over time (a cluster.sh jitter log). */
    int hosts;
    double net_bytes, net_gbps, net_burst;
    const char *net_schedule;
} opts_t;

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: bls-sim [options]\n"
        "The ideal model of bounded-lag execution at any scale: synchronous alltoallv vs\n"
        "bounded lag L on synthetic per-process delay traces, offline and serving.\n\n"
        "  --procs LIST       process counts (default 8,16,32,64,128,256,512,1024)\n"
        "  --lags LIST        lags to compare with sync (L = 0); 'inf' for unlimited\n"
        "                     (default 1,2,4,8,inf)\n"
        "  --iters K          iterations (batches) per process (default 10000)\n"
        "  --work-us W        work per iteration on every process, microseconds (default 1000)\n"
        "  --delay SPEC       per-process, per-iteration delay, as bls-bench's:\n"
        "                       none | exp:MEAN_US | hiccup:PROB:US | lognormal:MEDIAN_US:SIGMA |\n"
        "                       cosched:PROB:US (every process late in the same iterations) |\n"
        "                       straggler:RANK:US | spike:RANK:ITER:US | A/ITER/B\n"
        "                     (default exp:1000)\n"
        "  --seed S           seed of the delay trace and the arrivals (default 1)\n"
        "  --comm LAT:BYTES:GBPS   exchange cost per iteration: (P-1) x (LAT us + BYTES over\n"
        "                     GBPS Gbit/s), peers one after another (default: none)\n"
        "  --comm-us C        or a fixed exchange cost of C us per iteration\n"
        "  --scenario LIST    offline, server or offline,server (default offline)\n"
        "  --bound-ms B       server: the p99 latency bound, ms (default 20)\n"
        "  --queries N        server: queries per rate tried (default: --iters)\n"
        "  --hosts H          the network model (offline): the processes in H hosts, contiguous\n"
        "                     blocks as mpirun fills slots; each host's link carries its\n"
        "                     processes' blocks to other hosts in order, at --net-rate\n"
        "  --net-bytes B      bytes each process sends each peer per iteration (with --hosts)\n"
        "  --net-rate GBPS    each host's link rate, Gbit/s (default 1)\n"
        "  --net-burst BYTES  the links' token bucket: up to BYTES leave at once, the rest\n"
        "                     at the rate (tc tbf's burst; cluster.sh's 65536; default 0)\n"
        "  --net-schedule FILE  the rates over time, a log of scripts/cluster.sh jitter\n"
        "                     ('MS hI RATE' lines: from MS ms on, host I's link at RATE)\n"
        "  --json FILE        write the configuration and every figure as JSON\n"
        "  --quiet            no progress lines (on stderr)\n"
        "  --help             this text\n\n"
        "Offline columns: sync ms/it = T(0)/K; law = WORK + MEAN x H_P (+ exchange), the\n"
        "analytic synchronous cost under exp delays; bls:L = the speedup T(0)/T(L); inf =\n"
        "unlimited lag.  Server columns: the highest Poisson rate (queries/s) whose p99\n"
        "latency is within the bound under sync, and each lag's as a multiple of it.\n"
        "Exit status: 0 done; 2 a bad option.\n");
}

__attribute__((format(printf, 1, 2))) static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bls-sim: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see --help)\n");
    va_end(ap);
    return 2;
}

static int parse_long(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

static int parse_double(const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        return -1;
    *out = x;
    return 0;
}

/* A comma list of integers in [lo, hi] ('inf' as -1 when allowed). */
static int parse_list(const char *v, long lo, long hi, int inf_ok, long *out, int *n)
{
    char buf[1024];
    if (strlen(v) >= sizeof(buf) || !*v)
        return -1;
    strcpy(buf, v);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        long x;
        if (*n == MAX_LIST)
            return -1;
        if (inf_ok && !strcmp(tok, "inf"))
            x = -1;
        else if (parse_long(tok, lo, hi, &x) != 0)
            return -1;
        out[(*n)++] = x;
    }
    return *n > 0 ? 0 : -1;
}

static int parse(int argc, char **argv, opts_t *o)
{
    memset(o, 0, sizeof(*o));
    static const int procs[] = {8, 16, 32, 64, 128, 256, 512, 1024};
    o->nprocs = 8;
    memcpy(o->procs, procs, sizeof(procs));
    static const long lags[] = {1, 2, 4, 8, -1};
    o->nlags = 5;
    memcpy(o->lags, lags, sizeof(lags));
    o->iters = 10000;
    o->work_us = 1000;
    o->delay.seed = 1;
    o->offline = 1;
    o->bound_ms = 20;
    o->net_gbps = 1;
    char err[512];
    const char *delay = "exp:1000"; /* parsed after the loop, with --seed's seed */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--quiet")) {
            o->quiet = 1;
            continue;
        }
        if (!v)
            return bad("%s needs a value", a);
        i++;
        long tmp[MAX_LIST];
        if (!strcmp(a, "--procs")) {
            if (parse_list(v, 1, 1 << 20, 0, tmp, &o->nprocs) != 0)
                return bad("--procs takes a comma list of process counts 1 .. 1048576, got '%s'",
                           v);
            for (int j = 0; j < o->nprocs; j++)
                o->procs[j] = (int)tmp[j];
        } else if (!strcmp(a, "--lags")) {
            if (parse_list(v, 1, 1 << 20, 1, o->lags, &o->nlags) != 0)
                return bad("--lags takes a comma list of lags >= 1 or 'inf', got '%s'", v);
        } else if (!strcmp(a, "--iters")) {
            if (parse_long(v, 1, 100000000, &o->iters) != 0)
                return bad("--iters takes 1 .. 1e8, got '%s'", v);
        } else if (!strcmp(a, "--work-us")) {
            if (parse_double(v, 0, 3.6e9, &o->work_us) != 0)
                return bad("--work-us takes 0 .. 3.6e9 microseconds, got '%s'", v);
        } else if (!strcmp(a, "--delay")) {
            delay = v;
        } else if (!strcmp(a, "--seed")) {
            long s;
            if (parse_long(v, 0, 0x7fffffffL, &s) != 0)
                return bad("--seed takes 0 .. 2^31-1, got '%s'", v);
            o->delay.seed = (uint64_t)s;
        } else if (!strcmp(a, "--comm")) {
            char tail;
            if (sscanf(v, "%lf:%lf:%lf%c", &o->comm_lat_us, &o->comm_bytes, &o->comm_gbps, &tail) !=
                    3 ||
                !(o->comm_lat_us >= 0 && o->comm_lat_us <= 1e9) ||
                !(o->comm_bytes >= 0 && o->comm_bytes <= 1e12) ||
                !(o->comm_gbps > 0 && o->comm_gbps <= 1e6))
                return bad("--comm takes LAT_US:BYTES:GBPS (latency >= 0, bytes >= 0, "
                           "bandwidth > 0), got '%s'",
                           v);
            o->comm_fixed_us = -1;
        } else if (!strcmp(a, "--comm-us")) {
            if (parse_double(v, 0, 3.6e9, &o->comm_fixed_us) != 0)
                return bad("--comm-us takes 0 .. 3.6e9 microseconds, got '%s'", v);
        } else if (!strcmp(a, "--scenario")) {
            o->offline = strstr(v, "offline") != NULL;
            o->server = strstr(v, "server") != NULL;
            if (strcmp(v, "offline") && strcmp(v, "server") && strcmp(v, "offline,server") &&
                strcmp(v, "server,offline"))
                return bad("--scenario takes offline, server or offline,server, got '%s'", v);
        } else if (!strcmp(a, "--bound-ms")) {
            if (parse_double(v, 1e-6, 3.6e6, &o->bound_ms) != 0)
                return bad("--bound-ms takes a positive number of milliseconds, got '%s'", v);
        } else if (!strcmp(a, "--queries")) {
            if (parse_long(v, 100, 100000000, &o->queries) != 0)
                return bad("--queries takes 100 .. 1e8, got '%s'", v);
        } else if (!strcmp(a, "--json")) {
            o->json = v;
        } else if (!strcmp(a, "--hosts")) {
            long h;
            if (parse_long(v, 1, 1 << 20, &h) != 0)
                return bad("--hosts takes a positive number of hosts, got '%s'", v);
            o->hosts = (int)h;
        } else if (!strcmp(a, "--net-bytes")) {
            if (parse_double(v, 0, 1e12, &o->net_bytes) != 0)
                return bad("--net-bytes takes 0 .. 1e12 bytes, got '%s'", v);
        } else if (!strcmp(a, "--net-rate")) {
            if (parse_double(v, 1e-6, 1e6, &o->net_gbps) != 0)
                return bad("--net-rate takes a positive rate in Gbit/s, got '%s'", v);
        } else if (!strcmp(a, "--net-burst")) {
            if (parse_double(v, 0, 1e12, &o->net_burst) != 0)
                return bad("--net-burst takes 0 .. 1e12 bytes, got '%s'", v);
        } else if (!strcmp(a, "--net-schedule")) {
            o->net_schedule = v;
        } else {
            return bad("unknown option '%s'", a);
        }
    }
    if (harness_delay_parse(delay, &o->delay, err, sizeof(err)) != 0)
        return bad("--delay: %s", err);
    if ((o->net_bytes > 0 || o->net_schedule || o->net_burst > 0) && !o->hosts)
        return bad("--net-bytes, --net-burst and --net-schedule need --hosts");
    if (o->hosts && o->server)
        return bad("the network model (--hosts) is for the offline scenario only");
    for (int j = 0; o->hosts && j < o->nprocs; j++)
        if (o->procs[j] % o->hosts)
            return bad("--hosts %d does not divide %d processes", o->hosts, o->procs[j]);
    if (!o->queries)
        o->queries = o->iters < 100 ? 100 : o->iters;
    for (int j = 0; j < o->nprocs; j++) {
        double cells =
            (double)o->procs[j] * (double)(o->iters > o->queries ? o->iters : o->queries);
        if (cells > MAX_CELLS) {
            char n[64];
            snprintf(n, sizeof(n), "%d x %ld", o->procs[j],
                     o->iters > o->queries ? o->iters : o->queries);
            return bad("%s process-iterations is more than 4e8 (3.2 GB of work trace)", n);
        }
    }
    return 0;
}

/* The exchange's cost per iteration at P processes, seconds. */
static double comm_s(const opts_t *o, int P)
{
    if (o->comm_fixed_us >= 0)
        return o->comm_fixed_us * 1e-6;
    return (P - 1) * (o->comm_lat_us + o->comm_bytes * 8.0 / (o->comm_gbps * 1e3)) * 1e-6;
}

static double harmonic(int P)
{
    double h = 0;
    for (int i = P; i >= 1; i--)
        h += 1.0 / i;
    return h;
}

typedef struct {
    int P;
    double seconds; /* to compute this P */
    double comm_us;
    double sync_ms, law_ms; /* law_ms < 0: no law for this delay */
    double speedup[MAX_LIST];
    double sync_qps, qps[MAX_LIST], qps_ratio[MAX_LIST], sync_p99_ms_at_peak;
} row_t;

/* p99 of done - arrival at rate qps; lat, done [n], scratch P doubles. */
static double p99_at(const double *work, const double *base, double *arrival, double *done,
                     double *lat, double *scratch, int P, long n, long lag, double comm, double qps)
{
    for (long k = 0; k < n; k++)
        arrival[k] = base[k] / qps;
    harness_ideal_open_comm(work, arrival, P, (int)n, (int)lag, comm, done, scratch);
    for (long k = 0; k < n; k++)
        lat[k] = done[k] - arrival[k];
    harness_sort(lat, (size_t)n);
    return harness_percentile(lat, (size_t)n, 0.99);
}

/* The highest rate with p99 <= bound (0 when even an idle system misses it). */
static double peak_qps(const double *work, const double *base, double *arrival, double *done,
                       double *lat, double *scratch, int P, long n, long lag, double comm,
                       double capacity, double bound)
{
    double lo = capacity * 1e-4, hi = capacity * 1.05;
    if (p99_at(work, base, arrival, done, lat, scratch, P, n, lag, comm, lo) > bound)
        return 0;
    if (p99_at(work, base, arrival, done, lat, scratch, P, n, lag, comm, hi) <= bound)
        return hi;
    for (int it = 0; it < 40 && hi - lo > 1e-4 * lo; it++) {
        double mid = 0.5 * (lo + hi);
        if (p99_at(work, base, arrival, done, lat, scratch, P, n, lag, comm, mid) <= bound)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* ---- the network model (--hosts) ----
 * Each host's link is a FIFO carrying its processes' blocks of iteration k to the other hosts:
 * ppH x (P - ppH) x B bytes, ppH processes per host.  It starts on them once every process of
 * the host has posted k and the link has carried k-1, at the link's rate at that moment (a
 * piecewise-constant schedule; the tbf of cluster.sh shapes both directions alike, so the
 * outbound volume stands for both), through a token bucket of --net-burst bytes as tbf's. Iteration
 * k is done when every process has posted it and every link has carried it (plus --comm): free(h,k)
 * = transmit_h(max(free(h,k-1), max_{p in h} send(p,k)), bits_h) done(k)   = max(max_p send(p,k),
 * max_h free(h,k)) + comm and start(p,k+1) = max(send(p,k), done(k-L)) as without it.  A delay that
 * lives in the network shows here as a slower transmit, on no process's CPU: sync pays each one
 * whole, lag overlaps it with work as long as the link's mean rate keeps up. */
typedef struct {
    double *t, *bps; /* segment i: from t[i] seconds on, bps bits/s */
    int n, cap;
} link_t;

static void links_free(link_t *l, int H)
{
    for (int h = 0; l && h < H; h++) {
        free(l[h].t);
        free(l[h].bps);
    }
    free(l);
}

static int link_add(link_t *l, double t, double bps)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        double *nt = realloc(l->t, (size_t)cap * sizeof(double));
        if (!nt)
            return -1;
        l->t = nt;
        double *nb = realloc(l->bps, (size_t)cap * sizeof(double));
        if (!nb)
            return -1;
        l->bps = nb;
        l->cap = cap;
    }
    l->t[l->n] = t;
    l->bps[l->n++] = bps;
    return 0;
}

/* "100mbit", "1gbit", "500kbit", "64bit" (tc's units) in bits/s; -1 if not one. */
static double parse_rate(const char *r)
{
    char unit[16] = "";
    double x;
    if (sscanf(r, "%lf%15s", &x, unit) != 2 || !(x > 0))
        return -1;
    if (!strcmp(unit, "bit"))
        return x;
    if (!strcmp(unit, "kbit"))
        return x * 1e3;
    if (!strcmp(unit, "mbit"))
        return x * 1e6;
    if (!strcmp(unit, "gbit"))
        return x * 1e9;
    return -1;
}

/* H links at --net-rate, then --net-schedule's changes; NULL with a message on failure. */
static link_t *links_load(const opts_t *o, int H)
{
    link_t *l = calloc((size_t)H, sizeof(link_t));
    double base = o->net_gbps * 1e9;
    FILE *f = NULL;
    char line[512];
    if (!l)
        goto oom;
    if (o->net_schedule && !(f = fopen(o->net_schedule, "r"))) {
        fprintf(stderr, "bls-sim: --net-schedule %s: %s\n", o->net_schedule, strerror(errno));
        links_free(l, H);
        return NULL;
    }
    /* The log's header names the rate every link starts at. */
    if (f && fgets(line, sizeof(line), f) && line[0] == '#') {
        const char *r = strstr(line, " rate ");
        char word[32];
        if (r && sscanf(r + 6, "%31s", word) == 1 && parse_rate(word) > 0)
            base = parse_rate(word);
    } else if (f) {
        rewind(f);
    }
    for (int h = 0; h < H; h++)
        if (link_add(&l[h], 0, base) != 0)
            goto oom;
    for (long n = 2; f && fgets(line, sizeof(line), f); n++) {
        double ms, bps;
        int h;
        char rate[32];
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (sscanf(line, "%lf h%d %31s", &ms, &h, rate) != 3 || !(ms >= 0) ||
            (bps = parse_rate(rate)) < 0) {
            fprintf(stderr, "bls-sim: %s:%ld: expected 'MS hI RATE' (RATE as 100mbit), got %s",
                    o->net_schedule, n, line);
            goto fail;
        }
        if (h < 0 || h >= H) {
            fprintf(stderr, "bls-sim: %s:%ld: host %d, but --hosts is %d\n", o->net_schedule, n, h,
                    H);
            goto fail;
        }
        if (ms * 1e-3 < l[h].t[l[h].n - 1]) {
            fprintf(stderr, "bls-sim: %s:%ld: time %g ms goes back\n", o->net_schedule, n, ms);
            goto fail;
        }
        if (link_add(&l[h], ms * 1e-3, bps) != 0)
            goto oom;
    }
    if (f)
        fclose(f);
    return l;
oom:
    fprintf(stderr, "bls-sim: out of memory for the network schedule\n");
fail:
    if (f)
        fclose(f);
    links_free(l, H);
    return NULL;
}

/* When `bits` sent from time t on are through link l; *cur: the segment t is in (moves on). */
static double transmit(const link_t *l, int *cur, double t, double bits)
{
    int i = *cur;
    while (i + 1 < l->n && l->t[i + 1] <= t)
        i++;
    *cur = i;
    for (;;) {
        double end = i + 1 < l->n ? l->t[i + 1] : INFINITY;
        double can = (end - t) * l->bps[i];
        if (can >= bits)
            return t + bits / l->bps[i];
        bits -= can;
        t = end;
        i++;
    }
}

/* A token bucket of `burst` bits on link l: full at time 0, filling at the link's rate. */
typedef struct {
    double t, tokens; /* tokens (bits) at time t */
    int cur;          /* the segment t is in */
} bucket_t;

/* The bucket's tokens at time t >= b->t. */
static void fill_to(const link_t *l, bucket_t *b, double t, double burst)
{
    while (b->t < t && b->tokens < burst) {
        double end = b->cur + 1 < l->n ? l->t[b->cur + 1] : INFINITY;
        double until = end < t ? end : t;
        b->tokens += (until - b->t) * l->bps[b->cur];
        b->t = until;
        if (until == end)
            b->cur++;
    }
    if (b->tokens > burst)
        b->tokens = burst;
    b->t = t;
    while (b->cur + 1 < l->n && l->t[b->cur + 1] <= t)
        b->cur++;
}

/* As transmit(), through a token bucket: what the tokens cover leaves at once, the rest at the
 * rate, which drains the bucket. */
static double transmit_bucket(const link_t *l, bucket_t *b, double burst, double t, double bits)
{
    if (burst <= 0)
        return transmit(l, &b->cur, t, bits);
    fill_to(l, b, t, burst);
    if (bits <= b->tokens) {
        b->tokens -= bits;
        return t;
    }
    bits -= b->tokens;
    double end = transmit(l, &b->cur, t, bits);
    b->tokens = 0;
    b->t = end;
    return end;
}

/* T(L) with the network model; scratch: P + 2H doubles, done: K. */
static double ideal_net(const opts_t *o, const double *work, int P, long K, long lag, double comm,
                        const link_t *links, double *scratch, double *done)
{
    int H = o->hosts, per = P / H;
    double *start = scratch, *freeh = scratch + P;
    double burst = o->net_burst * 8.0;
    bucket_t *bucket = calloc((size_t)H, sizeof(bucket_t));
    if (!bucket)
        return NAN;
    for (int h = 0; h < H; h++)
        bucket[h].tokens = burst;
    double bits = (double)per * (double)(P - per) * o->net_bytes * 8.0;
    for (int p = 0; p < P; p++)
        start[p] = 0;
    for (int h = 0; h < H; h++)
        freeh[h] = 0;
    for (long k = 0; k < K; k++) {
        double dk = 0;
        for (int h = 0; h < H; h++) {
            double ready = 0;
            for (int p = h * per; p < (h + 1) * per; p++) {
                start[p] += work[(size_t)p * (size_t)K + (size_t)k]; /* now send(p,k) */
                if (start[p] > ready)
                    ready = start[p];
            }
            if (ready > dk)
                dk = ready;
            if (bits > 0 && H > 1)
                freeh[h] = transmit_bucket(&links[h], &bucket[h], burst,
                                           ready > freeh[h] ? ready : freeh[h], bits);
            if (freeh[h] > dk)
                dk = freeh[h];
        }
        done[k] = dk + comm;
        double gate = k - lag >= 0 ? done[k - lag] : 0;
        for (int p = 0; p < P; p++)
            if (gate > start[p])
                start[p] = gate;
    }
    free(bucket);
    return K > 0 ? done[K - 1] : 0;
}

/* w(p,k) = WORK + the delay model's draw, seconds, for K iterations. */
static void fill_work(const opts_t *o, double *work, int P, long K)
{
    for (int p = 0; p < P; p++)
        for (long k = 0; k < K; k++)
            work[(size_t)p * (size_t)K + (size_t)k] =
                (o->work_us + harness_delay_us(&o->delay, p, k)) * 1e-6;
}

/* T(L), closed loop: the network model's with --hosts, else the harness's. */
static double offline_time(const opts_t *o, const link_t *links, const double *work, int P, long K,
                           long lag, double comm, double *scratch)
{
    if (o->hosts)
        return ideal_net(o, work, P, K, lag, comm, links, scratch,
                         scratch + P + 2 * (size_t)o->hosts);
    return harness_ideal_time_comm(work, P, (int)K, (int)lag, comm, scratch);
}

static int simulate(const opts_t *o, const link_t *links, int P, row_t *r)
{
    double t0 = harness_now();
    long K = o->iters, Q = o->queries, N = K > Q ? K : Q;
    int rc = -1;
    double *work = malloc((size_t)P * (size_t)N * sizeof(double));
    double *scratch = malloc(((size_t)P + 2 * (size_t)o->hosts + (size_t)N) * sizeof(double));
    double *base = NULL, *arrival = NULL, *done = NULL, *lat = NULL;
    if (o->server) {
        base = malloc((size_t)Q * sizeof(double));
        arrival = malloc((size_t)Q * sizeof(double));
        done = malloc((size_t)Q * sizeof(double));
        lat = malloc((size_t)Q * sizeof(double));
    }
    if (!work || !scratch || (o->server && (!base || !arrival || !done || !lat))) {
        fprintf(stderr, "bls-sim: out of memory for P = %d\n", P);
        goto out;
    }
    memset(r, 0, sizeof(*r));
    r->P = P;
    double comm = comm_s(o, P);
    r->comm_us = comm * 1e6;
    r->law_ms = -1;
    if (o->delay.kind == HARNESS_DELAY_EXP && o->delay.until == 0 && !o->hosts)
        r->law_ms = (o->work_us + o->delay.a * harmonic(P)) * 1e-3 + comm * 1e3;
    if (o->offline) {
        fill_work(o, work, P, K);
        double sync = offline_time(o, links, work, P, K, 0, comm, scratch);
        r->sync_ms = sync / (double)K * 1e3;
        for (int j = 0; j < o->nlags; j++) {
            long lag = o->lags[j] < 0 ? K : o->lags[j];
            r->speedup[j] = sync / offline_time(o, links, work, P, K, lag, comm, scratch);
        }
    }
    if (o->server) {
        fill_work(o, work, P, Q);
        harness_size_t one = {.kind = HARNESS_SIZE_FIXED, .a = 1};
        harness_schedule_t s;
        char err[256];
        if (harness_schedule_make(o->delay.seed, 1.0, Q, &one, 1, 1, &s, err, sizeof(err)) != 0) {
            fprintf(stderr, "bls-sim: %s\n", err);
            goto out;
        }
        memcpy(base, s.at, (size_t)Q * sizeof(double));
        harness_schedule_free(&s);
        double bound = o->bound_ms * 1e-3;
        /* Capacity: the closed loop's rate with unlimited lag bounds every driver's. */
        double cap = (double)Q / harness_ideal_time_comm(work, P, (int)Q, (int)Q, comm, scratch);
        r->sync_qps = peak_qps(work, base, arrival, done, lat, scratch, P, Q, 0, comm, cap, bound);
        if (r->sync_qps > 0)
            r->sync_p99_ms_at_peak =
                1e3 * p99_at(work, base, arrival, done, lat, scratch, P, Q, 0, comm, r->sync_qps);
        for (int j = 0; j < o->nlags; j++) {
            long lag = o->lags[j] < 0 ? Q : o->lags[j];
            double q =
                peak_qps(work, base, arrival, done, lat, scratch, P, Q, lag, comm, cap, bound);
            /* When sync misses the bound even idle the ratio is inf, or undefined (NaN, null in
             * the JSON, '-' in the table) when this lag misses it too. */
            r->qps[j] = q;
            r->qps_ratio[j] = r->sync_qps > 0 ? q / r->sync_qps : (q > 0 ? INFINITY : NAN);
        }
    }
    r->seconds = harness_now() - t0;
    rc = 0;
out:
    free(work);
    free(scratch);
    free(base);
    free(arrival);
    free(done);
    free(lat);
    return rc;
}

/* The lags' column heads, then a newline. */
static void lag_heads(const opts_t *o)
{
    for (int j = 0; j < o->nlags; j++) {
        char name[32];
        if (o->lags[j] < 0)
            snprintf(name, sizeof(name), "inf");
        else
            snprintf(name, sizeof(name), "bls:%ld", o->lags[j]);
        printf(" %8s", name);
    }
    printf("\n");
}

/* One figure per lag, then a newline. */
static void lag_cells(const opts_t *o, const double *x)
{
    for (int j = 0; j < o->nlags; j++)
        if (isnan(x[j]))
            printf(" %8s", "-");
        else
            printf(" %8.3f", x[j]);
    printf("\n");
}

static void print_table(const opts_t *o, const row_t *rows)
{
    if (o->offline) {
        printf("\noffline: speedup T(0)/T(L) over the synchronous collective\n%7s %10s %10s",
               "procs", "sync ms/it", "law ms/it");
        lag_heads(o);
        for (int i = 0; i < o->nprocs; i++) {
            const row_t *r = &rows[i];
            printf("%7d %10.3f", r->P, r->sync_ms);
            if (r->law_ms >= 0)
                printf(" %10.3f", r->law_ms);
            else
                printf(" %10s", "-");
            lag_cells(o, r->speedup);
        }
    }
    if (o->server) {
        printf("\nserver: highest Poisson rate with p99 <= %g ms; sync in queries/s, lags as a "
               "multiple of it\n%7s %10s %10s",
               o->bound_ms, "procs", "sync q/s", "p99 ms");
        lag_heads(o);
        for (int i = 0; i < o->nprocs; i++) {
            const row_t *r = &rows[i];
            printf("%7d %10.1f %10.3f", r->P, r->sync_qps, r->sync_p99_ms_at_peak);
            lag_cells(o, r->qps_ratio);
        }
    }
}

static int write_json(const opts_t *o, const row_t *rows)
{
    cJSON *root = cJSON_CreateObject();
    char text[128];
    harness_delay_format(&o->delay, text, sizeof(text));
    cJSON_AddStringToObject(root, "tool", "bls-sim");
    cJSON_AddStringToObject(root, "delay", text);
    cJSON_AddNumberToObject(root, "seed", (double)o->delay.seed);
    cJSON_AddNumberToObject(root, "iters", (double)o->iters);
    cJSON_AddNumberToObject(root, "queries", (double)o->queries);
    cJSON_AddNumberToObject(root, "work_us", o->work_us);
    cJSON_AddNumberToObject(root, "bound_ms", o->bound_ms);
    cJSON *lags = cJSON_AddArrayToObject(root, "lags");
    for (int j = 0; j < o->nlags; j++)
        cJSON_AddItemToArray(lags, o->lags[j] < 0 ? cJSON_CreateString("inf")
                                                  : cJSON_CreateNumber((double)o->lags[j]));
    cJSON *arr = cJSON_AddArrayToObject(root, "rows");
    for (int i = 0; i < o->nprocs; i++) {
        const row_t *r = &rows[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "procs", r->P);
        cJSON_AddNumberToObject(x, "comm_us", r->comm_us);
        cJSON_AddNumberToObject(x, "seconds", r->seconds);
        if (o->offline) {
            cJSON_AddNumberToObject(x, "sync_ms", r->sync_ms);
            if (r->law_ms >= 0)
                cJSON_AddNumberToObject(x, "law_ms", r->law_ms);
            cJSON_AddItemToObject(x, "speedup", harness_json_numbers(r->speedup, (size_t)o->nlags));
        }
        if (o->server) {
            cJSON_AddNumberToObject(x, "sync_qps", r->sync_qps);
            cJSON_AddNumberToObject(x, "sync_p99_ms", r->sync_p99_ms_at_peak);
            cJSON_AddItemToObject(x, "qps", harness_json_numbers(r->qps, (size_t)o->nlags));
            cJSON_AddItemToObject(x, "qps_ratio",
                                  harness_json_numbers(r->qps_ratio, (size_t)o->nlags));
        }
        cJSON_AddItemToArray(arr, x);
    }
    char err[256];
    int rc = harness_json_write(root, o->json, err, sizeof(err));
    cJSON_Delete(root);
    if (rc != 0)
        fprintf(stderr, "bls-sim: %s\n", err);
    return rc;
}

int main(int argc, char **argv)
{
    opts_t o;
    int rc = parse(argc, argv, &o);
    if (rc == 1)
        return 0;
    if (rc != 0)
        return rc;
    char text[128], comm[128];
    harness_delay_format(&o.delay, text, sizeof(text));
    if (o.comm_fixed_us >= 0)
        snprintf(comm, sizeof(comm), "%g us per iteration", o.comm_fixed_us);
    else
        snprintf(comm, sizeof(comm), "(P-1) x (%g us + %g B at %g Gbit/s)", o.comm_lat_us,
                 o.comm_bytes, o.comm_gbps);
    printf("bls-sim: ideal model; work %g us + %s per process and iteration, seed %llu; "
           "%ld iterations",
           o.work_us, text, (unsigned long long)o.delay.seed, o.iters);
    if (o.server)
        printf(", %ld queries per rate", o.queries);
    printf("; exchange %s\n", comm);
    row_t *rows = calloc((size_t)o.nprocs, sizeof(row_t));
    if (!rows) {
        fprintf(stderr, "bls-sim: out of memory\n");
        return 3;
    }
    link_t *links = NULL;
    if (o.hosts) {
        if (!(links = links_load(&o, o.hosts))) {
            free(rows);
            return 2;
        }
        printf("network: %d hosts, %g B per peer per iteration, links at %g Gbit/s%s%s\n", o.hosts,
               o.net_bytes, o.net_gbps, o.net_schedule ? ", changing as " : "",
               o.net_schedule ? o.net_schedule : "");
    }
    for (int i = 0; i < o.nprocs; i++) {
        if (simulate(&o, links, o.procs[i], &rows[i]) != 0) {
            links_free(links, o.hosts);
            free(rows);
            return 3;
        }
        if (!o.quiet)
            fprintf(stderr, "bls-sim: P = %d done in %.2f s\n", o.procs[i], rows[i].seconds);
    }
    links_free(links, o.hosts);
    print_table(&o, rows);
    rc = o.json ? write_json(&o, rows) : 0;
    free(rows);
    return rc ? 3 : 0;
}
