"""Fused embedding lookups (TorchRec style): one EmbeddingBag call per embedding width.

Why fused: a model with 26 sparse features would otherwise make 26 small kernel calls per
step, each with its own Python and dispatch overhead. Here every table of one width lives
in one weight matrix (tables stacked row-wise, each at a fixed ``base`` row), and the
features' CSR ids are concatenated (ids shifted by their table's base, offsets shifted by
the ids before them) into a single ``nn.EmbeddingBag(mode="sum", include_last_offset=True)``
call. ``per_sample_weights`` carry a weighted feature's weights (1.0 for the unweighted
features of the same call; no weights at all if none is weighted); ``mean`` pooling divides
by the bag sizes after the call. Features sharing an ``embedding_name`` share one table.
Sequence features gather from the same weight with ``F.embedding`` so a DIN history shares
its candidate's table.

Measured on this machine's CPU (one thread, 26 features x 10k rows x 16, batch 4096,
forward + backward): with dense gradients the fused call is slower than 26 separate bags
(~22 ms vs ~13 ms: one big table's full dense gradient is written and accumulated at
once); with sparse gradients it takes ~3.5 ms (26 separate sparse bags: ~8 ms). Hence the
``model.sparse_grad`` knob.

``WideLinear`` is the same machinery with width-``out_dim`` (usually 1) zero-initialised
tables: the first-order term of LR, Wide & Deep and DeepFM.
"""
import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from easyrec.features.info import FeatureInfo
from easyrec.models.table_layout import plan_tables, table_of  # noqa: F401 - table_of re-exported


def pool_sequence(emb: Tensor, lengths: Tensor, mean: bool) -> Tensor:
    """Sum (or mean) of the first ``lengths`` positions of ``emb`` [B, L, d] -> [B, d]."""
    positions = torch.arange(emb.size(1), device=emb.device).unsqueeze(0)
    mask = (positions < lengths.unsqueeze(1)).to(emb.dtype).unsqueeze(2)
    pooled = (emb * mask).sum(1)
    if mean:
        pooled = pooled / lengths.clamp(min=1).to(emb.dtype).unsqueeze(1)
    return pooled


class FusedEmbeddingBag(nn.Module):
    """All tables of one width in one weight; all its sparse features in one call.

    forward returns ``name -> [B, dim]`` for sparse features (sum or mean pooled) and
    ``name -> [B, L, dim]`` for sequence features (not pooled; models decide how).
    """

    sparse_names: List[str]
    sparse_bases: List[int]
    sparse_weighted: List[bool]
    sparse_mean: List[bool]
    seq_names: List[str]
    seq_bases: List[int]
    dedup_ids: bool

    def __init__(self, dim: int, tables: List[Tuple[str, int]], sparse: List[FeatureInfo],
                 sequence: List[FeatureInfo], init_std: float, sparse_grad: bool = False
                 ) -> None:
        super().__init__()
        bases: Dict[str, int] = {}
        total = 0
        for name, rows in tables:
            bases[name] = total
            total += rows
        self.dim = dim
        self.table_bases = bases  # table name -> first row, for inspection and tests
        self.bag = nn.EmbeddingBag(total, dim, mode="sum", include_last_offset=True,
                                   sparse=sparse_grad)
        self.sparse_grad = sparse_grad
        self.dedup_ids = False  # trainer.dedup_ids: look each distinct id up once (training)
        with torch.no_grad():
            if init_std > 0:
                self.bag.weight.normal_(0.0, init_std)
            else:
                self.bag.weight.zero_()
        self.sparse_names = [f.name for f in sparse]
        self.sparse_bases = [bases[table_of(f)] for f in sparse]
        self.sparse_weighted = [bool(f.weighted) for f in sparse]
        self.sparse_mean = [f.pooling == "mean" for f in sparse]
        # without any weighted feature the bag runs unweighted (no ones tensor to build)
        self.any_weighted = any(self.sparse_weighted)
        self.seq_names = [f.name for f in sequence]
        self.seq_bases = [bases[table_of(f)] for f in sequence]

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        out: Dict[str, Tensor] = {}
        if len(self.sparse_names) > 0:
            values: List[Tensor] = []
            offsets: List[Tensor] = []
            weights: List[Tensor] = []
            shift: Optional[Tensor] = None
            for i, name in enumerate(self.sparse_names):
                v = inputs[name + ".values"]
                o = inputs[name + ".offsets"]
                values.append(v + self.sparse_bases[i])
                if shift is None:
                    offsets.append(o[:-1])
                    shift = o[-1:]
                else:
                    offsets.append(o[:-1] + shift)
                    shift = shift + o[-1:]
                if self.sparse_weighted[i]:
                    weights.append(inputs[name + ".weights"].to(self.bag.weight.dtype))
                elif self.any_weighted:
                    weights.append(torch.ones_like(v, dtype=self.bag.weight.dtype))
            assert shift is not None
            offsets.append(shift)
            per_sample: Optional[Tensor] = None
            if self.any_weighted:
                per_sample = torch.cat(weights)
            ids = torch.cat(values)
            if self.dedup_ids and self.training:
                pooled = self._dedup_bag(ids, torch.cat(offsets), per_sample)
            else:
                pooled = self.bag(ids, torch.cat(offsets), per_sample_weights=per_sample)
            # unbind, not pooled[i]: its backward is one stack, not one full-size zeros
            # tensor per feature
            per_feature = pooled.view(len(self.sparse_names), -1, self.dim).unbind(0)
            for i, name in enumerate(self.sparse_names):
                p = per_feature[i]
                if self.sparse_mean[i]:
                    o = inputs[name + ".offsets"]
                    counts = (o[1:] - o[:-1]).clamp(min=1).to(p.dtype)
                    p = p / counts.unsqueeze(1)
                out[name] = p
        for i, name in enumerate(self.seq_names):
            out[name] = F.embedding(inputs[name + ".values"] + self.seq_bases[i], self.bag.weight,
                                    sparse=self.sparse_grad)
        return out


    @torch.jit.unused
    def _dedup_bag(self, ids: Tensor, offsets: Tensor, per_sample: Optional[Tensor]) -> Tensor:
        """The bag over each distinct id gathered once: same sums, a backward that scatters one
        gradient row per distinct id (training only; export scripts the plain bag)."""
        uniq, inverse = torch.unique(ids, return_inverse=True)
        rows = F.embedding(uniq, self.bag.weight, sparse=self.sparse_grad)
        return F.embedding_bag(inverse, rows, offsets, mode="sum", include_last_offset=True,
                               per_sample_weights=per_sample)


class EmbeddingCollection(nn.Module):
    """Embeddings of the given sparse/sequence features, one fused lookup per width.

    ``dim`` > 0 overrides every table's width (the wide/first-order tables); ``init_std``
    None means N(0, 1/sqrt(dim)), 0 means zeros. ``sparse_grad`` gives the tables sparse
    gradients (only the looked-up rows; needs e.g. torch.optim.SparseAdam for
    ``RecModel.sparse_parameters()``). Output: see :class:`FusedEmbeddingBag`.
    """

    def __init__(self, features: Dict[str, FeatureInfo], names: List[str], dim: int = 0,
                 init_std: Optional[float] = None, sparse_grad: bool = False) -> None:
        super().__init__()
        self.fused = nn.ModuleList()
        self.width_of: Dict[str, int] = {}
        # dynamic tables (``dynamic:`` features, easyrec.dynamic) are keyed by raw ids: their
        # own modules, not rows of the fused weight
        dynamic = [n for n in names if features[n].dynamic is not None]
        names = [n for n in names if features[n].dynamic is None]
        self.dynamic = nn.ModuleList()
        if dynamic:
            from easyrec.dynamic.module import dynamic_embeddings

            self.dynamic.extend(dynamic_embeddings(features, dynamic, dim, init_std))
            for n in dynamic:
                self.width_of[n] = dim if dim > 0 else int(features[n].dim)
        for g in plan_tables(features, names, dim):
            width, sparse, sequence = g.width, g.sparse, g.sequence
            std = init_std if init_std is not None else 1.0 / math.sqrt(width)
            self.fused.append(FusedEmbeddingBag(width, g.tables, sparse, sequence, std, sparse_grad))
            for f in sparse + sequence:
                self.width_of[f.name] = width

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        out: Dict[str, Tensor] = {}
        for m in self.fused:
            for k, v in m(inputs).items():
                out[k] = v
        for m in self.dynamic:
            for k, v in m(inputs).items():
                out[k] = v
        return out


class WideLinear(nn.Module):
    """First-order (linear) term over a group: per-id weights + a Linear over dense inputs.

    Returns [B, out_dim]; ``out_dim`` = number of tasks so multi-task models get one linear
    term per task from the same single fused lookup.
    """

    sparse_names: List[str]
    seq_names: List[str]
    seq_mean: List[bool]
    dense_names: List[str]

    def __init__(self, features: Dict[str, FeatureInfo], names: List[str], out_dim: int = 1,
                 sparse_grad: bool = False) -> None:
        super().__init__()
        embedded = [n for n in names if features[n].kind != "dense"]
        self.sparse_names = [n for n in embedded if features[n].kind == "sparse"]
        self.seq_names = [n for n in embedded if features[n].kind == "sequence"]
        self.seq_mean = [features[n].pooling == "mean" for n in self.seq_names]
        self.dense_names = [n for n in names if features[n].kind == "dense"]
        self.emb = EmbeddingCollection(features, embedded, dim=out_dim, init_std=0.0,
                                       sparse_grad=sparse_grad)
        dense_dim = sum(int(features[n].dim) for n in self.dense_names)
        # a ModuleList of 0 or 1 Linear keeps TorchScript happy without Optional modules
        self.dense = nn.ModuleList(
            [nn.Linear(dense_dim, out_dim, bias=False)] if self.dense_names else [])
        self.bias = nn.Parameter(torch.zeros(out_dim))

    def forward(self, inputs: Dict[str, Tensor]) -> Tensor:
        embs = self.emb(inputs)
        parts: List[Tensor] = []
        for name in self.sparse_names:
            parts.append(embs[name])
        for i, name in enumerate(self.seq_names):
            parts.append(pool_sequence(embs[name], inputs[name + ".lengths"], self.seq_mean[i]))
        for lin in self.dense:
            parts.append(lin(torch.cat([inputs[n] for n in self.dense_names], dim=1)))
        return torch.stack(parts, dim=0).sum(0) + self.bias
