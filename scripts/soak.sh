#!/usr/bin/env bash
# make soak: what short tests cannot show.  (1) Exact delivery over ITERS iterations (default
# 10^6) of random counts (up to 4 KiB blocks, empty ones included, no injected delay) for P = 3
# and 4 at lags 1 and 4 (tests/libbls/test_delivery: every byte, every count, and each block's
# hash against MPI_Alltoallv's).  (2) A long bls-dlrm run (4 processes, bls:4, BATCHES batches
# of 256, default 30000) with the resident memory and open descriptors of every process sampled
# every 2 s while it serves batches.  A run keeps, by design, each of its samples' prediction
# and label (8 bytes; the AUC and --predictions need them all) and 24 bytes per batch: after a
# warm-up (the first fifth of the samples), RSS may grow by that and at most 2 MiB more, and
# the descriptor count not at all.  Prints every figure; exits non-zero on any failure.
# Usage: scripts/soak.sh [BUILD_DIR] [ITERS] [BATCHES]   (Open MPI; ITERS 0: skip (1))
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} iters=${2:-1000000} batches=${3:-30000}
M=(mpiexec.openmpi --oversubscribe)
[ "$(id -u)" -eq 0 ] && M+=(--allow-run-as-root)
out=$build/soak
mkdir -p "$out"
fail=0

for np in 3 4; do
  [ "$iters" -gt 0 ] || break  # ITERS 0: the bls-dlrm run alone
  start=$SECONDS
  if timeout 3600 "${M[@]}" -np $np "$build/tests/libbls/test_delivery" --lags 1,4 --iters "$iters" \
       --max-bytes 4096 --delay-us 0 --seed $((np * 7)) > "$out/delivery_p$np.log" 2>&1; then
    echo "soak: delivery P=$np, L=1,4, $iters iterations each: exact ($((SECONDS - start)) s): $(tail -1 "$out/delivery_p$np.log")"
  else
    echo "soak: delivery P=$np FAILED: $(tail -3 "$out/delivery_p$np.log")"; fail=1
  fi
done

json=$out/dlrm_soak.json
"${M[@]}" -np 4 "$build/tools/bls-dlrm" --driver bls:4 --batch-size 256 --pooling 2 \
  --synthetic-samples $((batches * 256)) --max-batches "$batches" --delay exp:500 \
  --json "$json" > "$out/dlrm.log" 2>&1 &
job=$!
samples=$out/dlrm_samples.txt
: > "$samples"
while kill -0 $job 2>/dev/null; do
  # Batches served so far (the progress lines, every 2 s, so up to 2 s late): the last 5% are
  # not sampled, since the results are gathered to process 0 then (by design, all at once).
  done_b=$(grep -o '[0-9]* batches,' "$out/dlrm.log" | tail -1 | tr -dc 0-9)
  [ -n "$done_b" ] && [ "$done_b" -lt $((batches * 95 / 100)) ] || { sleep 1; continue; }
  for pid in $(pgrep -f -- "--json $json"); do
    [ "$(cat /proc/$pid/comm 2>/dev/null)" = "bls-dlrm" ] || continue
    rss=$(awk '/^VmRSS:/ {print $2}' /proc/$pid/status 2>/dev/null)
    fds=$(ls /proc/$pid/fd 2>/dev/null | wc -l)
    [ -n "$rss" ] && echo "$SECONDS $pid $rss $fds $done_b" >> "$samples"
  done
  sleep 2
done
wait $job; rc=$?
if [ $rc -ne 0 ]; then
  echo "soak: bls-dlrm FAILED (exit $rc): $(tail -3 "$out/dlrm.log")"; fail=1
else
  # Per process: the maximum RSS and descriptor count after warm-up, against the end's.
  if awk -v rows=64 '
      { t[NR] = $1; pid[NR] = $2; rss[NR] = $3; fd[NR] = $4; b[NR] = $5; n++ }
      END {
        if (n < 10) { print "soak: too few samples (" n "): make the run longer"; exit 1 }
        t0 = t[1]; t1 = t[n]; warm = t0 + (t1 - t0) / 5; bad = 0
        for (i = 1; i <= n; i++) if (t[i] >= warm) {
          p = pid[i]
          if (!(p in first)) { first[p] = rss[i]; fb[p] = b[i]; ffd[p] = fd[i] }
          # KiB beyond what the run keeps by design since warm-up: 8 B a sample, 24 B a batch
          over = rss[i] - first[p] - (b[i] - fb[p]) * (8 * rows + 24) / 1024
          if (!(p in worst) || over > worst[p]) { worst[p] = over; at[p] = rss[i]; atb[p] = b[i] }
          if (fd[i] != ffd[p]) fdchg[p] = fd[i]
        }
        for (p in first) {
          printf "soak: process pid %s: RSS %.1f MiB at batch %d, %.1f MiB at batch %d: %+d KiB beyond the results kept; %d descriptors%s\n", \
                 p, first[p] / 1024, fb[p], at[p] / 1024, atb[p], worst[p], ffd[p], (p in fdchg) ? ", CHANGED to " fdchg[p] : ", unchanged"
          if (worst[p] > 2048 || (p in fdchg)) bad = 1
        }
        exit bad
      }' "$samples"; then
    echo "soak: bls-dlrm, $batches batches: memory and descriptors flat ($(wc -l < "$samples") samples)"
  else
    echo "soak: bls-dlrm: memory or descriptors grew (samples: $samples)"; fail=1
  fi
fi
[ $fail -eq 0 ] && echo "soak: passed" || echo "soak: FAILED"
exit $fail
