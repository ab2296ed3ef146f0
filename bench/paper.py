#!/usr/bin/python3
"""The paper's experiment on this machine: DLRM inference, synchronous vs bounded-lag.

Runs under Debian's /usr/bin/python3 (matplotlib from python3-matplotlib), not a PATH python.
Every row is ONE bls-dlrm invocation whose drivers run interleaved (so each ratio comes from
the same minutes of a noisy machine), 4 processes, the reference's Kaggle MLPs, 26 tables of
100k rows, batch 256 (64 samples per process), pooling 2.  Scenarios:
  balanced    uniform lookups, no delay
  skewed      power-law hot tables on process 0 and per-batch bursts of 8x heavier bags
  delays      exponential per-process delays, mean 5 ms (about one batch's work)
  straggler   process 1 is 5 ms late every batch (persistent)
Rows: ms per batch sync vs bls:L, speedup, the ideal model's bound for that trace, accuracy
and AUC difference (must be 0: the predictions are compared bit for bit by the tool).
Plots: speedup vs lag (delays scenario, L = 0, 1, 2, 4, 8) and vs delay magnitude (L = 4),
with the ideal model's bound drawn.

Usage: /usr/bin/python3 bench/paper.py [--build build] [--np 4] [--samples 51200]
                                       [--out bench/out/paper] [--plots bench/plots]
"""
import argparse
import json
import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BASE = ["--batch-size", "256", "--pooling", "2", "--quiet"]
SKEW = ["--hot-tables", "0-6:1.05", "--bursts", "0.1:8"]
SCENARIOS = [
    ("balanced", []),
    ("skewed", SKEW),
    ("delays", ["--delay", "exp:5000"]),
    ("straggler", ["--delay", "straggler:1:5000"]),
]


def run(args, name, extra, drivers):
    path = os.path.join(args.out, name + ".json")
    cmd = ["mpiexec.openmpi", "--allow-run-as-root", "--oversubscribe", "-np", str(args.np),
           os.path.join(args.build, "tools", "bls-dlrm"), *BASE, "--synthetic-samples",
           str(args.samples), "--driver", ",".join(drivers), "--json", path, *extra]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(path) as f:
        return json.load(f)


def plot_speedup(path, xs, measured, bound, label, xlabel, title, logx=False):
    """Measured speedup over MPI_Alltoallv against the ideal model's bound."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(xs, measured, "o-", label=label)
    ax.plot(xs, bound, "k--", label="ideal model bound")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("speedup over MPI_Alltoallv")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--np", type=int, default=4)
    ap.add_argument("--samples", type=int, default=51200)
    ap.add_argument("--lag", type=int, default=4)
    ap.add_argument("--out", default="bench/out/paper")
    ap.add_argument("--plots", default="bench/plots")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.plots, exist_ok=True)
    bls = f"bls:{args.lag}"
    print(f"| scenario | sync ms/batch | {bls} ms/batch | speedup | ideal bound | efficiency "
          f"({bls}) | accuracy diff | AUC diff | identical |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, extra in SCENARIOS:
        r = run(args, name, extra, ["sync", bls])
        s, b = r["drivers"]
        print(f"| {name} | {s['ms_per_batch']:.2f} | {b['ms_per_batch']:.2f} | "
              f"{b['speedup']:.2f}x | {b['bound']:.2f}x | {b['efficiency']:.3f} | "
              f"{b['accuracy'] - s['accuracy']:.1e} | {(b['auc'] or 0) - (s['auc'] or 0):.1e} | "
              f"{'yes' if b['identical'] else 'NO'} |", flush=True)

    lags = [0, 1, 2, 4, 8]
    r = run(args, "lags", ["--delay", "exp:5000"], ["sync"] + [f"bls:{L}" for L in lags])
    d = r["drivers"][1:]
    plot_speedup(os.path.join(args.plots, "dlrm_speedup_vs_lag.png"), lags,
                 [x["speedup"] for x in d], [x["bound"] for x in d],
                 "measured speedup over sync", "lag L", "DLRM, 4 processes, exp delays mean 5 ms")
    print("\n| lag | ms/batch | speedup | bound | efficiency |\n|---|---|---|---|---|")
    print(f"| sync | {r['drivers'][0]['ms_per_batch']:.2f} | 1.00x | 1.00x | "
          f"{r['drivers'][0]['efficiency']:.3f} |")
    for L, x in zip(lags, d):
        print(f"| {L} | {x['ms_per_batch']:.2f} | {x['speedup']:.2f}x | {x['bound']:.2f}x | "
              f"{x['efficiency']:.3f} |", flush=True)

    means = [1000, 2500, 5000, 10000, 20000]
    pts = []
    print(f"\n| delay mean | sync ms/batch | {bls} ms/batch | speedup | bound |\n|---|---|---|---|---|")
    for m in means:
        r = run(args, f"delay{m}", ["--delay", f"exp:{m}"], ["sync", bls])
        s, b = r["drivers"]
        pts.append((m / 1000, b["speedup"], b["bound"]))
        print(f"| {m / 1000:g} ms | {s['ms_per_batch']:.2f} | {b['ms_per_batch']:.2f} | "
              f"{b['speedup']:.2f}x | {b['bound']:.2f}x |", flush=True)
    plot_speedup(os.path.join(args.plots, "dlrm_speedup_vs_delay.png"), [p[0] for p in pts],
                 [p[1] for p in pts], [p[2] for p in pts], f"measured ({bls})",
                 "mean exponential delay per process and batch, ms", "DLRM, 4 processes",
                 logx=True)


if __name__ == "__main__":
    main()
