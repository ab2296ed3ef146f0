#!/usr/bin/python3
"""Adaptive lag (bls:auto) against fixed lags, one interleaved bls-dlrm run per scenario.

Runs under Debian's /usr/bin/python3 (matplotlib from python3-matplotlib), not a PATH python.
4 processes on this machine, the reference's Kaggle MLPs, 26 tables of 100k rows, batch 256,
pooling 2 (the paper.py workload).  Scenarios (delays drawn per process and batch, the same
trace for every driver):
  none       no injected delay
  exp        exponential delays, mean 5 ms (about one batch's work)
  hiccup     25 ms with probability 0.05
  straggler  process 1 is 5 ms late every batch (persistent)
  change     exp delays of mean 5 ms for the first half of the batches, none after
Offline (closed loop): drivers sync, bls:0, bls:1, bls:2, bls:4, bls:8 and bls:auto:8 in one
bls-dlrm invocation, --rounds rounds with the order rotating; per driver samples/s and the
closed-loop latency p50 (a batch's time in flight on a process).  The verdicts, against the
fixed lags bls:0 .. bls:8 (sync, MPI_Alltoallv, is shown beside them, auto / sync):
  auto / best fixed   bls:auto:8's throughput over the best fixed lag's (target >= 0.97);
  L*                  the smallest fixed lag within 0.97 of the best fixed throughput, and
                      whether auto's p50 is no worse than L*'s.
Server (--server-scenarios): --find-peak for bls:1, bls:2, bls:4, bls:8 and bls:auto:8 (probes
interleaved, the same trace for every driver), the highest Poisson rate with p99 within the
bound; auto's peak against the best fixed one.

Writes OUT/<scenario>.json (bls-dlrm's), OUT/autolag.json and OUT/autolag.md, and
PLOTS/autolag.png (throughput per driver and scenario, auto's run-ahead over the batches).

Usage: /usr/bin/python3 bench/autolag.py [--build build] [--np 4] [--batches 400] [--rounds 2]
         [--scenarios none,exp,hiccup,straggler,change] [--server-scenarios exp]
         [--probe-queries 600] [--out bench/out/autolag] [--plots bench/plots]
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
FIXED = ["sync", "bls:0", "bls:1", "bls:2", "bls:4", "bls:8"]
FIXED_L = FIXED[1:]  # the fixed lags auto is judged against; sync (MPI_Alltoallv) for reference
AUTO = "bls:auto:8"
SERVER_DRIVERS = ["bls:1", "bls:2", "bls:4", "bls:8", AUTO]
KEEP = 0.97


def delays(batches):
    return {
        "none": "none",
        "exp": "exp:5000",
        "hiccup": "hiccup:0.05:25000",
        "straggler": "straggler:1:5000",
        "change": f"exp:5000/{batches // 2}/none",
    }


def bls_dlrm(args, name, extra):
    path = os.path.join(args.out, name + ".json")
    cmd = ["mpiexec.openmpi", "--allow-run-as-root", "--oversubscribe", "-np", str(args.np),
           os.path.join(args.build, "tools", "bls-dlrm"), *BASE, "--json", path, *extra]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(path) as f:
        return json.load(f), " ".join(cmd[5:])


def offline(args, scenario, delay):
    r, cmd = bls_dlrm(args, scenario, ["--synthetic-samples", str(256 * args.batches),
                                       "--max-batches", str(args.batches), "--rounds", str(args.rounds),
                                       "--delay", delay, "--driver", ",".join(FIXED + [AUTO])])
    by = {d["name"]: d for d in r["drivers"]}
    if not all(d["identical"] for d in r["drivers"]):
        sys.exit(f"autolag.py: {scenario}: a driver's predictions differ")
    best = max(FIXED_L, key=lambda n: by[n]["samples_per_s"])
    target = KEEP * by[best]["samples_per_s"]
    star = next(n for n in FIXED_L if by[n]["samples_per_s"] >= target)  # in lag order
    a = by[AUTO]
    return {
        "scenario": scenario, "delay": delay, "command": cmd,
        "samples_per_s": {n: by[n]["samples_per_s"] for n in FIXED + [AUTO]},
        "p50_ms": {n: by[n]["in_flight_ms_p50"] for n in FIXED + [AUTO]},
        "best": best, "auto_over_best": a["samples_per_s"] / by[best]["samples_per_s"],
        "l_star": star, "auto_p50_ms": a["in_flight_ms_p50"], "l_star_p50_ms": by[star]["in_flight_ms_p50"],
        "run_ahead": a["run_ahead"], "auto_over_sync": a["samples_per_s"] / by["sync"]["samples_per_s"],
    }


def server(args, scenario, delay):
    r, cmd = bls_dlrm(args, scenario + "_peak", ["--synthetic-samples", str(256 * 4000), "--delay", delay,
                                                 "--driver", ",".join(SERVER_DRIVERS), "--find-peak",
                                                 "--probe-queries", str(args.probe_queries), "--refine", "3"])
    peaks = {d["name"]: d["peak_qps"] for d in r["server"]["peak"]["drivers"]}
    best = max(SERVER_DRIVERS[:-1], key=lambda n: peaks[n])
    return {"scenario": scenario, "delay": delay, "command": cmd, "peak_qps": peaks, "best": best,
            "auto_over_best": peaks[AUTO] / peaks[best] if peaks[best] > 0 else float("nan")}


def table(rows, srv):
    out = ["| scenario | " + " | ".join(FIXED + [AUTO]) + " | best fixed L | auto / best | L* | p50 auto / L* ms "
           "| run-ahead mean (p50) | auto / sync |",
           "|" + " --- |" * (len(FIXED) + 8)]
    for x in rows:
        cells = [f"{x['samples_per_s'][n] / 1e3:.1f}k" for n in FIXED + [AUTO]]
        out.append(f"| {x['scenario']} ({x['delay']}) | " + " | ".join(cells)
                   + f" | {x['best']} | {x['auto_over_best']:.3f} | {x['l_star']} | "
                   f"{x['auto_p50_ms']:.1f} / {x['l_star_p50_ms']:.1f} | "
                   f"{x['run_ahead']['mean']:.2f} ({x['run_ahead']['p50']}) | {x['auto_over_sync']:.3f} |")
    out.append("")
    out.append("closed-loop p50 ms (a batch's time in flight on a process):")
    out.append("| scenario | " + " | ".join(FIXED + [AUTO]) + " |")
    out.append("|" + " --- |" * (len(FIXED) + 2))
    for x in rows:
        out.append(f"| {x['scenario']} | " + " | ".join(f"{x['p50_ms'][n]:.1f}" for n in FIXED + [AUTO]) + " |")
    if srv:
        out.append("")
        out.append("| scenario | " + " | ".join(SERVER_DRIVERS) + " | best fixed | auto / best |")
        out.append("|" + " --- |" * (len(SERVER_DRIVERS) + 3))
        for x in srv:
            out.append(f"| {x['scenario']} ({x['delay']}) | "
                       + " | ".join(f"{x['peak_qps'][n]:.1f}" for n in SERVER_DRIVERS)
                       + f" | {x['best']} | {x['auto_over_best']:.3f} |")
    return "\n".join(out)


def plot(path, rows):
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    names = FIXED + [AUTO]
    width = 0.8 / len(rows)
    for i, x in enumerate(rows):
        ax.bar([j + i * width for j in range(len(names))], [x["samples_per_s"][n] / 1e3 for n in names],
               width=width, label=x["scenario"])
        bx.plot(x["run_ahead"]["per_batch_mean"], lw=1, label=x["scenario"])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))], names, fontsize=8)
    ax.set_ylabel("thousand samples/s (slowest process)")
    ax.set_title("closed loop: fixed lags and bls:auto:8, per scenario", fontsize=10)
    ax.legend(fontsize=8)
    bx.set_xlabel("batch (the last round)")
    bx.set_ylabel("run-ahead chosen, mean over processes")
    bx.set_title("bls:auto:8's choices", fontsize=10)
    bx.set_ylim(0, 8.5)
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build", help="the build with tools/bls-dlrm (default build)")
    ap.add_argument("--np", type=int, default=4, help="processes (default 4)")
    ap.add_argument("--batches", type=int, default=400, help="batches per driver and round (default 400)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    ap.add_argument("--scenarios", default="none,exp,hiccup,straggler,change",
                    help="offline scenarios, comma-separated (default all five)")
    ap.add_argument("--server-scenarios", default="exp",
                    help="scenarios for the peak search, comma-separated, or empty (default exp)")
    ap.add_argument("--probe-queries", type=int, default=600, help="queries per peak probe (default 600)")
    ap.add_argument("--out", default="bench/out/autolag", help="where the JSON and tables go")
    ap.add_argument("--plots", default="bench/plots", help="where autolag.png goes")
    args = ap.parse_args()
    spec = delays(args.batches)
    chosen = [s for s in args.scenarios.split(",") if s]
    served = [s for s in args.server_scenarios.split(",") if s]
    for s in chosen + served:
        if s not in spec:
            ap.error(f"unknown scenario '{s}' (known: {', '.join(spec)})")
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.plots, exist_ok=True)
    rows = []
    for s in chosen:
        rows.append(offline(args, s, spec[s]))
        x = rows[-1]
        print(f"{s}: auto/best {x['auto_over_best']:.3f} (best {x['best']}), L* {x['l_star']}, p50 auto "
              f"{x['auto_p50_ms']:.1f} vs {x['l_star_p50_ms']:.1f} ms", file=sys.stderr, flush=True)
    srv = []
    for s in served:
        srv.append(server(args, s, spec[s]))
        print(f"{s} peak: {srv[-1]['peak_qps']}", file=sys.stderr, flush=True)
    with open(os.path.join(args.out, "autolag.json"), "w") as f:
        json.dump({"offline": rows, "server": srv}, f, indent=1)
    md = table(rows, srv)
    with open(os.path.join(args.out, "autolag.md"), "w") as f:
        f.write(md + "\n")
    print(md)
    if rows:
        plot(os.path.join(args.plots, "autolag.png"), rows)
        print(f"wrote {os.path.join(args.plots, 'autolag.png')}", file=sys.stderr)


if __name__ == "__main__":
    main()
