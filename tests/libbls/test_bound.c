/*
 * The lag bound.  The last rank is held outside the library by a file side channel before it
 * posts anything.  Every other rank must complete exactly L+1 posts (iterations 0..L) without
 * blocking -- if a post blocked, this test would hang and its ctest timeout would fail it --
 * and must not get further: post L+1 waits for iteration 0, and with a short timeout returns
 * BLS_ERR_TIMEOUT naming the held rank and iteration 0, having posted nothing.  Then the held
 * rank is released and everybody finishes the run with every byte checked.
 *
 * Usage: test_bound --lag L [--iters N] [--bytes B]
 */
#include "testutil.h"

int main(int argc, char **argv)
{
    tu_init(&argc, &argv);
    int lag = (int)tu_opt(argc, argv, "--lag", 1);
    long iters = tu_opt(argc, argv, "--iters", 20);
    size_t bytes = (size_t)tu_opt(argc, argv, "--bytes", 1024);
    int rank, P;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    int held = P - 1;
    const uint64_t seed = 4242;
    tu_side_channel_init();

    bls_config_t cfg;
    bls_config_init(&cfg);
    cfg.lag = lag;
    cfg.max_block = bytes;
    cfg.timeout = 120;
    bls_comm_t *comm;
    REQUIRE_OK(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm));

    int S = lag + 2;
    size_t *sc = calloc((size_t)P, sizeof(size_t)), *sd = calloc((size_t)P, sizeof(size_t));
    size_t *rd = calloc((size_t)P, sizeof(size_t));
    unsigned char *sendbufs = malloc(bytes * (size_t)P * (size_t)S + 1); /* one per slot */
    unsigned char *recv = malloc(bytes * (size_t)P * (size_t)S + 1);
    for (int q = 0; q < P; q++) {
        sc[q] = bytes;
        sd[q] = (size_t)q * bytes;
        rd[q] = (size_t)q * bytes;
    }
    int64_t posted = 0, waited = 0;
#define POST_NEXT()                                                                              \
    do {                                                                                         \
        unsigned char *sb_ = sendbufs + (size_t)(posted % S) * bytes * P;                        \
        for (int q = 0; q < P; q++)                                                              \
            tu_fill(sb_ + sd[q], bytes, seed, rank, q, posted);                                  \
        bls_iter_t id_;                                                                          \
        REQUIRE_OK(bls_post(comm, sb_, sc, sd, recv + (size_t)(posted % S) * bytes * P, sc, rd,  \
                            &id_));                                                              \
        posted++;                                                                                \
    } while (0)

    if (rank != held) {
        for (int k = 0; k <= lag; k++)
            POST_NEXT();
        bls_stats_t st;
        CHECK_OK(bls_comm_stats(comm, &st));
        CHECK(st.posted == lag + 1, "posted %lld before the bound, expected L+1 = %d",
              (long long)st.posted, lag + 1);
        /* Post L+1 must wait for iteration 0, which needs the held rank's block. */
        int flag = 1;
        CHECK_OK(bls_test(comm, 0, &flag, NULL));
        CHECK(flag == 0, "iteration 0 complete although rank %d posted nothing", held);
        CHECK_OK(bls_comm_set_timeout(comm, 0.3));
        bls_iter_t id = -7;
        bls_status_t s = bls_post(comm, sendbufs, sc, sd, recv, sc, rd, &id);
        CHECK(s == BLS_ERR_TIMEOUT, "post beyond the bound returned %s", bls_strerror(s));
        char want[64];
        snprintf(want, sizeof(want), "iteration 0 still misses the blocks of peers %d ", held);
        CHECK(strstr(bls_last_error(), want) != NULL, "timeout message '%s' lacks '%s'",
              bls_last_error(), want);
        CHECK(id == -7, "a timed-out post assigned iteration %lld", (long long)id);
        CHECK_OK(bls_comm_stats(comm, &st));
        CHECK(st.posted == lag + 1, "posted %lld after the refused post, expected %d",
              (long long)st.posted, lag + 1);
        CHECK_OK(bls_comm_set_timeout(comm, 120));
        tu_signal("checked", rank);
    } else {
        tu_await_all("checked", P, held);
    }

    /* Everybody runs to the end, pipelined, checking every byte. */
    size_t got[64];
    while (waited < iters) {
        if (posted < iters)
            POST_NEXT();
        if (posted - waited > lag || posted == iters) {
            unsigned char *b = recv + (size_t)(waited % S) * bytes * P;
            CHECK_OK(bls_wait(comm, waited, P <= 64 ? got : NULL));
            for (int p = 0; p < P; p++) {
                size_t bad = tu_verify(b + rd[p], bytes, seed, p, rank, waited);
                CHECK(bad == bytes, "iteration %lld from %d: byte %zu wrong", (long long)waited,
                      p, bad);
            }
            waited++;
        }
    }
    CHECK_OK(bls_finish(comm));
    bls_comm_destroy(comm);
    free(sc);
    free(sd);
    free(rd);
    free(sendbufs);
    free(recv);
    MPI_Barrier(MPI_COMM_WORLD);
    tu_side_channel_cleanup();
    return tu_finish("test_bound");
}
