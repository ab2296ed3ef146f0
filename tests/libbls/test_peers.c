/*
 * Peers that stop.  --scenario stalled: the last rank posts 3 iterations, then stays away; the
 * others' wait for iteration 3 returns BLS_ERR_TIMEOUT naming it and the iteration, and after
 * it comes back the same wait succeeds (a timeout loses nothing).  --scenario finished: the
 * last rank finishes after 3 iterations while the others post 5: their waits for iterations 3
 * and 4 fail with BLS_ERR_PEER_FINISHED naming it, and bls_finish reports the different
 * iteration counts on every process.  --mode window: the stalled scenario in WINDOW mode (no
 * progress thread), whose messages say the same in its own words.
 */
#include "testutil.h"

static int rank, P;
static size_t *cnt, *disp;
static long sendbuf[8][64], recvbuf[8][64];

static bls_iter_t post(bls_comm_t *comm, int64_t k)
{
    for (int q = 0; q < P; q++)
        sendbuf[k % 8][q] = k * 1000 + rank * 10 + q;
    bls_iter_t id;
    REQUIRE_OK(bls_post(comm, sendbuf[k % 8], cnt, disp, recvbuf[k % 8], cnt, disp, &id));
    return id;
}

static void check_iteration(int64_t k)
{
    for (int p = 0; p < P; p++)
        CHECK(recvbuf[k % 8][p] == k * 1000 + p * 10 + rank, "iteration %lld from %d: %ld",
              (long long)k, p, recvbuf[k % 8][p]);
}

int main(int argc, char **argv)
{
    tu_init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    int stalled = argc > 2 && !strcmp(argv[2], "stalled");
    bls_mode_t mode = BLS_MODE_BLS;
    int unused_lag;
    if (argc > 4 && !strcmp(argv[3], "--mode") &&
        bls_mode_parse(argv[4], 0, &mode, &unused_lag) != BLS_OK) {
        fprintf(stderr, "test_peers: %s\n", bls_last_error());
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    int window = mode == BLS_MODE_WINDOW;
    int last = P - 1;
    if (P < 2 || P > 64) {
        fprintf(stderr, "test_peers needs 2 to 64 processes\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    tu_side_channel_init();
    cnt = calloc((size_t)P, sizeof(size_t));
    disp = calloc((size_t)P, sizeof(size_t));
    for (int q = 0; q < P; q++) {
        cnt[q] = 1;
        disp[q] = (size_t)q;
    }
    bls_config_t cfg;
    bls_config_init(&cfg);
    cfg.mode = mode;
    cfg.lag = 2;
    cfg.datatype = MPI_LONG;
    cfg.max_block = 1;
    cfg.timeout = 60;
    bls_comm_t *comm;
    REQUIRE_OK(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm));
    for (int64_t k = 0; k < 3; k++) {
        CHECK_OK(bls_wait(comm, post(comm, k), NULL));
        check_iteration(k);
    }
    char want[128];
    if (stalled) {
        if (rank == last) {
            tu_await_all("checked", P, last); /* away, outside the library */
            post(comm, 3);
        } else {
            bls_iter_t id = post(comm, 3);
            CHECK_OK(bls_comm_set_timeout(comm, 0.5));
            snprintf(want, sizeof(want), window ? "iteration 3 still waits for the blocks of peers %d "
                                                : "iteration 3 still misses the blocks of peers %d ",
                     last);
            bls_status_t s = bls_wait(comm, id, NULL);
            CHECK(s == BLS_ERR_TIMEOUT, "wait on a stalled peer returned %s", bls_strerror(s));
            CHECK(strstr(bls_last_error(), want), "message '%s' lacks '%s'", bls_last_error(),
                  want);
            char pending[64], peer[32];
            CHECK_OK(bls_pending_peers(comm, id, pending, sizeof(pending)));
            snprintf(peer, sizeof(peer), window ? "the blocks of peers %d" : "%d", last);
            CHECK(!strcmp(pending, peer), "bls_pending_peers says '%s', expected '%s'", pending,
                  peer);
            CHECK(bls_pending_peers(comm, 0, pending, sizeof(pending)) == BLS_ERR_STATE,
                  "bls_pending_peers of a reported iteration is not BLS_ERR_STATE");
            CHECK_OK(bls_comm_set_timeout(comm, 60));
            tu_signal("checked", rank);
        }
        CHECK_OK(bls_wait(comm, 3, NULL));
        check_iteration(3);
        CHECK_OK(bls_finish(comm));
    } else {
        if (rank != last) {
            bls_iter_t a = post(comm, 3), b = post(comm, 4);
            snprintf(want, sizeof(want), "peer %d finished after posting 3 iterations", last);
            bls_status_t s = bls_wait(comm, a, NULL);
            CHECK(s == BLS_ERR_PEER_FINISHED && strstr(bls_last_error(), want),
                  "wait(3) returned %s: %s", bls_strerror(s), bls_last_error());
            s = bls_wait(comm, b, NULL);
            CHECK(s == BLS_ERR_PEER_FINISHED && strstr(bls_last_error(), "iteration 4"),
                  "wait(4) returned %s: %s", bls_strerror(s), bls_last_error());
            snprintf(want, sizeof(want), "posted 5 iterations, but rank %d posted 3", last);
        } else {
            snprintf(want, sizeof(want), "(rank %d) posted 3 iterations, but rank 0 posted 5", last);
        }
        bls_status_t s = bls_finish(comm);
        CHECK(s == BLS_ERR_ITER_MISMATCH && strstr(bls_last_error(), want),
              "finish returned %s: '%s', expected '%s'", bls_strerror(s), bls_last_error(), want);
    }
    bls_comm_destroy(comm);
    free(cnt);
    free(disp);
    MPI_Barrier(MPI_COMM_WORLD);
    tu_side_channel_cleanup();
    return tu_finish(stalled ? "test_peers stalled" : "test_peers finished");
}
