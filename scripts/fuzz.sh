#!/usr/bin/env bash
# make fuzz: builds the libFuzzer targets of tests/fuzz with clang, ASan and UBSan
# (build-fuzz/), then runs each for SECONDS (default 60), starting from its seed corpus in
# tests/fuzz/corpus/TARGET; new inputs go to build-fuzz/corpus/TARGET, a crash to
# build-fuzz/crash-TARGET-*.  Prints executions and coverage per target.  A crash found is a
# bug: fix it, then add the input to tests/fuzz/corpus/TARGET, where `make test` replays it.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (targets: criteo safetensors options)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(criteo safetensors options)
OMPI_CC=clang cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DMPI_C_COMPILER=mpicc.openmpi -DMPIEXEC_EXECUTABLE=/usr/bin/mpiexec.openmpi \
  -DBLS_SANITIZE=ON -DBLS_FUZZ=ON -DBLS_TORCH=OFF > /dev/null
for t in "${targets[@]}"; do
  OMPI_CC=clang cmake --build build-fuzz -j2 --target "fuzz_$t" > /dev/null
done
rc=0
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t"
  log="build-fuzz/fuzz_$t.log"
  echo "fuzz: $t for $seconds s ..."
  if ! "build-fuzz/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 \
       -artifact_prefix="build-fuzz/crash-$t-" "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" \
       > "$log" 2>&1; then
    echo "fuzz: $t FAILED: see $log and build-fuzz/crash-$t-*"; rc=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
  echo "fuzz: $t: ${execs:-?} executions, $cov (edges, features), corpus $(ls "build-fuzz/corpus/$t" | wc -l) + $(ls "tests/fuzz/corpus/$t" | wc -l) seeds"
done
exit $rc
