#!/usr/bin/env bash
# One oracle case: engine_case builds, saves, reloads and runs a seeded model; oracle.py
# recomputes the predictions with Debian's PyTorch (/usr/bin/python3).  Exit 77 (ctest: skipped)
# only when python3-torch is not installed.
# Usage: run_oracle.sh ENGINE_CASE OUT_DIR ENGINE_CASE_ARGS...
set -euo pipefail
engine_case=$1 out=$2
shift 2
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "SKIP: Debian's python3-torch is not installed (scripts/install-deps.sh installs it)"
  exit 77
fi
mkdir -p "$out"
"$engine_case" "$@" --out "$out"
op=dot itself=
for a in "$@"; do
  case $a in cat) op=cat ;; --itself) itself=--itself ;; esac
done
exec /usr/bin/python3 "$(dirname "$0")/oracle.py" "$out" --op "$op" $itself
