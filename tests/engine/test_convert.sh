#!/usr/bin/env bash
# The converter round trip: the engine's safetensors -> a reference-style torch.save checkpoint
# (with DistributedDataParallel names) -> safetensors again.  Every tensor must come back
# bit-identical, and the engine's predictions from the original weights must match PyTorch's
# on the converted file.  Skipped (77) only without Debian's python3-torch.
# Usage: test_convert.sh ENGINE_CASE OUT_DIR
set -euo pipefail
engine_case=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
conv=$here/../../tools/convert_checkpoint.py
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "SKIP: Debian's python3-torch is not installed"; exit 77
fi
rm -rf "$out"; mkdir -p "$out/back"
"$engine_case" --bot 13-32-8 --top 16-1 --emb 50-60-70 --d 8 --op dot --batch 200 --max-bag 2 --out "$out"
/usr/bin/python3 "$conv" --to-torch --ddp "$out/model.safetensors" "$out/ckpt.pt"
/usr/bin/python3 "$conv" "$out/ckpt.pt" "$out/back/model.safetensors"
cp "$out/case.txt" "$out/back/case.txt"
/usr/bin/python3 -c "
import sys, runpy
conv = runpy.run_path('$conv')
a, b = conv['read_safetensors']('$out/model.safetensors'), conv['read_safetensors']('$out/back/model.safetensors')
ck = __import__('torch').load('$out/ckpt.pt')['state_dict']
ok = sorted(a) == sorted(b) and all(__import__('torch').equal(a[k], b[k]) for k in a)
ddp = any('.module.' in k for k in ck)
print(f'convert: {len(a)} tensors, round trip bit-identical: {ok}, DDP names in the checkpoint: {ddp}')
print(f'convert: {int(ok) + int(ddp)} passed, {2 - int(ok) - int(ddp)} failed')
sys.exit(0 if ok and ddp else 1)
"
exec /usr/bin/python3 "$here/oracle.py" "$out/back" --op dot
