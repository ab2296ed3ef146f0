"""Serving for the PyTorch inference driver (torch_bls/dlrm_infer.py): schedules, clocks and
latency figures, as bls-dlrm's (dist/include/dlrm_dist.h, harness/include/harness.h).

Schedules: the Python copy of harness/src/schedule.c, so that `dlrm_infer.py --scenario server`
and `bls-dlrm --scenario server` given the same seed, rate and sizes serve the same queries at
the same moments, bit for bit (tests/torch_bls/test_schedule.sh holds the two equal).

A schedule: query k arrives at at[k] seconds after the start and asks for size[k] samples.
Arrivals are a Poisson process: at[k] = base[k] / qps with base[k] the sum of k+1 unit-mean
exponential gaps -log(u), u uniform in (0, 1) from SplitMix64 counters of (seed, stream, k).
Sizes: fixed:N, uniform:A:B (integers A..B equally likely) or lognormal:MEAN:SIGMA (rounded
exp(mu + SIGMA z), mu = log(MEAN) - SIGMA^2 / 2, z a Box-Muller normal from two counters),
clamped to [min_size, max_size].

Plain Python floats are IEEE doubles and math's log, exp, cos and sqrt are the C library's, so
every step below rounds as the C code's does (which is built with -ffp-contract=off).
"""
import math
import socket
import time

import torch
import torch.distributed as dist

_MASK = (1 << 64) - 1
STREAM_GAP, STREAM_SIZE, STREAM_SIZE2 = 1, 2, 3


def mix(x):
    """SplitMix64's finaliser (common/splitmix64.h)."""
    x &= _MASK
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def unit(seed, stream, k):
    """Uniform in (0, 1) from the top 53 bits: a function of (seed, stream, k) alone."""
    h = mix((mix((seed & _MASK) ^ mix(stream)) + k) & _MASK)
    return ((h >> 11) + 0.5) * (1.0 / 9007199254740992.0)


class QuerySizes:
    """A parsed --query-size: kind 'fixed' (a = N), 'uniform' (a, b) or 'lognormal' (a = MEAN,
    b = SIGMA)."""

    def __init__(self, spec):
        kind, _, rest = spec.partition(":")
        parts = rest.split(":") if rest else []
        try:
            vals = [float(x) for x in parts]
        except ValueError:
            vals = None
        ok = vals is not None and all(math.isfinite(v) for v in vals)
        if ok and kind == "fixed" and len(vals) == 1:
            ok = vals[0] >= 1 and vals[0] == math.floor(vals[0])
        elif ok and kind == "uniform" and len(vals) == 2:
            ok = 1 <= vals[0] <= vals[1] and all(v == math.floor(v) for v in vals)
        elif ok and kind == "lognormal" and len(vals) == 2:
            ok = vals[0] >= 1 and vals[1] >= 0
        else:
            ok = False
        if not ok:
            raise ValueError("a query size is fixed:N, uniform:A:B (1 <= A <= B, integers) or "
                             f"lognormal:MEAN:SIGMA (MEAN >= 1, SIGMA >= 0); got '{spec}'")
        self.kind, self.a, self.b = kind, vals[0], (vals[1] if len(vals) > 1 else 0.0)

    def mean(self):
        return (self.a + self.b) / 2 if self.kind == "uniform" else self.a

    def largest(self):
        """The largest size before clamping, or None when unbounded (lognormal)."""
        return None if self.kind == "lognormal" else (self.b if self.kind == "uniform" else self.a)

    def smallest(self):
        return None if self.kind == "lognormal" else self.a

    def draw(self, seed, k):
        u = unit(seed, STREAM_SIZE, k)
        if self.kind == "uniform":
            return self.a + math.floor(u * (self.b - self.a + 1))
        if self.kind == "lognormal":
            z = math.sqrt(-2.0 * math.log(u)) * math.cos(6.283185307179586 * unit(seed, STREAM_SIZE2, k))
            mu = math.log(self.a) - 0.5 * self.b * self.b
            return math.floor(math.exp(mu + self.b * z) + 0.5)
        return self.a


class Schedule:
    """n queries at rate qps: at[k] seconds after the start, size[k] samples each."""

    def __init__(self, seed, qps, n, sizes, min_size, max_size):
        if not (qps > 0 and math.isfinite(qps)) or n < 1 or min_size < 1 or max_size < min_size:
            raise ValueError(f"a schedule needs a rate > 0 (got {qps:g}), queries >= 1 (got {n}) "
                             f"and sizes 1 <= smallest <= largest (got {min_size}, {max_size})")
        self.seed, self.qps, self.n = seed, qps, n
        self.at, self.size = [], []
        base = 0.0
        for k in range(n):
            base += -math.log(unit(seed, STREAM_GAP, k))
            self.at.append(base / qps)
            z = sizes.draw(seed, k)
            self.size.append(min_size if z < min_size else max_size if z > max_size else int(z))

    def write(self, path):
        """'k arrival_seconds size' per query, as harness_schedule_write prints it."""
        with open(path, "w") as f:
            for k in range(self.n):
                f.write("%d %.17g %d\n" % (k, self.at[k], self.size[k]))


# ---- clocks ---------------------------------------------------------------------------------

def clock_sync(rank, P, pings=16):
    """This process's clock against process 0's, as bls-dlrm's session does it: processes on
    process 0's host share its CLOCK_MONOTONIC (offset 0); others estimate the offset by
    ping-pong with process 0 (the round with the shortest round trip), half of which is the
    uncertainty.  The ping-pong runs on broadcasts (the bls backend has no send/recv): process
    p reads its clock between process 0's broadcast and its own, so the reading falls within
    process 0's round trip.  Collective.  Returns (shared, offset_s, uncertainty_s, estimate_s,
    bound_s): the last two the ping-pong's, also on one host (where |estimate| <= bound)."""
    hosts = [None] * P
    dist.all_gather_object(hosts, socket.gethostname())
    table = torch.zeros(2 * P, dtype=torch.float64)
    t = torch.zeros(1, dtype=torch.float64)
    for p in range(1, P):
        best, offset = math.inf, 0.0
        for _ in range(pings):
            t1 = time.monotonic()
            dist.broadcast(t, 0)
            if rank == p:
                t[0] = time.monotonic()
            dist.broadcast(t, p)
            t2 = time.monotonic()
            if t2 - t1 < best:
                best, offset = t2 - t1, t.item() - (t1 + t2) / 2
        table[2 * p], table[2 * p + 1] = offset, best / 2
    dist.broadcast(table, 0)
    shared = hosts[rank] == hosts[0]
    est, bound = table[2 * rank].item(), table[2 * rank + 1].item()
    return shared, 0.0 if shared else est, 0.0 if shared else bound, est, bound


def agree_start(offset, ahead=0.05):
    """A moment of process 0's clock a little ahead, on this process's clock.  Collective."""
    t = torch.tensor([time.monotonic() + ahead], dtype=torch.float64)
    dist.broadcast(t, 0)
    return t.item() + offset


def share_schedule(sched, rank):
    """Process 0's schedule on every process (hosts' C libraries may round log() differently),
    as dist_schedule_make does.  Collective."""
    box = [(sched.at, sched.size) if rank == 0 else None]
    dist.broadcast_object_list(box, 0)
    sched.at, sched.size = box[0]
    return sched


# ---- latency figures ------------------------------------------------------------------------

def percentile(sorted_values, q):
    """harness_percentile's definition: the element at round(q (n - 1))."""
    n = len(sorted_values)
    return sorted_values[min(int(q * (n - 1) + 0.5), n - 1)] if n else 0.0


def summary_ms(values):
    """mean, min, p50, p90, p95, p99, p99.9 and max in milliseconds (bls-dlrm's JSON keys)."""
    v = sorted(values)
    out = {"mean": 1e3 * sum(v) / len(v) if v else 0.0}
    for key, q in (("min", 0), ("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99),
                   ("p99.9", 0.999), ("max", 1)):
        out[key] = 1e3 * percentile(v, q)
    return out


def server_figures(sched, everyone, ideal_done, bound_s, keep_up):
    """Rank 0: per query (query order) the client latency (arrival to the slowest process's
    predictions), the queue (arrival until the last process began it) and the ideal model's
    latency; then the rates, the percentiles and the verdict.  everyone[p] holds 'done',
    'begun' (seconds since the start, process 0's clock) and 'samples'."""
    K = len(ideal_done)
    at = sched.at[:K]
    lat = [max(e["done"][k] for e in everyone) - at[k] for k in range(K)]
    queue = [max(e["begun"][k] for e in everyone) - at[k] for k in range(K)]
    ideal = [ideal_done[k] - at[k] for k in range(K)]
    last = max(max(e["done"]) for e in everyone) if K else 0.0
    f = {"queries": K, "scheduled_qps": K / at[-1] if K else 0.0,
         "completed_qps": K / last if last > 0 else 0.0,
         "samples_per_s": everyone[0]["samples"] / last if last > 0 else 0.0,
         "latency_ms": summary_ms(lat), "ideal_latency_ms": summary_ms(ideal),
         "queue_ms": summary_ms(queue)}
    f["valid"] = f["latency_ms"]["p99"] <= 1e3 * bound_s and f["completed_qps"] >= keep_up * f["scheduled_qps"]
    return f, lat, queue, ideal
