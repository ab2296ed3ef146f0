/*
 * Reproducer, no bls involved: one Isend/Irecv exchange between 3 processes, then
 * MPI_Finalize.  With Debian 12's MPICH 4.0.2 (ch4:ucx) forced onto UCX's TCP transport
 *   MPIR_CVAR_NOLOCAL=1 UCX_TLS=tcp,self mpiexec.mpich -n 3 ./a.out
 * MPI_Finalize hangs in most runs (one rank spins in ucp_worker_progress while the others wait
 * in the PMI barrier).  Shared memory (the default) and Open MPI's TCP do not hang.  This is
 * why tests/finalize_grace.sh exists; it is built, not run, by the test suite.
 */
#include <mpi.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size, k = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    char out = 1, in[64];
    MPI_Request reqs[128];
    MPI_Status statuses[128];
    for (int p = 0; p < size && p < 64; p++)
        if (p != rank) {
            MPI_Irecv(&in[p], 1, MPI_CHAR, p, 1, MPI_COMM_WORLD, &reqs[k++]);
            MPI_Isend(&out, 1, MPI_CHAR, p, 1, MPI_COMM_WORLD, &reqs[k++]);
        }
    MPI_Waitall(k, reqs, statuses);
    printf("rank %d: exchange done, calling MPI_Finalize\n", rank);
    MPI_Finalize();
    return 0;
}
