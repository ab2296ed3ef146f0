#!/usr/bin/python3
"""The calls the reference dlrm_s_pytorch.py --inference-only makes, on backend "bls".

Re-enacts, in order, what the reference's extend_distributed.py and its distributed forward
do (written from the reference's behaviour, not copied):
  1. init_process_group(backend, rank=, world_size=) with RANK/WORLD_SIZE taken from the MPI
     launcher's variables (the reference reads OMPI_COMM_WORLD_RANK / PMI_RANK the same way);
  2. the all_to_all_single probes: a 4-element all_to_all_single(t, t) and the int64
     arange probe whose result it compares;
  3. DistributedDataParallel around the bottom and top MLPs (its constructor broadcasts rank
     0's parameters and all_gathers parameter shapes), then a barrier;
  4. per batch: one async all_to_all_single of the pooled embeddings with the reference's
     split sizes (tables per rank x local batch x d out, local batch rows in), then wait;
  5. all_gather of the predictions into split views of one output tensor.
Every result is compared with a local single-process computation of the same numbers.

Usage: mpirun -np P /usr/bin/python3 test_reference_calls.py [--backend bls|gloo] [--batch N]
"""
import argparse
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Checks  # noqa: E402

checks = Checks()
check = checks.check


def split_lengths(n, P):
    """The reference's split: the first n mod P ranks get one more."""
    k, m = divmod(n, P)
    return [k + 1 if i < m else k for i in range(P)]


def mlp(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 4), torch.nn.ReLU())


def pooled(table, N, E):
    """Pooled embedding of one table for the whole batch: deterministic per table."""
    g = torch.Generator().manual_seed(1000 + table)
    return torch.randn(N, E, generator=g)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="bls", choices=["bls", "gloo"])
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--tables", type=int, default=5)
    args = ap.parse_args()

    import torch_bls  # noqa: F401  (registers "bls"; the reference would import it the same way)
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "-1")))
    size = int(os.environ.get("OMPI_COMM_WORLD_SIZE", os.environ.get("PMI_SIZE", "-1")))
    check(rank >= 0 and size > 0, "launched by mpirun (rank and size from the launcher)")
    dist.init_process_group(args.backend, rank=rank, world_size=size)
    r, P = dist.get_rank(), dist.get_world_size()
    check(r == rank and P == size, "group rank and size are the launcher's")

    # 2. probes
    if args.backend == "bls":  # 1.13's gloo returns wrong data for in-place all_to_all_single
        t4 = torch.tensor([float(100 * r + q) for q in range(P)])
        dist.all_to_all_single(t4, t4)
        check(torch.equal(t4, torch.tensor([float(100 * p + r) for p in range(P)])),
              "in-place probe all_to_all_single(t, t)")
    a = torch.arange(P) + r * P
    b = torch.zeros(P, dtype=torch.int64)
    dist.all_to_all_single(b, a)
    check(torch.equal(b, torch.tensor([r + i * P for i in range(P)])), "int64 arange probe")

    # 3. DDP construction: every rank ends with rank 0's parameters
    bot, top = DDP(mlp(10 + r)), DDP(mlp(20 + r))
    for name, module, seed in (("bottom", bot, 10), ("top", top, 20)):
        want = mlp(seed)
        check(all(torch.equal(p, q) for p, q in zip(module.module.parameters(), want.parameters())),
              f"DDP({name} MLP) broadcast rank 0's parameters")
    dist.barrier()

    # 4. the pooled-embedding exchange of distributed_forward
    N, E, T = args.batch, 3, args.tables
    tables_per_rank = split_lengths(T, P)
    first = sum(tables_per_rank[:r])
    mine = list(range(first, first + tables_per_rank[r]))
    rows = split_lengths(N, P)
    lN = rows[r]
    ly = [pooled(t, N, E) for t in mine]
    # The reference sends, for each destination q, q's batch rows of all local tables.
    send_rows = torch.cat(ly, dim=1) if ly else torch.empty(N, 0)
    inp = send_rows.reshape(-1)
    in_splits = [n * len(mine) * E for n in rows] if len(set(rows)) > 1 else None
    out_splits = [lN * k * E for k in tables_per_rank]
    out = inp.new_empty(sum(out_splits))
    req = dist.all_to_all_single(out, inp, out_splits, in_splits, async_op=True)
    req.wait()
    start = sum(rows[:r])
    got = [o.view(lN, -1) for o in out.split(out_splits)]
    for p in range(P):
        p_first = sum(tables_per_rank[:p])
        want = torch.cat([pooled(t, N, E)[start:start + lN] for t in range(p_first, p_first + tables_per_rank[p])]
                         or [torch.empty(lN, 0)], dim=1)
        check(torch.equal(got[p], want), f"pooled vectors from rank {p}")

    # 5. all_gather of predictions into split views (the reference needs equal slices)
    pred = torch.arange(lN, dtype=torch.float32) + 0.5 + start
    if len(set(rows)) == 1:
        full = pred.new_empty(N)
        dist.all_gather(list(full.split(rows)), pred)
        check(torch.equal(full, torch.arange(N, dtype=torch.float32) + 0.5), "all_gather of predictions into views")
    sys.exit(checks.finish("test_reference_calls"))


if __name__ == "__main__":
    main()
