/*
 * BLS mode with its progress thread refuses to start without MPI_THREAD_MULTIPLE (the thread
 * calls MPI), with a message that says how to initialise MPI; SYNC mode, and BLS mode with
 * BLS_PROGRESS_CALLER (no thread), work at any thread level, and deliver exactly.
 */
#include "testutil.h"

/* Three iterations of one byte per pair in the configured mode, every byte checked. */
static void exchange(bls_config_t *cfg, const char *what)
{
    int rank, P;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    bls_comm_t *comm = NULL;
    cfg->max_block = 1;
    REQUIRE_OK(bls_comm_create(MPI_COMM_WORLD, cfg, &comm));
    size_t cnt[64], disp[64];
    unsigned char s[3][64], r[3][64];
    bls_iter_t id[3];
    for (int k = 0; k < 3; k++) {
        for (int q = 0; q < P && q < 64; q++) {
            cnt[q] = 1;
            disp[q] = (size_t)q;
            s[k][q] = (unsigned char)(k * 64 + rank * 8 + q);
        }
        CHECK_OK(bls_post(comm, s[k], cnt, disp, r[k], cnt, disp, &id[k]));
        CHECK_OK(bls_progress(comm));
    }
    for (int k = 0; k < 3; k++) {
        CHECK_OK(bls_wait(comm, id[k], NULL));
        for (int p = 0; p < P && p < 64; p++)
            CHECK(r[k][p] == (unsigned char)(k * 64 + p * 8 + rank),
                  "%s: iteration %d, block from %d: %d", what, k, p, r[k][p]);
    }
    CHECK_OK(bls_finish(comm));
    bls_comm_destroy(comm);
}

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
    cfg.progress = (bls_progress_mode_t)7;
    CHECK(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm) == BLS_ERR_ARG &&
              strstr(bls_last_error(), "progress 7") != NULL,
          "a bad progress mode: %s", bls_last_error());
    CHECK(bls_progress(NULL) == BLS_ERR_ARG, "bls_progress(NULL) accepted");
    cfg.progress = BLS_PROGRESS_CALLER;
    cfg.lag = 2;
    exchange(&cfg, "BLS mode, caller progress");
    bls_config_init(&cfg);
    cfg.mode = BLS_MODE_SYNC;
    exchange(&cfg, "SYNC");
    return tu_finish("test_thread_level");
}
