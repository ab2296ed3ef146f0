#!/usr/bin/python3
"""Sweeps bls-bench over lag and delay magnitude and draws the plots.

Runs under Debian's /usr/bin/python3 (matplotlib from python3-matplotlib), not a PATH python.
Each bls-bench invocation runs its modes interleaved, so every ratio comes from one run.

Outputs in --out: lag.json, delay_<D>.json, speedup_vs_lag.png, speedup_vs_delay.png,
latency_cdf.png, and a Markdown table on stdout.
"""
import argparse
import json
import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def launcher(args):
    if args.mpi == "openmpi":
        cmd = ["mpiexec.openmpi", "--allow-run-as-root", "--oversubscribe", "-np", str(args.np)]
        if args.tcp:
            cmd += ["--mca", "pml", "ob1", "--mca", "btl", "self,tcp"]
    else:
        cmd = ["mpiexec.mpich", "-np", str(args.np)]
        if args.tcp:
            cmd += ["-genv", "MPIR_CVAR_NOLOCAL", "1", "-genv", "UCX_TLS", "tcp,self"]
    return cmd


def bench(args, modes, delay, out_json):
    cmd = launcher(args) + [
        os.path.join(args.build, "bench", "bls-bench"), "--modes", ",".join(modes),
        "--iters", str(args.iters), "--rounds", str(args.rounds), "--bytes", str(args.bytes),
        "--work-us", str(args.work_us), "--delay", delay, "--seed", str(args.seed),
        "--json", out_json, "--quiet"]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    with open(out_json) as f:
        return json.load(f)


def by_mode(doc):
    return {m["mode"]: m for m in doc["modes"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--np", type=int, default=4, help="processes (default 4)")
    ap.add_argument("--mpi", choices=["openmpi", "mpich"], default="openmpi")
    ap.add_argument("--build", default="build", help="build folder with bench/bls-bench")
    ap.add_argument("--tcp", action="store_true", help="force the TCP transport")
    ap.add_argument("--bytes", type=int, default=65536, help="bytes per peer (default 65536)")
    ap.add_argument("--iters", type=int, default=1000, help="iterations per mode per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work-us", type=float, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lags", default="0,1,2,4,8,16", help="lags of the lag sweep")
    ap.add_argument("--lag-delay", default="exp:1000", help="delay of the lag sweep")
    ap.add_argument("--delays", default="250,500,1000,2000,4000",
                    help="exponential delay means (us) of the delay sweep")
    ap.add_argument("--delay-lag", type=int, default=4, help="lag of the delay sweep")
    ap.add_argument("--out", default="bench/out", help="output folder")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    lags = [int(x) for x in args.lags.split(",")]

    # 1. Speedup vs lag, one interleaved run.
    modes = ["sync"] + [f"bls:{L}" for L in lags]
    doc = bench(args, modes, args.lag_delay, os.path.join(args.out, "lag.json"))
    m = by_mode(doc)
    print(f"\n### Lag sweep: {args.np} processes, {args.bytes} B/peer, work {args.work_us} us, "
          f"delay {args.lag_delay}, {'TCP' if args.tcp else 'default transport'} ({args.mpi})\n")
    print("| mode | ms/iter | speedup | bound | speedup/bound | efficiency | cpu us/iter |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in modes:
        x = m[name]
        print(f"| {name} | {x['ms_per_iter']:.3f} | {x['speedup_vs_sync']:.3f} | {x['bound']:.3f} | "
              f"{x['speedup_vs_sync'] / x['bound']:.3f} | {x['efficiency']:.3f} | {x['cpu_us_per_iter']:.0f} |")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lags, [m[f"bls:{L}"]["speedup_vs_sync"] for L in lags], "o-", label="measured speedup")
    ax.plot(lags, [m[f"bls:{L}"]["bound"] for L in lags], "s--", label="ideal-model bound")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xticks(lags)
    ax.set_xticklabels([str(L) for L in lags])
    ax.set_xlabel("lag L")
    ax.set_ylabel("speedup over MPI_Alltoallv")
    ax.set_title(f"P={args.np}, {args.bytes // 1024} KiB/peer, delay {args.lag_delay}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "speedup_vs_lag.png"), dpi=120)

    # 2. Latency distribution per mode (same run).
    fig, ax = plt.subplots(figsize=(6, 4))
    qs = [q / 100 for q in range(101)]
    for name in modes:
        ax.plot(m[name]["iter_ms_percentiles"], qs, label=name)
    ax.set_xlabel("iteration time (ms)")
    ax.set_ylabel("fraction of iterations")
    ax.set_title("iteration time distribution, all processes")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "latency_cdf.png"), dpi=120)

    # 3. Speedup vs delay magnitude at a fixed lag.
    delays = [float(x) for x in args.delays.split(",")]
    rows = []
    for d in delays:
        doc = bench(args, ["sync", f"bls:{args.delay_lag}"], f"exp:{d:g}",
                    os.path.join(args.out, f"delay_{d:g}.json"))
        rows.append((d, by_mode(doc)[f"bls:{args.delay_lag}"]))
    print(f"\n### Delay sweep: bls:{args.delay_lag} vs sync, exponential delay mean\n")
    print("| delay mean (us) | speedup | bound | speedup/bound | efficiency |")
    print("| --- | --- | --- | --- | --- |")
    for d, x in rows:
        print(f"| {d:g} | {x['speedup_vs_sync']:.3f} | {x['bound']:.3f} | "
              f"{x['speedup_vs_sync'] / x['bound']:.3f} | {x['efficiency']:.3f} |")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([d / 1000 for d, _ in rows], [x["speedup_vs_sync"] for _, x in rows], "o-", label="measured")
    ax.plot([d / 1000 for d, _ in rows], [x["bound"] for _, x in rows], "s--", label="ideal-model bound")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xlabel("mean exponential delay (ms), work 1 ms")
    ax.set_ylabel(f"speedup of bls:{args.delay_lag} over MPI_Alltoallv")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "speedup_vs_delay.png"), dpi=120)
    print(f"\nplots in {args.out}/: speedup_vs_lag.png latency_cdf.png speedup_vs_delay.png",
          file=sys.stderr)


if __name__ == "__main__":
    main()
