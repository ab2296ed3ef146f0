#!/usr/bin/python3
"""Independent PyTorch DLRM forward pass, the oracle for the C engine.

Runs under Debian's /usr/bin/python3 with python3-torch.  Written for the tests from the model
description (project docs, dlrm-model): nn.Linear layers, nn.EmbeddingBag(mode="sum") with
per-sample weights, the dot interaction through torch.bmm and the lower-triangle indices, or
concatenation; ReLU everywhere but the top MLP's last layer, which is a sigmoid.  Reads the
weights with its own safetensors parser (not the engine's), the inputs and the engine's
predictions from DIR/case.txt (tests/engine/engine_case.c), and compares them.

Usage: oracle.py DIR --op dot|cat [--itself] [--tol 1e-5]
Exits 0 and prints "oracle: N passed, 0 failed" when every prediction is within tol.
"""
import argparse
import json
import re
import struct
import sys

import numpy as np
import torch


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
        assert t["dtype"] == "F32", f"{name}: dtype {t['dtype']}"
        b, e = t["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[b:e], dtype="<f4").copy()).reshape(t["shape"])
    return out


def layers(weights, prefix):
    idx = sorted(int(m.group(1)) for k in weights for m in [re.match(rf"{prefix}\.(\d+)\.weight$", k)] if m)
    mods = []
    for i in idx:
        w, b = weights[f"{prefix}.{i}.weight"], weights[f"{prefix}.{i}.bias"]
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        mods.append(lin)
    return mods


def read_case(path):
    with open(path) as f:
        lines = f.read().split("\n")
    B, T, m_den = (int(x) for x in lines[0].split())
    dense = torch.tensor([[float(x) for x in lines[1 + b].split()] for b in range(B)], dtype=torch.float32)
    pos = 1 + B
    bags = []
    for _ in range(T):
        offsets = torch.tensor([int(x) for x in lines[pos].split()], dtype=torch.int64)
        indices = torch.tensor([int(x) for x in lines[pos + 1].split()], dtype=torch.int64)
        wl = lines[pos + 2].strip()
        weights = None if wl == "-" else torch.tensor([float(x) for x in wl.split()], dtype=torch.float32)
        bags.append((indices, offsets, weights))
        pos += 3
    pred = torch.tensor([float(x) for x in lines[pos].split()], dtype=torch.float32)
    assert dense.shape == (B, m_den)
    return dense, bags, pred


def forward(weights, dense, bags, op, itself):
    x = dense
    for lin in layers(weights, "bot_l"):
        x = torch.relu(lin(x))
    pooled = []
    for t, (indices, offsets, w) in enumerate(bags):
        table = weights[f"emb_l.{t}.weight"]
        eb = torch.nn.EmbeddingBag(table.shape[0], table.shape[1], mode="sum")
        with torch.no_grad():
            eb.weight.copy_(table)
        # EmbeddingBag takes offsets without the final end; empty bags pool to zeros.
        pooled.append(eb(indices, offsets[:-1], per_sample_weights=w))
    if op == "cat":
        r = torch.cat([x] + pooled, dim=1)
    else:
        B, d = x.shape
        T = torch.cat([x] + pooled, dim=1).view(B, -1, d)
        Z = torch.bmm(T, torch.transpose(T, 1, 2))
        F = T.shape[1]
        li = torch.tensor([i for i in range(F) for j in range(i + (1 if itself else 0))])
        lj = torch.tensor([j for i in range(F) for j in range(i + (1 if itself else 0))])
        r = torch.cat([x, Z[:, li, lj]], dim=1)
    top = layers(weights, "top_l")
    for k, lin in enumerate(top):
        r = lin(r)
        r = torch.sigmoid(r) if k == len(top) - 1 else torch.relu(r)
    return r.view(-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--op", choices=["dot", "cat"], default="dot")
    ap.add_argument("--itself", action="store_true")
    ap.add_argument("--tol", type=float, default=1e-5)
    a = ap.parse_args()
    weights = read_safetensors(f"{a.dir}/model.safetensors")
    dense, bags, pred = read_case(f"{a.dir}/case.txt")
    with torch.no_grad():
        ref = forward(weights, dense, bags, a.op, a.itself)
    diff = (ref - pred).abs()
    bad = int((diff > a.tol).sum())
    if len(ref) > 1 and float(ref.std()) < 1e-4:  # a comparison of constants proves nothing
        print(f"FAIL predictions do not vary (std {float(ref.std()):.3g}): the case is vacuous")
        bad = max(bad, 1)
    print(f"oracle: batch {len(pred)}, max |engine - torch| = {float(diff.max()):.3g} "
          f"(mean prediction {float(ref.mean()):.4f})")
    if bad:
        worst = int(diff.argmax())
        print(f"FAIL {bad} predictions differ by more than {a.tol}; worst sample {worst}: "
              f"engine {float(pred[worst]):.8f}, torch {float(ref[worst]):.8f}")
    print(f"oracle: {len(pred) - bad} passed, {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
