#!/usr/bin/python3
"""Runs the scenarios behind bench/RESULTS.md and prints them as Markdown tables.

Debian's /usr/bin/python3 (stdlib only).  Each row is ONE bls-bench invocation whose modes run
interleaved, so every ratio comes from one run on a noisy machine.  Scenarios (4 processes,
1 ms sleep-work per iteration unless said otherwise):
  exp     exponential delays, mean 1 ms          sync, window:4, bls:4
  hiccup  p = 0.1 of 10 ms                       sync, window:8, bls:8
  none    balanced, no delay                     sync, bls:1, bls:4
  strag   rank 1 is 1 ms slower every iteration  sync, bls:4
at 64 KiB and 1 MiB per peer, and balanced also at 1 KiB, over each of --transports:
  shm     one host, shared memory (Open MPI's vader)
  tcp     one host, TCP over loopback (--mca btl self,tcp): libbls's probe at creation finds
          that its peers need the sender's polls, as remote ones do (copy_peers 0)
  hosts   TCP between hosts: one process on each of NP namespace hosts (scripts/cluster.sh up
          NP --slots 1, taken down afterwards unless it was up already; root and `ip netns`
          needed), where libbls sees remote peers as it would on a cluster

Usage: /usr/bin/python3 bench/targets.py [--build build] [--iters 2000] [--transports shm,tcp]
       [--out bench/out/targets]
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "scripts/cluster.sh")
TRANSPORTS = ("shm", "tcp", "hosts")

SCENARIOS = [
    ("exp", "exp:1000", ["sync", "window:4", "bls:4"], [65536, 1048576]),
    ("hiccup", "hiccup:0.1:10000", ["sync", "window:8", "bls:8"], [65536, 1048576]),
    ("none", "none", ["sync", "bls:1", "bls:4"], [1024, 65536, 1048576]),
    ("strag", "straggler:1:1000", ["sync", "bls:4"], [65536, 1048576]),
]


def run(args, transport, delay, modes, size, path):
    if transport == "hosts":
        cmd = [CLUSTER, "mpirun", "-np", str(args.np)]
    else:
        cmd = ["mpiexec.openmpi", "--allow-run-as-root", "--oversubscribe", "-np", str(args.np)]
    if transport == "tcp":
        cmd += ["--mca", "pml", "ob1", "--mca", "btl", "self,tcp"]
    iters = args.iters if size <= 65536 else args.iters // 2
    cmd += [os.path.join(os.path.abspath(args.build), "bench", "bls-bench"), "--modes", ",".join(modes),
            "--iters", str(iters), "--rounds", "1", "--bytes", str(size), "--work-us", "1000",
            "--delay", delay, "--seed", str(args.seed), "--json", path, "--quiet"]
    if args.progress != "thread":  # the default; older builds do not take the option
        cmd += ["--progress", args.progress]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(path) as f:
        return json.load(f)


def cluster_up(np_):
    """Brings up NP namespace hosts of one slot each; returns whether they were up before
    (`up` itself says so: it leaves a cluster of that shape alone and rebuilds any other)."""
    r = subprocess.run([CLUSTER, "up", str(np_), "--slots", "1"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"targets.py: --transports hosts needs namespace hosts, and "
                 f"'scripts/cluster.sh up {np_} --slots 1' failed:\n{r.stderr.strip()}")
    return "already up" in r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--np", type=int, default=4)
    ap.add_argument("--iters", type=int, default=2000, help="iterations (halved at 1 MiB)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--transports", default="shm,tcp", help="comma list of shm, tcp, hosts (see above)")
    ap.add_argument("--progress", default="thread", help="bls-bench --progress: thread, thread-normal, caller[:US]")
    ap.add_argument("--only", default="", help="comma list of scenario names to run")
    ap.add_argument("--out", default="bench/out/targets")
    args = ap.parse_args()
    transports = [t for t in args.transports.split(",") if t]
    for t in transports:
        if t not in TRANSPORTS:
            ap.error(f"--transports: '{t}' is not one of {', '.join(TRANSPORTS)}")
    args.out = os.path.abspath(args.out)  # the hosts' processes write their JSON there too
    os.makedirs(args.out, exist_ok=True)
    was_up = cluster_up(args.np) if "hosts" in transports else True
    try:
        table(args, transports)
    finally:
        if not was_up:
            subprocess.run([CLUSTER, "down"], capture_output=True)


def table(args, transports):
    only = set(filter(None, args.only.split(",")))
    print("| scenario | transport | size | mode | ms/iter | speedup vs sync | bound | speedup/bound "
          "| efficiency | cpu us/iter | of it thread | sync cpu us/iter | cpu / sync |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, delay, modes, sizes in SCENARIOS:
        if only and name not in only:
            continue
        for transport in transports:
            for size in sizes:
                path = os.path.join(args.out, f"{name}_{transport}_{size}.json")
                doc = run(args, transport, delay, modes, size, path)
                by = {m["mode"]: m for m in doc["modes"]}
                sync = by["sync"]
                for mode in modes[1:]:
                    m = by[mode]
                    ratio = m["speedup_vs_sync"] / m["bound"] if m["bound"] > 0 else 0
                    label = f"{size // 1024} KiB" if size < 1048576 else f"{size // 1048576} MiB"
                    print(f"| {name} ({delay}) | {transport} | {label} | {mode} | {m['ms_per_iter']:.3f} "
                          f"| {m['speedup_vs_sync']:.3f} | {m['bound']:.3f} | {ratio:.3f} "
                          f"| {m['efficiency']:.3f} | {m['cpu_us_per_iter']:.0f} "
                          f"| {m['progress_thread_cpu_us_per_iter']:.0f} | {sync['cpu_us_per_iter']:.0f} "
                          f"| {m['cpu_us_per_iter'] / sync['cpu_us_per_iter']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
