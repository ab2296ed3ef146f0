#!/usr/bin/env bash
# The PyTorch driver's server scenario against bls-dlrm's: one seed, one schedule.
#  - torch_bls/dlrm_infer.py --scenario server (bls and gloo, 2 processes) writes the same
#    --schedule-out, byte for byte, as bls-dlrm (1 and 2 processes), and serves those arrivals
#    and sizes (--latency-out); the Python module alone matches bls-dlrm for lognormal and fixed
#    sizes too.
#  - Its server predictions equal its offline predictions (same batches), for bls and gloo.
#  - Its clock estimates lie within their bounds of the true offset (0 on one host).
#  - Bad serving options: named errors.
# Usage: test_schedule.sh BLS_DLRM PYTHON_DIR OUT_DIR MPIEXEC [LAUNCHER FLAGS...]
set -uo pipefail
source "$(dirname "$0")/driver_env.sh" "$@"
run_limit=300  # checks.sh's run: bls-dlrm on NP processes

emb=1000-1200-1400-1600-1800-2000
model=(--arch-mlp-bot 13-32-16 --arch-mlp-top 32-1 --arch-embedding-size $emb)
sched=(--scenario server --qps 300 --queries 150 --query-size uniform:20:64 --batch-size 64 --schedule-seed 23)

"$tool" "${model[@]}" --quiet "${sched[@]}" --driver sync --schedule-out "$out/c1.txt" > "$out/c1.out" 2>&1 \
  || bad "bls-dlrm P=1: $(tail -3 "$out/c1.out")"
run 2 "${model[@]}" --quiet "${sched[@]}" --driver sync --schedule-out "$out/c2.txt" > "$out/c2.out" 2>&1 \
  || bad "bls-dlrm P=2: $(tail -3 "$out/c2.out")"
for be in bls gloo; do
  driver 2 "${model[@]}" "${sched[@]}" --dist-backend $be --lag 2 --schedule-out "$out/py_$be.txt" \
    --latency-out "$out/lat_$be.txt" --json "$out/py_$be.json" > "$out/py_$be.out" 2>&1 \
    || bad "dlrm_infer.py $be: $(tail -3 "$out/py_$be.out")"
  cmp -s "$out/c1.txt" "$out/py_$be.txt" && ok || bad "dlrm_infer.py $be's schedule differs from bls-dlrm's"
done
cmp -s "$out/c1.txt" "$out/c2.txt" && ok || bad "bls-dlrm's schedules of 1 and 2 processes differ"
if /usr/bin/python3 - "$out/c1.txt" "$out/lat_bls.txt" "$out/lat_gloo.txt" "$out/py_bls.json" <<'PY'
import json, sys
sched = [l.split() for l in open(sys.argv[1])]
assert len(sched) == 150
for path in sys.argv[2:4]:
    rows = [l.split() for l in open(path)]
    assert [int(r[2]) for r in rows] == list(range(150)), f"{path}: queries missing"
    for r, s in zip(rows, sched):
        assert r[4] == s[2] and abs(float(r[3]) - 1e3 * float(s[1])) < 1e-5, f"{path}: query {r[2]} is not the schedule's"
        assert float(r[5]) >= float(r[6]), f"{path}: latency below the queue"
j = json.load(open(sys.argv[4]))["server"]
assert j["queries"] == 150 and j["clock_shared"] is True
assert all(abs(e["offset_us"]) <= e["bound_us"] + 1e-6 for e in j["clock_estimates"]), j["clock_estimates"]
for key in ("min", "p50", "p99", "p99.9", "max"):
    assert j["latency_ms"][key] > 0
assert j["cpu_us_per_batch"] > 0 and 0 <= j["progress_cpu_us_per_batch"] <= j["cpu_us_per_batch"], j
PY
then ok; else bad "the Python driver's served queries"; fi

# The module alone, other size kinds (bls-dlrm clamps to [P, --batch-size]: here [1, 700]).
for sizes in lognormal:300:0.6 fixed:700; do
  "$tool" "${model[@]}" --quiet --scenario server --qps 100000 --queries 400 --query-size $sizes \
    --batch-size 700 --schedule-seed 5 --schedule-out "$out/c_$sizes.txt" > /dev/null 2>&1 \
    || bad "bls-dlrm $sizes"
  PYTHONPATH="$root/torch_bls" /usr/bin/python3 - "$out/p_$sizes.txt" "$sizes" <<'PY'
import sys
from dlrm_serving import QuerySizes, Schedule
Schedule(5, 100000.0, 400, QuerySizes(sys.argv[2]), 1, 700).write(sys.argv[1])
PY
  cmp -s "$out/c_$sizes.txt" "$out/p_$sizes.txt" && ok || bad "$sizes: dlrm_serving.Schedule differs from bls-dlrm's"
done

# Server predictions = offline predictions (every query a full batch), bls and gloo alike.
for be in bls gloo; do
  driver 2 "${model[@]}" --synthetic-samples 1280 --batch-size 64 --dist-backend $be --lag 1 \
    --scenario offline,server --qps 200 --queries 20 --json "$out/both_$be.json" \
    --predictions "$out/both_$be.pred" > "$out/both_$be.out" 2>&1 || bad "offline,server $be: $(tail -3 "$out/both_$be.out")"
  grep -q '"identical_to_offline": true' "$out/both_$be.json" && ok || bad "$be: server predictions differ from offline"
done
cmp -s "$out/both_bls.pred" "$out/both_gloo.pred" && ok || bad "bls and gloo predictions differ"

expect() {  # expect WHAT ARGS...: a failure naming WHAT
  local what=$1; shift
  driver 1 "${model[@]}" "$@" > "$out/err.out" 2>&1
  local rc=$?
  [ "$rc" != 0 ] && grep -qF -- "$what" "$out/err.out" && ok \
    || bad "dlrm_infer.py $*: exit $rc, expected a failure naming '$what': $(tail -2 "$out/err.out")"
}
expect "--qps 0: expected a rate > 0" --scenario server --qps 0
expect "--latency-bound applies to --scenario server" --latency-bound 50
expect "got 'uniform:9:3'" --scenario server --qps 10 --query-size uniform:9:3
expect "--scenario server needs a rate" --scenario server
expect "asks for more than --batch-size 64" --scenario server --qps 10 --batch-size 64 --query-size fixed:65

verdict test_schedule
