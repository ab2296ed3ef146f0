/*
 * Helpers for the libbls MPI tests: self-checking programs in the MPICH test style.  Blocks are
 * filled with a formula of (sender, receiver, iteration, byte), every received byte is checked,
 * failures are counted per process and summed at the end; rank 0 prints "N passed, N failed".
 */
#ifndef BLS_TESTUTIL_H
#define BLS_TESTUTIL_H

#define _GNU_SOURCE
#include "bls.h"

#include <errno.h>
#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long tu_passed, tu_failed;

#define CHECK(cond, ...)                                                                        \
    do {                                                                                         \
        if (cond) {                                                                              \
            __atomic_add_fetch(&tu_passed, 1, __ATOMIC_RELAXED); /* tests may check from threads */ \
        } else {                                                                                 \
            __atomic_add_fetch(&tu_failed, 1, __ATOMIC_RELAXED);                                \
            int r_;                                                                              \
            MPI_Comm_rank(MPI_COMM_WORLD, &r_);                                                  \
            fprintf(stderr, "FAIL rank %d %s:%d: ", r_, __FILE__, __LINE__);                    \
            fprintf(stderr, __VA_ARGS__);                                                        \
            fprintf(stderr, "\n");                                                               \
        }                                                                                        \
    } while (0)

/* Checks a status; on failure prints the library's message. */
#define CHECK_OK(expr)                                                                          \
    do {                                                                                         \
        bls_status_t st_ = (expr);                                                               \
        CHECK(st_ == BLS_OK, "%s -> %s: %s", #expr, bls_strerror(st_), bls_last_error());       \
    } while (0)

/* Fatal variant for steps the rest of the test depends on. */
#define REQUIRE_OK(expr)                                                                        \
    do {                                                                                         \
        bls_status_t st_ = (expr);                                                               \
        if (st_ != BLS_OK) {                                                                     \
            fprintf(stderr, "FATAL %s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #expr,           \
                    bls_strerror(st_), bls_last_error());                                       \
            MPI_Abort(MPI_COMM_WORLD, 2);                                                        \
        }                                                                                        \
    } while (0)

static inline uint64_t tu_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static inline uint64_t tu_hash4(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    return tu_mix(tu_mix(tu_mix(tu_mix(a) ^ b) ^ c) ^ d);
}

/* The byte at offset i of the block p sends q in iteration k. */
static inline unsigned char tu_byte(uint64_t seed, int p, int q, int64_t k, size_t i)
{
    uint64_t h = tu_hash4(seed, (uint64_t)p * 1000003u + (uint64_t)q, (uint64_t)k, i >> 3);
    return (unsigned char)(h >> (8 * (i & 7)));
}

static inline void tu_fill(unsigned char *buf, size_t n, uint64_t seed, int p, int q, int64_t k)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = tu_byte(seed, p, q, k, i);
}

/* Index of the first wrong byte, or n if the block is exact. */
static inline size_t tu_verify(const unsigned char *buf, size_t n, uint64_t seed, int p, int q,
                               int64_t k)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] != tu_byte(seed, p, q, k, i))
            return i;
    return n;
}

/* FNV-1a over a block, to compare two runs without keeping their data. */
static inline uint64_t tu_fnv(const unsigned char *buf, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ buf[i]) * 1099511628211ULL;
    return h ^ n;
}

static inline double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline void tu_sleep_us(long us)
{
    if (us <= 0)
        return;
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/*
 * Side channel the library never touches: files in a directory made by rank 0 and shared
 * through MPI_COMM_WORLD before any bls call.
 */
static char tu_dir[256];

static inline void tu_side_channel_init(void)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) {
        snprintf(tu_dir, sizeof(tu_dir), "/tmp/bls-test-XXXXXX");
        if (!mkdtemp(tu_dir)) {
            perror("mkdtemp");
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
    }
    MPI_Bcast(tu_dir, sizeof(tu_dir), MPI_CHAR, 0, MPI_COMM_WORLD);
}

static inline void tu_signal(const char *name, int who)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.%d", tu_dir, name, who);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    fclose(f);
}

static inline int tu_signalled(const char *name, int who)
{
    char path[512];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/%s.%d", tu_dir, name, who);
    return stat(path, &sb) == 0;
}

/* Polls (1 ms) until every rank in [0, size) except `except` has signalled name. */
static inline void tu_await_all(const char *name, int size, int except)
{
    for (int r = 0; r < size; r++)
        while (r != except && !tu_signalled(name, r))
            tu_sleep_us(1000);
}

static inline void tu_side_channel_cleanup(void)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tu_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "warning: could not remove %s\n", tu_dir);
    }
}

static inline void *tu_try_idle(void *ok)
{
    struct sched_param sp = {0};
    *(int *)ok = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) == 0;
    return NULL;
}

/* Whether a thread here may move itself to SCHED_IDLE (a sandbox may refuse; libbls then keeps
 * its thread at normal priority, by design), asked of a short-lived thread of its own. */
static inline int tu_idle_allowed(void)
{
    static int known = -1;
    pthread_t t;
    if (known < 0) {
        known = 0;
        if (pthread_create(&t, NULL, tu_try_idle, &known) == 0)
            pthread_join(t, NULL);
    }
    return known;
}

/* Computes (no sleep, no system call) for `us` microseconds of wall time. */
static inline void tu_spin_us(long us)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000 < us);
}

/* Value of option `name` ("--lag 3") in argv, or def when absent. */
static inline long tu_opt(int argc, char **argv, const char *name, long def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return atol(argv[i + 1]);
    return def;
}

static inline void tu_init(int *argc, char ***argv)
{
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
    if (provided != MPI_THREAD_MULTIPLE) {
        fprintf(stderr, "test needs MPI_THREAD_MULTIPLE\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
}

/* Sums the counts over all processes, prints the closing line, finalizes; exit status. */
static inline int tu_finish(const char *name)
{
    long local[2] = {tu_passed, tu_failed}, total[2];
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Reduce(local, total, 2, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    int failed = rank == 0 ? total[1] > 0 : 0;
    MPI_Bcast(&failed, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("%s: %ld passed, %ld failed\n", name, total[0], total[1]);
    MPI_Finalize();
    return failed ? 1 : 0;
}

#endif /* BLS_TESTUTIL_H */
