/* --version of every tool: which bls, built for which MPI, running on which MPI library. */
#include "harness.h"

#include <string.h>

void harness_print_version(FILE *out, const char *tool)
{
    char lib[MPI_MAX_LIBRARY_VERSION_STRING] = "";
    int len = 0;
    /* MPI-3: may be called before MPI_Init and after MPI_Finalize. */
    if (MPI_Get_library_version(lib, &len) != MPI_SUCCESS)
        snprintf(lib, sizeof(lib), "unknown");
    lib[strcspn(lib, "\n")] = '\0';
#if defined(OMPI_MAJOR_VERSION)
    char built[64];
    snprintf(built, sizeof(built), "Open MPI %d.%d.%d", OMPI_MAJOR_VERSION, OMPI_MINOR_VERSION,
             OMPI_RELEASE_VERSION);
#elif defined(MPICH_VERSION)
    const char *built = "MPICH " MPICH_VERSION;
#else
    char built[32];
    snprintf(built, sizeof(built), "MPI %d.%d", MPI_VERSION, MPI_SUBVERSION);
#endif
    fprintf(out, "%s (bls) %s\n", tool, BLS_VERSION_STRING);
    fprintf(out, "libbls %s, compiled for %s; MPI library: %s\n", bls_version(NULL, NULL, NULL),
            built, lib);
}
