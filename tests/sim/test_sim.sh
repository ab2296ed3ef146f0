#!/usr/bin/env bash
# bls-sim against what it must reproduce, each from an independent source:
#  - the analytic law for exponential delays: the synchronous cost per iteration is
#    WORK + MEAN x H_P (H_64 = 4.74, H_1024 = 7.51, computed here), and unlimited lag tends to
#    WORK + MEAN: within 1% and 3% at P = 64 and 1024 (10,000 iterations, 2 seeds)
#  - the model's recurrence, written again here in Python, on placed delays (spikes in two
#    phases) at P = 4, every lag, and by hand: sync 26 ms, unlimited 23 ms
#  - the exchange cost: (P-1) x (latency + bytes / bandwidth) added once per iteration under
#    sync, once in all with lag
#  - the network model: hand-worked transfer-bound and work-bound cases, a schedule equal to a
#    constant rate, a slow stretch on one link costing sync more than lag
#  - negative controls: a persistent straggler and co-scheduled noise give 1.000 at every P
#    and lag, offline and serving; exponential delays give more with every lag and every P
#  - bad options are refused with a message and exit 2
# Usage: test_sim.sh BLS_SIM OUT_DIR
set -uo pipefail
source "$(dirname "$0")/../checks.sh"
sim=$1 out=$2
rm -rf "$out"; mkdir -p "$out"
py=/usr/bin/python3   # Debian's interpreter (the one on PATH may lack nothing here, but be sure)

for seed in 1 7; do
  "$sim" --procs 64,1024 --lags 1,4,inf --seed $seed --quiet --json "$out/law$seed.json" > /dev/null \
    || bad "the law run (seed $seed)"
  $py - "$out/law$seed.json" <<'PY' && ok || bad "harmonic law, seed $seed"
import json, sys
d = json.load(open(sys.argv[1]))
W, m = 1000.0, 1000.0
for r in d["rows"]:
    P = r["procs"]
    H = sum(1.0 / i for i in range(1, P + 1))
    law = (W + m * H) / 1000
    assert abs(r["sync_ms"] / law - 1) < 0.01, (P, r["sync_ms"], law)
    limit = (W + m * H) / (W + m)
    assert abs(r["speedup"][2] / limit - 1) < 0.03, (P, r["speedup"][2], limit)
    s = r["speedup"]
    assert 1 < s[0] < s[1] < s[2], (P, s)
print("law ok", [(r["procs"], round(r["sync_ms"], 3)) for r in d["rows"]])
PY
done
H64=$($py -c 'print(f"{sum(1/i for i in range(1, 65)):.2f}")')
H1024=$($py -c 'print(f"{sum(1/i for i in range(1, 1025)):.2f}")')
[ "$H64 $H1024" = "4.74 7.51" ] && ok || bad "harmonic numbers $H64 $H1024"

# The recurrence on placed delays: process 1 late 3 ms in iteration 5, process 2 in 12.
spikes=spike:1:5:3000/10/spike:2:12:3000
"$sim" --procs 4 --iters 20 --lags 1,2,3,5,inf --delay "$spikes" --quiet --json "$out/spikes.json" > /dev/null \
  || bad "the spikes run"
$py - "$out/spikes.json" <<'PY' && ok || bad "the recurrence on placed delays"
import json, sys
d = json.load(open(sys.argv[1]))
P, K = 4, 20
w = [[1e-3 + (3e-3 if (p, k) in ((1, 5), (2, 12)) else 0) for k in range(K)] for p in range(P)]
def T(L):  # the ideal model, from bls-semantics: start(p,k+1) = max(send(p,k), done(k-L))
    start, done = [0.0] * P, []
    for k in range(K):
        send = [start[p] + w[p][k] for p in range(P)]
        done.append(max(send))
        gate = done[k - L] if k - L >= 0 else 0.0
        start = [max(s, gate) for s in send]
    return done[-1]
r = d["rows"][0]
assert abs(r["sync_ms"] - 26e-3 / K * 1e3) < 1e-9, r["sync_ms"]   # by hand: 20 x 1 ms + 2 x 3 ms
assert abs(T(0) - 26e-3) < 1e-12 and abs(T(K) - 23e-3) < 1e-12    # unlimited: the max of sums
for L, s in zip([1, 2, 3, 5, K], r["speedup"]):
    assert abs(s - T(0) / T(L)) < 1e-9, (L, s, T(0) / T(L))
print("recurrence ok", r["speedup"])
PY

# The exchange: P = 3, 10 us + 1000 B at 8 Gbit/s (1 us) per peer: 22 us per iteration.
"$sim" --procs 3 --iters 100 --lags 1 --delay none --comm 10:1000:8 --quiet --json "$out/comm.json" > /dev/null \
  || bad "the --comm run"
$py - "$out/comm.json" <<'PY' && ok || bad "the exchange cost"
import json, sys
r = json.load(open(sys.argv[1]))["rows"][0]
assert abs(r["comm_us"] - 22) < 1e-9, r
assert abs(r["sync_ms"] - 1.022) < 1e-9, r
assert abs(r["speedup"][0] - 100 * 1022 / (100 * 1000 + 22)) < 1e-9, r
PY

# The network model: 2 hosts of 2, 1 ms of work.  15625 B per peer is 0.5 ms on a 1 Gbit/s
# link per iteration: sync pays work + transfer, lag overlaps them (100 x 1 ms + 0.5 ms).
# 62500 B is 2 ms: the link bounds lag (100 x 2 ms + 1 ms).
net() { "$sim" --procs 4 --hosts 2 --iters 100 --delay none --lags 1,inf --quiet "$@"; }
net --net-bytes 15625 --json "$out/net1.json" > /dev/null || bad "network run 1"
net --net-bytes 62500 --json "$out/net2.json" > /dev/null || bad "network run 2"
printf '# jitter seed 1 hosts 0 1 period 50ms rate 1gbit slow 100mbit share 0.2\n0 h0 500mbit\n0 h1 500mbit\n' > "$out/half.log"
net --net-bytes 15625 --net-schedule "$out/half.log" --json "$out/net3.json" > /dev/null || bad "network run 3"
net --net-bytes 15625 --net-rate 0.5 --json "$out/net4.json" > /dev/null || bad "network run 4"
# host 1 at 100 Mbit/s from 20 to 60 ms: sync pays it on every iteration there, lag spreads it
printf '# jitter\n20 h1 100mbit\n60 h1 1gbit\n' > "$out/slow.log"
net --net-bytes 15625 --net-schedule "$out/slow.log" --json "$out/net5.json" > /dev/null || bad "network run 5"
# a token bucket of a quarter of the 500 kbit per iteration: refilled during each 1 ms of work,
# it sends that at once and the rest (0.375 ms) at the rate
net --net-bytes 15625 --net-burst 15625 --json "$out/net6.json" > /dev/null || bad "network run 6"
$py - "$out" <<'PY' && ok || bad "the network model"
import json, sys
r = [None] + [json.load(open(f"{sys.argv[1]}/net{i}.json"))["rows"][0] for i in range(1, 7)]
close = lambda a, b: abs(a - b) < 1e-9
assert close(r[1]["sync_ms"], 1.5) and all(close(s, 150 / 100.5) for s in r[1]["speedup"]), r[1]
assert close(r[2]["sync_ms"], 3.0) and all(close(s, 300 / 201) for s in r[2]["speedup"]), r[2]
assert close(r[3]["sync_ms"], r[4]["sync_ms"]) and close(r[3]["sync_ms"], 2.0), (r[3], r[4])
assert r[5]["sync_ms"] > r[1]["sync_ms"] + 0.1 and r[5]["speedup"][1] > r[1]["speedup"][1] + 0.05, r[5]
assert close(r[6]["sync_ms"], 1.375) and all(close(s, 137.5 / 100.375) for s in r[6]["speedup"]), r[6]
print("network ok", r[5])
PY
printf '0 h7 1gbit\n' > "$out/h7.log"
printf '0 h1 fast\n' > "$out/fast.log"

# Negative controls, offline and serving.
for d in straggler:3:1000 cosched:0.3:3000; do
  "$sim" --procs 8,64,256 --iters 3000 --lags 1,4,inf --delay $d --scenario offline,server \
    --bound-ms 15 --quiet --json "$out/control.json" > /dev/null || bad "control $d"
  $py - "$out/control.json" <<'PY' && ok || bad "negative control $d"
import json, sys
for r in json.load(open(sys.argv[1]))["rows"]:
    assert all(abs(x - 1) < 1e-3 for x in r["speedup"] + r["qps_ratio"]), r
    assert r["sync_qps"] > 0, r
PY
done
# Serving under exponential delays: every lag serves more than sync, more with more lag.
"$sim" --procs 8,64 --iters 3000 --lags 1,4 --scenario server --bound-ms 20 --quiet \
  --json "$out/server.json" > "$out/server.out" || bad "server run"
$py - "$out/server.json" <<'PY' && ok || bad "serving under exp delays"
import json, sys
for r in json.load(open(sys.argv[1]))["rows"]:
    q = r["qps_ratio"]
    assert 1 < q[0] < q[1], r
    assert 0 < r["sync_p99_ms"] <= 20, r
PY
grep -q "^server: highest Poisson rate with p99 <= 20 ms" "$out/server.out" && ok || bad "server table"

# Bad options.
refuse() {
  local want=$1; shift
  "$sim" "$@" > /dev/null 2> "$out/err"; local rc=$?
  [ $rc -eq 2 ] && grep -q -- "$want" "$out/err" && ok || bad "'$*' (rc $rc): $(cat "$out/err")"
}
refuse "--procs takes" --procs 0
refuse "--lags takes" --lags 0
refuse "--comm takes" --comm 1:2
refuse "--delay: a delay is" --delay bogus
refuse "unknown option '--frobnicate'" --frobnicate 1
refuse "more than 4e8" --procs 100000 --iters 10000
refuse "--scenario takes" --scenario online
refuse "--iters needs a value" --iters
refuse "need --hosts" --net-bytes 100
refuse "need --hosts" --net-burst 100
refuse "--hosts 3 does not divide 4" --procs 4 --hosts 3
refuse "offline scenario only" --procs 4 --hosts 2 --scenario server
refuse "host 7, but --hosts is 2" --procs 4 --hosts 2 --net-bytes 10 --net-schedule "$out/h7.log"
refuse "expected 'MS hI RATE'" --procs 4 --hosts 2 --net-bytes 10 --net-schedule "$out/fast.log"
refuse "No such file" --procs 4 --hosts 2 --net-schedule "$out/absent.log"
"$sim" --help | grep -q "^usage: bls-sim" && ok || bad "--help"

verdict test_sim
