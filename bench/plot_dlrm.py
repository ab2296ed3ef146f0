#!/usr/bin/python3
"""Plots one bls-dlrm --json result: ms per batch and samples/s per driver, with the ideal
model's time for each driver's measured work, and the speedup over the first driver.

Runs under Debian's /usr/bin/python3 (matplotlib from python3-matplotlib), not a PATH python.
Usage: /usr/bin/python3 bench/plot_dlrm.py RESULT.json OUT.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) == 2 else 2)
    with open(sys.argv[1]) as f:
        r = json.load(f)
    drv = r["drivers"]
    names = [d["name"] for d in drv]
    ms = [d["ms_per_batch"] for d in drv]
    ideal = [1e3 * d["ideal_s"] / r["batches"] for d in drv]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    x = range(len(drv))
    a.bar(x, ms, color=["#888888"] + ["#2a7ab9"] * (len(drv) - 1), label="measured")
    a.scatter(x, ideal, color="black", marker="_", s=600, label="ideal model (same work)", zorder=3)
    for i, d in enumerate(drv):
        a.text(i, ms[i], f"{d['speedup']:.2f}x", ha="center", va="bottom")
    a.set_xticks(list(x), names)
    a.set_ylabel("ms per batch (slowest process)")
    a.set_title("time per batch; label: speedup over " + names[0])
    a.legend(loc="lower left")
    b.bar(x, [d["latency_ms_p50"] for d in drv], width=0.4, label="p50", color="#2a7ab9")
    b.bar([i + 0.4 for i in x], [d["latency_ms_p99"] for d in drv], width=0.4, label="p99",
          color="#e08030")
    b.set_xticks([i + 0.2 for i in x], names)
    b.set_ylabel("batch latency, ms")
    b.set_title("latency (start of a batch to its predictions)")
    b.legend()
    c = r["config"]
    ident = all(d["identical"] for d in drv)
    fig.suptitle(f"bls-dlrm, {r['processes']} processes, batch {c['batch_size']}, delay "
                 f"{c['delay']}, AUC {r['auc']:.6f} ({'identical' if ident else 'DIFFERENT'} "
                 f"predictions in every driver)", fontsize=10)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)
    print(f"wrote {sys.argv[2]}")


if __name__ == "__main__":
    main()
