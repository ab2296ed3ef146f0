#!/usr/bin/python3
"""Plots one bls-dlrm --json result, a panel per part the run had:
  offline   ms per batch per driver (slowest process), the ideal model's time for each driver's
            measured work, and the speedup over the first driver;
  server    each driver's latency as a client sees it (arrival to last prediction): p50, p99
            and p99.9 bars, the ideal model's p99, and the p99 bound; VALID or not;
  peak      (--find-peak) each driver's highest rate with p99 within the bound, and its ratio
            to the first driver's;
  run-ahead (bls:auto drivers) the run-ahead the adaptive lag chose per batch or query, the
            mean over the processes, against its MAX.

Runs under Debian's /usr/bin/python3 (matplotlib from python3-matplotlib), not a PATH python.
Usage: /usr/bin/python3 bench/plot_dlrm.py RESULT.json OUT.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

GREY, BLUE, ORANGE, RED = "#888888", "#2a7ab9", "#e08030", "#c03030"


def offline_panel(ax, r):
    drv = r["drivers"]
    names = [d["name"] for d in drv]
    ms = [d["ms_per_batch"] for d in drv]
    ideal = [1e3 * d["ideal_s"] / r["batches"] for d in drv]
    x = range(len(drv))
    ax.bar(x, ms, color=[GREY] + [BLUE] * (len(drv) - 1), label="measured")
    ax.scatter(x, ideal, color="black", marker="_", s=600, label="ideal model (same work)", zorder=3)
    for i, d in enumerate(drv):
        ax.text(i, ms[i], f"{d['speedup']:.2f}x", ha="center", va="bottom")
    ax.set_xticks(list(x), names)
    ax.set_ylabel("ms per batch (slowest process)")
    ax.set_title(f"offline: time per batch; label: speedup over {names[0]}", fontsize=10)
    ax.legend(loc="lower left")


def server_panel(ax, s):
    drv = s["drivers"]
    names = [d["name"] for d in drv]
    x = list(range(len(drv)))
    w = 0.27
    for j, (key, color) in enumerate((("p50", BLUE), ("p99", ORANGE), ("p99.9", GREY))):
        ax.bar([i + (j - 1) * w for i in x], [d["latency_ms"][key] for d in drv], width=w,
               label=key, color=color)
    ax.scatter([i + 0 * w for i in x], [d["ideal_latency_ms"]["p99"] for d in drv], color="black",
               marker="_", s=300, label="ideal p99 (same work)", zorder=3)
    ax.axhline(s["latency_bound_ms"], color=RED, ls="--", lw=1, label=f"bound {s['latency_bound_ms']:.0f} ms")
    for i, d in enumerate(drv):
        ax.text(i, d["latency_ms"]["p99"], "VALID" if d["valid"] else "over", ha="center", va="bottom",
                fontsize=8, color="black" if d["valid"] else RED)
    ax.set_xticks(x, names)
    ax.set_ylabel("latency, ms (arrival to last prediction)")
    load = f" ({s['load']:.2f} x {drv[0]['name']}'s offline rate)" if s.get("load") else ""
    ax.set_title(f"server: {drv[0]['queries']} Poisson queries at {s['qps']:.1f}/s{load}", fontsize=10)
    ax.legend(fontsize=8)


def peak_panel(ax, s):
    drv = s["peak"]["drivers"]
    names = [d["name"] for d in drv]
    peak = [d["peak_qps"] for d in drv]
    x = range(len(drv))
    ax.bar(x, peak, color=[GREY] + [BLUE] * (len(drv) - 1))
    for i, q in enumerate(peak):
        ratio = f"{q / peak[0]:.2f}x" if peak[0] > 0 else ""
        ax.text(i, q, f"{q:.0f}/s {ratio}", ha="center", va="bottom")
    ax.set_xticks(list(x), names)
    ax.set_ylabel("queries/s with p99 within the bound")
    ax.set_title(f"peak: highest rate with p99 <= {s['latency_bound_ms']:.0f} ms", fontsize=10)


def auto_runs(r):
    """(label, per-batch mean run-ahead, MAX) of every bls:auto run, offline and server."""
    runs = []
    for part, where in ((r, "offline"), (r.get("server") or {}, "server")):
        for d in part.get("drivers", []):
            if d.get("auto_lag"):
                runs.append((f"{d['name']} {where}", d["run_ahead"]["per_batch_mean"], d["lag"]))
    return runs


def run_ahead_panel(ax, r):
    colors = [BLUE, ORANGE, RED, GREY]
    for i, (label, seq, top) in enumerate(auto_runs(r)):
        ax.plot(range(len(seq)), seq, color=colors[i % len(colors)], lw=1, label=label)
        ax.axhline(top, color=colors[i % len(colors)], ls=":", lw=1)
    ax.set_xlabel("batch (offline) or query (server), the last round")
    ax.set_ylabel("run-ahead chosen, mean over processes")
    ax.set_title("bls:auto: how far each batch could run ahead (dotted: MAX)", fontsize=10)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)


def main():
    if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) == 2 else 2)
    with open(sys.argv[1]) as f:
        r = json.load(f)
    s = r.get("server") or {}
    panels = [(offline_panel, r)] if r.get("drivers") else []
    if s.get("drivers"):
        panels.append((server_panel, s))
    if s.get("peak"):
        panels.append((peak_panel, s))
    if auto_runs(r):
        panels.append((run_ahead_panel, r))
    if not panels:
        sys.exit(f"plot_dlrm.py: {sys.argv[1]} holds no offline drivers, server runs or peak search")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, (draw, part) in zip(axes[0], panels):
        draw(ax, part)
    c = r["config"]
    same = [d["identical"] for d in r.get("drivers", []) + s.get("drivers", [])]
    auc = f", AUC {r['auc']:.6f}" if r.get("auc") is not None else ""
    fig.suptitle(f"bls-dlrm, {r['processes']} processes, batch {c['batch_size']}, delay {c['delay']}{auc} "
                 f"({'identical' if all(same) else 'DIFFERENT'} predictions in every driver)", fontsize=10)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)
    print(f"wrote {sys.argv[2]}")


if __name__ == "__main__":
    main()
