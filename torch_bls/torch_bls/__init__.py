"""torch_bls: the PyTorch distributed backend "bls".

Importing this package registers the backend with torch.distributed, so PyTorch code adopts
bounded-lag all_to_all_single by changing the backend name:

    import torch_bls                          # registers "bls"
    import torch.distributed as dist
    dist.init_process_group(backend="bls")    # env:// rendezvous, processes started by mpirun

Processes must be launched by one mpirun (the backend runs on MPI).  When they are and RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR or MASTER_PORT are unset, the import fills them from the
launcher's variables (Open MPI, MPICH/Hydra, MVAPICH, Slurm) and 127.0.0.1:29500.

The lag bound L of all_to_all_single (up to L+1 calls in flight, each completing on its own;
L = 0 is a synchronous collective) is set per process group when it is created: from
set_lag(L) if called, else the environment variable TORCH_BLS_LAG, else 4.

Everything else (broadcast, all_reduce, all_gather, gather, scatter, barrier) runs in call
order on a worker thread with MPI's collectives.  Every call returns a Work that completes on
its own; wait(timeout) raises RuntimeError with the library's message on errors and timeouts.

The DLRM inference driver ships with the package: `python3 -m torch_bls.dlrm_infer --help`
(installed, also the command bls-dlrm-torch).

Needs Debian's PyTorch 1.13 (python3-torch): run with /usr/bin/python3.
"""
import atexit
import os

import torch.distributed as dist

from . import _C

__version__ = _C.version()  # libbls's, which this module runs on: one version for the project
__all__ = ["__version__", "set_lag", "default_lag", "lag", "stats", "fill_env_from_launcher", "LagPolicy"]

DEFAULT_LAG = 4
_lag_override = None


def _env_int(names):
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip().lstrip("-").isdigit():
            return int(value)
    return None


def fill_env_from_launcher():
    """Sets the env:// variables that are missing from the MPI launcher's own; returns
    True when a launcher was found."""
    rank = _env_int(["OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID"])
    size = _env_int(["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_NPROCS"])
    if rank is None or size is None:
        return False
    local = _env_int(["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK",
                      "SLURM_LOCALID"])
    os.environ.setdefault("RANK", str(rank))
    os.environ.setdefault("WORLD_SIZE", str(size))
    if local is not None:
        os.environ.setdefault("LOCAL_RANK", str(local))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29500")
    return True


def set_lag(lag):
    """Lag bound for bls process groups created from now on (None: back to the default)."""
    global _lag_override
    if lag is not None and (not isinstance(lag, int) or lag < 0):
        raise ValueError(f"torch_bls.set_lag: the lag bound must be an int >= 0, not {lag!r}")
    _lag_override = lag


def default_lag():
    """The lag a new bls process group gets: set_lag(), else TORCH_BLS_LAG, else 4."""
    if _lag_override is not None:
        return _lag_override
    text = os.environ.get("TORCH_BLS_LAG")
    if text is None or text == "":
        return DEFAULT_LAG
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"TORCH_BLS_LAG={text!r}: the lag bound must be an integer >= 0")
    return value


def _group(group):
    return dist.distributed_c10d._get_default_group() if group is None else group


def lag(group=None):
    """The lag bound L of a bls process group (default: the default group)."""
    return _C.lag(_group(group))


def stats(group=None):
    """all_to_all_single counters of a bls process group at this process, summed over the
    element sizes in use (libbls's bls_stats_t): a dict of posted, completed (calls),
    post_wait_seconds (a call waiting for the lag bound), wait_seconds (blocked in wait()),
    progress_cpu_seconds (the progress threads' CPU), progress_standby_seconds (time they stood
    by on a crowded host) and buffer_bytes (bookkeeping allocated at creation)."""
    return _C.stats(_group(group))


def ideal_time(work, lag):
    """T_ideal(lag) of a trace work[p][k] (seconds of work of process p in iteration k outside
    the collective): the ideal model of bls-semantics, computed by the same C function the
    project's C tools use (harness_ideal_time)."""
    return _C.ideal_time([list(map(float, row)) for row in work], int(lag))


def ideal_open(work, arrival, lag):
    """The open-loop ideal model (harness_ideal_open): with queries arriving at arrival[k]
    seconds and work[p][k] seconds of process p on query k, when query k is done everywhere
    (seconds since the schedule's start) with zero communication and lag bound `lag`."""
    return _C.ideal_open([list(map(float, row)) for row in work], list(map(float, arrival)), int(lag))


# bls-dlrm's bls:auto settings (dlrm_dist.h): the window the policy models and its tolerance.
AUTO_WINDOW = 64
AUTO_TOLERANCE = 0.01


class LagPolicy:
    """Adaptive lag: the run-ahead for each batch, at most max_lag (harness.h's policy, the C
    code bls-dlrm's bls:auto runs).  Feed it every batch in order: observe(work, comm, arrival)
    with every process's work on the batch (seconds outside the exchange), the exchange's own
    time (from the last process's post to the batch's completion here; None if not seen) and,
    in an open loop, its arrival; choose() gives the run-ahead for the next batch."""

    def __init__(self, processes, max_lag, window=AUTO_WINDOW, tolerance=AUTO_TOLERANCE):
        self._p = _C.LagPolicy(int(processes), int(max_lag), int(window), float(tolerance))

    def bound(self, seconds):
        self._p.bound(float(seconds))

    def observe(self, work, comm=None, arrival=None):
        nan = float("nan")
        self._p.observe(list(map(float, work)), nan if comm is None else float(comm),
                        nan if arrival is None else float(arrival))

    def choose(self):
        return self._p.choose()


def _create(store, rank, size, timeout):
    return _C.create_process_group(store, rank, size, timeout, default_lag())


fill_env_from_launcher()
if "BLS" not in dist.Backend._plugins:
    dist.Backend.register_backend("bls", _create)
atexit.register(_C.finalize)
