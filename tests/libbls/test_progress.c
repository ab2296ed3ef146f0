/*
 * Asynchronous progress, tested causally.  The last rank posts iteration 0 and then stays
 * outside the library -- it polls for files, touching no bls or MPI call -- until every other
 * rank has completed iteration 0, which needs its block.  If the block only moved while its
 * owner called into the library, the others would never complete: their bls_wait times out
 * (reported as a failure) or ctest's timeout ends the test.  Run for eager (16 B) and
 * rendezvous (4 MiB) blocks, over shared memory and over TCP.
 *
 * With --steady N, every rank first runs N iterations at an even pace (10 ms of sleep each, no
 * absence), so that the thread's steady-rhythm policy is in force when the absences begin: at
 * lag 1 the callers copy their large arrivals themselves, at lag 2 or more a post does not
 * wake the thread for them (bls_lagged.c, "Progress").  The absent rank's thread must still
 * take the blocks its peers wait on.
 *
 * With --starved N, every rank then computes between post and wait (--spin us, 1000), up to N
 * iterations, until the absent rank's progress thread has stood by (bls_stats_t.
 * progress_standby_seconds > 0; bls_lagged.c, "Standby"): with more processes than cores a
 * SCHED_IDLE thread wakes from its naps later than the time between posts.  Only then does the
 * absence begin, and the thread must leave its standby to move the blocks.  If it never stood
 * by (more cores than processes, SCHED_IDLE refused), the path was not taken: the checks still
 * run, and the test exits 77 (ctest: skipped) rather than pass.
 *
 * It also checks what libbls's probe at creation found (bls_stats_t.copy_peers): over TCP
 * (--copy-peers 0) no peer takes a large block without its sender's polls; over shared memory
 * the answer depends on the machine (CMA or XPMEM), but it is one answer for the whole host:
 * every other process on this host (MPI_COMM_TYPE_SHARED) or none, never this process itself
 * nor a process on another host.
 *
 * Usage: test_progress [--bytes B] [--iters N] [--lag L (1)] [--steady N (0)] [--starved N (0)]
 *                      [--spin us (1000)]
 *                      [--copy-peers N (default: all or none)]
 */
#include "testutil.h"

int main(int argc, char **argv)
{
    tu_init(&argc, &argv);
    size_t bytes = (size_t)tu_opt(argc, argv, "--bytes", 16);
    long iters = tu_opt(argc, argv, "--iters", 3);
    long copy_peers = tu_opt(argc, argv, "--copy-peers", -1);
    long lag = tu_opt(argc, argv, "--lag", 1), steady = tu_opt(argc, argv, "--steady", 0);
    long starved = tu_opt(argc, argv, "--starved", 0), warm = steady + starved;
    long spin = tu_opt(argc, argv, "--spin", 1000), away_iters = iters - warm;
    int stood_by = 0;
    int rank, P;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    int away = P - 1;
    const uint64_t seed = 777;
    tu_side_channel_init();
    CHECK(warm < iters,
          "--steady %ld --starved %ld leave no iteration with rank %d away (--iters "
          "%ld)",
          steady, starved, away, iters);

    bls_config_t cfg;
    bls_config_init(&cfg);
    cfg.lag = (int)lag;
    cfg.max_block = bytes;
    cfg.timeout = 60;
    bls_comm_t *comm;
    REQUIRE_OK(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm));
    size_t *sc = calloc((size_t)P, sizeof(size_t)), *sd = calloc((size_t)P, sizeof(size_t));
    unsigned char *sendbuf = malloc(bytes * (size_t)P + 1), *recv = malloc(bytes * (size_t)P + 1);
    for (int q = 0; q < P; q++) {
        sc[q] = bytes;
        sd[q] = (size_t)q * bytes;
    }
    for (long k = 0; k < warm + away_iters; k++) {
        for (int q = 0; q < P; q++)
            tu_fill(sendbuf + sd[q], bytes, seed, rank, q, k);
        bls_iter_t id;
        REQUIRE_OK(bls_post(comm, sendbuf, sc, sd, recv, sc, sd, &id));
        char marker[32];
        snprintf(marker, sizeof(marker), "done%ld", k);
        if (k < steady) /* an even pace, nobody away (10 ms: sleeps here jitter by ~0.1 ms) */
            tu_sleep_us(10000);
        else if (k < warm) /* every process computing */
            tu_spin_us(spin);
        else if (rank == away) /* outside the library until everybody else has our block */
            tu_await_all(marker, P, away);
        CHECK_OK(bls_wait(comm, id, NULL));
        for (int p = 0; p < P; p++) {
            size_t bad = tu_verify(recv + sd[p], bytes, seed, p, rank, k);
            CHECK(bad == bytes, "iteration %ld from %d: byte %zu of %zu wrong", k, p, bad, bytes);
        }
        if (k >= steady && k < warm) { /* until the absent rank's thread stood by */
            bls_stats_t now;
            CHECK_OK(bls_comm_stats(comm, &now));
            int mine = rank == away && now.progress_standby_seconds > 0, any = 0;
            MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
            if (any)
                warm = k + 1;
            stood_by = any;
        }
        if (rank != away && k >= warm)
            tu_signal(marker, rank);
    }
    CHECK_OK(bls_finish(comm));
    bls_stats_t st;
    CHECK_OK(bls_comm_stats(comm, &st));
    MPI_Comm host;
    int here = 0;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &host);
    MPI_Comm_size(host, &here);
    MPI_Comm_free(&host);
    if (copy_peers >= 0)
        CHECK(st.copy_peers == copy_peers, "copy_peers %d, expected %ld", st.copy_peers,
              copy_peers);
    else
        CHECK(st.copy_peers == 0 || st.copy_peers == here - 1,
              "copy_peers %d: neither every other process on this host (%d) nor none",
              st.copy_peers, here - 1);
    if (rank == away)
        printf("%zu B blocks, lag %ld: %ld iterations completed while rank %d stayed outside the "
               "library (after %ld at an even pace, %ld with every process computing); "
               "its progress thread: CPU %.3f s, stood by %.3f s; %d peers copy large blocks "
               "themselves\n",
               bytes, lag, away_iters, away, steady, warm - steady, st.progress_cpu_seconds,
               st.progress_standby_seconds, st.copy_peers);
    /* The standby is the scheduler's doing: where no thread ever waited for a core (more cores
     * than processes, or no SCHED_IDLE), the path was not taken and the test says so. */
    int skip = starved > 0 && !stood_by;
    if (skip && rank == 0)
        printf("SKIPPED: rank %d's progress thread never stood by in %ld iterations with every "
               "process computing (SCHED_IDLE %s, %ld cores online)\n",
               away, starved, tu_idle_allowed() ? "allowed" : "refused",
               sysconf(_SC_NPROCESSORS_ONLN));
    bls_comm_destroy(comm);
    free(sc);
    free(sd);
    free(sendbuf);
    free(recv);
    MPI_Barrier(MPI_COMM_WORLD);
    tu_side_channel_cleanup();
    int rc = tu_finish("test_progress");
    return rc == 0 && skip ? 77 : rc;
}
