#!/usr/bin/env bash
# bls-dlrm across processes, as a user runs it under mpirun.
#  Exactness: for each workload (synthetic dot with multi-hot, random and bursty pooling and hot
#  tables; synthetic cat; a Criteo-format file with a malformed line and a short last batch,
#  dot with self-interaction and balanced placement; delays that put processes out of step),
#  the predictions of P = 1, 2, 3, 4 processes under the drivers sync, bls:0, bls:1, bls:4 and
#  bls:auto:3 (adaptive lag: each process picks its run-ahead per batch) are bit-identical to the single-process run (the engine alone is checked against an
#  independent PyTorch implementation in tests/engine).  A different seed must differ, so the
#  comparison can fail.  A heterogeneous cluster (processes on different Linear kernels:
#  AVX-512, AVX2, generic) gives the single-process bits too.
#  BLS_TEST_EXACT_ONLY=1: two workloads' exactness and the seed check only (the OpenBLAS kernel
#  matrix runs that).
#  Faults: a bad model shape and a missing file are reported once (not once per process); a
#  NaN in the weights is named (exit 2), not a hang; a
#  malformed line under --strict stops every process at the same batch with one message; data
#  shorter than --max-batches ends cleanly with the counts; a stalled process makes the others
#  fail within the timeout naming it (under sync, where MPI_Alltoallv cannot time out, the
#  watchdog ends the job); a killed process ends the job, never a hang.
# Usage: test_distributed.sh BLS_DLRM OUT_DIR MPIEXEC [LAUNCHER FLAGS...]
set -uo pipefail
source "$(dirname "$0")/../checks.sh"
mpi_script 240 "$@"
exact_only=${BLS_TEST_EXACT_ONLY:-0}

emb=$(seq -s- 1000 37 1925)   # 26 tables of 1000..1925 rows
model=(--arch-mlp-bot 13-32-16 --arch-mlp-top 64-32-1 --arch-embedding-size "$emb" --quiet)
drivers=(--driver sync,bls:0,bls:1,bls:4,bls:auto:3)

# A Criteo file: 1000 synthetic samples, plus a malformed line (25 categoricals) at line 301.
"$tool" "${model[@]}" --synthetic-samples 1000 --data-seed 5 --write-criteo "$out/gen.txt" > /dev/null \
  || bad "--write-criteo"
awk 'NR == 301 { n = split($0, f, "\t"); line = f[1]; for (i = 2; i < n; i++) line = line "\t" f[i]; print line } { print }' \
  "$out/gen.txt" > "$out/criteo.txt"

# Each driver's records in the JSON.  The run-ahead its batches were produced with: every batch
# of every process counted once; a fixed lag's all at its lag; bls:auto:3's within 0..3.  And
# copy_peers (libbls's probe, the fewest of any process): in BLS mode every other process (one
# host) or none, else 0.
check_driver_records() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
d, P = json.load(open(sys.argv[1])), int(sys.argv[2])
for x in d["drivers"]:
    h, seq = x["run_ahead"]["histogram"], x["run_ahead"]["per_batch_mean"]
    assert sum(h) == P * d["batches"] and len(seq) == d["batches"], (x["name"], h, len(seq))
    if x["auto_lag"]:
        assert x["name"] == "bls:auto:3" and len(h) <= 4 and all(0 <= v <= 3 for v in seq), (h, seq)
    else:
        assert h[x["lag"]] == sum(h) and all(v == x["lag"] for v in seq), (x["name"], h)
    ok = (0, P - 1) if x["mode"] == "bls" else (0,)
    assert x["copy_peers"] in ok, (x["name"], x["mode"], x["copy_peers"], P)
PY
}

check_workload() {
  local name=$1; shift
  "$tool" "$@" --driver sync --predictions "$out/$name.ref" > "$out/$name.ref.out" 2>&1 \
    || { bad "$name: single-process run: $(tail -3 "$out/$name.ref.out")"; return; }
  for np in 1 2 3 4; do
    run "$np" "$@" "${drivers[@]}" --predictions "$out/$name.p$np" --json "$out/$name.p$np.json" \
      > "$out/$name.p$np.out" 2>&1 || { bad "$name P=$np: exit $?: $(tail -5 "$out/$name.p$np.out")"; continue; }
    cmp -s "$out/$name.ref" "$out/$name.p$np" && ok || bad "$name P=$np: predictions differ from one process's"
    [ "$(grep -c '"identical": true' "$out/$name.p$np.json")" -eq 5 ] && ok || bad "$name P=$np: a driver differs"
    check_driver_records "$out/$name.p$np.json" "$np" && ok || bad "$name P=$np: the run-ahead or copy_peers record"
  done
}
check_workload synth_dot "${model[@]}" --synthetic-samples 1000 --batch-size 96 --pooling 3 \
  --random-pooling --bursts 0.3:4 --hot-tables 0-5:1.2 --zipf 0.5
check_workload file_itself "${model[@]}" --data "$out/criteo.txt" --batch-size 90 \
  --arch-interaction-itself --placement balanced
if [ "$exact_only" != 1 ]; then
  check_workload synth_cat "${model[@]/64-32-1/32-1}" --arch-interaction-op cat --synthetic-samples 700 \
    --batch-size 64 --pooling 2 --table-pooling 20-25:0
  # 100 batches: bls:auto's policy decides from batch 16 on, under delays that change
  check_workload delayed "${model[@]}" --synthetic-samples 4800 --batch-size 48 \
    --delay exp:3000/50/straggler:0:2000 --hetero 0:2
  # Processes on different kernels, as hosts with different CPUs: rank r runs the (r mod n)-th
  # of the kernels this CPU has (kernel_by_rank.sh sets DLRM_KERNEL from the MPI rank).
  kernels=$("$tool" --kernel list | paste -sd, -)
  timeout --kill-after=5 240 "$mpiexec" -n 3 "${flags[@]}" "$(dirname "$0")/kernel_by_rank.sh" "$kernels" \
    "$tool" "${model[@]}" --synthetic-samples 1000 --batch-size 96 --pooling 3 --random-pooling \
    --bursts 0.3:4 --hot-tables 0-5:1.2 --zipf 0.5 --driver bls:1 --predictions "$out/hetero.p3" \
    > "$out/hetero.out" 2>&1 || bad "kernels $kernels by rank: $(tail -3 "$out/hetero.out")"
  cmp -s "$out/synth_dot.ref" "$out/hetero.p3" && ok || bad "kernels $kernels by rank: predictions differ"
  grep -q "^kernel  *$(echo "$kernels" | tr , ' ' | awk '{print $1}')" "$out/hetero.out" && ok \
    || bad "the kernels line: $(grep ^kernel "$out/hetero.out")"
fi

# The comparison can fail: another weight seed gives other predictions.
run 2 "${model[@]}" --synthetic-samples 1000 --batch-size 96 --pooling 3 --random-pooling \
  --bursts 0.3:4 --hot-tables 0-5:1.2 --zipf 0.5 --seed 2 --predictions "$out/other.p2" > /dev/null 2>&1
cmp -s "$out/synth_dot.ref" "$out/other.p2" && bad "another seed gave the same predictions" || ok
if [ "$exact_only" = 1 ]; then
  echo "test_distributed (exactness only, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}): $pass passed, $fail failed"
  [ $fail -eq 0 ]; exit
fi

# Counts: 1001 lines, one skipped, 11 full batches of 90 and one of 10.
grep -q "1000 in 12 batches of 90" "$out/file_itself.p3.out" && ok || bad "file counts: $(head -1 "$out/file_itself.p3.out")"
grep -q "1001 read, 1 malformed skipped" "$out/file_itself.p3.out" && ok || bad "skip count: $(sed -n 2p "$out/file_itself.p3.out")"
# Balanced placement by rows x lookups: the largest tables are spread, not in one block.
owners=$(sed -n 's/.*"owner": \[\(.*\)\].*/\1/p' "$out/file_itself.p4.json" | tr -d ' ')
[ -n "$owners" ] && [ "$owners" != "0,0,0,0,0,0,0,1,1,1,1,1,1,1,2,2,2,2,2,2,3,3,3,3,3,3" ] && ok \
  || bad "balanced placement gave '$owners'"

# Bad input, reported once.
run 4 "${model[@]}" --arch-mlp-bot 13-32-8 > /dev/null 2> "$out/shape.err"; rc=$?
[ $rc -ne 0 ] && [ "$(grep -c "must be equal" "$out/shape.err")" -eq 1 ] && ok || bad "shape error (rc $rc): $(cat "$out/shape.err")"
run 3 "${model[@]}" --data "$out/absent.txt" > /dev/null 2> "$out/absent.err"; rc=$?
[ $rc -ne 0 ] && [ "$(grep -c "absent.txt" "$out/absent.err")" -eq 1 ] && ok || bad "missing file (rc $rc): $(cat "$out/absent.err")"
run 3 "${model[@]}" --driver bls:2 --data "$out/criteo.txt" --strict --batch-size 50 > /dev/null 2> "$out/strict.err"; rc=$?
[ $rc -ne 0 ] && [ "$(grep -c "criteo.txt:301: 39 tab-separated fields" "$out/strict.err")" -eq 1 ] && ok \
  || bad "--strict on 3 processes (rc $rc): $(cat "$out/strict.err")"
run 2 "${model[@]}" --driver bls:1 --data "$out/criteo.txt" --batch-size 100 --max-batches 50 > "$out/short.out" 2> "$out/short.err"; rc=$?
[ $rc -eq 0 ] && grep -q "data ended after 10 of the 50 batches" "$out/short.out" && ok \
  || bad "short data (rc $rc): $(cat "$out/short.out" "$out/short.err")"
run 2 "${model[@]}" --driver bls --lag auto:x > /dev/null 2> "$out/lag.err"; rc=$?
[ $rc -eq 2 ] && [ "$(grep -c -- "--lag takes L (0 .. 4096) or auto\[:MAX\]" "$out/lag.err")" -eq 1 ] && ok \
  || bad "--lag auto:x (rc $rc): $(cat "$out/lag.err")"
run 2 "${model[@]}" --driver bls:auto:-1 > /dev/null 2> "$out/auto.err"; rc=$?
[ $rc -eq 2 ] && [ "$(grep -c "bls:auto:-1.*integer in \[0, 4096\]" "$out/auto.err")" -eq 1 ] && ok \
  || bad "bls:auto:-1 (rc $rc): $(cat "$out/auto.err")"
run 2 "${model[@]}" --synthetic-samples 960 --batch-size 48 --driver sync,bls --lag auto:2 \
  --json "$out/lagauto.json" > /dev/null 2> "$out/lagauto.err" \
  && grep -q '"name": "bls:auto:2"' "$out/lagauto.json" && ok \
  || bad "--lag auto:2 makes a plain bls bls:auto:2: $(cat "$out/lagauto.err")"
run 2 "${model[@]}" --driver bls:x > /dev/null 2> "$out/drv.err"; rc=$?
[ $rc -ne 0 ] && [ "$(grep -c "unknown driver 'bls:x'" "$out/drv.err")" -eq 1 ] && ok || bad "bad driver: $(cat "$out/drv.err")"

# A NaN in the weights (one bias) reaches every prediction: named, exit 2, on 1 and 2
# processes (the metrics used to spin forever on rank 0 while the others waited).
tiny=(--arch-mlp-bot 4-8 --arch-mlp-top 1 --arch-embedding-size 64-64 --arch-sparse-feature-size 8
      --synthetic-samples 256 --batch-size 64 --quiet)
/usr/bin/python3 "$(dirname "$0")/write_weights.py" "$out/nan.safetensors" --poison top_l.0.bias:0:nan \
  && /usr/bin/python3 "$(dirname "$0")/write_weights.py" "$out/fine.safetensors" || bad "write_weights.py"
run 1 "${tiny[@]}" --weights "$out/fine.safetensors" > /dev/null 2> "$out/fine.err" && ok \
  || bad "finite weights: $(cat "$out/fine.err")"
for np in 1 2; do
  run $np "${tiny[@]}" --weights "$out/nan.safetensors" --driver sync,bls:2 > /dev/null 2> "$out/nan.err"; rc=$?
  [ $rc -eq 2 ] && grep -q "prediction 0 is NaN" "$out/nan.err" && ok \
    || bad "NaN weights on $np processes (rc $rc): $(cat "$out/nan.err")"
done

# The weights file rewritten in place (a NaN) and then truncated under a running job: the
# model was read at load, so the run ends as if nothing happened (a mapped file gave changed
# predictions, or SIGBUS).
long=(--arch-mlp-bot 4-8 --arch-mlp-top 1 --arch-embedding-size 64-64 --arch-sparse-feature-size 8
      --synthetic-samples 4000000 --batch-size 256 --driver bls:2 --json)
cp "$out/fine.safetensors" "$out/live.safetensors"
run 2 "${long[@]}" "$out/undisturbed.json" --weights "$out/fine.safetensors" > /dev/null 2>&1 \
  || bad "undisturbed long run"
run 2 "${long[@]}" "$out/disturbed.json" --weights "$out/live.safetensors" > /dev/null 2> "$out/live.err" &
job=$!
for _ in $(seq 300); do grep -q "model ready" "$out/live.err" && break; sleep 0.1; done
/usr/bin/python3 - "$out/live.safetensors" <<'PY'
import struct, sys
with open(sys.argv[1], "r+b") as f:   # every float of the data section a NaN, in place
    (hlen,) = struct.unpack("<Q", f.read(8))
    f.seek(8 + hlen)
    n = len(f.read()) // 4
    f.seek(8 + hlen)
    f.write(struct.pack(f"<{n}f", *[float("nan")] * n))
PY
still=0; kill -0 $job 2>/dev/null && still=1
: > "$out/live.safetensors"
wait $job; rc=$?
[ $rc -eq 0 ] && [ "$(grep -o '"auc": [^,]*' "$out/disturbed.json")" = "$(grep -o '"auc": [^,]*' "$out/undisturbed.json")" ] \
  && ok || bad "weights changed under the job (rc $rc): $(tail -3 "$out/live.err")"
[ $still = 1 ] && ok || bad "the run ended before its weights file changed: make it longer"
# --save-weights writes the model run: loaded back on 2 processes it predicts what the random
# model predicts, bit for bit; it needs one process; the report says where the weights live.
run 1 "${tiny[@]}" --seed 7 --save-weights "$out/saved.safetensors" --predictions "$out/rand.pred" \
  --json "$out/saved.json" > /dev/null 2> "$out/save.err" || bad "--save-weights: $(cat "$out/save.err")"
run 2 "${tiny[@]}" --weights "$out/saved.safetensors" --driver sync,bls:2 --predictions "$out/load.pred" \
  > /dev/null 2> "$out/load.err" || bad "loading the saved weights: $(cat "$out/load.err")"
cmp -s "$out/rand.pred" "$out/load.pred" && [ -s "$out/rand.pred" ] && ok \
  || bad "the saved weights predict differently from the model that wrote them"
# --weights-hold map: the tables stay in the file, mapped; the same predictions, bit for bit,
# and the report says how the tables are held.
for hold in map copy; do
  run 2 "${tiny[@]}" --weights "$out/saved.safetensors" --weights-hold $hold --driver sync,bls:2 \
    --predictions "$out/$hold.pred" --json "$out/$hold.json" > /dev/null 2> "$out/$hold.err" \
    || bad "--weights-hold $hold: $(cat "$out/$hold.err")"
  cmp -s "$out/rand.pred" "$out/$hold.pred" && ok || bad "--weights-hold $hold predicts differently"
  grep -q '"tables_held_per_process": \["'$hold'", "'$hold'"\]' "$out/$hold.json" && ok \
    || bad "--weights-hold $hold: $(grep -o '"tables_held[^]]*]' "$out/$hold.json")"
done
grep -q '"tables_held_per_process": \["random"\]' "$out/saved.json" && ok \
  || bad "random tables: $(grep -o '"tables_held[^]]*]' "$out/saved.json")"
run 1 "${tiny[@]}" --weights "$out/saved.safetensors" --weights-hold mmap > /dev/null 2> "$out/hold.err"; rc=$?
[ $rc = 2 ] && grep -q -- "--weights-hold is auto, copy or map, got 'mmap'" "$out/hold.err" && ok \
  || bad "--weights-hold mmap (rc $rc): $(cat "$out/hold.err")"
run 1 "${tiny[@]}" --weights-hold map > /dev/null 2> "$out/hold.err"; rc=$?
[ $rc = 2 ] && grep -q -- "--weights-hold copy or map needs --weights FILE" "$out/hold.err" && ok \
  || bad "--weights-hold without --weights (rc $rc): $(cat "$out/hold.err")"
run 2 "${tiny[@]}" --save-weights "$out/two.safetensors" > /dev/null 2> "$out/save2.err"; rc=$?
[ $rc = 2 ] && grep -q -- "--save-weights needs one process" "$out/save2.err" && [ ! -e "$out/two.safetensors" ] \
  && ok || bad "--save-weights on 2 processes (rc $rc): $(cat "$out/save2.err")"
/usr/bin/python3 - "$out/saved.json" <<'PY' && ok || bad "the JSON's model memory figures"
import json, sys
d = json.load(open(sys.argv[1]))
share = d["weights_huge_page_share_per_process"]
assert len(share) == 1 and 0 <= share[0] <= 1, share
assert d["model_load_s"] >= 0, d["model_load_s"]
assert all(x["cpu_us_per_batch"] > 0 and 0 <= x["progress_cpu_us_per_batch"] <= x["cpu_us_per_batch"]
           for x in d["drivers"]), [(x["cpu_us_per_batch"], x["progress_cpu_us_per_batch"]) for x in d["drivers"]]
# The thread's standby (libbls): never negative, and no thread at all in the synchronous driver.
assert all(x["progress_standby_s_mean"] >= 0 and (x["name"] != "sync" or x["progress_standby_s_mean"] == 0)
           for x in d["drivers"]), [(x["name"], x["progress_standby_s_mean"]) for x in d["drivers"]]
PY
# Faults: process 2 stops (SIGSTOP) or dies (SIGKILL) mid-run.
descends() { # is process $1 a descendant of process $2?
  local p=$1
  while [ -n "$p" ] && [ "$p" -gt 1 ]; do
    [ "$p" -eq "$2" ] && return 0
    p=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null)
  done
  return 1
}
pid_of_rank() { # the pid of this job's process of rank $1 (Open MPI or MPICH environment)
  for p in $(pgrep -f "$(basename "$tool")"); do
    if descends "$p" "$2" &&
       tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -Eqx "(OMPI_COMM_WORLD_RANK|PMI_RANK)=$1"; then
      echo "$p"; return
    fi
  done
}
# Process 2 stopped before it starts: looking a process up and signalling it takes longer than
# a small model's start-up on a fast machine, so this wrapper of the tool stops rank 2 itself,
# before MPI_Init.
stopper="$out/stop-rank-2.sh"
cat > "$stopper" <<EOF
#!/bin/sh
case "\${OMPI_COMM_WORLD_RANK:-\${PMI_RANK:-}}" in 2) kill -STOP \$\$ ;; esac
exec "$tool" "\$@"
EOF
chmod +x "$stopper"
fault() { # driver, signal, expected regex, limit[, seconds from launch to the signal, or
          # "start": process 2 stops itself before the tool runs (the wrapper above)]
  local driver=$1 sig=$2 regex=$3 limit=$4 settle=${5:-2} start=$SECONDS
  if [ "$settle" = start ]; then
    local tool=$stopper # for run, pid_of_rank and the clean-up below
    settle=0
  fi
  run 4 "${model[@]}" --driver "$driver" --synthetic-samples 100000000 --batch-size 64 --timeout 4 \
    > "$out/fault.out" 2> "$out/fault.err" &
  local job=$! victim=""
  for _ in $(seq 400); do
    sleep 0.05
    victim=$(pid_of_rank 2 "$job")
    [ -n "$victim" ] && break
  done
  sleep "$settle"
  [ -n "$victim" ] && kill "-$sig" "$victim"
  local waited=0
  while kill -0 "$job" 2>/dev/null && [ $waited -lt "$limit" ]; do sleep 1; waited=$((waited + 1)); done
  if kill -0 "$job" 2>/dev/null; then
    bad "$driver, SIG$sig of process 2: still running after ${limit}s (a hang); victim $victim; the processes:" \
      "$(ps -o pid,stat,wchan:24,etime,args -p "$(pgrep -d, -f "$(basename "$tool")")" 2>&1 | cut -c1-110)" \
      "; the output: $(tail -5 "$out/fault.err")"
    pkill -KILL -f "$(basename "$tool")"; wait "$job"
    return
  fi
  wait "$job"; local rc=$?
  [ -n "$victim" ] && kill -KILL "$victim" 2>/dev/null
  [ $rc -ne 0 ] && cat "$out/fault.out" "$out/fault.err" | grep -Eq "$regex" && ok \
    || bad "$driver, SIG$sig of process 2 (rc $rc, $((SECONDS - start)) s): $(tail -5 "$out/fault.err")"
}
fault bls:2 STOP "TIMEOUT.*peers 2([^0-9]|$)" 60
fault bls:2 KILL "BAD TERMINATION|exited on signal 9|killed|rank 2|process 2" 60
# MPI_Alltoallv cannot time out: the watchdog (1.25 x 4 s + 2 s without a batch) ends the job.
fault sync STOP "process [013]: no progress for [0-9]+ s while an offline run" 60
# Stopped before MPI_Init: the others' watchdogs end the job.
fault bls:2 STOP "no progress for [0-9]+ s while (starting|setting up)" 60 start

verdict test_distributed
