#!/usr/bin/env bash
# JSON with user strings in it: a data file and output files whose path holds a double quote, a
# backslash, a space and a tab.  bls-dlrm's and bls-bench's --json must parse (Python's json) and
# give the path back exactly; the predictions file must be written there too.
# Usage: test_json_paths.sh BLS_DLRM BLS_BENCH OUT_DIR MPIEXEC [LAUNCHER FLAGS...]
set -uo pipefail
tool=$1 bench=$2 out=$3 mpiexec=$4
shift 4
flags=("$@")
source "$(dirname "$0")/../checks.sh"
rm -rf "$out"; mkdir -p "$out"
dir="$out/we\"ird\\ di	r"
mkdir -p "$dir"
model=(--arch-mlp-bot 13-32-16 --arch-mlp-top 32-1 --arch-embedding-size "$(seq -s- 100 10 350)" --quiet)
"$tool" "${model[@]}" --synthetic-samples 300 --write-criteo "$dir/data.txt" > /dev/null || bad "--write-criteo to '$dir'"
timeout 120 "$mpiexec" -n 2 "${flags[@]}" "$tool" "${model[@]}" --data "$dir/data.txt" --batch-size 50 \
  --driver sync,bls:1 --json "$dir/run.json" --predictions "$dir/p.txt" > "$out/run.out" 2>&1 \
  || bad "bls-dlrm on '$dir': $(tail -3 "$out/run.out")"
/usr/bin/python3 - "$dir" <<'PY' && ok || bad "bls-dlrm's JSON"
import json, sys
d = sys.argv[1]
r = json.load(open(d + "/run.json"))
assert r["config"]["data"] == d + "/data.txt", r["config"]["data"]
assert [x["name"] for x in r["drivers"]] == ["sync", "bls:1"]
assert all(x["identical"] for x in r["drivers"]) and r["samples"] == 300
PY
[ "$(wc -l < "$dir/p.txt")" -eq 300 ] && ok || bad "predictions in '$dir'"
timeout 120 "$mpiexec" -n 2 "${flags[@]}" "$bench" --modes sync,bls:1 --iters 20 --rounds 1 \
  --bytes 256 --work-us 100 --quiet --json "$dir/bench.json" > "$out/bench.out" 2>&1 \
  || bad "bls-bench: $(tail -3 "$out/bench.out")"
/usr/bin/python3 -c "import json,sys; r = json.load(open(sys.argv[1])); assert [m['mode'] for m in r['modes']] == ['sync', 'bls:1']" \
  "$dir/bench.json" && ok || bad "bls-bench's JSON"
verdict test_json_paths
