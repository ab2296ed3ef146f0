#!/usr/bin/python3
"""What the PyTorch driver shares with the C tools:
  - the layout (torch_bls/dlrm_model.py) against the C layout (dlrm_dist.h, printed by
    tests/dist/layout_dump): table owners, every row's process, and every process's send and
    receive counts, for P = 1..5, 26 and 7 tables, batches of 0..40 samples: one documented
    layout, two implementations held equal here;
  - the ideal model: torch_bls.ideal_time is the C harness's, checked on traces worked by hand
    (the same as tests/bench/test_ideal.c) and on a bad trace;
  - the adaptive lag policy: torch_bls.LagPolicy is the C harness's, its decisions checked on
    constructed traces and its bad arguments refused.

Usage: PYTHONPATH=build/python /usr/bin/python3 test_shared.py LAYOUT_DUMP
"""
import json
import os
import subprocess
import sys

import torch_bls  # the built package (PYTHONPATH), before the source folder goes on the path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "torch_bls"))
from dlrm_model import exchange_splits, slice_lo, table_split  # noqa: E402


def check_ideal(failures):
    """P=2, K=3: p0 = 1 3 1, p1 = 2 1 2.  L=0: sum of maxima 2+3+2 = 7; L=1: 5 (= max(5,5))."""
    trace = [[1, 3, 1], [2, 1, 2]]
    for lag, want in ((0, 7.0), (1, 5.0), (2, 5.0)):
        got = torch_bls.ideal_time(trace, lag)
        if got != want:
            failures.append(f"ideal_time(lag {lag}) = {got}, expected {want}")
    try:
        torch_bls.ideal_time([[1, 2], [3]], 0)
        failures.append("a ragged trace was accepted")
    except RuntimeError as e:
        if "every process needs 2 iterations" not in str(e):
            failures.append(f"ragged trace: {e}")


def check_policy(failures):
    """torch_bls.LagPolicy is harness.h's policy: a flat trace with a costly exchange gets 1,
    one without 0, independent exponential delays more; bad arguments are refused."""
    import random
    rng = random.Random(3)
    for comm, want in ((0.0, [0]), (2e-4, [1]), (None, range(2, 9))):
        pol = torch_bls.LagPolicy(8, 8)
        for k in range(200):
            if comm is None:
                work = [1e-3 + rng.expovariate(1e3) for _ in range(8)]
            else:
                work = [1e-3 * (1 + 0.002 * rng.random()) for _ in range(8)]
            pol.observe(work, comm if comm is not None else 1e-4)
            got = pol.choose()  # once per batch, as a driver does
        if got not in want:
            failures.append(f"LagPolicy with exchange {comm}: chose {got}, expected one of {list(want)}")
    for bad in ((0, 4), (4, -1), (4, 5000)):
        try:
            torch_bls.LagPolicy(*bad)
            failures.append(f"LagPolicy{bad} was accepted")
        except RuntimeError as e:
            if "LagPolicy: processes >= 1" not in str(e):
                failures.append(f"LagPolicy{bad}: {e}")
    try:
        torch_bls.LagPolicy(4, 4).observe([1e-3] * 3)
        failures.append("3 figures of work for 4 processes were accepted")
    except RuntimeError as e:
        if "3 figures of work for 4 processes" not in str(e):
            failures.append(f"short work: {e}")


def main():
    dump = sys.argv[1]
    checked, failures = 0, []
    check_ideal(failures)
    check_policy(failures)
    for P in range(1, 6):
        for T in (26, 7):
            c = json.loads(subprocess.run([dump, str(P), str(T), "16", "40"], check=True,
                                          capture_output=True, text=True).stdout)
            owners = table_split(T, P)
            py_owner = [next(p for p in range(P) if t in owners[p]) for t in range(T)]
            if py_owner != c["owner"]:
                failures.append(f"P={P} T={T}: owners {py_owner} != C's {c['owner']}")
            for b in c["batches"]:
                n = b["n"]
                if [slice_lo(q, P, n) for q in range(P + 1)] != b["slice_lo"]:
                    failures.append(f"P={P} n={n}: slices differ from C's {b['slice_lo']}")
                for r in range(P):
                    send, recv = exchange_splits(owners, r, P, n, 16)
                    if send != b["send"][r] or recv != b["recv"][r]:
                        failures.append(f"P={P} T={T} n={n} rank {r}: send {send} recv {recv}, "
                                        f"C: {b['send'][r]} {b['recv'][r]}")
                    checked += 1
    for f in failures[:10]:
        print("FAIL", f)
    print(f"test_shared: {checked} process layouts and the ideal model compared, {len(failures)} differ")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
