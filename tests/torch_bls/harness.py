"""Shared by the torch_bls tests: process-group start-up and check counting.

init() makes the default group of the given backend under mpirun (env:// rendezvous; the
launcher's variables give RANK and WORLD_SIZE, run.sh gives MASTER_PORT).  Checks counts
passes and failures; finish() sums them over the group (through a gloo side group, so a broken
bls group still reports) and returns the exit status.
"""
import datetime
import sys

import torch.distributed as dist
import torch_bls  # registers "bls" and fills the env:// variables from the launcher


def init(backend, lag=None, timeout_s=120):
    if lag is not None:
        torch_bls.set_lag(lag)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return dist.get_rank(), dist.get_world_size(), (lag if lag is not None else torch_bls.default_lag())


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, msg):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL rank {dist.get_rank()}: {msg}", file=sys.stderr, flush=True)

    def finish(self, name):
        import torch
        side = dist.new_group(backend="gloo")
        counts = torch.tensor([self.passed, self.failed], dtype=torch.int64)
        dist.all_reduce(counts, group=side)
        if dist.get_rank() == 0:
            print(f"{name}: {counts[0].item()} passed, {counts[1].item()} failed", flush=True)
        failed = counts[1].item() > 0
        dist.destroy_process_group()
        return 1 if failed else 0
