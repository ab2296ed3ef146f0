#!/usr/bin/env bash
# The whole test suite, as CI runs it (`make test`):
#   1. gcc + Open MPI: build with -Werror, all ctest tests, among them the exactness checks
#      again under each of OpenBLAS's x86-64 kernels (label "coretype")
#   2. gcc + MPICH:    build with -Werror, all ctest tests but that matrix
#   3. clang + Open MPI: build with -Werror (warnings are errors under both compilers; C++ too)
#   4. gcc + Open MPI with AddressSanitizer and UndefinedBehaviorSanitizer: the quick tests
#      (the PyTorch backend's too, its Python processes preloading the sanitizer runtimes)
# Stops at the first failing stage; prints one closing line per stage.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${BLS_JOBS:-2}
ompi=(-DMPI_C_COMPILER=mpicc.openmpi -DMPIEXEC_EXECUTABLE=/usr/bin/mpiexec.openmpi)
mpich=(-DMPI_C_COMPILER=mpicc.mpich -DMPIEXEC_EXECUTABLE=/usr/bin/mpiexec.mpich)

stage() { echo; echo "=== $*"; }
# Configure from a clean cache every time: a cache left by another configuration (another
# MPI, another compiler) can keep the wrong MPI's paths.  Object files are kept.
configure() { local dir=$1; shift; rm -f "$dir/CMakeCache.txt"; cmake -S . -B "$dir" "$@" >/dev/null; }

stage "1/4 gcc + Open MPI"
configure build -DCMAKE_C_COMPILER=gcc "${ompi[@]}"
cmake --build build -j"$jobs" >/dev/null
(cd build && ctest --output-on-failure)

stage "2/4 gcc + MPICH"
configure build-mpich -DCMAKE_C_COMPILER=gcc "${mpich[@]}"
cmake --build build-mpich -j"$jobs" >/dev/null
(cd build-mpich && ctest --output-on-failure -LE coretype)

stage "3/4 clang + Open MPI (build, -Werror)"
OMPI_CC=clang configure build-clang -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ "${ompi[@]}"
OMPI_CC=clang cmake --build build-clang -j"$jobs" >/dev/null
echo "clang build: warning-free"

stage "4/4 ASan + UBSan, Open MPI, quick tests"
configure build-asan -DCMAKE_C_COMPILER=gcc -DBLS_SANITIZE=ON "${ompi[@]}"
cmake --build build-asan -j"$jobs" >/dev/null
# Open MPI's own allocations are not freed at exit: leak reports would be about MPI, not bls.
(cd build-asan && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
  ctest --output-on-failure -LE coretype -E 'delivery_large|delivery_small_p[58]|crash|torch_bls_driver')
