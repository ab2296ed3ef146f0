#!/usr/bin/env bash
# Runs a torch_bls test under mpirun: a free MASTER_PORT for the env:// rendezvous, the build's
# Python package on PYTHONPATH, Debian's /usr/bin/python3 (it has python3-torch).
# Usage: run.sh PYTHON_DIR NP MPIEXEC [LAUNCHER FLAGS...] -- SCRIPT [ARGS...]
set -euo pipefail
pydir=$1 np=$2 mpiexec=$3
shift 3
flags=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do flags+=("$1"); shift; done
shift
/usr/bin/python3 -c 'import torch' 2>/dev/null || { echo "SKIP: /usr/bin/python3 has no torch (python3-torch)"; exit 77; }
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export MASTER_ADDR=127.0.0.1 MASTER_PORT=$port PYTHONPATH=$pydir${PYTHONPATH:+:$PYTHONPATH}
export BLS_TEST_TMP=$(mktemp -d)
trap 'rm -rf "$BLS_TEST_TMP"' EXIT
# Open MPI passes the launcher's environment to local ranks; MPICH's Hydra does by default.
# A sanitizer build sets BLS_TEST_PRELOAD: Python is not instrumented, so its processes (not
# the launcher) preload the sanitizer runtimes.
python=(/usr/bin/python3)
if [ -n "${BLS_TEST_PRELOAD:-}" ]; then
  python=(env "LD_PRELOAD=$BLS_TEST_PRELOAD" ASAN_OPTIONS=detect_leaks=0:alloc_dealloc_mismatch=0:abort_on_error=1
          UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 /usr/bin/python3)
fi
timeout --kill-after=5 600 "$mpiexec" -n "$np" "${flags[@]}" "${python[@]}" "$@"
