# Sourced by the test scripts: checks counted, then one verdict.
#   ok                   a check passed
#   bad WHAT...          a check failed: says what
#   verdict NAME         prints the counts; its status is the test's (0 when nothing failed)
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
verdict() { echo "$1: $pass passed, $fail failed"; [ "$fail" -eq 0 ]; }

# The bls-dlrm scripts' start: mpi_script LIMIT TOOL OUT MPIEXEC [LAUNCHER FLAGS...] sets tool,
# out, mpiexec and flags and empties OUT; then `run NP ARGS...` runs the tool on NP processes,
# killed after LIMIT seconds (a hang fails, it does not wait forever).
mpi_script() {
  run_limit=$1 tool=$2 out=$3 mpiexec=$4
  shift 4
  flags=("$@")
  rm -rf "$out"; mkdir -p "$out"
}
run() { local np=$1; shift; timeout --kill-after=5 "$run_limit" "$mpiexec" -n "$np" "${flags[@]}" "$tool" "$@"; }
