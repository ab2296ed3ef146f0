/* The stall watchdog (watchdog.h): a thread that wakes four times a second and compares the
 * time since the last kick with the limit.  Kicks are two atomic stores, cheap enough for
 * every batch. */
#define _GNU_SOURCE
#include "watchdog.h"

#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static struct {
    pthread_t thread;
    int running;
    const char *tool;
    _Atomic int rank; /* -1: not known yet */
    _Atomic double limit;
    _Atomic int64_t last_ns; /* the last kick; < 0: held */
    _Atomic(const char *) where;
    atomic_int stop;
    atomic_int finalizing; /* > 0: in MPI_Finalize; the status to exit with, plus one */
} wd = {.rank = -1};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void expire(double idle)
{
    int rank = atomic_load(&wd.rank);
    char who[32] = "a process";
    if (rank >= 0)
        snprintf(who, sizeof(who), "process %d", rank);
    int finalizing = atomic_load(&wd.finalizing);
    if (finalizing > 0) {
        fprintf(stderr,
                "%s: %s: MPI_Finalize did not return within %.0f s, every result written; "
                "exiting without it (MPICH 4.0.2 over UCX's TCP transport is known to hang "
                "there)\n",
                wd.tool, who, idle);
        fflush(stdout);
        fflush(stderr);
        _exit(finalizing - 1);
    }
    fprintf(stderr,
            "%s: %s: no progress for %.0f s while %s: a peer stalled, died or cannot be reached "
            "(the limit follows --timeout); ending the job\n",
            wd.tool, who, idle, atomic_load(&wd.where));
    watchdog_end_job(3);
}

void watchdog_end_job(int status)
{
    fflush(stderr);
    fflush(stdout);
    const struct timespec forward = {0, 300000000};
    nanosleep(&forward, NULL);
    int up = 0, down = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (up && !down)
        MPI_Abort(MPI_COMM_WORLD, status);
    _exit(status);
}

static void *watch(void *arg)
{
    (void)arg;
    const struct timespec nap = {0, 250000000};
    while (!atomic_load(&wd.stop)) {
        nanosleep(&nap, NULL);
        int64_t last = atomic_load(&wd.last_ns);
        double idle = last < 0 ? 0 : 1e-9 * (double)(now_ns() - last);
        if (idle > atomic_load(&wd.limit))
            expire(idle);
    }
    return NULL;
}

int watchdog_start(const char *tool, double limit_s)
{
    wd.tool = tool;
    atomic_store(&wd.limit, limit_s);
    atomic_store(&wd.where, "starting");
    atomic_store(&wd.last_ns, now_ns());
    atomic_store(&wd.stop, 0);
    wd.running = pthread_create(&wd.thread, NULL, watch, NULL) == 0;
    return wd.running ? 0 : -1;
}

void watchdog_set(int rank, double limit_s)
{
    atomic_store(&wd.rank, rank);
    atomic_store(&wd.limit, limit_s);
}

void watchdog_kick(const char *where)
{
    atomic_store(&wd.where, where);
    atomic_store(&wd.last_ns, now_ns());
}

void watchdog_hold(const char *where)
{
    atomic_store(&wd.where, where);
    atomic_store(&wd.last_ns, -1);
}

void watchdog_finalize(const char *tool, int status, double grace_s)
{
    atomic_store(&wd.finalizing, status + 1);
    if (!wd.running) {
        int rank = 0;
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        watchdog_start(tool, grace_s);
        watchdog_set(rank, grace_s);
    }
    atomic_store(&wd.limit, grace_s);
    watchdog_kick("finalizing");
}

void watchdog_stop(void)
{
    if (!wd.running)
        return;
    atomic_store(&wd.stop, 1);
    pthread_join(wd.thread, NULL);
    wd.running = 0;
}

double watchdog_limit(double timeout)
{
    return timeout * 1.25 + 2.0;
}
