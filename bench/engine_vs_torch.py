#!/usr/bin/python3
"""Single-thread throughput of the C engine vs a PyTorch DLRM forward pass, interleaved.

Debian's /usr/bin/python3 with python3-torch.  The reference's Kaggle architecture (26 tables,
d = 16, bottom 13-512-256-64-16, top 512-256-1) with --rows rows per table, one index per bag,
uniform indices, fresh ones every batch for both.  For each batch size, engine and PyTorch runs
alternate (E T E T ...), so each ratio comes from the same minutes of machine noise; the table
gives medians over the repeats.  The engine side is build/bench/bls-engine-bench, which times
dlrm_forward against the limit the MLPs' flops allow at OpenBLAS's sgemm rate on the same
shapes, batch by batch in the same process; its engine / limit figure is reported too.

Usage: /usr/bin/python3 bench/engine_vs_torch.py [--build build] [--rows 1000000]
                                                 [--batches 128,512,2048] [--samples 32768]
                                                 [--repeats 3]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import statistics  # noqa: E402

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
    """Samples/s over samples // B distinct batches (fresh indices, as the engine gets)."""
    g = torch.Generator().manual_seed(B)
    n = max(1, samples // B)
    batches = [(torch.rand(B, 13, generator=g), [torch.randint(0, rows, (B,), generator=g) for _ in range(T)])
               for _ in range(n + 1)]
    offsets = torch.arange(B)
    with torch.no_grad():
        torch_forward(m, batches[n][0], batches[n][1], offsets)  # warm-up, on its own batch
        t0 = time.perf_counter()
        for dense, idx in batches[:n]:
            torch_forward(m, dense, idx, offsets)
        dt = time.perf_counter() - t0
    return n * B / dt


def engine_rate(build, rows, B, samples):
    """bls-engine-bench at one batch size: (engine samples/s, limit samples/s, sgemm GFLOP/s,
    engine / limit)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([os.path.join(build, "bench", "bls-engine-bench"), "--rows", str(rows),
                        "--tables", str(T), "--d", str(D), "--batches", str(B),
                        "--samples", str(max(B, samples)), "--rounds", "2", "--json", f.name],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = json.load(open(f.name))["sizes"][0]
    return r["engine_samples_per_s"], r["limit_samples_per_s"], r["sgemm_gflops"], r["engine_over_limit"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--batches", default="128,512,2048")
    ap.add_argument("--samples", type=int, default=32768)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    print(f"building the PyTorch model ({T} tables x {a.rows} rows)...", file=sys.stderr, flush=True)
    m = torch_model(a.rows)
    print("| batch | engine samples/s | PyTorch samples/s | engine / PyTorch | MLP limit samples/s "
          "(sgemm GFLOP/s) | engine / limit |")
    print("| --- | --- | --- | --- | --- | --- |")
    for B in [int(x) for x in a.batches.split(",")]:
        runs = []
        for k in range(a.repeats):
            print(f"batch {B}: repeat {k + 1} of {a.repeats}", file=sys.stderr, flush=True)
            e = engine_rate(a.build, a.rows, B, a.samples)
            runs.append(e + (torch_rate(m, a.rows, B, a.samples),))
        med = [statistics.median(x) for x in zip(*runs)]
        vs_torch = statistics.median(r[0] / r[4] for r in runs)
        print(f"| {B} | {med[0]:.0f} | {med[4]:.0f} | {vs_torch:.2f} | {med[1]:.0f} ({med[2]:.1f}) | "
              f"{med[3]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
