#!/usr/bin/python3
"""all_to_all_single latency, backend bls vs gloo, balanced, interleaved in one run.

Both groups live in the same processes (the default group is bls, a second group gloo), so
every size is measured as A, B, A, B, ... rounds under the same machine load.  Each timed
block is `--iters` blocking all_to_all_single calls after a barrier; the figure is the median
per-call time over rounds (slowest process).  Sizes are each process's whole send buffer,
split equally over the P destinations.

Usage: mpirun -np 4 /usr/bin/python3 bench/torch_a2a_latency.py [--sizes 1K,...] [--json F]
(PYTHONPATH must hold build/python, or it is found there.)  Needs /usr/bin/python3 (torch).
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
try:  # PYTHONPATH first (an MPICH build), else build/python of this checkout
    import torch_bls  # noqa: E402
except ImportError:
    sys.path.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build", "python"))
    import torch_bls  # noqa: E402


def parse_size(s):
    units = {"K": 1 << 10, "M": 1 << 20}
    return int(s[:-1]) * units[s[-1]] if s[-1] in units else int(s)


def timed(group, out, inp, iters):
    dist.barrier(group=group)
    t0 = time.perf_counter()
    for _ in range(iters):
        dist.all_to_all_single(out, inp, group=group)
    dt = torch.tensor([(time.perf_counter() - t0) / iters])
    dist.all_reduce(dt, op=dist.ReduceOp.MAX, group=group)
    return dt.item()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1K,4K,16K,64K,256K,1M", help="bytes per process (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=7, help="A/B rounds per size (default 7)")
    ap.add_argument("--iters", type=int, default=0, help="calls per timed block (default: by size)")
    ap.add_argument("--lag", type=int, default=4, help="lag of the bls group (default 4)")
    ap.add_argument("--json", help="write the results as JSON (rank 0)")
    a = ap.parse_args()
    torch_bls.set_lag(a.lag)
    dist.init_process_group("bls")
    gloo = dist.new_group(backend="gloo")
    bls = dist.group.WORLD
    r, P = dist.get_rank(), dist.get_world_size()
    rows = []
    for s in a.sizes.split(","):
        nbytes = parse_size(s)
        n = max(P, nbytes // 4 // P * P)
        inp = torch.arange(n, dtype=torch.float32) + r
        out = torch.empty(n)
        iters = a.iters or max(10, min(500, (1 << 22) // max(nbytes, 1)))
        timed(bls, out, inp, 3)
        timed(gloo, out, inp, 3)
        t_bls, t_gloo = [], []
        for _ in range(a.rounds):
            t_bls.append(timed(bls, out, inp, iters))
            t_gloo.append(timed(gloo, out, inp, iters))
        mb, mg = statistics.median(t_bls), statistics.median(t_gloo)
        row = {"bytes": n * 4, "iters": iters, "bls_us": mb * 1e6, "gloo_us": mg * 1e6, "gloo_over_bls": mg / mb}
        rows.append(row)
        if r == 0:
            print(f"{n * 4:>8} B  bls {mb * 1e6:9.1f} us  gloo {mg * 1e6:9.1f} us  gloo/bls {mg / mb:5.2f}", flush=True)
    if r == 0 and a.json:
        with open(a.json, "w") as f:
            json.dump({"processes": P, "lag": a.lag, "rounds": a.rounds, "rows": rows}, f, indent=1)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
