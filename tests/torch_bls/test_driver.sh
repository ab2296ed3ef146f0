#!/usr/bin/env bash
# The PyTorch driver (torch_bls/dlrm_infer.py) against the C engine, as a user runs both.
# A reference-style checkpoint (torch.save of a state_dict) is converted to safetensors with
# tools/convert_checkpoint.py; bls-dlrm writes a Criteo file with a malformed line; the C
# engine on one process gives the reference predictions.  The driver then runs with gloo and
# with bls at the same process count (dot: P = 3 with L = 0, 1, 4 and auto:2, P = 2 with L = 2; dot
# with self-interaction and cat: P = 2 with L = 1): every prediction within 1e-5 of the C
# engine's, every bls run byte-identical to the gloo run of its P (across P the MLPs run on
# other slice sizes, which may round differently).  Bad input (a missing tensor, a bad option)
# fails with a message.
# Usage: test_driver.sh BLS_DLRM PYTHON_DIR OUT_DIR MPIEXEC [LAUNCHER FLAGS...]
set -uo pipefail
source "$(dirname "$0")/driver_env.sh" "$@"
close() {  # close REF GOT: same samples and labels, probabilities within 1e-5
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys
a = [l.split() for l in open(sys.argv[1])]
b = [l.split() for l in open(sys.argv[2])]
assert len(a) == len(b) and len(a) > 0, f"{len(a)} vs {len(b)} predictions"
assert all(x[1] == y[1] for x, y in zip(a, b)), "labels differ"
worst = max(abs(float(x[0]) - float(y[0])) for x, y in zip(a, b))
assert worst <= 1e-5, f"largest difference {worst:.3g}"
print(f"{len(a)} predictions, largest difference {worst:.2g}")
PY
}

cpu_ok() {  # cpu_ok JSON BACKEND: CPU per batch reported; the progress threads' only on bls
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
d, backend = json.load(open(sys.argv[1])), sys.argv[2]
cpu, prog, sb = d["cpu_us_per_batch"], d["progress_cpu_us_per_batch"], d["progress_standby_s_mean"]
# standby is counted when a nap ends, so a nap begun before the run may add to it: 1 s of slack
assert cpu > 0 and 0 <= prog <= cpu and 0 <= sb <= d["seconds"] + 1.0, (cpu, prog, sb, d["seconds"])
assert backend == "bls" or prog == sb == 0, f"gloo has no progress thread: {prog} us, {sb} s"
PY
}

emb=$(seq -s- 500 31 1275)   # 26 tables
for variant in dot itself cat; do
  top=64-32-1; extra=()
  [ $variant = itself ] && extra=(--arch-interaction-itself)
  [ $variant = cat ] && { top=32-1; extra=(--arch-interaction-op cat); }
  model=(--arch-mlp-bot 13-32-16 --arch-mlp-top $top --arch-embedding-size "$emb" --arch-sparse-feature-size 16 "${extra[@]}")
  # A reference-style checkpoint with random weights, converted to safetensors.
  /usr/bin/python3 - "$out/$variant.pt" "$emb" "$top" $variant <<'PY' || bad "$variant: writing the checkpoint"
import sys, torch
path, emb, top, variant = sys.argv[1], [int(x) for x in sys.argv[2].split("-")], [int(x) for x in sys.argv[3].split("-")], sys.argv[4]
torch.manual_seed(3)
d, F = 16, len(emb) + 1
top_in = d + (F * (F + 1) // 2 if variant == "itself" else F * (F - 1) // 2) if variant != "cat" else d * F
sd = {f"emb_l.{t}.weight": torch.rand(n, d) * 0.2 - 0.1 for t, n in enumerate(emb)}
for prefix, dims in (("bot_l", [13, 32, 16]), ("top_l", [top_in] + top)):
    for i in range(len(dims) - 1):
        sd[f"{prefix}.{2 * i}.weight"] = torch.randn(dims[i + 1], dims[i]) * (2 / (dims[i] + dims[i + 1])) ** 0.5
        sd[f"{prefix}.{2 * i}.bias"] = torch.randn(dims[i + 1]) * 0.1
torch.save({"state_dict": sd, "iter": 0}, path)
PY
  /usr/bin/python3 "$root/tools/convert_checkpoint.py" "$out/$variant.pt" "$out/$variant.safetensors" > /dev/null \
    || bad "$variant: convert_checkpoint"
  if [ $variant = dot ]; then
    "$tool" "${model[@]}" --synthetic-samples 1000 --data-seed 9 --write-criteo "$out/gen.txt" > /dev/null || bad "--write-criteo"
    # a malformed line (25 categoricals) at line 101: both skip it
    awk 'NR == 101 { n = split($0, f, "\t"); line = f[1]; for (i = 2; i < n; i++) line = line "\t" f[i]; print line } { print }' \
      "$out/gen.txt" > "$out/data.txt"
  fi
  run=("${model[@]}" --weights "$out/$variant.safetensors" --data "$out/data.txt" --batch-size 96)
  "$tool" "${run[@]}" --quiet --predictions "$out/$variant.c" > "$out/$variant.c.out" 2>&1 \
    || { bad "$variant: bls-dlrm: $(tail -3 "$out/$variant.c.out")"; continue; }
  if [ $variant = dot ]; then runs="3:0 3:1 3:4 2:2 3:auto:2"; else runs="2:1"; fi
  for pl in $runs; do
    np=${pl%%:*} lag=${pl#*:}
    gloo=$out/$variant.gloo$np
    if [ ! -e "$gloo" ]; then
      driver "$np" "${run[@]}" --dist-backend gloo --predictions "$gloo" --json "$gloo.json" > "$gloo.out" 2>&1 \
        || { bad "$variant: gloo P=$np: $(grep -v '^--\|^ *$' "$gloo.out" | tail -3)"; continue; }
      msg=$(cpu_ok "$gloo.json" gloo 2>&1) && ok || bad "$variant gloo P=$np CPU figures: $msg"
      msg=$(close "$out/$variant.c" "$gloo" 2>&1) && ok || bad "$variant gloo P=$np vs C engine: $msg"
      echo "$variant gloo P=$np vs C engine: $msg"
    fi
    driver "$np" "${run[@]}" --dist-backend bls --lag "$lag" --predictions "$out/$variant.bls$np.$lag" \
      --json "$out/$variant.bls$np.$lag.json" > "$out/$variant.bls$np.$lag.out" 2>&1 \
      || { bad "$variant bls P=$np L=$lag: $(grep -v '^--\|^ *$' "$out/$variant.bls$np.$lag.out" | tail -3)"; continue; }
    msg=$(cpu_ok "$out/$variant.bls$np.$lag.json" bls 2>&1) && ok || bad "$variant bls P=$np L=$lag CPU figures: $msg"
    cmp -s "$gloo" "$out/$variant.bls$np.$lag" && ok || bad "$variant bls P=$np L=$lag differs from gloo P=$np"
    msg=$(close "$out/$variant.c" "$out/$variant.bls$np.$lag" 2>&1) && ok || bad "$variant bls P=$np L=$lag vs C: $msg"
  done
done

# The comparison can fail: other weights give other predictions.
close "$out/dot.c" "$out/itself.c" > /dev/null 2>&1 && bad "different models compared equal" || ok

# Bad input: a weights file without a table, a bad option: non-zero exit and a message.
/usr/bin/python3 - "$out/dot.safetensors" "$out/missing.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n]); del h["emb_l.0.weight"]
hb = json.dumps(h).encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + raw[8 + n:])
PY
driver 2 --arch-mlp-bot 13-32-16 --arch-mlp-top 64-32-1 --arch-embedding-size "$emb" --weights "$out/missing.safetensors" \
  --data "$out/data.txt" --batch-size 96 > "$out/missing.out" 2>&1 && bad "a missing tensor was accepted" || ok
grep -q "tensor emb_l.0.weight is missing" "$out/missing.out" && ok || bad "no message naming emb_l.0.weight: $(tail -3 "$out/missing.out")"
/usr/bin/python3 "$root/torch_bls/dlrm_infer.py" --lag -1 > "$out/badopt.out" 2>&1 && bad "--lag -1 accepted" || ok
grep -q "lag -1" "$out/badopt.out" && ok || bad "no message for --lag -1"

verdict test_driver
