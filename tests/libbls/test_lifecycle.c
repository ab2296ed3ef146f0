/*
 * Communicators made and destroyed in quick succession, the progress thread busy at the
 * moment of destruction: bls_comm_destroy must always return.  (The thread once missed a stop
 * signalled while its round had the lock dropped for MPI, then slept forever in its idle wait:
 * a hang at the end of a PyTorch job.)  Each communicator also delivers exactly.
 *
 * Usage: test_lifecycle [ROUNDS]   (default 300; both thread priorities and lags 0..2 in turn)
 */
#include "testutil.h"

#define BYTES 65536 /* large enough that the thread polls closely while blocks move */

/* Byte j of the block from `from` to `to` in round i: differs by position, pair and round. */
static unsigned char pattern(long i, int from, int to, size_t j)
{
    return (unsigned char)((size_t)(i * 31 + from * 7 + to) + j * 13 + (j >> 8));
}

int main(int argc, char **argv)
{
    int provided, rank, P;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    long rounds = argc > 1 ? atol(argv[1]) : 300;
    unsigned char *s = malloc((size_t)P * BYTES), *r = malloc((size_t)P * BYTES);
    size_t *cnt = malloc(sizeof(size_t) * (size_t)P), *disp = malloc(sizeof(size_t) * (size_t)P);
    for (int q = 0; q < P; q++) {
        cnt[q] = BYTES;
        disp[q] = (size_t)q * BYTES;
    }
    const bls_progress_mode_t kinds[] = {BLS_PROGRESS_THREAD, BLS_PROGRESS_THREAD_NORMAL};
    for (long i = 0; i < rounds; i++) {
        bls_config_t cfg;
        bls_config_init(&cfg);
        cfg.lag = (int)(i % 3);
        cfg.progress = kinds[(i / 3) % 2];
        cfg.max_block = BYTES;
        cfg.timeout = 60;
        bls_comm_t *comm = NULL;
        REQUIRE_OK(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm));
        for (int q = 0; q < P; q++)
            for (size_t j = 0; j < BYTES; j++)
                s[(size_t)q * BYTES + j] = pattern(i, rank, q, j);
        bls_iter_t id;
        CHECK_OK(bls_post(comm, s, cnt, disp, r, cnt, disp, &id));
        CHECK_OK(bls_wait(comm, id, NULL));
        for (int p = 0; p < P; p++) {
            const unsigned char *b = r + (size_t)p * BYTES;
            size_t wrong = 0, first = BYTES;
            for (size_t j = 0; j < BYTES; j++)
                if (b[j] != pattern(i, p, rank, j) && wrong++ == 0)
                    first = j;
            CHECK(wrong == 0, "round %ld: %zu of %d bytes from %d wrong, the first at %zu", i,
                  wrong, BYTES, p, first);
        }
        /* No bls_finish: destruction right after the last wait, the thread still polling. */
        bls_comm_destroy(comm);
    }
    free(s);
    free(r);
    free(cnt);
    free(disp);
    return tu_finish("test_lifecycle");
}
