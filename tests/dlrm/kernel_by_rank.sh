#!/usr/bin/env bash
# Runs COMMAND with the engine's Linear kernel chosen by the process's MPI rank: rank r gets the
# (r mod n)-th of the comma-separated KERNELS, as on a cluster whose hosts have different CPUs.
# Usage (under mpirun): kernel_by_rank.sh avx512,avx2,generic COMMAND...
set -euo pipefail
IFS=, read -ra list <<< "$1"
shift
rank=${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}}
export DLRM_KERNEL=${list[$((rank % ${#list[@]}))]}
exec "$@"
