#!/usr/bin/python3
"""bls across hosts: 4 namespace hosts x 2 processes (scripts/cluster.sh), launched by mpiexec
through the launcher agent; shared memory within a host, TCP between hosts.

Runs under Debian's /usr/bin/python3 (matplotlib from python3-matplotlib); needs root.

1. The synchronous baseline, understood (bls-bench, no delays, links unshaped): Open MPI as it
   comes (mpi_yield_when_idle 0: 8 processes busy-poll 2 cores, as a hostfile's slots let it
   believe it has a core each), yielding when idle (the harness's default here, what Open MPI
   does by itself when it knows it is oversubscribed), and the tuned component's alltoallv
   algorithms forced (1 basic linear, 2 pairwise); 8 processes on one host over loopback TCP for
   reference.  sync and bls:4 interleaved in each.
2. Delays and shaped links (bls-bench, 8 KiB per peer, 2 ms work): no delay and exp delays of
   2 ms, on links unshaped, shaped to 1 Gbit/s, and jittering (seeded schedule: every 50 ms each
   host's link is at 100 Mbit/s with probability 0.2, else 1 Gbit/s; the token bucket queues
   200 ms, and, as a second case, 20 ms, where lag's extra bytes in flight overflow it).  Next to each, bls-sim's
   network model on the same delay trace and, under jitter, the logged schedule: what an ideal
   schedule of this work and these links would give.
3. bls-dlrm across the hosts, offline and server, sync vs bls:4 vs bls:auto:8, unshaped and
   jittering (the 20 ms queue): predictions identical to one process's.
4. The PyTorch driver across the hosts, gloo vs bls (--lag 4), MASTER_ADDR on host 0, unshaped
   and jittering (the 20 ms queue): predictions identical.

Writes OUT/cluster.json and OUT/cluster.md.

Usage: /usr/bin/python3 bench/cluster.py [--build build] [--hosts 4] [--slots 2]
         [--iters 400] [--rounds 2] [--out bench/out/cluster] [--only baseline,shaped,dlrm,torch]
"""
import argparse
import filecmp
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "scripts/cluster.sh")
JITTER = ["--seed", "1", "--rate", "1gbit", "--slow-rate", "100mbit", "--period-ms", "50",
          "--slow-share", "0.2", "--queue-ms", "200"]
# The applications run on the harder links: the same schedule with the queue at 20 ms.
APP_JITTER = JITTER + ["--queue-ms", "20"]


def sh(cmd, env=None, check=True):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(cmd, capture_output=True, text=True, env=e)
    if check and r.returncode != 0:
        sys.exit(f"cluster.py: {' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r.stdout


def bench(a, np_, args, env=None, local=False):
    out = os.path.join(a.out, "bench.json")
    tool = os.path.join(a.build, "bench/bls-bench")
    cmd = ["-np", str(np_), tool, "--quiet", "--json", out] + args
    if local:
        sh(["mpiexec.openmpi", "--allow-run-as-root", "--oversubscribe", "--mca", "btl", "self,tcp"] + cmd, env)
    else:
        sh([CLUSTER, "mpirun"] + cmd, env)
    d = json.load(open(out))
    return {m["mode"]: {"ms": m["ms_per_iter"], "speedup": m["speedup_vs_sync"], "eff": m["efficiency"],
                        "cpu_us": m["cpu_us_per_iter"], "p99": m["iter_ms_p99"]} for m in d["modes"]}


def sim(a, P, delay, work, iters, bytes_, schedule=None):
    out = os.path.join(a.out, "sim.json")
    cmd = [os.path.join(a.build, "tools/bls-sim"), "--procs", str(P), "--iters", str(iters),
           "--lags", "4,inf", "--work-us", str(work), "--delay", delay, "--hosts", str(a.hosts),
           "--net-bytes", str(bytes_), "--quiet", "--json", out]
    if schedule:
        cmd += ["--net-schedule", schedule]
    if bytes_:  # the links' tbf (cluster.sh shape and jitter): a 64 KiB bucket
        cmd += ["--net-burst", "65536"]
    sh(cmd)
    r = json.load(open(out))["rows"][0]
    return {"sync_ms": r["sync_ms"], "bls4": r["speedup"][0], "inf": r["speedup"][1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default="bench/out/cluster")
    ap.add_argument("--only", default="baseline,shaped,dlrm,torch")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("cluster.py: needs root (network namespaces)")
    a.out = os.path.abspath(a.out)
    os.makedirs(a.out, exist_ok=True)
    parts = a.only.split(",")
    P = a.hosts * a.slots
    sh([CLUSTER, "up", str(a.hosts), "--slots", str(a.slots)])
    res, md = {"hosts": a.hosts, "slots": a.slots}, []
    try:
        if "baseline" in parts:
            base = ["--modes", "sync,bls:4", "--bytes", "65536", "--work-us", "1000", "--delay", "none",
                    "--iters", str(a.iters), "--rounds", str(a.rounds)]
            variants = [
                ("Open MPI as it comes (no yield)", {"OMPI_MCA_mpi_yield_when_idle": "0"}, False),
                ("yield when idle (cluster.sh default)", {}, False),
                ("+ alltoallv basic linear", {"OMPI_MCA_coll_tuned_use_dynamic_rules": "1",
                                              "OMPI_MCA_coll_tuned_alltoallv_algorithm": "1"}, False),
                ("+ alltoallv pairwise", {"OMPI_MCA_coll_tuned_use_dynamic_rules": "1",
                                          "OMPI_MCA_coll_tuned_alltoallv_algorithm": "2"}, False),
                (f"one host, {P} processes, loopback TCP", {}, True),
            ]
            md += ["| baseline (64 KiB, 1 ms, no delay) | sync ms/it | sync cpu us/it | bls:4 ms/it | "
                   "bls:4 / sync |", "|" + " --- |" * 5]
            res["baseline"] = []
            for name, env, local in variants:
                m = bench(a, P, base, env, local)
                res["baseline"].append({"variant": name, "env": env, "modes": m})
                md.append(f"| {name} | {m['sync']['ms']:.2f} | {m['sync']['cpu_us']:.0f} | "
                          f"{m['bls:4']['ms']:.2f} | {m['bls:4']['speedup']:.3f} |")
                print(md[-1], flush=True)
        if "shaped" in parts:
            md += ["", "| delay | links | sync ms/it | bls:4 ms/it | bls:4 / sync | model sync ms/it | "
                   "model bls:4 / sync | model unlimited | bls:4 eff vs model |", "|" + " --- |" * 9]
            res["shaped"] = []
            work, nbytes = 2000, 8192
            for delay in ["none", "exp:2000"]:
                for links in ["unshaped", "1gbit", "jitter", "jitter, 20 ms queue"]:
                    sh([CLUSTER, "unshape", "all"])
                    log = None
                    if links == "1gbit":
                        sh([CLUSTER, "shape", "all", "1gbit"])
                    if links.startswith("jitter"):
                        log = os.path.join(a.out, f"jitter_{delay.replace(':', '_')}_{len(links)}.log")
                        sh([CLUSTER, "jitter"] + JITTER + ["--log", log] +
                           (["--queue-ms", "20"] if "20 ms" in links else []))
                    m = bench(a, P, ["--modes", "sync,bls:4", "--bytes", str(nbytes), "--work-us", str(work),
                                     "--delay", delay, "--iters", str(a.iters), "--rounds", str(a.rounds)])
                    if links.startswith("jitter"):
                        sh([CLUSTER, "jitter", "stop"])
                    s = sim(a, P, delay, work, a.iters * a.rounds, nbytes, log) if links != "unshaped" else \
                        sim(a, P, delay, work, a.iters * a.rounds, 0)
                    # bls:4's time against the model's for bls:4 (the model's sync time / its speedup)
                    eff = (s["sync_ms"] / s["bls4"]) / m["bls:4"]["ms"]
                    res["shaped"].append({"delay": delay, "links": links, "modes": m, "model": s})
                    md.append(f"| {delay} | {links} | {m['sync']['ms']:.2f} | {m['bls:4']['ms']:.2f} | "
                              f"{m['bls:4']['speedup']:.3f} | {s['sync_ms']:.2f} | {s['bls4']:.3f} | "
                              f"{s['inf']:.3f} | {eff:.3f} |")
                    print(md[-1], flush=True)
            sh([CLUSTER, "unshape", "all"])
        if "dlrm" in parts:
            dlrm = os.path.join(a.build, "tools/bls-dlrm")
            model = ["--batch-size", "256", "--synthetic-samples", "51200", "--pooling", "2",
                     "--arch-embedding-size", "-".join(["100000"] * 26), "--delay", "exp:5000",
                     "--quiet"]
            ref = os.path.join(a.out, "dlrm_ref.pred")
            sh([dlrm, "--driver", "sync", "--predictions", ref] + model)
            md += ["", "| bls-dlrm, 8 processes on 4 hosts | links | driver | samples/s | speedup | "
                   "server p99 ms | identical to 1 process |", "|" + " --- |" * 7]
            res["dlrm"] = []
            for links in ["unshaped", "jitter"]:
                if links == "jitter":
                    sh([CLUSTER, "jitter"] + APP_JITTER + ["--log", os.path.join(a.out, "jitter_dlrm.log")])
                pred, js = os.path.join(a.out, f"dlrm_{links}.pred"), os.path.join(a.out, f"dlrm_{links}.json")
                sh([CLUSTER, "mpirun", "-np", str(P), dlrm, "--driver", "sync,bls:4,bls:auto",
                    "--scenario", "offline,server", "--load", "0.9", "--queries", "200",
                    "--predictions", pred, "--json", js] + model)
                if links == "jitter":
                    sh([CLUSTER, "jitter", "stop"])
                same = filecmp.cmp(ref, pred, shallow=False)
                d = json.load(open(js))
                res["dlrm"].append({"links": links, "identical_to_one_process": same, "json": js})
                srv = {x["name"]: x["latency_ms"]["p99"] for x in d["server"]["drivers"]}
                for x in d["drivers"]:
                    p99 = srv[x["name"]]
                    md.append(f"| | {links} | {x['name']} | {x['samples_per_s']:.0f} | {x['speedup']:.3f} | "
                              f"{p99:.1f} | {'yes' if same and x['identical'] else 'NO'} |")
                    print(md[-1], flush=True)
        if "torch" in parts:
            md += ["", "| PyTorch driver, 8 processes on 4 hosts | links | samples/s | speedup | "
                   "predictions = gloo's unshaped |", "|" + " --- |" * 5]
            res["torch"] = []
            # gloo finds its address from the hostname, which no DNS knows here: name the device.
            env = {"MASTER_ADDR": "10.231.0.11", "MASTER_PORT": "29517", "GLOO_SOCKET_IFNAME": "eth0",
                   "PYTHONPATH": os.path.abspath(os.path.join(a.build, "python"))}
            args = ["--arch-embedding-size", "-".join(["100000"] * 26), "--synthetic-samples", "25600",
                    "--batch-size", "256", "--pooling", "2", "--delay", "exp:5000", "--quiet"]
            ref = None
            for links in ["unshaped", "jitter"]:
                if links == "jitter":
                    sh([CLUSTER, "jitter"] + APP_JITTER + ["--log", os.path.join(a.out, "jitter_torch.log")])
                gloo_sps = None
                for be, extra in [("gloo", []), ("bls", ["--lag", "4"])]:
                    pred = os.path.join(a.out, f"torch_{be}_{links}.pred")
                    js = os.path.join(a.out, f"torch_{be}_{links}.json")
                    sh([CLUSTER, "mpirun", "-np", str(P), "-x", "MASTER_ADDR", "-x", "MASTER_PORT", "-x", "PYTHONPATH",
                        "-x", "GLOO_SOCKET_IFNAME", "/usr/bin/python3", os.path.join(ROOT, "torch_bls/dlrm_infer.py"),
                        "--dist-backend", be, "--predictions", pred, "--json", js] + extra + args, env)
                    ref = ref or pred
                    same = filecmp.cmp(ref, pred, shallow=False)
                    d = json.load(open(js))
                    sps = d.get("samples_per_s") or d.get("offline", {}).get("samples_per_s", float("nan"))
                    gloo_sps = gloo_sps or sps
                    res["torch"].append({"backend": be, "links": links, "json": js, "identical": same})
                    md.append(f"| {be}{' --lag 4' if extra else ''} | {links} | {sps:.0f} | {sps / gloo_sps:.3f} | "
                              f"{'yes' if same else 'DIFFER'} |")
                    print(md[-1], flush=True)
                if links == "jitter":
                    sh([CLUSTER, "jitter", "stop"])
    finally:
        sh([CLUSTER, "down"], check=False)
    json.dump(res, open(os.path.join(a.out, "cluster.json"), "w"), indent=1)
    open(os.path.join(a.out, "cluster.md"), "w").write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
