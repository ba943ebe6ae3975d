"""nn.Modules of dynamic tables: the training lookup and its frozen, scriptable export twin.

:class:`DynamicEmbedding` serves every feature of one dynamic table (say ``item_id`` and its
``hist_item_id`` sequence) with one ``torch.unique`` + one index probe per step; its output
has the shapes of ``FusedEmbeddingBag`` (sparse: pooled [B, dim], sequence: [B, L, dim]), so
models cannot tell the two apart. Rows are gathered into a fresh leaf tensor; after backward,
``easyrec.dynamic.engine.DynamicTables`` reads its gradient and updates the rows in their
tiers. Ids without a row read ``default``, a learned vector (trained by the sparse optimizer
like any embedding parameter), the dynamic table's counterpart of a vocabulary's OOV row.

The table (keys, rows, optimizer state, counters) is the module's ``extra_state``, so it is
saved and restored with ``model.state_dict()`` inside the engine's atomic checkpoint.
:func:`frozen_for_export` swaps each DynamicEmbedding for a :class:`FrozenDynamicEmbedding`
(sorted keys + rows as buffers, ``torch.searchsorted`` lookup), which TorchScript and
torch.export accept.
"""
# no ``from __future__ import annotations``: TorchScript reads the class annotations
import contextlib
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from easyrec.dynamic.config import DynamicConfig
from easyrec.dynamic.table import DynamicTable
from easyrec.features.info import FeatureInfo

_KEY_MAX = 2 ** 63 - 1


@dataclass
class Pending:
    """What one training forward leaves for the step: the batch's distinct keys and their
    counts (padding excluded), the keys that had rows and the leaf holding those rows."""

    keys: Tensor
    counts: Tensor
    found_keys: Tensor
    rows: Tensor
    found: Optional[Tensor] = None  # positions in ``keys`` of found_keys


def _pool_sparse(idx: Tensor, offsets: Tensor, weight: Tensor, per_sample: Optional[Tensor],
                 mean: bool) -> Tensor:
    pooled = F.embedding_bag(idx, weight, offsets, mode="sum", per_sample_weights=per_sample,
                             include_last_offset=True)
    if mean:
        counts = (offsets[1:] - offsets[:-1]).clamp(min=1).to(pooled.dtype)
        pooled = pooled / counts.unsqueeze(1)
    return pooled


class DynamicEmbedding(nn.Module):
    """The features ``sparse`` + ``sequence`` of one dynamic table of width ``dim``."""

    def __init__(self, table: str, dim: int, cfg: DynamicConfig, sparse: List[FeatureInfo],
                 sequence: List[FeatureInfo], init_std: Optional[float] = None) -> None:
        super().__init__()
        self.table_name = table
        self.dim = dim
        self.cfg = cfg
        self.table = DynamicTable(table, dim, cfg, init_std=init_std)
        self.default = nn.Parameter(torch.zeros(dim))
        self.sparse_names = [f.name for f in sparse]
        self.sparse_weighted = [bool(f.weighted) for f in sparse]
        self.sparse_mean = [f.pooling == "mean" for f in sparse]
        self.seq_names = [f.name for f in sequence]
        self.pending: Optional[Pending] = None
        # rows the frozen table is padded to (0: as many as it holds): a torch.export program
        # fixes its tables' sizes, so delta exports pad them to the table's capacity
        self.export_rows = 0

    def _apply(self, fn: Any, recurse: bool = True) -> "DynamicEmbedding":
        """``.to(device)`` / ``.cuda()`` also move the table's index and device tier."""
        super()._apply(fn, recurse)
        self.table.to(fn(torch.zeros(1)).device)
        return self

    @torch.compiler.disable
    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        parts: List[Tensor] = []
        valid: List[Tensor] = []
        for name in self.sparse_names:
            v = inputs[name + ".values"]
            parts.append(v)
            valid.append(torch.ones_like(v, dtype=torch.bool))
        for name in self.seq_names:
            v = inputs[name + ".values"]
            lengths = inputs[name + ".lengths"]
            parts.append(v.reshape(-1))
            positions = torch.arange(v.shape[1], device=v.device).unsqueeze(0)
            valid.append((positions < lengths.unsqueeze(1)).reshape(-1))
        keys = torch.cat(parts).to(self.table.device)
        uniq, inverse = torch.unique(keys, return_inverse=True)
        train = self.training and torch.is_grad_enabled()
        counts = None
        if train:
            counts = torch.bincount(inverse[torch.cat(valid).to(keys.device)],
                                    minlength=uniq.numel())
        found, rows = self.table.lookup(uniq, counts)
        rows = rows.to(self.default.device)
        if train:
            rows.requires_grad_(True)
            self.pending = Pending(uniq, counts, uniq[found], rows, found)
        weight = torch.cat([rows.to(self.default.dtype), self.default.unsqueeze(0)])
        slot = torch.full((uniq.numel(),), found.numel(), dtype=torch.int64, device=keys.device)
        slot[found] = torch.arange(found.numel(), device=keys.device)
        idx = slot[inverse].to(self.default.device)
        return self._pool(inputs, idx, weight)

    def _pool(self, inputs: Dict[str, Tensor], idx: Tensor, weight: Tensor) -> Dict[str, Tensor]:
        out: Dict[str, Tensor] = {}
        start = 0
        for i, name in enumerate(self.sparse_names):
            n = inputs[name + ".values"].numel()
            per_sample = inputs[name + ".weights"].to(weight.dtype) if self.sparse_weighted[i] else None
            out[name] = _pool_sparse(idx[start:start + n], inputs[name + ".offsets"], weight,
                                     per_sample, self.sparse_mean[i])
            start += n
        for name in self.seq_names:
            v = inputs[name + ".values"]
            out[name] = F.embedding(idx[start:start + v.numel()].view(v.shape), weight)
            start += v.numel()
        return out

    def pop_pending(self) -> Optional[Pending]:
        p, self.pending = self.pending, None
        return p

    # ---- state: the whole table rides in model.state_dict() -------------------------------

    def get_extra_state(self) -> Dict[str, Any]:
        return self.table.state_dict()

    def set_extra_state(self, state: Dict[str, Any]) -> None:
        self.table.load_state_dict(state)

    def frozen(self) -> "FrozenDynamicEmbedding":
        keys, values = self.table.export(self.cfg.export_min_count)
        return FrozenDynamicEmbedding(keys, values, self.default.detach().cpu(), self, self.export_rows)

    def extra_repr(self) -> str:
        return (f"table={self.table_name}, dim={self.dim}, rows={self.table.num_rows}, "
                f"features={self.sparse_names + self.seq_names}")


class FrozenDynamicEmbedding(nn.Module):
    """Export form: ``keys`` sorted (+ a sentinel), ``weight`` rows (+ the default row last)."""

    sparse_names: List[str]
    sparse_weighted: List[bool]
    sparse_mean: List[bool]
    seq_names: List[str]

    def __init__(self, keys: Tensor, values: Tensor, default: Tensor, like: DynamicEmbedding,
                 rows: int = 0) -> None:
        super().__init__()
        pad = max(rows - keys.numel(), 0) + 1  # sentinel keys (never looked up) + default rows; the last is THE default
        self.register_buffer("keys", torch.cat([keys, torch.full((pad,), _KEY_MAX, dtype=torch.int64)]))
        self.register_buffer("weight", torch.cat([values.to(default.dtype), default.unsqueeze(0).expand(pad, -1)]))
        self.sparse_names = list(like.sparse_names)
        self.sparse_weighted = list(like.sparse_weighted)
        self.sparse_mean = list(like.sparse_mean)
        self.seq_names = list(like.seq_names)

    def _rows(self, keys: Tensor) -> Tensor:
        n = self.keys.size(0) - 1  # the last row is the default vector
        pos = torch.searchsorted(self.keys, keys).clamp(max=n)
        return torch.where(self.keys[pos] == keys, pos, torch.full_like(pos, n))

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        out: Dict[str, Tensor] = {}
        for i, name in enumerate(self.sparse_names):
            per_sample: Optional[Tensor] = None
            if self.sparse_weighted[i]:
                per_sample = inputs[name + ".weights"].to(self.weight.dtype)
            out[name] = _pool_sparse(self._rows(inputs[name + ".values"]), inputs[name + ".offsets"],
                                     self.weight, per_sample, self.sparse_mean[i])
        for name in self.seq_names:
            out[name] = F.embedding(self._rows(inputs[name + ".values"]), self.weight)
        return out


def dynamic_embeddings(features: Dict[str, FeatureInfo], names: List[str], dim: int = 0,
                       init_std: Optional[float] = None) -> List[DynamicEmbedding]:
    """One DynamicEmbedding per dynamic table among ``names`` (``dim`` > 0 overrides widths)."""
    tables: Dict[str, List[FeatureInfo]] = {}
    for n in names:
        info = features[n]
        tables.setdefault(info.embedding_name or info.name, []).append(info)
    out = []
    for table, infos in tables.items():
        width = dim if dim > 0 else int(infos[0].dim)
        out.append(DynamicEmbedding(
            table, width, infos[0].dynamic,
            [f for f in infos if f.kind == "sparse"], [f for f in infos if f.kind == "sequence"],
            init_std))
    return out


@contextlib.contextmanager
def frozen_for_export(model: nn.Module) -> Iterator[None]:
    """Within the block, every DynamicEmbedding of ``model`` is its FrozenDynamicEmbedding."""
    swaps = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, DynamicEmbedding):
                swaps.append((parent, name, child))
    try:
        for parent, name, child in swaps:
            setattr(parent, name, child.frozen())
        yield
    finally:
        for parent, name, child in swaps:
            setattr(parent, name, child)


def pad_frozen_tables(model: nn.Module) -> None:
    """Freeze every dynamic table of ``model`` with room to grow: twice its rows (at least 1024),
    at most its capacity (``max_rows``), so that a torch.export program (whose graph fixes the
    tables' sizes) can take delta exports that admit keys until then."""
    for m in dynamic_modules(model):
        rows = max(1024, 2 * m.table.num_rows)
        m.export_rows = int(min(rows, m.table.max_rows) if m.table.max_rows else rows)


def dynamic_modules(model: nn.Module) -> List[DynamicEmbedding]:
    return [m for m in model.modules() if isinstance(m, DynamicEmbedding)]
