/*
 * The README's example: a pipelined loop over a BLS communicator.  Every process sends
 * `n` ints to every peer per iteration; iteration k's data is consumed after iteration k+L is
 * posted, so a slow peer delays this process only once it is more than L iterations behind.
 * Run: mpiexec -np 4 ./bls-example
 */
#include <bls.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK_BLS(call)                                                                      \
    do {                                                                                     \
        bls_status_t s_ = (call);                                                            \
        if (s_ != BLS_OK) {                                                                  \
            fprintf(stderr, "%s: %s\n", bls_strerror(s_), bls_last_error());                 \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                    \
        }                                                                                    \
    } while (0)

int main(int argc, char **argv)
{
    int provided, rank, P;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided); /* BLS mode needs it */
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    enum { n = 8, L = 2, ITERS = 100 };

    bls_config_t cfg;
    bls_config_init(&cfg);
    cfg.lag = L;
    cfg.datatype = MPI_INT; /* counts and displacements in ints */
    cfg.max_block = n;      /* the largest block this process sends any peer */
    bls_comm_t *comm;
    CHECK_BLS(bls_comm_create(MPI_COMM_WORLD, &cfg, &comm));

    size_t *counts = malloc(P * sizeof(size_t)), *displs = malloc(P * sizeof(size_t));
    /* Both buffers of iteration k are lent to the library until k is reported, as with
     * MPI_Ialltoallv: L+1 of each suffice when k is reported before k+L+1 is posted. */
    int *send[L + 1], *recv[L + 1];
    for (int i = 0; i <= L; i++) {
        send[i] = malloc(P * n * sizeof(int));
        recv[i] = malloc(P * n * sizeof(int));
    }
    for (int q = 0; q < P; q++) {
        counts[q] = n;
        displs[q] = (size_t)q * n;
    }
    long checksum = 0;
    for (int k = 0; k < ITERS + L; k++) {
        if (k < ITERS) {
            for (int i = 0; i < P * n; i++)
                send[k % (L + 1)][i] = k + rank;
            bls_iter_t id;
            CHECK_BLS(bls_post(comm, send[k % (L + 1)], counts, displs, recv[k % (L + 1)], counts,
                               displs, &id));
        }
        if (k >= L) { /* consume iteration k-L: posted L iterations ago */
            CHECK_BLS(bls_wait(comm, k - L, NULL));
            for (int i = 0; i < P * n; i++)
                checksum += recv[(k - L) % (L + 1)][i];
        }
    }
    CHECK_BLS(bls_finish(comm)); /* collective: checks everybody posted ITERS iterations */
    bls_comm_destroy(comm);
    long expect = 0;
    for (int k = 0; k < ITERS; k++)
        for (int p = 0; p < P; p++)
            expect += (long)n * (k + p);
    printf("rank %d: checksum %ld, expected %ld\n", rank, checksum, expect);
    MPI_Finalize();
    return checksum == expect ? 0 : 1;
}
