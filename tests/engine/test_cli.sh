#!/usr/bin/env bash
# bls-dlrm as a user runs it: --help, bad options, numbers and shapes (exit 2 with a message), a
# Criteo-format file with a malformed line (skipped and counted; fatal with --strict, naming
# file and line), an output onto the input refused, predictions written per sample, and the
# printed metrics against scikit-learn's (accuracy_score on rounded predictions, roc_auc_score,
# log_loss) on the same predictions.
# Usage: test_cli.sh BLS_DLRM OUT_DIR
set -uo pipefail
tool=$1 out=$2
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
rm -rf "$out"; mkdir -p "$out"

"$tool" --help > "$out/help.txt" && ok || bad "--help exit status"
for o in arch-mlp-bot arch-mlp-top arch-embedding-size arch-sparse-feature-size \
         arch-interaction-op arch-interaction-itself weights seed data strict synthetic-samples \
         data-seed zipf pooling random-pooling write-criteo batch-size max-batches threads \
         predictions json; do
  grep -q -- "--$o" "$out/help.txt" && ok || bad "--help does not document --$o"
done
"$tool" --no-such-option 2> "$out/err.txt"; [ $? -eq 2 ] && grep -q "unknown or incomplete option" "$out/err.txt" && ok || bad "unknown option"
"$tool" --arch-mlp-bot 13-64-8 2> "$out/err.txt"; [ $? -eq 2 ] && grep -q "must be equal" "$out/err.txt" && ok || bad "shape error"
# Numbers that are not numbers, or would overflow their conversion: named, exit 2.
while read -r opt val; do
  "$tool" --synthetic-samples 64 --batch-size 64 --quiet "$opt" "$val" > /dev/null 2> "$out/err.txt"; rc=$?
  [ $rc -eq 2 ] && grep -q -- "$opt" "$out/err.txt" && ok || bad "$opt $val (rc $rc): $(cat "$out/err.txt")"
done <<'NUMBERS'
--timeout nan
--timeout inf
--zipf inf
--delay exp:inf
--delay exp:1e300
--delay straggler:1e300:5
--delay spike:0:1e30:5
--hetero 0:inf
--hetero 1e300:2
--bursts nan:2
--bursts 0.5:99999999999
--hot-tables 0-3:nan
--query-size fixed:inf
--query-size uniform:1:1e300
--lag 4097
--driver bls:1000000
--arch-sparse-feature-size 4294967312
--batch-size -1
NUMBERS
"$tool" --data "$out/absent.txt" --arch-embedding-size "$(seq -s- 100 100 2600)" 2> "$out/err.txt"; [ $? -eq 2 ] && grep -q "absent.txt" "$out/err.txt" && ok || bad "missing data file"

# 300 Criteo lines from a fixed recipe, one malformed (line 7: 39 fields).
awk 'BEGIN { srand(3); for (i = 1; i <= 300; i++) {
       line = (rand() < 0.3) ? "1" : "0";
       for (j = 1; j <= 13; j++) line = line "\t" (rand() < 0.1 ? "" : int(rand() * 50) - 2);
       n = (i == 7) ? 25 : 26;
       for (j = 1; j <= n; j++) line = line "\t" (rand() < 0.05 ? "" : sprintf("%08x", int(rand() * 2^31)));
       print line } }' > "$out/criteo.txt"
emb=$(seq -s- 1000 10 1250)
args=(--arch-mlp-bot 13-32-16 --arch-mlp-top 64-1 --arch-embedding-size "$emb" --batch-size 64 --quiet)
# A FIFO as data or weights is refused by name, not a blocked open.
mkfifo "$out/fifo"
for o in --data --weights; do
  timeout 20 "$tool" "${args[@]}" $o "$out/fifo" 2> "$out/err.txt"; rc=$?
  [ $rc -eq 2 ] && grep -q "fifo: not a regular file" "$out/err.txt" && ok || bad "$o FIFO (rc $rc): $(cat "$out/err.txt")"
done
# An output naming the input (under another spelling too) is refused before anything is written.
cp "$out/criteo.txt" "$out/criteo.orig"
for o in --predictions --json; do
  "$tool" "${args[@]}" --data "$out/criteo.txt" $o "$out/./criteo.txt" 2> "$out/err.txt"; rc=$?
  [ $rc -eq 2 ] && grep -q -- "$o .*criteo.txt is also the --data file" "$out/err.txt" \
    && cmp -s "$out/criteo.txt" "$out/criteo.orig" && ok || bad "$o onto --data (rc $rc): $(cat "$out/err.txt")"
done
"$tool" "${args[@]}" --data "$out/criteo.txt" --strict 2> "$out/err.txt"; rc=$?
[ $rc -ne 0 ] && grep -q "criteo.txt:7: 39 tab-separated fields" "$out/err.txt" && ok || bad "--strict on a malformed line (rc $rc: $(cat "$out/err.txt"))"
"$tool" "${args[@]}" --data "$out/criteo.txt" --predictions "$out/pred.txt" --json "$out/run.json" > "$out/stdout.txt" || bad "lenient run failed"
grep -q "299 in 5 batches" "$out/stdout.txt" && ok || bad "sample count: $(head -1 "$out/stdout.txt")"
grep -q "300 read, 1 malformed skipped" "$out/stdout.txt" && ok || bad "skip count: $(sed -n 2p "$out/stdout.txt")"
[ "$(wc -l < "$out/pred.txt")" -eq 299 ] && ok || bad "predictions lines"
if /usr/bin/python3 -c "import sklearn" 2>/dev/null; then
  /usr/bin/python3 - "$out/pred.txt" "$out/run.json" <<'PY' && ok || bad "metrics differ from scikit-learn's"
import json, sys
import numpy as np
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
p, y = np.loadtxt(sys.argv[1], unpack=True)
run = json.load(open(sys.argv[2]))
ref = {"accuracy": accuracy_score(y, np.round(p)), "auc": roc_auc_score(y, p), "logloss": log_loss(y, p)}
for k, v in ref.items():
    print(f"{k}: bls-dlrm {run[k]:.9f}, scikit-learn {v:.9f}")
sys.exit(0 if all(abs(run[k] - v) < 1e-6 for k, v in ref.items()) else 1)
PY
else
  echo "note: python3-sklearn absent, metric cross-check not run"; bad "python3-sklearn is required (scripts/install-deps.sh)"
fi
# Synthetic data written as a Criteo file and read back: identical inputs, so identical
# predictions, bit for bit (the same binary computes both).
small=(--arch-mlp-bot 13-32-16 --arch-mlp-top 64-1 --arch-embedding-size "$emb" --batch-size 100 --quiet)
"$tool" "${small[@]}" --synthetic-samples 500 --zipf 1.1 --write-criteo "$out/synth.txt" > /dev/null && ok || bad "--write-criteo"
[ "$(wc -l < "$out/synth.txt")" -eq 500 ] && ok || bad "written lines"
"$tool" "${small[@]}" --synthetic-samples 500 --zipf 1.1 --predictions "$out/p_synth.txt" > /dev/null || bad "synthetic run"
"$tool" "${small[@]}" --data "$out/synth.txt" --strict --predictions "$out/p_file.txt" > /dev/null || bad "file run"
cmp -s "$out/p_synth.txt" "$out/p_file.txt" && ok || bad "predictions from the written file differ from the synthetic run's"
"$tool" "${small[@]}" --pooling 2 --write-criteo "$out/x.txt" 2> "$out/err.txt"; [ $? -eq 2 ] && grep -q "pooling 1" "$out/err.txt" && ok || bad "--write-criteo with pooling 2"

echo "test_cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
