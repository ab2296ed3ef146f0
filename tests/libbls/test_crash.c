/*
 * A peer that dies.  The last rank is killed (SIGKILL) after 3 iterations while the others
 * keep going with a 10 s timeout.  Run under tests/expect_failure.sh: the job must end with a
 * non-zero status well before the test's limit, and its output must name the dead rank --
 * whether the MPI runtime ends the job first ("rank N" in its report) or the survivors'
 * timeout does ("peers N" in the library's message).  MPICH's launcher names the process by
 * PID instead; each rank prints its PID first so the checker can tell it is rank N.  Never a
 * hang.
 */
#include "testutil.h"

#include <signal.h>

int main(int argc, char **argv)
{
    tu_init(&argc, &argv);
    int rank, P;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    size_t cnt[64], disp[64];
    char sendbuf[64], recvbuf[4][64];
    for (int q = 0; q < P && q < 64; q++) {
        cnt[q] = 1;
        disp[q] = (size_t)q;
        sendbuf[q] = (char)q;
    }
    bls_config_t cfg;
    bls_config_init(&cfg);
    cfg.lag = 1;
    cfg.max_block = 1;
    cfg.timeout = 10;
    bls_comm_t *comm;
    REQUIRE_OK(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm));
    /* MPICH's launcher names a dead process by PID: let the checker map it to the rank. */
    fprintf(stderr, "test_crash: rank %d is pid %ld\n", rank, (long)getpid());
    MPI_Barrier(MPI_COMM_WORLD);
    for (int64_t k = 0; k < 1000; k++) {
        if (k == 3 && rank == P - 1)
            raise(SIGKILL);
        bls_iter_t id;
        bls_status_t s = bls_post(comm, sendbuf, cnt, disp, recvbuf[k % 4], cnt, disp, &id);
        if (s == BLS_OK && k >= 1)
            s = bls_wait(comm, k - 1, NULL);
        if (s != BLS_OK) {
            fprintf(stderr, "rank %d: %s: %s\n", rank, bls_strerror(s), bls_last_error());
            MPI_Abort(MPI_COMM_WORLD, 3);
        }
        tu_sleep_us(1000);
    }
    fprintf(stderr, "rank %d: ran 1000 iterations although rank %d died\n", rank, P - 1);
    return 1;
}
