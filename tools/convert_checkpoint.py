#!/usr/bin/python3
"""Converts a reference DLRM checkpoint to the engine's safetensors file, and back.

Runs under Debian's /usr/bin/python3 (needs python3-torch), not a PATH python without torch.

  convert_checkpoint.py CKPT.pt OUT.safetensors
      CKPT.pt is what dlrm_s_pytorch.py saves: torch.save({"state_dict": ..., ...}), or a bare
      state_dict.  Names under DistributedDataParallel ("bot_l.module.0.weight", or a leading
      "module.") are normalised to the reference's plain names ("bot_l.0.weight").  Only the
      model's tensors (emb_l.*, bot_l.*, top_l.*) are written, as little-endian float32.
  convert_checkpoint.py --to-torch IN.safetensors OUT.pt [--ddp]
      The reverse, for tests: {"state_dict": ...} with the plain names, or with --ddp the MLP
      names as DistributedDataParallel writes them.
"""
import argparse
import json
import os
import re
import struct
import sys

import numpy as np
import torch

__version__ = "0.1.0"  # the project's (libbls/include/bls.h); test_install.sh checks they agree
MODEL_KEY = re.compile(r"^(emb_l\.\d+\.weight|(bot_l|top_l)\.\d+\.(weight|bias))$")


def plain_name(name):
    name = re.sub(r"^module\.", "", name)
    return re.sub(r"^(bot_l|top_l)\.module\.", r"\1.", name)


def write_safetensors(tensors, path):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name].detach().cpu().to(torch.float32).numpy()).astype("<f4")
        raw = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keeps every tensor 8-byte aligned
    # A temporary file renamed over the target when complete: a job reading the old file keeps
    # its inode, and nobody sees half a file.
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for raw in blobs:
                f.write(raw)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen])
    data = raw[8 + hlen:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise SystemExit(f"{path}: tensor {name} has dtype {t['dtype']}, expected F32")
        b, e = t["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[b:e], dtype="<f4").copy()).reshape(t["shape"])
    return out


def to_safetensors(src, dst):
    ckpt = torch.load(src, map_location="cpu")
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise SystemExit(f"{src}: neither a dict with 'state_dict' nor a state_dict")
    tensors = {}
    for name, t in state.items():
        plain = plain_name(name)
        if not MODEL_KEY.match(plain):
            continue
        if plain in tensors:
            raise SystemExit(f"{src}: two tensors map to {plain}")
        if not torch.is_floating_point(t):
            raise SystemExit(f"{src}: tensor {name} is {t.dtype}, not floating point")
        tensors[plain] = t
    if not any(n.startswith("emb_l.") for n in tensors):
        raise SystemExit(f"{src}: no emb_l.* tensors: not a DLRM checkpoint")
    write_safetensors(tensors, dst)
    print(f"wrote {len(tensors)} tensors to {dst}")


def to_torch(src, dst, ddp):
    tensors = read_safetensors(src)
    state = {}
    for name, t in tensors.items():
        if ddp:
            name = re.sub(r"^(bot_l|top_l)\.", r"\1.module.", name)
        state[name] = t
    torch.save({"state_dict": state, "note": "exported by bls convert_checkpoint.py"}, dst)
    print(f"wrote {len(state)} tensors to {dst}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"convert_checkpoint (bls) {__version__}")
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--to-torch", action="store_true", help="safetensors -> torch.save checkpoint")
    ap.add_argument("--ddp", action="store_true", help="with --to-torch: DistributedDataParallel names")
    a = ap.parse_args()
    if a.to_torch:
        to_torch(a.src, a.dst, a.ddp)
    else:
        to_safetensors(a.src, a.dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
