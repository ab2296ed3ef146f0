/*
 * Exact delivery.  For each configuration, one SYNC pass (MPI_Alltoallv) and one pass per lag
 * of the mode under test (BLS by default) run the same seeded iterations: irregular counts
 * (zeros included) up to --max-bytes, random per-rank delays so arrival orders vary,
 * displacements with gaps, every third iteration with unknown counts (recvcounts NULL; not in
 * the modes that need the counts).  Every received byte is checked against the sender's
 * formula, every reported count against the sender's count, and a hash of every block of the
 * pass against the same block delivered by MPI_Alltoallv.  With --progress caller, BLS mode runs
 * without its progress thread and each delay is split by a bls_progress() call; with
 * thread-normal, the thread runs at normal priority (by default, at SCHED_IDLE: checked).
 *
 * Usage: test_delivery [--mode bls|ialltoallv|window] [--lags 0,1,2,3,8] [--iters N]
 *                      [--max-bytes B] [--delay-us D] [--elem 1|4] [--seed S]
 *                      [--progress thread|thread-normal|caller]
 */
#include "testutil.h"

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

typedef struct {
    bls_mode_t mode;
    int lags[16], nlags;
    long iters;
    size_t max_bytes;
    long delay_us;
    int elem;
    uint64_t seed;
    bls_progress_mode_t progress;
} opts_t;

static size_t block_count(const opts_t *o, int64_t k, int p, int q, size_t max_elems)
{
    uint64_t h = tu_hash4(o->seed, 77, (uint64_t)k, (uint64_t)p * 4099u + (uint64_t)q);
    if (h % 7 == 0 || max_elems == 0)
        return 0; /* empty blocks are ordinary */
    /* Log-uniform sizes: mostly small, sometimes the maximum. */
    int bits = 0;
    while (bits < 62 && ((size_t)1 << (bits + 1)) <= max_elems)
        bits++;
    int b = (int)((h >> 8) % (uint64_t)(bits + 1));
    size_t n = ((size_t)1 << b) + (size_t)((h >> 20) % ((uint64_t)1 << b));
    if ((h >> 60) == 0)
        n = max_elems;
    return n > max_elems ? max_elems : n;
}

/* How many of this process's threads run under SCHED_IDLE (libbls's default progress thread
 * does; nothing else here asks for it). */
static int idle_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.' && sched_getscheduler((pid_t)atoi(e->d_name)) == SCHED_IDLE)
            n++;
    if (d)
        closedir(d);
    return n;
}

/* Runs one pass; hashes[k*P + p] gets the hash of the block from p in iteration k. */
static void run_pass(const opts_t *o, bls_mode_t mode, int lag, uint64_t *hashes)
{
    int rank, P;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    size_t E = (size_t)o->elem, max_elems = o->max_bytes / E;
    bls_config_t cfg;
    bls_config_init(&cfg);
    cfg.mode = mode;
    cfg.lag = lag;
    cfg.datatype = o->elem == 4 ? MPI_INT : MPI_BYTE;
    cfg.max_block = max_elems;
    cfg.timeout = 300;
    cfg.progress = o->progress;
    bls_comm_t *comm;
    REQUIRE_OK(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm));

    int S = lag + 2;
    size_t stride = max_elems + 3; /* per-peer room with a gap */
    unsigned char **sendbufs = malloc((size_t)S * sizeof(*sendbufs));
    unsigned char **recvbufs = malloc((size_t)S * sizeof(*recvbufs));
    size_t *sc = calloc((size_t)P, sizeof(size_t)), *sd = calloc((size_t)P, sizeof(size_t));
    size_t *rc = calloc((size_t)P, sizeof(size_t)), *rd = calloc((size_t)S * P, sizeof(size_t));
    size_t *got = calloc((size_t)P, sizeof(size_t));
    for (int s = 0; s < S; s++) { /* lent from post until reported */
        sendbufs[s] = malloc((stride * (size_t)P + 8) * E);
        recvbufs[s] = malloc((stride * (size_t)P + 8) * E);
    }

    int64_t next_wait = 0;
    for (int64_t k = 0; k < o->iters + lag + 1; k++) {
        if (k < o->iters) {
            uint64_t h = tu_hash4(o->seed, 99, (uint64_t)rank, (uint64_t)k);
            if (o->delay_us > 0) { /* a few long delays, many short ones */
                long us = h % 10 == 0 ? (long)(h >> 16) % (8 * o->delay_us)
                                      : (long)(h >> 16) % (o->delay_us + 1);
                tu_sleep_us(us / 2);
                if (o->progress == BLS_PROGRESS_CALLER)
                    CHECK_OK(bls_progress(comm));
                tu_sleep_us(us - us / 2);
            }
            int s = (int)(k % S);
            size_t so = (size_t)(h % 3), ro = (size_t)(h >> 40) % 5;
            int unknown = k % 3 == 0 && mode != BLS_MODE_IALLTOALLV && mode != BLS_MODE_WINDOW;
            unsigned char *sendbuf = sendbufs[s];
            for (int q = 0; q < P; q++) {
                sc[q] = block_count(o, k, rank, q, max_elems);
                sd[q] = so;
                tu_fill(sendbuf + so * E, sc[q] * E, o->seed, rank, q, k);
                so += sc[q] + (q % 2);
                rc[q] = block_count(o, k, q, rank, max_elems);
                rd[(size_t)s * P + q] = ro;
                ro += (unknown ? max_elems : rc[q]) + (q % 3 == 1);
            }
            bls_iter_t id = -1;
            REQUIRE_OK(bls_post(comm, sendbuf, sc, sd, recvbufs[s], unknown ? NULL : rc,
                                rd + (size_t)s * P, &id));
            CHECK(id == k, "posted iteration id %lld, expected %lld", (long long)id,
                  (long long)k);
        }
        if (k >= lag && next_wait < o->iters) {
            int64_t j = next_wait++;
            int s = (int)(j % S);
            CHECK_OK(bls_wait(comm, j, got));
            for (int p = 0; p < P; p++) {
                size_t want = block_count(o, j, p, rank, max_elems);
                CHECK(got[p] == want, "iteration %lld from %d: count %zu, expected %zu",
                      (long long)j, p, got[p], want);
                const unsigned char *b = recvbufs[s] + rd[(size_t)s * P + p] * E;
                size_t bad = tu_verify(b, want * E, o->seed, p, rank, j);
                CHECK(bad == want * E, "iteration %lld from %d: byte %zu of %zu wrong (lag %d)",
                      (long long)j, p, bad, want * E, lag);
                hashes[(size_t)j * P + p] = tu_fnv(b, want * E);
            }
        }
    }
    CHECK_OK(bls_finish(comm));
    bls_stats_t st;
    CHECK_OK(bls_comm_stats(comm, &st));
    CHECK(st.posted == o->iters && st.completed == o->iters, "stats: posted %lld completed %lld",
          (long long)st.posted, (long long)st.completed);
    if (mode == BLS_MODE_BLS) { /* zero copy: bookkeeping only, whatever the block sizes */
        size_t limit = (size_t)(lag + 2) * (size_t)P * 256 + 4096;
        CHECK(st.buffer_bytes > 0 && st.buffer_bytes <= limit,
              "library memory %zu bytes, expected (0, %zu] independent of block sizes",
              st.buffer_bytes, limit);
    }
    /* The progress thread (BLS mode, created with the communicator) has run by now: at the
     * lowest priority by default, at the process's own with BLS_PROGRESS_THREAD_NORMAL.  Where
     * the policy is refused, no thread can have it: rank 0 says so instead of checking. */
    int idle = idle_threads(), want = mode == BLS_MODE_BLS && o->progress == BLS_PROGRESS_THREAD;
    /* A caller that blocked while the thread was inside a round raised it to normal priority
     * until that round ends, which may be just after bls_finish returned: wait up to 2 s. */
    for (int tries = 0; idle != want && tries < 200; tries++) {
        nanosleep(&(struct timespec){.tv_nsec = 10000000L}, NULL);
        idle = idle_threads();
    }
    if (tu_idle_allowed())
        CHECK(idle == want, "%d SCHED_IDLE threads with %s progress, expected %d", idle,
              bls_progress_name(o->progress), want);
    else if (rank == 0 && want)
        printf("test_delivery: SCHED_IDLE refused here: the progress thread's priority not "
               "checked\n");
    bls_comm_destroy(comm);
    for (int s = 0; s < S; s++) {
        free(sendbufs[s]);
        free(recvbufs[s]);
    }
    free(recvbufs);
    free(sendbufs);
    free(sc);
    free(sd);
    free(rc);
    free(rd);
    free(got);
}

static void parse(int argc, char **argv, opts_t *o)
{
    o->mode = BLS_MODE_BLS;
    o->nlags = 0;
    o->iters = 500;
    o->max_bytes = 65536;
    o->delay_us = 100;
    o->elem = 1;
    o->seed = 12345;
    o->progress = BLS_PROGRESS_THREAD;
    for (int i = 1; i < argc; i += 2) {
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(argv[i], "--mode")) {
            int lag;
            if (bls_mode_parse(v, 0, &o->mode, &lag) != BLS_OK || o->mode == BLS_MODE_SYNC) {
                fprintf(stderr, "test_delivery: --mode: bls, ialltoallv or window, got '%s'\n", v);
                MPI_Abort(MPI_COMM_WORLD, 2);
            }
        } else if (!strcmp(argv[i], "--lags")) {
            char *s = strdup(v), *save = NULL;
            for (char *t = strtok_r(s, ",", &save); t && o->nlags < 16; t = strtok_r(NULL, ",", &save))
                o->lags[o->nlags++] = atoi(t);
            free(s);
        } else if (!strcmp(argv[i], "--iters")) {
            o->iters = atol(v);
        } else if (!strcmp(argv[i], "--max-bytes")) {
            o->max_bytes = (size_t)atol(v);
        } else if (!strcmp(argv[i], "--delay-us")) {
            o->delay_us = atol(v);
        } else if (!strcmp(argv[i], "--elem")) {
            o->elem = atoi(v);
        } else if (!strcmp(argv[i], "--seed")) {
            o->seed = (uint64_t)atoll(v);
        } else if (!strcmp(argv[i], "--progress")) {
            if (bls_progress_parse(v, &o->progress) != BLS_OK) {
                fprintf(stderr, "test_delivery: --progress: %s\n", bls_last_error());
                MPI_Abort(MPI_COMM_WORLD, 2);
            }
        } else {
            fprintf(stderr, "test_delivery: unknown option %s\n", argv[i]);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
    }
    if (o->nlags == 0) {
        int def[] = {0, 1, 2, 3, 8};
        for (int i = 0; i < 5; i++)
            o->lags[o->nlags++] = def[i];
    }
}

int main(int argc, char **argv)
{
    tu_init(&argc, &argv);
    opts_t o;
    parse(argc, argv, &o);
    int rank, P;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    size_t n = (size_t)o.iters * (size_t)P;
    uint64_t *ref = calloc(n, sizeof(uint64_t)), *got = calloc(n, sizeof(uint64_t));
    double t0 = tu_now();
    run_pass(&o, BLS_MODE_SYNC, 0, ref);
    for (int i = 0; i < o.nlags; i++) {
        memset(got, 0, n * sizeof(uint64_t));
        run_pass(&o, o.mode, o.lags[i], got);
        size_t diff = 0;
        for (size_t j = 0; j < n; j++)
            diff += got[j] != ref[j];
        CHECK(diff == 0, "lag %d: %zu blocks differ from MPI_Alltoallv's", o.lags[i], diff);
        if (rank == 0)
            printf("P=%d %s lag %d: %ld iterations up to %zu B, every block equal to "
                   "MPI_Alltoallv's (%.1f s so far)\n",
                   P, bls_mode_name(o.mode), o.lags[i], o.iters, o.max_bytes, tu_now() - t0);
    }
    free(ref);
    free(got);
    return tu_finish("test_delivery");
}
