/*
 * BLS mode refuses to start without MPI_THREAD_MULTIPLE (its progress thread calls MPI), with a
 * message that says how to initialise MPI; SYNC mode works at any thread level.
 */
#include "testutil.h"

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    bls_config_t cfg;
    bls_config_init(&cfg);
    bls_comm_t *comm = NULL;
    if (provided != MPI_THREAD_MULTIPLE) {
        bls_status_t s = bls_comm_create(MPI_COMM_WORLD, &cfg, &comm);
        CHECK(s == BLS_ERR_THREAD, "BLS mode at thread level %d: %s", provided, bls_strerror(s));
        CHECK(strstr(bls_last_error(), "MPI_THREAD_MULTIPLE") != NULL, "message: %s",
              bls_last_error());
        CHECK(comm == NULL, "a communicator was returned");
    }
    cfg.mode = BLS_MODE_SYNC;
    cfg.max_block = 1;
    CHECK_OK(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm));
    int rank, P;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    size_t cnt[64], disp[64];
    unsigned char s[64], r[64];
    for (int q = 0; q < P && q < 64; q++) {
        cnt[q] = 1;
        disp[q] = (size_t)q;
        s[q] = (unsigned char)(rank * 16 + q);
    }
    bls_iter_t id;
    CHECK_OK(bls_post(comm, s, cnt, disp, r, cnt, disp, &id));
    CHECK_OK(bls_wait(comm, id, NULL));
    for (int p = 0; p < P && p < 64; p++)
        CHECK(r[p] == (unsigned char)(p * 16 + rank), "SYNC block from %d: %d", p, r[p]);
    CHECK_OK(bls_finish(comm));
    bls_comm_destroy(comm);
    return tu_finish("test_thread_level");
}
