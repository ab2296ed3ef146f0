#!/usr/bin/python3
"""Checks a bls-bench --json file: every field present and sane (no timing assertion).

Usage: check_bench_json.py FILE MODE [MODE ...]   (stdlib only; Debian's /usr/bin/python3)
"""
import json
import sys

FIELDS = ["mode", "lag", "time_s", "ms_per_iter", "speedup_vs_sync", "ideal_s", "efficiency",
          "bound", "iter_ms_p50", "iter_ms_p99", "iter_ms_max", "wait_s", "cpu_us_per_iter",
          "iters_per_s", "bytes_per_s", "progress_thread_cpu_us_per_iter", "iter_ms_percentiles",
          "copy_peers"]


def main():
    path, modes = sys.argv[1], sys.argv[2:]
    with open(path) as f:
        doc = json.load(f)
    failures = []
    passed = 0

    def check(cond, what):
        nonlocal passed
        if cond:
            passed += 1
        else:
            failures.append(what)

    check(doc.get("tool") == "bls-bench", "tool name")
    check(doc.get("peak_rss_kib_max_rank", 0) > 0, "peak memory reported")
    nprocs = doc.get("config", {}).get("processes", -1)
    per_rank = doc.get("peak_rss_kib_per_rank", [])
    check(len(per_rank) == nprocs and all(x > 0 for x in per_rank), "peak memory per rank")
    check(max(per_rank or [0]) == doc.get("peak_rss_kib_max_rank"), "max of the per-rank peaks")
    for key in ["processes", "iters", "rounds", "bytes", "work_us", "delay", "seed"]:
        check(key in doc.get("config", {}), f"config.{key} present")
    got = [m["mode"] for m in doc["modes"]]
    check(got == modes, f"modes {got} == {modes}")
    for m in doc["modes"]:
        for key in FIELDS:
            check(key in m, f"{m.get('mode')}: {key} present")
        check(0 < m["efficiency"] <= 1.05, f"{m['mode']}: efficiency {m['efficiency']} in (0, 1.05]")
        check(m["time_s"] > 0 and m["ideal_s"] > 0, f"{m['mode']}: positive times")
        check(m["bound"] >= 1 - 1e-9, f"{m['mode']}: bound {m['bound']} >= 1")
        check(m["iter_ms_p50"] <= m["iter_ms_p99"] <= m["iter_ms_max"], f"{m['mode']}: percentiles ordered")
        if ":" in m["mode"]:
            check(m["lag"] == int(m["mode"].split(":")[1]), f"{m['mode']}: lag field")
        check(len(m["iter_ms_percentiles"]) == 101, f"{m['mode']}: 101 percentiles")
        cpu = m.get("cpu_s_per_rank", [])
        check(len(cpu) == nprocs and all(x >= 0 for x in cpu), f"{m['mode']}: CPU per rank")
        check(m["iters_per_s"] > 0 and m["bytes_per_s"] >= 0, f"{m['mode']}: throughput")
        if m["mode"].startswith("bls:"):
            check(m["progress_thread_cpu_us_per_iter"] > 0, f"{m['mode']}: progress thread CPU measured")
            # every process runs on this host: the probe finds all of its peers or none
            check(m["copy_peers"] in (0, nprocs - 1), f"{m['mode']}: copy_peers {m['copy_peers']} all or none")
        else:
            check(m["copy_peers"] == 0, f"{m['mode']}: copy_peers {m['copy_peers']} == 0 (BLS mode only)")
    for f in failures:
        print("FAIL", f)
    print(f"check_bench_json: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
