#!/usr/bin/python3
"""Who pays for the progress thread: bls-dlrm with every core computing, and with delays.

Debian's /usr/bin/python3 (stdlib only).  Each bls-dlrm invocation runs sync, bls:1 and bls:4
interleaved (--rounds 2), so each speedup is a ratio within one run; the --progress settings
alternate invocation by invocation, --reps times.  Scenarios:
  busy2    2 processes on 2 cores, --busy, no delay (every core computing, nothing to mask)
  busy4    4 processes on 2 cores, the same
  one2     1 process with --threads 2 (no exchange: the thread has nothing to do)
  delayed  the main job's offline scenario (4 processes, exp delays of 5 ms, sleep)
Prints a Markdown table of medians; a speedup cell adds each run's figure (up to 6 runs) or,
with more, the geometric mean and its 95% confidence interval (Student's t on the logarithms):
an interval that holds 1.0 means sync and bls are not told apart by these runs.  Writes every
JSON to --out.

--build takes a comma list of build directories (two builds of libbls, say before and after a
change): each repetition then runs every build in turn, so their figures come from interleaved
runs, and the table gets a build column.

Usage: /usr/bin/python3 bench/priority.py [--build build[,other]] [--reps 3] [--only busy2,busy4]
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys

BUSY = ["--batch-size", "512", "--synthetic-samples", "204800", "--max-batches", "400",
        "--rounds", "2", "--busy"]
SCENARIOS = {
    "busy2": (2, BUSY),
    "busy4": (4, BUSY),
    "one2": (1, BUSY + ["--threads", "2"]),
    "delayed": (4, ["--batch-size", "256", "--synthetic-samples", "256000", "--max-batches",
                    "200", "--pooling", "2", "--bursts", "0.1:8", "--hot-tables", "0-6:1.05",
                    "--delay", "exp:5000", "--scenario", "offline"]),
}
PROGRESS = ["thread-normal", "thread", "caller"]


# Student's t, two-sided 95%, by degrees of freedom (1..30; beyond, the normal's 1.96).
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def speedups(values):
    """The runs' speedups as a table cell: each of up to 6, else the geometric mean and its 95%
    confidence interval."""
    if len(values) <= 6:
        return ", ".join(f"{v:.3f}" for v in values)
    logs = [math.log(v) for v in values]
    m, n = statistics.mean(logs), len(logs)
    half = (T975[n - 2] if n - 1 <= len(T975) else 1.96) * statistics.stdev(logs) / math.sqrt(n)
    return f"gm {math.exp(m):.3f}, 95% CI {math.exp(m - half):.3f}-{math.exp(m + half):.3f}"


def run(build, np, extra, progress, path):
    cmd = ["mpiexec.openmpi", "--allow-run-as-root", "--oversubscribe", "-np", str(np),
           os.path.join(build, "tools", "bls-dlrm"), "--driver", "sync,bls:1,bls:4", "--quiet",
           "--progress", progress, "--json", path] + extra
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"priority.py: {' '.join(cmd)} failed ({r.returncode}): {r.stderr[-500:]}")
    with open(path) as f:
        return {d["name"]: d for d in json.load(f)["drivers"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build",
                    help="build directory, or a comma list of them to alternate")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default=",".join(SCENARIOS))
    ap.add_argument("--progress", default=",".join(PROGRESS),
                    help="comma list of bls-dlrm --progress settings to alternate")
    ap.add_argument("--out", default="bench/out/priority")
    args = ap.parse_args()
    names = args.only.split(",")
    for n in names:
        if n not in SCENARIOS:
            sys.exit(f"priority.py: unknown scenario '{n}' (known: {', '.join(SCENARIOS)})")
    progs = args.progress.split(",")
    builds = args.build.split(",")
    for b in builds:
        if not os.access(os.path.join(b, "tools", "bls-dlrm"), os.X_OK):
            sys.exit(f"priority.py: no {os.path.join(b, 'tools', 'bls-dlrm')} (build it first)")
    os.makedirs(args.out, exist_ok=True)
    res = {}  # (scenario, build index, progress) -> list of runs
    for rep in range(args.reps):
        for n in names:
            np, extra = SCENARIOS[n]
            for bi, b in enumerate(builds):
                for p in progs:
                    path = os.path.join(args.out, f"{n}-b{bi}-{p}-{rep}.json")
                    res.setdefault((n, bi, p), []).append(run(b, np, extra, p, path))
                    d = res[(n, bi, p)][-1]
                    print(f"rep {rep} {n:8s} {b} {p:13s} bls:1 {d['bls:1']['speedup']:.3f}x "
                          f"bls:4 {d['bls:4']['speedup']:.3f}x", file=sys.stderr)
    bcol = len(builds) > 1
    print(("| build " if bcol else "") + "| scenario | progress | sync ms/batch | bls:1 speedup | "
          "bls:4 speedup | CPU us/batch sync, bls:1, bls:4 | of it the thread's (bls:1, bls:4) | "
          "efficiency bls:1, bls:4 |")
    print(("| --- " if bcol else "") + "| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n, bi, p in [(n, bi, p) for n in names for bi in range(len(builds)) for p in progs]:
        runs = res[(n, bi, p)]

        def med(drv, key):
            return statistics.median(r[drv][key] for r in runs)

        sp = [speedups([r[d]["speedup"] for r in runs]) for d in ("bls:1", "bls:4")]
        print((f"| {builds[bi]} " if bcol else "") + f"| {n} | {p} | "
              f"{med('sync', 'ms_per_batch'):.3f} | "
              f"{med('bls:1', 'speedup'):.3f} ({sp[0]}) | {med('bls:4', 'speedup'):.3f} "
              f"({sp[1]}) | {med('sync', 'cpu_us_per_batch'):.0f}, "
              f"{med('bls:1', 'cpu_us_per_batch'):.0f}, {med('bls:4', 'cpu_us_per_batch'):.0f} | "
              f"{med('bls:1', 'progress_cpu_us_per_batch'):.0f}, "
              f"{med('bls:4', 'progress_cpu_us_per_batch'):.0f} | "
              f"{med('bls:1', 'efficiency'):.3f}, {med('bls:4', 'efficiency'):.3f} |")


if __name__ == "__main__":
    main()
