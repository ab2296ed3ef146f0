#!/usr/bin/python3
"""DLRM inference in PyTorch across processes, synchronous (gloo) or bounded-lag (bls).

Tables are model-parallel (the reference's contiguous blocks), MLPs data-parallel (process q
takes its slice of every batch), and one all_to_all_single per batch moves the pooled vectors,
as in the reference's distributed forward.

  --dist-backend gloo   the reference's synchronous pattern: each batch's all_to_all_single
                        is waited for at once, and the predictions are all_gathered per batch.
  --dist-backend bls    up to L+1 all_to_all_single calls in flight (L = --lag); a batch is
                        consumed (interaction, top MLP) as soon as its call completed, and at
                        the latest when L+1 are in flight; predictions are gathered once, at
                        the end.  Results are bit-identical for every L.  --lag auto[:MAX]:
                        each process picks L per batch, at most MAX, with bls-dlrm's policy
                        (torch_bls.LagPolicy); each block then carries two more floats, the
                        sender's work and post time, which the policy learns from.

Scenarios, as bls-dlrm's (README, "Serving"):
  --scenario offline    a closed loop: each process starts the next batch as soon as it may.
  --scenario server     an open loop: query k of a seeded Poisson schedule (--qps, --queries,
                        --query-size, --schedule-seed: bit for bit bls-dlrm's schedule) is one
                        batch, and no process starts it before its arrival; its latency runs
                        from its arrival to its last prediction on the slowest process.

Launch with mpirun (Open MPI: add --allow-run-as-root --oversubscribe as root):
  mpirun -np 4 /usr/bin/python3 torch_bls/dlrm_infer.py --dist-backend bls --lag 4 --delay exp:5000
  mpirun -np 4 bls-dlrm-torch --dist-backend bls ...          (installed: the same driver)
Runs under Debian's /usr/bin/python3 (python3-torch).  From a source tree it finds the torch_bls
package in build/python when PYTHONPATH does not name it; installed, it is a module of it
(python3 -m torch_bls.dlrm_infer).

Output: offline, one line with ms/batch, samples/s, time waiting in the collective, CPU per
batch (mean per process, every thread; of it the bls progress threads'), and the ideal model
(project docs, bls-semantics) on the measured work trace: T_ideal(L), efficiency =
T_ideal(L) / measured, bound = T_ideal(0) / T_ideal(L); accuracy, ROC AUC and log loss.
Server: scheduled and completed queries/s, latency percentiles, the open-loop ideal model's
p99, VALID (p99 within --latency-bound and the completed rate at least 0.95 of the scheduled).
--json writes all of it; --predictions writes 'probability label' per sample (the C engine's
format; the offline run's when both scenarios run).
"""
import argparse
import collections
import datetime
import json
import math
import os
import random
import sys
import time

# This script's folder holds the package's sources (without the built extension): import the
# built package from PYTHONPATH, else from build/python of this checkout.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]
try:
    import torch_bls  # noqa: F401
except ImportError:
    sys.modules.pop("torch_bls", None)
    sys.path.append(os.path.join(os.path.dirname(_here), "build", "python"))
    import torch_bls  # noqa: F401

import torch
import torch.distributed as dist

sys.path.insert(0, _here)  # the model code beside this script, out of the backend package
from dlrm_model import (Model, criteo_batches, exchange_splits, parse_dims, slice_lo,  # noqa: E402
                        slice_rows, synthetic_batch, table_split)
from dlrm_serving import QuerySizes, Schedule, agree_start, clock_sync, server_figures, share_schedule  # noqa: E402

KEEP_UP = 0.95  # a valid server run completes at least this share of the scheduled rate
AUTO_MAX = 8    # --lag auto's bound, bls-dlrm's HARNESS_AUTO_LAG_MAX
MAX_LAG = 4096  # libbls's BLS_MAX_LAG


class PeerFailed(Exception):
    """Another process reported the error; this one ends quietly with a failure status."""


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"dlrm_infer (bls) {torch_bls.__version__}")
    m = ap.add_argument_group("model (the reference's options)")
    m.add_argument("--arch-mlp-bot", default="13-512-256-64-16", help="bottom MLP widths (default %(default)s)")
    m.add_argument("--arch-mlp-top", default="512-256-1", help="top MLP widths after the interaction (default %(default)s)")
    m.add_argument("--arch-embedding-size", default="-".join(["100000"] * 26), help="rows per table (default 26 x 100000)")
    m.add_argument("--arch-sparse-feature-size", type=int, default=16, help="embedding dimension d (default 16)")
    m.add_argument("--arch-interaction-op", default="dot", choices=["dot", "cat"])
    m.add_argument("--arch-interaction-itself", action="store_true", help="keep Z[i][i] in the dot interaction")
    m.add_argument("--weights", help="safetensors file with the reference's state_dict names (default: random weights)")
    m.add_argument("--seed", type=int, default=1, help="seed of the random weights (default 1)")
    d = ap.add_argument_group("data (default: synthetic)")
    d.add_argument("--data", help="Criteo Kaggle train.txt format file (streamed by every process)")
    d.add_argument("--synthetic-samples", type=int, default=65536, help="synthetic samples (default 65536)")
    d.add_argument("--data-seed", type=int, default=7, help="seed of the synthetic stream (default 7)")
    d.add_argument("--pooling", type=int, default=1, help="synthetic indices per bag (default 1)")
    r = ap.add_argument_group("distribution and run")
    r.add_argument("--dist-backend", default="bls", choices=["bls", "gloo"], help="default bls")
    r.add_argument("--lag", default="4", help="bls: calls in flight are at most L+1 (default 4); auto[:MAX]: "
                   "each process picks its run-ahead per batch, at most MAX (default 8), with bls-dlrm's "
                   "policy (bls:auto)")
    r.add_argument("--batch-size", type=int, default=128, help="global samples per batch (default 128)")
    r.add_argument("--max-batches", type=int, default=0, help="stop after N batches (default: all data)")
    r.add_argument("--delay", default="none", help="per-process, per-batch delay: none | exp:MEAN_US (default none)")
    r.add_argument("--delay-seed", type=int, default=1, help="seed of the delay trace (default 1)")
    r.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    r.add_argument("--timeout", type=float, default=120, help="seconds a collective may take (default 120)")
    r.add_argument("--predictions", help="write 'probability label' per sample, in input order")
    r.add_argument("--json", help="write the figures and the configuration as JSON")
    r.add_argument("--quiet", action="store_true", help="no progress lines")
    s = ap.add_argument_group("serving (bls-dlrm's options and schedule)")
    s.add_argument("--scenario", default="offline", choices=["offline", "server", "offline,server"],
                   help="offline (closed loop, the default), server (queries on a schedule), or both in turn")
    s.add_argument("--qps", type=float, help="server: Poisson arrivals at QPS queries per second")
    s.add_argument("--load", type=float, help="server: the rate as F times the offline queries/s (measured by "
                   "the offline scenario when it runs, else by a closed-loop calibration of 50 batches)")
    s.add_argument("--queries", type=int, default=1000, help="server: queries per run (default 1000)")
    s.add_argument("--query-size", help="server: samples per query, one batch: fixed:N, uniform:A:B or "
                   "lognormal:MEAN:SIGMA, clamped to [processes, --batch-size] (default fixed:--batch-size)")
    s.add_argument("--schedule-seed", type=int, default=1, help="seed of arrivals and sizes (default 1)")
    s.add_argument("--schedule-out", help="write the schedule ('query arrival_s size' per line)")
    s.add_argument("--latency-bound", type=float, help="server: VALID needs p99 within MS (default 60)")
    s.add_argument("--latency-out", help="write every query's 'driver round query arrival_ms size "
                   "latency_ms queue_ms ideal_ms' (bls-dlrm's format)")
    a = ap.parse_args(argv)
    try:
        a.lag, a.lag_auto = parse_lag(a.lag)
    except ValueError as e:
        ap.error(str(e))
    if a.batch_size <= 0 or a.pooling <= 0 or a.synthetic_samples <= 0 or a.threads <= 0:
        ap.error("--batch-size, --pooling, --synthetic-samples and --threads must be positive")
    if a.delay != "none":
        kind, _, mean = a.delay.partition(":")
        if kind != "exp" or not mean.replace(".", "", 1).isdigit():
            ap.error(f"--delay {a.delay}: expected none or exp:MEAN_US")
        a.delay_mean_s = float(mean) * 1e-6
    else:
        a.delay_mean_s = 0.0
    try:
        a.bot, a.top = parse_dims(a.arch_mlp_bot, "--arch-mlp-bot"), parse_dims(a.arch_mlp_top, "--arch-mlp-top")
        a.rows = parse_dims(a.arch_embedding_size, "--arch-embedding-size")
        check_serving(a)
    except ValueError as e:
        ap.error(str(e))
    return a


def parse_lag(v):
    """--lag L or auto[:MAX] -> (L or MAX, auto?)."""
    auto = v == "auto" or v.startswith("auto:")
    text = (v[5:] if v != "auto" else str(AUTO_MAX)) if auto else v
    if not text.isdigit() or int(text) > MAX_LAG:
        raise ValueError(f"--lag {v}: expected L or auto[:MAX], integers 0 .. {MAX_LAG}")
    return int(text), auto


def check_serving(a):
    """The serving options together, with bls-dlrm's rules and messages."""
    a.offline, a.server = "offline" in a.scenario, "server" in a.scenario
    if a.qps is not None and not (a.qps > 0 and math.isfinite(a.qps)):
        raise ValueError(f"--qps {a.qps:g}: expected a rate > 0")
    if a.load is not None and not (a.load > 0 and math.isfinite(a.load)):
        raise ValueError(f"--load {a.load:g}: expected a fraction > 0")
    if a.latency_bound is not None and not (a.latency_bound > 0 and math.isfinite(a.latency_bound)):
        raise ValueError(f"--latency-bound {a.latency_bound:g}: expected milliseconds > 0")
    if a.queries < 1:
        raise ValueError(f"--queries {a.queries}: expected at least 1")
    if not a.server:
        if a.latency_bound is not None:
            raise ValueError("--latency-bound applies to --scenario server")
        if any(x is not None for x in (a.qps, a.load, a.query_size, a.schedule_out, a.latency_out)):
            raise ValueError("--qps, --load, --query-size, --schedule-out and --latency-out apply to "
                             "--scenario server")
        return
    if a.qps is not None and a.load is not None:
        raise ValueError("--qps and --load both set the rate: give one")
    if a.qps is None and a.load is None:
        raise ValueError("--scenario server needs a rate: --qps Q, or --load F (a fraction of the "
                         "offline rate)")
    a.sizes = QuerySizes(a.query_size or f"fixed:{a.batch_size}")
    largest = a.sizes.largest()
    if largest is not None and largest > a.batch_size:
        raise ValueError(f"--query-size {a.query_size} asks for more than --batch-size {a.batch_size} samples")
    a.bound_s = 1e-3 * (a.latency_bound or 60.0)


def batches(a, mine, log):
    limit = a.max_batches or None
    if a.data:
        for k, b in enumerate(criteo_batches(a.data, a.rows, a.batch_size, log)):
            if limit is not None and k >= limit:
                return
            yield b
        return
    n = (a.synthetic_samples + a.batch_size - 1) // a.batch_size
    for k in range(n if limit is None else min(n, limit)):
        size = min(a.batch_size, a.synthetic_samples - k * a.batch_size)
        yield synthetic_batch(k, size, a.rows, a.pooling, a.data_seed, mine)


def metrics(pred, labels):
    """Accuracy (rounded at 0.5), ROC AUC and log loss, as the C engine's dlrm_metrics defines
    them (engine/include/dlrm.h): predictions clipped to [1e-15, 1 - 1e-15] for the log loss."""
    n = len(pred)
    acc = sum((p >= 0.5) == (y >= 0.5) for p, y in zip(pred, labels)) / n
    eps = 1e-15
    ll = -sum(y * math.log(min(max(p, eps), 1 - eps)) + (1 - y) * math.log(1 - min(max(p, eps), 1 - eps))
              for p, y in zip(pred, labels)) / n
    try:
        from sklearn.metrics import roc_auc_score
        auc = float(roc_auc_score(labels, pred)) if 0 < sum(labels) < n else None
    except ImportError:
        auc = None
    return acc, auc, ll


def setup(a):
    """The process group and this process's part of the model; every process agrees on whether
    the model loaded before going on."""
    torch.set_num_threads(a.threads)
    if a.dist_backend == "bls":
        torch_bls.set_lag(a.lag)
    dist.init_process_group(a.dist_backend, timeout=datetime.timedelta(seconds=a.timeout))
    r, P = dist.get_rank(), dist.get_world_size()
    if len(a.rows) < P:
        raise ValueError(f"{len(a.rows)} tables for {P} processes: every process needs a table")
    owners = table_split(len(a.rows), P)
    model = Model(a.bot, a.top, a.rows, a.arch_sparse_feature_size, a.arch_interaction_op,
                  a.arch_interaction_itself, tables=owners[r])
    # Every process reads only its own tables, so only some may fail: agree before going on
    # (one that went ahead alone would wait in the first collective until the timeout).
    error = None
    try:
        if a.weights:
            model.load(a.weights)
        else:
            model.init_random(a.seed)
    except (ValueError, OSError) as e:
        error = str(e)
    failed = torch.tensor([1 if error else 0])
    dist.all_reduce(failed)
    if error:
        raise ValueError(error)
    if failed.item():
        raise PeerFailed("another process could not load the model (its message is above)")
    return r, P, owners, model


def usage():
    """This process's CPU seconds (every thread), and on the bls backend its progress threads'
    CPU and standby seconds (torch_bls.stats; zero on gloo, which has no such thread)."""
    s = torch_bls.stats() if dist.get_backend() == "bls" else None
    return (time.process_time(), s["progress_cpu_seconds"] if s else 0.0,
            s["progress_standby_seconds"] if s else 0.0)


def used_since(u0):
    """usage() now minus u0, an earlier usage()."""
    return tuple(b - a for a, b in zip(u0, usage()))


class Pipeline:
    """The loop of one process: produce batch k (pool its tables, bottom MLP of its rows, the
    injected delay), start its all_to_all_single, and consume batches whose exchange completed
    (interaction, top MLP), oldest first; at most L+1 exchanges in flight."""

    def __init__(self, a, r, P, owners, model, L):
        self.a, self.r, self.P, self.owners, self.model, self.L = a, r, P, owners, model, L
        self.d = a.arch_sparse_feature_size
        self.rng = random.Random(a.delay_seed * 7919 + r)
        self.preds, self.labels, self.work, self.pending = {}, {}, {}, collections.deque()
        self.waited, self.samples = 0.0, 0
        self.t0 = None  # server runs: the schedule's start on this process's clock
        self.begun, self.done = {}, {}  # server runs: seconds since the start, process 0's clock
        self.lags = {}  # the run-ahead each batch was produced with
        # --lag auto: the policy, and what it learns from the two floats every process appends
        # to each block it sends (its work on its previous step, the moment it posts).
        self.policy = torch_bls.LagPolicy(P, L) if a.lag_auto and a.dist_backend == "bls" else None
        self.t_ref, self.arrivals = time.monotonic(), None
        self.step_t0 = self.step_w0 = None
        self.step_work, self.seen, self.lastpost, self.peer_work = 0.0, {}, {}, {}
        self.used = (0.0, 0.0, 0.0)  # usage() over the run: CPU, progress CPU, standby

    def choose(self, k):
        """The run-ahead for batch k: the fixed lag, or the policy's choice."""
        self.lags[k] = self.L if self.policy is None else self.policy.choose()
        return self.lags[k]

    def bound(self, L):
        """At most L exchanges in flight before the next one is started."""
        while len(self.pending) > L:
            self.consume(self.pending.popleft())

    def step_begins(self, idle=0.0):
        """A step's work, for the policy: its time minus waiting in the exchange and idling."""
        now = time.perf_counter()
        if self.step_t0 is not None:
            self.step_work = max(0.0, now - self.step_t0 - (self.waited - self.step_w0) - idle)
        self.step_t0, self.step_w0 = now, self.waited

    def learn(self, k, out, out_splits):
        """Batch k's exchange completed: strip the peers' two floats, feed batch k-1."""
        self.seen[k] = time.monotonic() - self.t_ref
        parts = out.split([n + 2 for n in out_splits])
        meta = [p_[-2:].tolist() for p_ in parts]
        self.lastpost[k] = max(m[1] for m in meta)
        if k > 0:
            j = k - 1
            arrival = self.arrivals[j] if self.arrivals is not None else None
            self.policy.observe([m[0] for m in meta], self.seen.pop(j) - self.lastpost.pop(j), arrival)
        return [p_[:-2] for p_ in parts]

    def produce(self, k, batch):
        t0 = time.perf_counter()
        B, r, P, mine = batch.size, self.r, self.P, self.owners[self.r]
        lo, lN = slice_lo(r, P, B), slice_rows(r, P, B)
        self.labels[k] = batch.labels[lo:lo + lN]
        ly_local = torch.cat([self.model.pool(t, *batch.bags[t]) for t in mine], dim=1)
        x = self.model.bottom(batch.dense[lo:lo + lN])
        if self.a.delay_mean_s > 0:
            time.sleep(self.rng.expovariate(1.0 / self.a.delay_mean_s))
        send = ly_local.reshape(-1)
        in_splits, out_splits = exchange_splits(self.owners, r, P, B, self.d)
        out = send.new_empty(sum(out_splits) + (2 * P if self.policy else 0))
        self.work[k] = time.perf_counter() - t0
        if self.policy is not None:  # each block carries this process's two figures
            meta = torch.tensor([self.step_work, time.monotonic() - self.t_ref], dtype=send.dtype)
            send = torch.cat([x for c in send.split(in_splits) for x in (c, meta)])
            in_splits = [n + 2 for n in in_splits]
        t1 = time.perf_counter()
        recv_splits = out_splits if self.policy is None else [n + 2 for n in out_splits]
        w = dist.all_to_all_single(out, send, recv_splits, in_splits, async_op=True)
        self.waited += time.perf_counter() - t1
        self.pending.append((k, w, out, x, out_splits, lN))
        self.samples += B

    def consume(self, entry):
        k, w, out, x, out_splits, lN = entry
        t0 = time.perf_counter()
        w.wait()
        t1 = time.perf_counter()
        self.waited += t1 - t0
        blocks = out.split(out_splits) if self.policy is None else self.learn(k, out, out_splits)
        ly = torch.cat([o.view(lN, -1) for o in blocks], dim=1)
        self.preds[k] = self.model.interact_top(x, ly)  # called inside run()'s no_grad
        self.work[k] += time.perf_counter() - t1
        if self.t0 is not None:
            self.done[k] = time.monotonic() - self.t0

    def gather_predictions(self, k, B):
        """The reference's pattern (gloo): every batch's predictions to every process."""
        t0 = time.perf_counter()
        m = max(slice_rows(q, self.P, B) for q in range(self.P))  # pad to the largest slice
        mine = self.preds[k]
        mine = mine if len(mine) == m else torch.cat([mine, torch.zeros(m - len(mine))])
        full = torch.empty(self.P * m)
        dist.all_gather(list(full.split(m)), mine)
        self.waited += time.perf_counter() - t0

    def run(self, batches, log):
        t_start, self.t_ref = time.perf_counter(), time.monotonic()  # just after a barrier
        u0 = usage()
        with torch.no_grad():
            for k, batch in enumerate(batches):
                self.bound(self.choose(k))
                self.step_begins()
                self.produce(k, batch)
                self.settle()
                if self.a.dist_backend == "gloo":  # the reference's: waited for at once
                    self.bound(0)
                    self.gather_predictions(k, batch.size)
                if not self.a.quiet and self.r == 0 and (k + 1) % 100 == 0:
                    log(f"{k + 1} batches, {self.samples} samples, "
                        f"{self.samples / (time.perf_counter() - t_start):.0f} samples/s")
            while self.pending:
                self.consume(self.pending.popleft())
        elapsed = time.perf_counter() - t_start
        self.used = used_since(u0)
        return elapsed

    def settle(self):
        """Consumes the oldest exchanges that completed."""
        while self.pending and self.pending[0][1].is_completed():
            self.consume(self.pending.popleft())

    def serve(self, sched, queries, t0, log):
        """The open loop: query k (its data read first: a request carries it) starts at its
        arrival, with at most L+1 in flight; completed queries are consumed while waiting."""
        self.t0, self.t_ref, self.arrivals = t0, t0, sched.at
        u0 = usage()
        if self.policy is not None:
            self.policy.bound(self.a.bound_s)
        with torch.no_grad():
            for k, batch in enumerate(queries):
                self.bound(self.choose(k))
                due = t0 + sched.at[k]
                now = time.monotonic()
                idle = 0.0
                while now < due:
                    if self.pending and self.pending[0][1].is_completed():
                        self.consume(self.pending.popleft())
                    else:
                        time.sleep(min(1e-4, due - now))
                        idle += time.monotonic() - now
                    now = time.monotonic()
                self.begun[k] = now - t0
                self.step_begins(idle)
                self.produce(k, batch)
                self.settle()
                if self.a.dist_backend == "gloo":  # the reference's: waited for at once
                    self.bound(0)
                    self.gather_predictions(k, batch.size)
                if not self.a.quiet and self.r == 0 and (k + 1) % 200 == 0:
                    log(f"{k + 1} of {sched.n} queries, {now - t0:.1f} s")
            while self.pending:
                self.consume(self.pending.popleft())
        self.used = used_since(u0)


def gather(mine, P):
    everyone = [None] * P
    dist.all_gather_object(everyone, mine)
    return everyone


def predictions_in_order(everyone, P, K):
    pred, lab = [], []
    for k in range(K):
        for p in range(P):
            pred.extend(everyone[p]["pred"][k].tolist())
            lab.extend(everyone[p]["labels"][k].tolist())
    return pred, lab


def driver_name(a, L):
    if a.dist_backend != "bls":
        return a.dist_backend
    return f"bls:auto:{L}" if a.lag_auto else f"bls:{L}"


def run_ahead(lags):
    """The run-ahead record of every process's batches ([P][K]): bls-dlrm's JSON object."""
    flat = [x for row in lags for x in row]
    hist = [0] * (max(flat) + 1 if flat else 0)
    for x in flat:
        hist[x] += 1
    srt = sorted(flat)
    K = len(lags[0]) if lags else 0
    return {"mean": sum(flat) / len(flat) if flat else 0, "p50": srt[(len(srt) - 1) // 2] if srt else 0,
            "max": srt[-1] if srt else 0, "histogram": hist,
            "per_batch_mean": [sum(row[k] for row in lags) / len(lags) for k in range(K)]}


def run_ahead_line(a, L, ra):
    total = sum(ra["histogram"]) or 1
    shares = " ".join(f"{l}:{100 * n / total:.0f}%" for l, n in enumerate(ra["histogram"]) if n)
    return (f"run-ahead {driver_name(a, L)}: mean {ra['mean']:.2f}, p50 {ra['p50']}, max {ra['max']}; "
            f"share at each: {shares}")


def cpu_figures(everyone, K):
    """CPU per batch, mean per process (every thread, and of it the progress threads'), and
    the progress threads' standby time: bls-dlrm's JSON names."""
    P, K = len(everyone), max(K, 1)
    mean = [sum(e["used"][i] for e in everyone) / P for i in range(3)]
    return {"cpu_us_per_batch": 1e6 * mean[0] / K, "progress_cpu_us_per_batch": 1e6 * mean[1] / K,
            "progress_cpu_s_mean": mean[1], "progress_standby_s_mean": mean[2]}


def results(a, P, L, everyone):
    """Rank 0: predictions in input order, the ideal model on the work trace, the metrics."""
    K = len(everyone[0]["work"])
    pred, lab = predictions_in_order(everyone, P, K)
    trace = [everyone[p]["work"] for p in range(P)]
    t_meas = max(e["elapsed"] for e in everyone)
    t_l, t_0 = torch_bls.ideal_time(trace, L), torch_bls.ideal_time(trace, 0)
    acc, auc, ll = metrics(pred, lab)
    result = {
        "backend": a.dist_backend, "lag": L, "processes": P, "batches": K, "samples": len(pred),
        "batch_size": a.batch_size, "seconds": t_meas, "ms_per_batch": 1e3 * t_meas / max(K, 1),
        "samples_per_s": len(pred) / t_meas, "wait_s_mean": sum(e["waited"] for e in everyone) / P,
        "work_ms_mean": 1e3 * sum(map(sum, trace)) / max(P * K, 1),
        "ideal_s": t_l, "ideal0_s": t_0, "efficiency": t_l / t_meas, "bound": t_0 / t_l if t_l else None,
        "accuracy": acc, "auc": auc, "logloss": ll, "auto_lag": bool(a.lag_auto and a.dist_backend == "bls"),
        "run_ahead": run_ahead([e["lags"] for e in everyone]),
    }
    result.update(cpu_figures(everyone, K))
    return result, pred, lab


def report_offline(a, L, result):
    t_l, t_0 = result["ideal_s"], result["ideal0_s"]
    auc = result["auc"]
    print(f"{driver_name(a, L)} P={result['processes']}: "
          f"{result['ms_per_batch']:.2f} ms/batch, {result['samples_per_s']:.0f} samples/s, "
          f"wait {result['wait_s_mean']:.3f} s, ideal {t_l:.3f} s (efficiency {result['efficiency']:.3f}, "
          f"bound {t_0 / t_l if t_l else float('nan'):.2f}x), cpu {result['cpu_us_per_batch']:.0f} us/batch "
          f"(progress thread {result['progress_cpu_us_per_batch']:.0f}), accuracy {result['accuracy']:.4f}, "
          f"auc {auc if auc is None else round(auc, 4)}, logloss {result['logloss']:.4f}", flush=True)
    if result["auto_lag"]:
        print(run_ahead_line(a, L, result["run_ahead"]), flush=True)


def report_server(a, L, P, v):
    lat = v["latency_ms"]
    print(f"server {driver_name(a, L)} P={P}: {v['queries']} queries, {v['scheduled_qps']:.1f}/s scheduled, "
          f"{v['completed_qps']:.1f}/s completed, {v['samples_per_s']:.0f} samples/s; latency ms "
          + " ".join(f"{k} {lat[k]:.2f}" for k in ("min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"))
          + f"; ideal p99 {v['ideal_latency_ms']['p99']:.2f}; "
          f"{'VALID' if v['valid'] else 'not valid'} (p99 <= {1e3 * a.bound_s:.0f} ms, completed >= "
          f"{KEEP_UP} of scheduled)", flush=True)
    if v["auto_lag"]:
        print(run_ahead_line(a, L, v["run_ahead"]), flush=True)


def write_outputs(a, result, pred, lab):
    if a.predictions:
        with open(a.predictions, "w") as f:
            for p_, y in zip(pred, lab):
                f.write(f"{p_:.9g} {int(y)}\n")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


def run_offline(a, r, P, owners, model, L, log, max_batches=None, size=None):
    """The closed loop over the data (or a calibration of max_batches of size samples);
    rank 0 gets (result, pred, labels), the others None.  Every process gets samples/s."""
    pipe = Pipeline(a, r, P, owners, model, L)
    dist.barrier()
    if max_batches is None:
        elapsed = pipe.run(batches(a, owners[r], log), log)
    else:
        elapsed = pipe.run((synthetic_batch(k, size, a.rows, a.pooling, a.data_seed, owners[r])
                            for k in range(max_batches)), log)
    K = len(pipe.work)
    everyone = gather({"elapsed": elapsed, "waited": pipe.waited, "work": [pipe.work[k] for k in range(K)],
                       "lags": [pipe.lags[k] for k in range(K)], "used": pipe.used,
                       "pred": [pipe.preds[k] for k in range(K)],
                       "labels": [pipe.labels[k] for k in range(K)]}, P)
    rate = pipe.samples / max(e["elapsed"] for e in everyone)
    return (results(a, P, L, everyone) if r == 0 else None), rate


def queries(a, sched, mine, log):
    """Query k's batch of sched.size[k] samples: the synthetic stream (unlimited) or the file."""
    if not a.data:
        for k in range(sched.n):
            yield synthetic_batch(k, sched.size[k], a.rows, a.pooling, a.data_seed, mine)
        return
    n = 0
    for b in criteo_batches(a.data, a.rows, sched.size, log):
        if b.size < sched.size[n]:
            break
        yield b
        n += 1
    if n < sched.n:
        raise ValueError(f"{a.data}: the data ended at query {n} of {sched.n}")


def run_server(a, r, P, owners, model, L, log, offline_rate):
    """The open loop on the schedule; rank 0 gets (figures, pred, labels, per-query rows)."""
    if a.sizes.smallest() is not None and a.sizes.smallest() < P:
        raise ValueError(f"--query-size {a.query_size} gives some of the {P} processes no samples")
    shared, offset, uncertainty, estimate, bound = clock_sync(r, P)
    qps = a.qps
    if qps is None:  # --load: of the offline rate, measured now if the offline run did not
        if offline_rate is None:
            B = min(max(round(a.sizes.mean()), P), a.batch_size)
            _, rate = run_offline(a, r, P, owners, model, L, log, max_batches=50, size=B)
            offline_rate = rate
        qps = a.load * offline_rate / a.sizes.mean()
    sched = share_schedule(Schedule(a.schedule_seed, qps, a.queries, a.sizes, P, a.batch_size), r)
    if r == 0 and a.schedule_out:
        sched.write(a.schedule_out)
    pipe = Pipeline(a, r, P, owners, model, L)
    dist.barrier()
    t0 = agree_start(offset)
    pipe.serve(sched, queries(a, sched, owners[r], log), t0, log)
    K = len(pipe.done)
    everyone = gather({"done": [pipe.done[k] for k in range(K)], "begun": [pipe.begun[k] for k in range(K)],
                       "work": [pipe.work[k] for k in range(K)], "samples": pipe.samples,
                       "lags": [pipe.lags[k] for k in range(K)], "used": pipe.used,
                       "pred": [pipe.preds[k] for k in range(K)], "labels": [pipe.labels[k] for k in range(K)],
                       "uncertainty": uncertainty, "shared": shared, "estimate": estimate,
                       "bound": bound}, P)
    if r != 0:
        return None
    ideal_done = torch_bls.ideal_open([e["work"] for e in everyone], sched.at[:K], L)
    v, lat, queue, ideal = server_figures(sched, everyone, ideal_done, a.bound_s, KEEP_UP)
    v.update({"name": driver_name(a, L), "lag": L, "auto_lag": bool(a.lag_auto and a.dist_backend == "bls"),
              "run_ahead": run_ahead([e["lags"] for e in everyone]), "qps": qps, "query_size": a.query_size or f"fixed:{a.batch_size}",
              "schedule_seed": a.schedule_seed, "latency_bound_ms": 1e3 * a.bound_s, **cpu_figures(everyone, K),
              "clock_shared": all(e["shared"] for e in everyone),
              "clock_uncertainty_us": 1e6 * max(e["uncertainty"] for e in everyone),
              "clock_estimates": [{"offset_us": 1e6 * e["estimate"], "bound_us": 1e6 * e["bound"]}
                                  for e in everyone]})
    pred, lab = predictions_in_order(everyone, P, K)
    rows = [(k, sched.at[k], sched.size[k], lat[k], queue[k], ideal[k]) for k in range(K)]
    return v, pred, lab, rows


def run(a):
    r, P, owners, model = setup(a)
    L = a.lag if a.dist_backend == "bls" else 0

    def log(msg):
        if r == 0:
            print(f"dlrm_infer: {msg}", file=sys.stderr, flush=True)

    out, pred, lab, rate = {}, [], [], None
    if a.offline:
        res, rate = run_offline(a, r, P, owners, model, L, log)
        if r == 0:
            out, pred, lab = res
            report_offline(a, L, out)
    if a.server:
        served = run_server(a, r, P, owners, model, L, log, rate)
        if r == 0:
            v, spred, slab, rows = served
            if a.offline and a.sizes.kind == "fixed" and a.sizes.a == a.batch_size:
                v["identical_to_offline"] = spred == pred[:len(spred)]
            report_server(a, L, P, v)
            out["server"] = v
            if not a.offline:
                out.update({"backend": a.dist_backend, "lag": L, "processes": P})
                pred, lab = spred, slab
            if a.latency_out:
                with open(a.latency_out, "w") as f:
                    for k, at, size, lt, qu, ide in rows:
                        f.write(f"{v['name']} 0 {k} {1e3 * at:.6f} {size} {1e3 * lt:.6f} "
                                f"{1e3 * qu:.6f} {1e3 * ide:.6f}\n")
    if r == 0:
        out["scenarios"] = a.scenario.split(",")
        out["config"] = {k: v for k, v in vars(a).items() if isinstance(v, (int, float, str, type(None)))}
        write_outputs(a, out, pred, lab)
    dist.destroy_process_group()
    return out if r == 0 else None


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(a)
    except (ValueError, OSError, RuntimeError, PeerFailed) as e:
        print(f"dlrm_infer: {e}", file=sys.stderr, flush=True)
        if dist.is_initialized():
            dist.destroy_process_group()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
