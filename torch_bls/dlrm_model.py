"""The DLRM pieces the PyTorch inference driver (torch_bls/dlrm_infer.py) needs.  Not part of
the backend package: a model, data and the distributed layout, in plain PyTorch.

Model: the reference DLRM's inference forward (project docs, dlrm-model): bottom MLP (Linear
and ReLU), sum-pooled embedding bags, dot or cat interaction, top MLP (ReLU, sigmoid last).
Weights: a safetensors file with the reference's state_dict names (tools/convert_checkpoint.py
writes one), tensors memory-mapped, only this process's tables read; or the reference's random
initialisation from a seed.  Data: Criteo Kaggle text (hex value mod rows, clamp-and-log
dense, like the C engine) or a seeded synthetic stream that every process regenerates alike.
"""
import json
import math
import mmap
import struct

import numpy as np
import torch
import torch.nn.functional as F


def parse_dims(text, what):
    try:
        dims = [int(x) for x in text.split("-")]
    except ValueError:
        dims = []
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(f"{what} '{text}': expected positive integers joined by '-'")
    return dims


# The layout of distributed inference, as dist/include/dlrm_dist.h documents it (the C engine's
# bls-dlrm uses the same; tests/torch_bls/test_layout.py holds the two equal).

def table_split(n_tables, P):
    """The reference's contiguous blocks: the first n mod P processes get one table more."""
    k, m = divmod(n_tables, P)
    counts = [k + 1 if q < m else k for q in range(P)]
    starts = [sum(counts[:q]) for q in range(P)]
    return [list(range(s, s + c)) for s, c in zip(starts, counts)]


def slice_lo(q, P, n):
    """The first row of process q's slice of a batch of n samples: floor(q n / P)."""
    return q * n // P


def slice_rows(q, P, n):
    """How many rows of a batch of n samples process q owns."""
    return slice_lo(q + 1, P, n) - slice_lo(q, P, n)


def exchange_splits(owners, r, P, n, d):
    """The exchange of a batch of n samples at process r, in floats: what it sends each q (the
    pooled vectors of its tables for q's rows) and receives from each p (p's tables for its
    rows), in rank order."""
    send = [slice_rows(q, P, n) * len(owners[r]) * d for q in range(P)]
    recv = [slice_rows(r, P, n) * len(owners[p]) * d for p in range(P)]
    return send, recv


class SafeTensors:
    """Read-only view of a safetensors file: float32 tensors by name, memory-mapped."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if len(self._map) < 8:
            raise ValueError(f"{path}: too short for a safetensors header")
        (hlen,) = struct.unpack("<Q", self._map[:8])
        if 8 + hlen > len(self._map):
            raise ValueError(f"{path}: header length {hlen} exceeds the file")
        try:
            self.header = json.loads(self._map[8:8 + hlen])
        except ValueError as e:
            raise ValueError(f"{path}: bad header JSON: {e}") from None
        self._base = 8 + hlen

    def get(self, name, shape):
        info = self.header.get(name)
        if info is None:
            raise ValueError(f"{self.path}: tensor {name} is missing")
        if info.get("dtype") != "F32":
            raise ValueError(f"{self.path}: tensor {name} is {info.get('dtype')}, not F32")
        if list(info.get("shape", [])) != list(shape):
            raise ValueError(f"{self.path}: tensor {name} has shape {info.get('shape')}, the model needs {list(shape)}")
        b, e = info["data_offsets"]
        if e - b != 4 * math.prod(shape) or self._base + e > len(self._map):
            raise ValueError(f"{self.path}: tensor {name}: data offsets {b}..{e} do not fit")
        arr = np.frombuffer(self._map, dtype="<f4", count=math.prod(shape), offset=self._base + b)
        return torch.from_numpy(arr.reshape(shape).copy())


class Model:
    """This process's part of the model: every MLP layer and its own tables."""

    def __init__(self, bot, top, rows, d, op="dot", itself=False, tables=None):
        if bot[-1] != d:
            raise ValueError(f"--arch-mlp-bot ends in {bot[-1]} but --arch-sparse-feature-size is {d}")
        if op not in ("dot", "cat"):
            raise ValueError(f"--arch-interaction-op {op}: expected dot or cat")
        if top[-1] != 1:
            raise ValueError(f"--arch-mlp-top must end in 1 (got {top[-1]})")
        self.bot, self.rows, self.d, self.op, self.itself = bot, rows, d, op, itself
        F_ = len(rows) + 1
        pairs = F_ * (F_ + 1) // 2 if itself else F_ * (F_ - 1) // 2
        self.top_in = d + pairs if op == "dot" else d * F_
        self.top = [self.top_in] + top
        self.tables = list(range(len(rows))) if tables is None else list(tables)
        off = 1 if itself else 0
        li = [i for i in range(F_) for j in range(i + off)]
        lj = [j for i in range(F_) for j in range(i + off)]
        self.li, self.lj = torch.tensor(li), torch.tensor(lj)
        self.bot_w, self.top_w, self.emb = [], [], {}

    def layer_shapes(self, dims):
        return [(dims[i + 1], dims[i]) for i in range(len(dims) - 1)]

    def load(self, path):
        st = SafeTensors(path)
        for prefix, dims, out in (("bot_l", self.bot, self.bot_w), ("top_l", self.top, self.top_w)):
            for i, (o, n) in enumerate(self.layer_shapes(dims)):
                out.append((st.get(f"{prefix}.{2 * i}.weight", (o, n)), st.get(f"{prefix}.{2 * i}.bias", (o,))))
        for t in self.tables:
            self.emb[t] = st.get(f"emb_l.{t}.weight", (self.rows[t], self.d))
        return self

    def init_random(self, seed):
        """The reference's distributions; MLPs from the seed alone (equal on every process),
        table t from (seed, t), so a process builds only its own tables."""
        g = torch.Generator().manual_seed(seed)
        for dims, out in ((self.bot, self.bot_w), (self.top, self.top_w)):
            for o, n in self.layer_shapes(dims):
                w = torch.randn(o, n, generator=g) * math.sqrt(2.0 / (n + o))
                b = torch.randn(o, generator=g) * math.sqrt(1.0 / o)
                out.append((w, b))
        for t in self.tables:
            gt = torch.Generator().manual_seed(seed * 1_000_003 + 7919 * (t + 1))
            bound = math.sqrt(1.0 / self.rows[t])
            self.emb[t] = (torch.rand(self.rows[t], self.d, generator=gt) * 2 - 1) * bound
        return self

    def bottom(self, dense):
        x = dense
        for w, b in self.bot_w:
            x = torch.relu(F.linear(x, w, b))
        return x

    def pool(self, t, idx, offsets):
        return F.embedding_bag(idx, self.emb[t], offsets, mode="sum")

    def interact_top(self, x, ly):
        """x: [n, d] bottom output; ly: [n, T*d] pooled vectors of every table, table order."""
        if self.op == "dot":
            T = torch.cat([x, ly], dim=1).view(x.shape[0], -1, self.d)
            Z = torch.bmm(T, T.transpose(1, 2))
            R = torch.cat([x, Z[:, self.li, self.lj]], dim=1)
        else:
            R = torch.cat([x, ly], dim=1)
        for i, (w, b) in enumerate(self.top_w):
            R = F.linear(R, w, b)
            R = torch.sigmoid(R) if i == len(self.top_w) - 1 else torch.relu(R)
        return R.view(-1)


class Batch:
    """One global batch: dense [B, 13] floats, labels [B], and per table (indices, offsets)."""

    def __init__(self, dense, labels, bags):
        self.dense, self.labels, self.bags = dense, labels, bags

    @property
    def size(self):
        return self.labels.shape[0]


def criteo_batches(path, rows, batch_size, log=None):
    """Streams a Criteo Kaggle text file in batches (the last may be short).  batch_size is a
    number, or an iterable of sizes, batch by batch (a serving schedule's query sizes).
    Malformed lines (field count, non-integer dense, non-hex categorical) are skipped and
    reported through log with file and line; empty fields are 0.  Categorical hex v maps to row
    v mod rows[t]."""
    T = len(rows)
    sizes = iter(batch_size) if hasattr(batch_size, "__iter__") else None
    want = next(sizes, None) if sizes else batch_size
    if want is None:
        return
    dense, labels, cats = [], [], []
    with open(path, "r", encoding="ascii", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            try:
                if len(fields) != 1 + 13 + T:
                    raise ValueError(f"{len(fields)} fields, expected {1 + 13 + T}")
                lab = int(fields[0]) if fields[0] else 0
                dn = [math.log(max(int(x), 0) + 1.0) if x else 0.0 for x in fields[1:14]]
                ct = [int(x, 16) % rows[t] if x else 0 for t, x in enumerate(fields[14:])]
            except ValueError as e:
                if log:
                    log(f"{path}:{lineno}: malformed line skipped ({e})")
                continue
            dense.append(dn)
            labels.append(lab)
            cats.append(ct)
            if len(labels) == want:
                yield _criteo_batch(dense, labels, cats)
                dense, labels, cats = [], [], []
                want = next(sizes, None) if sizes else batch_size
                if want is None:
                    return
    if labels:
        yield _criteo_batch(dense, labels, cats)


def _criteo_batch(dense, labels, cats):
    B = len(labels)
    idx = torch.tensor(cats, dtype=torch.int64).t().contiguous()
    offsets = torch.arange(B, dtype=torch.int64)
    return Batch(torch.tensor(dense, dtype=torch.float32), torch.tensor(labels, dtype=torch.float32),
                 [(idx[t], offsets) for t in range(idx.shape[0])])


def synthetic_batch(k, batch_size, rows, pooling, seed, tables, m_den=13):
    """Batch k of the synthetic stream: the same on every process for the parts it asks for
    (dense and labels from (seed, k); table t's bags from (seed, k, t)).  Only the tables in
    `tables` are generated; the others are None."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + k)
    dense = torch.log1p(torch.rand(batch_size, m_den, generator=g) * 100)
    labels = (torch.rand(batch_size, generator=g) < 0.25).float()
    offsets = torch.arange(0, batch_size * pooling, pooling, dtype=torch.int64)
    bags = [None] * len(rows)
    for t in tables:
        gt = torch.Generator().manual_seed((seed * 1_000_003 + k) * 131 + t)
        bags[t] = (torch.randint(rows[t], (batch_size * pooling,), generator=gt), offsets)
    return Batch(dense, labels, bags)
