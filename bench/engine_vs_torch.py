#!/usr/bin/python3
"""Single-thread throughput of the C engine vs a PyTorch DLRM forward pass, interleaved.

Debian's /usr/bin/python3 with python3-torch and python3-numpy.  The reference's Kaggle
architecture (26 tables, d = 16, bottom 13-512-256-64-16, top 512-256-1) with --rows rows per
table, one index per bag, uniform indices.  For each batch size, engine and PyTorch runs
alternate (E T E T ...), so the ratio comes from the same minutes of machine noise.  Also
reports the MLPs' flops per sample and the limit they allow at the sgemm rate numpy (OpenBLAS,
one thread) reaches on the same shapes.

Usage: /usr/bin/python3 bench/engine_vs_torch.py [--build build] [--rows 1000000]
                                                 [--batches 128,512,2048] [--samples 65536]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

BOT = [13, 512, 256, 64, 16]
TOP = [512, 256, 1]
T, D = 26, 16


def torch_model(rows):
    torch.manual_seed(0)
    bot = [torch.nn.Linear(a, b) for a, b in zip(BOT[:-1], BOT[1:])]
    F = T + 1
    top_in = D + F * (F - 1) // 2
    widths = [top_in] + TOP
    top = [torch.nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])]
    embs = [torch.nn.EmbeddingBag(rows, D, mode="sum") for _ in range(T)]
    li = torch.tensor([i for i in range(F) for j in range(i)])
    lj = torch.tensor([j for i in range(F) for j in range(i)])
    return bot, top, embs, li, lj


def torch_forward(m, dense, idx, offsets):
    bot, top, embs, li, lj = m
    x = dense
    for lin in bot:
        x = torch.relu(lin(x))
    ly = [e(idx[t], offsets) for t, e in enumerate(embs)]
    B = x.shape[0]
    Tm = torch.cat([x] + ly, dim=1).view(B, -1, D)
    Z = torch.bmm(Tm, Tm.transpose(1, 2))
    r = torch.cat([x, Z[:, li, lj]], dim=1)
    for k, lin in enumerate(top):
        r = lin(r)
        r = torch.sigmoid(r) if k == len(top) - 1 else torch.relu(r)
    return r


def torch_rate(m, rows, B, samples):
    g = torch.Generator().manual_seed(B)
    n = max(1, samples // B)
    dense = torch.rand(B, 13, generator=g)
    idx = [torch.randint(0, rows, (B,), generator=g) for _ in range(T)]
    offsets = torch.arange(B)
    with torch.no_grad():
        torch_forward(m, dense, idx, offsets)  # warm-up
        t0 = time.perf_counter()
        for _ in range(n):
            torch_forward(m, dense, idx, offsets)
        dt = time.perf_counter() - t0
    return n * B / dt


def engine_rate(build, rows, B, samples):
    emb = "-".join([str(rows)] * T)
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([os.path.join(build, "tools", "bls-dlrm"), "--arch-embedding-size", emb,
                        "--batch-size", str(B), "--synthetic-samples", str(max(B, samples)),
                        "--threads", "1", "--quiet", "--json", f.name],
                       check=True, stdout=subprocess.DEVNULL)
        return json.load(open(f.name))["samples_per_s_forward"]


def sgemm_limit(B):
    """Samples/s the MLPs allow at numpy's measured sgemm rate on these shapes (one thread)."""
    F = T + 1
    widths = [(BOT[i], BOT[i + 1]) for i in range(len(BOT) - 1)]
    top = [D + F * (F - 1) // 2] + TOP
    widths += [(top[i], top[i + 1]) for i in range(len(top) - 1)]
    flops = sum(2 * a * b for a, b in widths)  # per sample
    mats = [(np.random.rand(B, a).astype(np.float32), np.random.rand(b, a).astype(np.float32)) for a, b in widths]
    for x, w in mats:
        x @ w.T
    reps, t0 = 20, time.perf_counter()
    for _ in range(reps):
        for x, w in mats:
            x @ w.T
    dt = (time.perf_counter() - t0) / reps
    return flops, flops * B / dt / 1e9, B / dt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--batches", default="128,512,2048")
    ap.add_argument("--samples", type=int, default=65536)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(1)
    print(f"building the PyTorch model ({T} tables x {a.rows} rows)...", file=sys.stderr, flush=True)
    m = torch_model(a.rows)
    print("| batch | engine samples/s | PyTorch samples/s | engine / PyTorch | MLP limit samples/s "
          "(sgemm GFLOP/s) | engine / limit |")
    print("| --- | --- | --- | --- | --- | --- |")
    for B in [int(x) for x in a.batches.split(",")]:
        e, t = [], []
        for _ in range(a.repeats):
            e.append(engine_rate(a.build, a.rows, B, a.samples))
            t.append(torch_rate(m, a.rows, B, a.samples))
        flops, gflops, limit = sgemm_limit(B)
        E, Tt = max(e), max(t)
        print(f"| {B} | {E:.0f} | {Tt:.0f} | {E / Tt:.2f} | {limit:.0f} ({gflops:.1f}) | {E / limit:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
