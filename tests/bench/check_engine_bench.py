#!/usr/bin/python3
"""Checks bls-engine-bench's JSON: the MLPs' flops per sample as counted by hand for the test's
model; one entry per batch size asked for, in order; every rate positive; the GFLOP/s figure
equal to the limit's samples/s times those flops; the pair count rounds x samples / batch; the
ratio's quartiles ordered around the median.

Usage: check_engine_bench.py FILE FLOPS BATCH...
"""
import json
import sys


def main():
    path, want_flops, batches = sys.argv[1], int(sys.argv[2]), [int(b) for b in sys.argv[3:]]
    r = json.load(open(path))
    errors = []
    sizes = r["sizes"]
    if [s["batch"] for s in sizes] != batches:
        errors.append(f"batch sizes {[s['batch'] for s in sizes]}, expected {batches}")
    flops = r["mlp_flops_per_sample"]
    if flops != want_flops:
        errors.append(f"mlp_flops_per_sample {flops}, expected {want_flops}")
    for s in sizes:
        b = s["batch"]
        for k in ("engine_samples_per_s", "limit_samples_per_s", "sgemm_gflops", "engine_over_limit"):
            if not s[k] > 0:
                errors.append(f"batch {b}: {k} = {s[k]}")
        gf = s["limit_samples_per_s"] * flops / 1e9
        if abs(gf - s["sgemm_gflops"]) > 0.01 + 1e-3 * gf:
            errors.append(f"batch {b}: sgemm_gflops {s['sgemm_gflops']} but limit x flops = {gf:.3f}")
        want_pairs = r["rounds"] * (r["samples"] // b)
        if s["pairs"] != want_pairs:
            errors.append(f"batch {b}: {s['pairs']} pairs, expected {want_pairs}")
        if not s["engine_over_limit_p25"] <= s["engine_over_limit"] <= s["engine_over_limit_p75"]:
            errors.append(f"batch {b}: quartiles {s['engine_over_limit_p25']}, "
                          f"{s['engine_over_limit_p75']} do not bracket {s['engine_over_limit']}")
    for e in errors:
        print("check_engine_bench:", e, file=sys.stderr)
    print(f"check_engine_bench: {len(sizes)} batch sizes, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
