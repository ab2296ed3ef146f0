#!/usr/bin/env bash
# bls-dlrm's server scenario, as a user runs it under mpirun.
#  Schedules: the --schedule-out of 1 and 3 processes are byte-identical, every driver of a run
#  serves those arrivals and sizes (--latency-out), another seed gives another schedule, and
#  another rate the same trace stretched.
#  Latency accounting (--latency-out, per query): at very low load and no delays a query waits
#  for nothing and its latency is its service time (within a tolerance); the latency is never
#  below the query's own work (the ideal model of an isolated query); one delay of D on one
#  process at query k (--delay spike) gives query k a latency of at least D, for every driver.
#  Predictions: a server run gives the offline run's bits (synthetic and a Criteo file).
#  Clocks: on one host every ping-pong estimate lies within its bound of the true offset, 0.
#  Peak search: the probes double, then bisect; the peak is the highest valid probe, and a
#  valid probe's p99 is within the bound.
#  Bad options and data that end early: named errors, exit 2.
# Usage: test_serving.sh BLS_DLRM OUT_DIR MPIEXEC [LAUNCHER FLAGS...]
set -uo pipefail
source "$(dirname "$0")/../checks.sh"
mpi_script 300 "$@"
py() { /usr/bin/python3 - "$@"; }   # standard library only

emb=$(seq -s- 1000 37 1925)   # 26 tables of 1000..1925 rows
model=(--arch-mlp-bot 13-32-16 --arch-mlp-top 64-32-1 --arch-embedding-size "$emb" --quiet)

# ---- schedules ----
sched=(--scenario server --qps 400 --queries 300 --query-size uniform:40:96 --batch-size 96 --schedule-seed 11)
"$tool" "${model[@]}" "${sched[@]}" --driver sync --schedule-out "$out/s1.txt" > "$out/s1.out" 2>&1 \
  || bad "schedule P=1: $(tail -3 "$out/s1.out")"
run 3 "${model[@]}" "${sched[@]}" --driver sync,bls:2 --schedule-out "$out/s3.txt" \
  --latency-out "$out/l3.txt" > "$out/s3.out" 2>&1 || bad "schedule P=3: $(tail -3 "$out/s3.out")"
cmp -s "$out/s1.txt" "$out/s3.txt" && ok || bad "the schedules of 1 and 3 processes differ"
"$tool" "${model[@]}" "${sched[@]/11/12}" --driver sync --schedule-out "$out/s12.txt" > /dev/null 2>&1
cmp -s "$out/s1.txt" "$out/s12.txt" && bad "another seed gave the same schedule" || ok
"$tool" "${model[@]}" "${sched[@]/400/100}" --driver sync --schedule-out "$out/s100.txt" > /dev/null 2>&1
if py "$out/s1.txt" "$out/s100.txt" "$out/l3.txt" <<'PY'
import sys
a = [l.split() for l in open(sys.argv[1])]
b = [l.split() for l in open(sys.argv[2])]
assert len(a) == 300 and len(b) == 300, (len(a), len(b))
assert all(x[2] == y[2] for x, y in zip(a, b)), "a rate changed the sizes"
worst = max(abs(float(x[1]) * 400 - float(y[1]) * 100) / (float(x[1]) * 400) for x, y in zip(a, b))
assert worst < 1e-12, f"another rate is not the same trace stretched ({worst:.3g})"
assert len({x[2] for x in a}) > 20 and all(40 <= int(x[2]) <= 96 for x in a), "sizes outside uniform:40:96"
lat = {}
for l in open(sys.argv[3]):
    d, rnd, k, at_ms, size = l.split()[:5]
    lat.setdefault(d, []).append((int(k), float(at_ms), size))
assert sorted(lat) == ["bls:2", "sync"], sorted(lat)
for d, rows in lat.items():
    assert [r[0] for r in rows] == list(range(300)), f"{d}: queries missing"
    for (k, at_ms, size), x in zip(rows, a):
        assert size == x[2] and abs(at_ms - 1e3 * float(x[1])) < 1e-5, f"{d} query {k}: not the schedule's"
PY
then ok; else bad "schedule properties"; fi

# ---- latency accounting at very low load, no delays ----
run 2 "${model[@]}" --scenario server --qps 5 --queries 25 --driver sync,bls:2 --latency-out "$out/low.txt" \
  --json "$out/low.json" > "$out/low.out" 2>&1 || bad "low load: $(tail -3 "$out/low.out")"
if py "$out/low.txt" "$out/low.json" <<'PY'
import json, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
assert len(rows) == 50, len(rows)
for d in ("sync", "bls:2"):
    r = [(float(x[3]), float(x[5]), float(x[6]), float(x[7])) for x in rows if x[0] == d]
    # latency >= the query's own work wherever the previous query is long done (isolated)
    iso = [x for i, x in enumerate(r) if i == 0 or x[0] - r[i - 1][0] > 50]
    assert len(iso) > 15, len(iso)
    for at, lat, queue, ideal in iso:
        assert lat >= ideal - 1e-3, f"{d}: latency {lat} ms below the query's work {ideal} ms"
        assert lat >= queue, f"{d}: latency {lat} below its queue {queue}"
    # nothing queues: the latency is the service time (the work plus the exchange), within 25 ms
    excess = statistics.median(lat - ideal for _, lat, _, ideal in r)
    assert statistics.median(q for _, _, q, _ in r) < 5, f"{d}: queries waited to start at low load"
    assert excess < 25, f"{d}: latency exceeds the service time by {excess:.1f} ms at low load"
j = json.load(open(sys.argv[2]))["server"]
assert j["clock_shared"] is True
est = j["clock_estimates"]
assert len(est) == 2 and all(abs(e["offset_us"]) <= e["bound_us"] + 1e-6 for e in est), est
assert all(d["identical"] for d in j["drivers"]), j["drivers"]
# VALID is the rule --help states (p99 within the bound, 0.95 of the rate kept), whatever the
# machine's noise made of this run's p99
for d in j["drivers"]:
    keeps = d["completed_qps"] >= 0.95 * d["scheduled_qps"]
    assert d["valid"] == (d["latency_ms"]["p99"] <= j["latency_bound_ms"] and keeps), d
PY
then ok; else bad "latency accounting at low load"; fi

# ---- one delay of 40 ms on process 2 at query 6 ----
run 3 "${model[@]}" --scenario server --qps 5 --queries 12 --driver sync,bls:2 --delay spike:2:6:40000 \
  --latency-out "$out/spike.txt" > "$out/spike.out" 2>&1 || bad "spike: $(tail -3 "$out/spike.out")"
if py "$out/spike.txt" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
for d in ("sync", "bls:2"):
    q6 = [x for x in rows if x[0] == d and x[2] == "6"]
    assert len(q6) == 1, f"{d}: query 6 missing"
    lat, ideal = float(q6[0][5]), float(q6[0][7])
    assert lat >= 40 and ideal >= 40, f"{d}: query 6 with a 40 ms delay took {lat} ms (ideal {ideal})"
PY
then ok; else bad "a delayed query's latency"; fi

# ---- predictions: server = offline ----
"$tool" "${model[@]}" --synthetic-samples 3000 --data-seed 5 --write-criteo "$out/gen.txt" > /dev/null \
  || bad "--write-criteo"
for src in "--synthetic-samples 2880" "--data $out/gen.txt"; do
  tag=${src%% *}; tag=${tag#--}
  # shellcheck disable=SC2086
  run 3 "${model[@]}" $src --batch-size 96 --driver sync,bls:1 --predictions "$out/off_$tag.txt" \
    > "$out/off_$tag.out" 2>&1 || bad "offline $tag: $(tail -3 "$out/off_$tag.out")"
  # shellcheck disable=SC2086
  run 3 "${model[@]}" $src --batch-size 96 --driver sync,bls:1 --scenario server --qps 300 --queries 30 \
    --predictions "$out/srv_$tag.txt" --json "$out/srv_$tag.json" > "$out/srv_$tag.out" 2>&1 \
    || bad "server $tag: $(tail -3 "$out/srv_$tag.out")"
  head -n 2880 "$out/off_$tag.txt" | cmp -s - "$out/srv_$tag.txt" && [ "$(wc -l < "$out/srv_$tag.txt")" = 2880 ] \
    && ok || bad "$tag: the server run's predictions differ from the offline run's"
  grep -q '"identical": false' "$out/srv_$tag.json" && bad "$tag: server drivers differ" || ok
done
run 2 "${model[@]}" --synthetic-samples 1920 --batch-size 96 --scenario offline,server --qps 300 --queries 20 \
  --driver sync,bls:2 --json "$out/both.json" > "$out/both.out" 2>&1 || bad "offline,server: $(tail -3 "$out/both.out")"
grep -q '"identical_to_offline": true' "$out/both.json" && ok || bad "offline,server: not identical_to_offline"

# ---- the peak search (without --quiet: its progress lines) ----
run 2 "${model[@]:0:6}" --find-peak --probe-queries 80 --refine 1 --driver sync,bls:2 --latency-bound 30 \
  --json "$out/peak.json" > "$out/peak.out" 2> "$out/peak.err" || bad "find-peak: $(tail -3 "$out/peak.err")"
grep -q "bls-dlrm: peak bls:2 at" "$out/peak.err" && ok || bad "find-peak: no progress lines"
if py "$out/peak.json" <<'PY'
import json, sys
peak = json.load(open(sys.argv[1]))["server"]["peak"]
assert len(peak["drivers"]) == 2
for d in peak["drivers"]:
    probes = d["probes"]
    assert len(probes) >= 2, d
    valid = [p["qps"] for p in probes if p["valid"]]
    assert d["peak_qps"] == (max(valid) if valid else 0), d
    for p in probes:
        assert not p["valid"] or p["p99_ms"] <= 30, p
    first_fail = next((i for i, p in enumerate(probes) if not p["valid"]), len(probes))
    for i in range(1, first_fail):  # doubling while every probe passes
        assert abs(probes[i]["qps"] - 2 * probes[i - 1]["qps"]) < 1e-9, probes
PY
then ok; else bad "peak search structure"; fi

# ---- bad options and short data: exit 2 with the reason ----
expect() {  # expect NP WHAT ARGS...: exit 2 and WHAT in the messages
  local np=$1 what=$2; shift 2
  run "$np" "${model[@]}" "$@" > "$out/err.out" 2>&1
  local rc=$?
  [ "$rc" = 2 ] && grep -qF -- "$what" "$out/err.out" && ok \
    || bad "$* (P=$np): exit $rc, expected 2 and '$what': $(head -3 "$out/err.out")"
}
expect 1 "--qps takes a number > 0, got '0'" --scenario server --qps 0
expect 1 "--latency-bound applies to --scenario server or --find-peak" --latency-bound 50
expect 1 "--qps, --load, --query-size, --schedule-out and --latency-out apply to" --qps 10
expect 1 "got 'fixed:x'" --scenario server --qps 10 --query-size fixed:x
expect 1 "got 'uniform:9:3'" --scenario server --qps 10 --query-size uniform:9:3
expect 1 "got 'lognormal:300'" --scenario server --qps 10 --query-size lognormal:300
expect 1 "--scenario server needs a rate" --scenario server
expect 1 "--qps and --load both set the rate" --scenario server --qps 10 --load 0.5
expect 1 "--latency-out writes the queries of --scenario server" --find-peak --latency-out "$out/x"
expect 1 "asks for more than --batch-size 128" --scenario server --qps 10 --query-size fixed:500
expect 2 "gives some of the 2 processes no samples" --scenario server --qps 10 --query-size fixed:1
expect 1 "spike:RANK:ITER:US" --delay spike:1:2
expect 2 "the data ended at query 33 of 40" --data "$out/gen.txt" --scenario server --qps 2000 \
  --queries 40 --query-size fixed:90 --batch-size 90

verdict test_serving
