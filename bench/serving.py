#!/usr/bin/python3
"""Serving on this machine: latency under load and the highest rate within a p99 bound,
synchronous (MPI_Alltoallv) against bounded lag, per delay scenario.

Runs under Debian's /usr/bin/python3 (matplotlib from python3-matplotlib), not a PATH python.
Every point is ONE bls-dlrm invocation whose drivers run interleaved on the same arrival trace
(bls-dlrm --scenario server), 4 processes, the reference's Kaggle MLPs, 26 tables of 100k rows,
queries of --batch-size samples (one batch; default 1024, 256 per process), pooling 2.

First a calibration without delays gives W, the per-batch work (T_ideal(unlimited lag) per
batch of sync's measured trace: the busiest process's mean work), and the p99 bound is 20 W
unless --bound-ms gives one.
Scenarios, in terms of W:
  none        no delay
  exp         exponential per-process delays, mean W (independent per process and query)
  hiccup      a 5 W delay with probability 0.05 per process and query (at 10 W the p99 of an
              idle system, about 11 W, already sits at the 20 W bound: nothing to search)
  straggler   process 1 late by W every query (persistent)
Per scenario: sync's offline rate C (a closed-loop run with the scenario's delays), then a load
sweep (Poisson arrivals at fractions of C, --queries each), then bls-dlrm --find-peak (the
highest rate with p99 <= the bound, probes of --queries queries).  Beside the measurement, the
ideal model (zero communication; work W plus the scenario's delays drawn here, Poisson
arrivals) run as a simulation: its peak rate for sync (L = 0) and bls:L at the same bound.  The
model knows no jitter but the scenario's: the machine's own (4 processes and their progress
threads on 2 cores here) is not in it.

Outputs (in --out): serving.json (every figure and command), serving.md (the tables), and
--plots/serving_latency.png (p99 and p50 against offered load per scenario, the bound drawn)
and --plots/serving_peak.png (max rate within the bound, measured and the model's).

Usage: /usr/bin/python3 bench/serving.py [--build build] [--np 4] [--lag 4] [--batch-size 1024]
           [--queries 1000] [--bound-ms MS] [--loads 0.3,0.5,0.7,0.8,0.9,1.0,1.1,1.2]
           [--scenarios none,exp,hiccup,straggler] [--out bench/out/serving] [--plots bench/plots]
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BASE = ["--pooling", "2", "--quiet"]
KEEP_UP = 0.95  # bls-dlrm's DIST_KEEP_UP


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="build directory holding tools/bls-dlrm (default build)")
    ap.add_argument("--np", type=int, default=4, help="processes (default 4)")
    ap.add_argument("--lag", type=int, default=4, help="the bls driver's lag (default 4)")
    ap.add_argument("--batch-size", type=int, default=1024, help="samples per query (default 1024)")
    ap.add_argument("--queries", type=int, default=1000, help="queries per run and per probe (default 1000)")
    ap.add_argument("--bound-ms", type=float, default=0, help="p99 latency bound, ms (default 20 W, rounded)")
    ap.add_argument("--loads", default="0.3,0.5,0.7,0.8,0.9,1.0,1.1,1.2",
                    help="offered loads as fractions of sync's offline rate (default %(default)s)")
    ap.add_argument("--scenarios", default="none,exp,hiccup,straggler", help="default %(default)s")
    ap.add_argument("--out", default="bench/out/serving", help="JSON and markdown (default %(default)s)")
    ap.add_argument("--plots", default="bench/plots", help="PNG files (default %(default)s)")
    ap.add_argument("--mpiexec", default="mpiexec.openmpi --allow-run-as-root --oversubscribe",
                    help="launcher and its flags (default %(default)s)")
    a = ap.parse_args()
    a.loads = [float(x) for x in a.loads.split(",")]
    a.scenarios = a.scenarios.split(",")
    unknown = set(a.scenarios) - {"none", "exp", "hiccup", "straggler"}
    if unknown or a.np < 2 or a.queries < 50 or not a.loads or min(a.loads) <= 0:
        ap.error(f"bad arguments (unknown scenarios {sorted(unknown)}, or --np < 2, --queries < 50, a load <= 0)")
    return a


def delay_spec(name, W_us):
    w = max(1, round(W_us))
    return {"none": "none", "exp": f"exp:{w}", "hiccup": f"hiccup:0.05:{5 * w}",
            "straggler": f"straggler:1:{w}"}[name]


def bls_dlrm(a, tag, args):
    """One bls-dlrm run; its JSON."""
    path = os.path.join(a.out, tag + ".json")
    cmd = a.mpiexec.split() + ["-np", str(a.np), os.path.join(a.build, "tools", "bls-dlrm"), *BASE,
                               "--batch-size", str(a.batch_size), *args, "--json", path]
    t = time.time()
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    print(f"  ({time.time() - t:.0f} s)", file=sys.stderr, flush=True)
    with open(path) as f:
        r = json.load(f)
    r["command"] = " ".join(cmd)
    return r


# ---- the ideal model as a simulation (independent of the C code) ----

def ideal_p99(P, L, qps, n, work, seed):
    """p99 latency and completed rate of the open-loop ideal model: query k arrives at a
    Poisson time; process p starts it when it arrived, p's previous query is done, and query
    k-L-1 is done everywhere; it takes work(p, k, rng)."""
    rng = random.Random(seed)
    t, sent, done, lat = 0.0, [0.0] * P, [], []
    for k in range(n):
        t += rng.expovariate(qps)
        gate = max(t, done[k - L - 1]) if k > L else t
        d = 0.0
        for p in range(P):
            sent[p] = max(sent[p], gate) + work(p, k, rng)
            d = max(d, sent[p])
        done.append(d)
        lat.append(d - t)
    lat.sort()
    return lat[min(int(0.99 * (n - 1) + 0.5), n - 1)], n / done[-1], n / t


def model_peak(P, L, work, bound, n, seeds=4):
    """The highest rate (bisection) at which the model's p99, over seeds, stays within the bound
    and its completed rate keeps up."""
    def ok(q):
        for s in range(seeds):
            p99, done_rate, sched_rate = ideal_p99(P, L, q, n, work, s)
            if p99 > bound or done_rate < KEEP_UP * sched_rate:
                return False
        return True
    lo, hi = 1.0, 2.0
    while ok(hi):
        lo, hi = hi, hi * 2
    for _ in range(14):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def model_work(name, W, P):
    """work(p, k, rng) in seconds for the scenario: W plus its delay."""
    if name == "exp":
        return lambda p, k, rng: W + rng.expovariate(1.0 / W)
    if name == "hiccup":
        return lambda p, k, rng: W + (5 * W if rng.random() < 0.05 else 0.0)
    if name == "straggler":
        return lambda p, k, rng: W + (W if p == 1 else 0.0)
    return lambda p, k, rng: W


# ---- the runs ----

def calibrate(a):
    r = bls_dlrm(a, "calibration", ["--synthetic-samples", str(a.batch_size * 300), "--driver", "sync"])
    d = r["drivers"][0]
    return d["ideal_inf_s"] / r["batches"], r


def scenario(a, name, W, drivers):
    spec = delay_spec(name, 1e6 * W)
    delay = ["--delay", spec]
    samples = str(a.batch_size * a.queries)
    off = bls_dlrm(a, f"{name}_offline", ["--synthetic-samples", samples, "--driver", drivers, *delay])
    C = off["drivers"][0]["samples_per_s"] / a.batch_size
    print(f"serving.py: {name} ({spec}): sync's offline rate {C:.1f} queries/s", file=sys.stderr, flush=True)
    sweep = []
    for f in a.loads:
        r = bls_dlrm(a, f"{name}_load{f:g}", ["--synthetic-samples", samples, "--driver", drivers, *delay,
                                               "--scenario", "server", "--qps", f"{f * C:.3f}",
                                               "--queries", str(a.queries), "--latency-bound", f"{a.bound_ms:g}"])
        sweep.append({"load": f, "qps": f * C, "command": r["command"],
                      "drivers": {d["name"]: d for d in r["server"]["drivers"]}})
        row = ", ".join(f"{n} p99 {d['latency_ms']['p99']:.1f} ms" for n, d in sweep[-1]["drivers"].items())
        print(f"serving.py: {name} at {f:.2f} x C: {row}", file=sys.stderr, flush=True)
    pk = bls_dlrm(a, f"{name}_peak", ["--synthetic-samples", samples, "--driver", drivers, *delay, "--find-peak",
                                      "--qps", f"{0.5 * C:.3f}", "--probe-queries", str(a.queries),
                                      "--latency-bound", f"{a.bound_ms:g}"])
    peak = {d["name"]: d["peak_qps"] for d in pk["server"]["peak"]["drivers"]}
    work = model_work(name, W, a.np)
    bound = 1e-3 * a.bound_ms
    model = {"sync": model_peak(a.np, 0, work, bound, a.queries),
             f"bls:{a.lag}": model_peak(a.np, a.lag, work, bound, a.queries)}
    return {"name": name, "delay": spec, "offline_qps": C,
            "offline_speedup": off["drivers"][1]["speedup"], "offline_command": off["command"],
            "sweep": sweep, "peak": peak, "peak_command": pk["command"], "peak_probes": pk["server"]["peak"],
            "model_peak": model}


# ---- outputs ----

def markdown(a, W, results):
    bls = f"bls:{a.lag}"
    lines = [f"W = {1e3 * W:.3f} ms per batch (calibration); bound p99 <= {a.bound_ms:g} ms; "
             f"{a.queries} queries per run and probe; {a.np} processes.", "",
             f"| scenario | delay | sync offline q/s | peak sync q/s | peak {bls} q/s | measured ratio | "
             f"model ratio (sync, {bls} q/s) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for s in results:
        ps, pb = s["peak"]["sync"], s["peak"][bls]
        ms, mb = s["model_peak"]["sync"], s["model_peak"][bls]
        lines.append(f"| {s['name']} | `{s['delay']}` | {s['offline_qps']:.0f} | {ps:.0f} | {pb:.0f} | "
                     f"{pb / ps if ps else float('nan'):.2f}x | {mb / ms:.2f}x ({ms:.0f}, {mb:.0f}) |")
    lines += ["", f"Latency against offered load (fraction of sync's offline rate), p99 ms: sync / {bls} "
              "(ideal p99 of each run's measured work in brackets)", ""]
    loads = [p["load"] for p in results[0]["sweep"]]
    lines.append("| scenario | " + " | ".join(f"{f:.2f}" for f in loads) + " |")
    lines.append("| --- |" + " --- |" * len(loads))
    for s in results:
        cells = []
        for p in s["sweep"]:
            d0, d1 = p["drivers"]["sync"], p["drivers"][bls]
            cells.append(f"{d0['latency_ms']['p99']:.1f} / {d1['latency_ms']['p99']:.1f} "
                         f"({d0['ideal_latency_ms']['p99']:.1f} / {d1['ideal_latency_ms']['p99']:.1f})")
        lines.append(f"| {s['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(a, results):
    bls = f"bls:{a.lag}"
    n = len(results)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.8), squeeze=False)
    for ax, s in zip(axes[0], results):
        loads = [p["qps"] for p in s["sweep"]]
        for drv, color in (("sync", "#888888"), (bls, "#2a7ab9")):
            ax.plot(loads, [p["drivers"][drv]["latency_ms"]["p99"] for p in s["sweep"]], "o-", color=color,
                    label=f"{drv} p99")
            ax.plot(loads, [p["drivers"][drv]["latency_ms"]["p50"] for p in s["sweep"]], "--", color=color,
                    label=f"{drv} p50")
            ax.plot(loads, [p["drivers"][drv]["ideal_latency_ms"]["p99"] for p in s["sweep"]], ":", color=color,
                    label=f"{drv} ideal p99")
        ax.axhline(a.bound_ms, color="#c03030", lw=1, label=f"bound {a.bound_ms:g} ms")
        ax.set_yscale("log")
        ax.set_xlabel("offered load, queries/s")
        ax.set_ylabel("latency, ms")
        ax.set_title(f"{s['name']} ({s['delay']})", fontsize=10)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    p1 = os.path.join(a.plots, "serving_latency.png")
    fig.savefig(p1, dpi=110)
    fig, ax = plt.subplots(figsize=(1.8 * n + 2, 3.8))
    x = range(n)
    w = 0.2
    for j, (key, label, color) in enumerate((("sync", "sync", "#888888"), (bls, bls, "#2a7ab9"))):
        ax.bar([i + (j - 1.5) * w for i in x], [s["peak"][key] for s in results], width=w, color=color,
               label=f"{label} measured")
        ax.bar([i + (j + 0.5) * w for i in x], [s["model_peak"][key] for s in results], width=w,
               color=color, alpha=0.4, hatch="//", label=f"{label} ideal model")
    for i, s in enumerate(results):
        r = s["peak"][bls] / s["peak"]["sync"] if s["peak"]["sync"] else float("nan")
        ax.text(i, max(s["peak"][bls], s["model_peak"][bls]), f"{r:.2f}x", ha="center", va="bottom")
    ax.set_xticks(list(x), [s["name"] for s in results])
    ax.set_ylabel(f"queries/s with p99 <= {a.bound_ms:g} ms")
    ax.set_title(f"max rate within the bound; label: {bls} over sync (measured)", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    p2 = os.path.join(a.plots, "serving_peak.png")
    fig.savefig(p2, dpi=110)
    return p1, p2


def main():
    a = parse()
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.plots, exist_ok=True)
    drivers = f"sync,bls:{a.lag}"
    W, cal = calibrate(a)
    if not a.bound_ms:
        a.bound_ms = max(1.0, round(20e3 * W))
    print(f"serving.py: W = {1e3 * W:.3f} ms per batch; bound {a.bound_ms:g} ms", file=sys.stderr, flush=True)
    results = [scenario(a, name, W, drivers) for name in a.scenarios]
    md = markdown(a, W, results)
    with open(os.path.join(a.out, "serving.json"), "w") as f:
        json.dump({"W_s": W, "bound_ms": a.bound_ms, "queries": a.queries, "processes": a.np, "lag": a.lag,
                   "calibration_command": cal["command"], "scenarios": results}, f, indent=1)
    with open(os.path.join(a.out, "serving.md"), "w") as f:
        f.write(md)
    print(md)
    for p in plot(a, results):
        print(f"wrote {p}")
    if not all(math.isfinite(s["offline_qps"]) for s in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
