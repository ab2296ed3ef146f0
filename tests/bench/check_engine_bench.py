#!/usr/bin/python3
"""Checks bls-engine-bench's JSON: the MLPs' flops per sample as counted by hand for the test's
model; one entry per batch size asked for, in order; every rate positive; the GFLOP/s figure
equal to the limit's samples/s times those flops; the pair count rounds x samples / batch; the
ratio's quartiles ordered around the median; with --layers, one entry per GEMM layer (IN-OUT,
comma-separated) and batch size, in order, each with positive rates and ordered quartiles; the
kernel one of the engine's.

Usage: check_engine_bench.py FILE FLOPS LAYERS BATCH...
"""
import json
import sys


def main():
    path, want_flops = sys.argv[1], int(sys.argv[2])
    layers = [tuple(int(w) for w in l.split("-")) for l in sys.argv[3].split(",")]
    batches = [int(b) for b in sys.argv[4:]]
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
    got = [(e["in"], e["out"], e["batch"]) for e in r.get("layers", [])]
    want = [(i, o, b) for i, o in layers for b in batches]
    if got != want:
        errors.append(f"layers {got}, expected {want}")
    for e in r.get("layers", []):
        if not (e["engine_gflops"] > 0 and e["sgemm_gflops"] > 0 and
                e["engine_over_sgemm_p25"] <= e["engine_over_sgemm"] <= e["engine_over_sgemm_p75"]):
            errors.append(f"layer {e}: a rate is not positive or the quartiles are out of order")
    if r.get("kernel") not in ("avx512", "avx2", "generic"):
        errors.append(f"kernel {r.get('kernel')!r}")
    for e in errors:
        print("check_engine_bench:", e, file=sys.stderr)
    print(f"check_engine_bench: {len(sizes)} batch sizes, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
