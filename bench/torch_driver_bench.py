#!/usr/bin/python3
"""The PyTorch DLRM driver under random delays: gloo (the reference's synchronous pattern) vs
bls with lag L, next to the ideal model's bound.  Runs alternate (gloo, bls:L1, bls:L2, ...)
for --rounds rounds; figures are medians over rounds.

1. Calibration: one bls:0 run without delays measures the mean per-batch work w.
2. Every run then adds an exponential delay of mean w (--delay-us overrides) per process and
   batch, the same trace for every run (seeded).
Reported per configuration: ms/batch, samples/s, speedup over gloo, and from the bls run's own
work trace the ideal bound T_ideal(0)/T_ideal(L) and efficiency T_ideal(L)/measured.

Usage: /usr/bin/python3 bench/torch_driver_bench.py [--np 4] [--lags 1,4] [--rounds 3]
       [--json F] [-- extra dlrm_infer.py options]
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def launch(np_, args, mpiexec, flags):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
               PYTHONPATH=os.path.join(ROOT, "build", "python"))
    cmd = [mpiexec, "-n", str(np_)] + flags + ["/usr/bin/python3", os.path.join(ROOT, "torch_bls", "dlrm_infer.py"),
                                               "--quiet", "--json", out] + args
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit(f"torch_driver_bench: run failed ({' '.join(cmd)}):\n{p.stdout[-2000:]}")
    line = [l for l in p.stdout.splitlines() if " P=" in l]
    print("  " + (line[-1] if line else "?"), flush=True)
    with open(out) as f:
        res = json.load(f)
    os.unlink(out)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--np", type=int, default=4)
    ap.add_argument("--lags", default="1,4")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=25600)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--delay-us", type=float, default=0, help="delay mean (default: the measured work)")
    ap.add_argument("--mpiexec", default="mpiexec.openmpi")
    ap.add_argument("--json", help="write every run and the summary as JSON")
    ap.add_argument("extra", nargs="*", help="more dlrm_infer.py options (after --)")
    a = ap.parse_args()
    flags = ["--allow-run-as-root", "--oversubscribe"] if "openmpi" in a.mpiexec else []
    base = ["--synthetic-samples", str(a.samples), "--batch-size", str(a.batch_size)] + a.extra
    lags = [int(x) for x in a.lags.split(",")]
    print("calibration (bls:0, no delay):", flush=True)
    cal = launch(a.np, base + ["--dist-backend", "bls", "--lag", "0"], a.mpiexec, flags)
    delay = a.delay_us or round(cal["work_ms_mean"] * 1e3)
    print(f"per-batch work {cal['work_ms_mean']:.2f} ms -> delays exp:{delay:.0f} us", flush=True)
    runs = {"gloo": []}
    runs.update({f"bls:{L}": [] for L in lags})
    for rnd in range(a.rounds):
        print(f"round {rnd + 1}/{a.rounds}:", flush=True)
        runs["gloo"].append(launch(a.np, base + ["--dist-backend", "gloo", "--delay", f"exp:{delay:.0f}"], a.mpiexec, flags))
        for L in lags:
            runs[f"bls:{L}"].append(launch(a.np, base + ["--dist-backend", "bls", "--lag", str(L), "--delay", f"exp:{delay:.0f}"],
                                           a.mpiexec, flags))
    med = {k: statistics.median(r["ms_per_batch"] for r in v) for k, v in runs.items()}
    rows = []
    print(f"\n| driver | ms/batch | samples/s | speedup over gloo | bound | speedup / bound | efficiency |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for k, v in runs.items():
        bound = statistics.median(r["bound"] for r in v) if k != "gloo" else None
        eff = statistics.median(r["efficiency"] for r in v)
        sp = med["gloo"] / med[k]
        rows.append({"driver": k, "ms_per_batch": med[k], "samples_per_s": a.batch_size * 1e3 / med[k],
                     "speedup": sp, "bound": bound, "speedup_over_bound": sp / bound if bound else None,
                     "efficiency": eff})
        print(f"| {k} | {med[k]:.2f} | {a.batch_size * 1e3 / med[k]:.0f} | {sp:.2f}x | "
              f"{'—' if bound is None else f'{bound:.2f}x'} | {'—' if bound is None else f'{sp / bound:.2f}'} | {eff:.3f} |")
    same = len({(r["accuracy"], r["logloss"]) for v in runs.values() for r in v}) == 1
    print(f"\naccuracy and log loss identical in every run: {same}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"np": a.np, "delay_us": delay, "calibration": cal, "rows": rows, "runs": runs,
                       "identical_metrics": same}, f, indent=1)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
