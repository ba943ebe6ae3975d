"""The backend-neutral batch that flows from the feature pipeline into any backend.

A :class:`Batch` holds only numpy arrays, so the torch backend (and later tf.keras) consume the
same output of one feature pipeline. Sparse features use TorchRec's layout: flat ``values``
plus CSR ``offsets`` (length B+1), so all features of one embedding dim can be looked up by
one fused EmbeddingBag call.

Flat naming (``Batch.to_flat``), the model input contract, one dict of arrays:
  dense feature ``f``     -> ``f``          float32 [B, dim]
  sparse feature ``f``    -> ``f.values``   int64 [nnz]   row index into f's table
                             ``f.offsets``  int64 [B+1]
                             ``f.weights``  float32 [nnz] (only if FeatureInfo.weighted)
  sequence feature ``f``  -> ``f.values``   int64 [B, max_len] (0 where padded)
                             ``f.lengths``  int64 [B]
"""
from __future__ import annotations

from dataclasses import dataclass, field

from typing import Any

import numpy as np


@dataclass
class SparseValues:
    """Ids of one sparse feature for a batch: CSR layout, one bag per row."""

    values: np.ndarray  # int64 [nnz], indices in [0, num_embeddings)
    offsets: np.ndarray  # int64 [B+1], offsets[0] == 0, offsets[-1] == nnz
    weights: np.ndarray | None = None  # float32 [nnz] or None


@dataclass
class SequenceValues:
    """A padded id sequence per row (e.g. a user's item history), newest first."""

    values: np.ndarray  # int64 [B, max_len], 0 in padded slots
    lengths: np.ndarray  # int64 [B], number of valid leading slots


@dataclass
class Batch:
    """One transformed batch. ``labels`` maps label name -> float32 [B]; ``group_ids`` is an
    int64 [B] key (e.g. hashed user id) used for GAUC, or None."""

    size: int
    dense: dict[str, np.ndarray] = field(default_factory=dict)
    sparse: dict[str, SparseValues] = field(default_factory=dict)
    sequence: dict[str, SequenceValues] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    group_ids: np.ndarray | None = None
    # the engine's ready-to-call form of this batch (``Engine.stage``), made by the loader's
    # background thread so the train step does not pay for it; None: the engine makes it itself
    staged: Any = field(default=None, repr=False, compare=False)

    def slice(self, start: int, stop: int) -> "Batch":
        """Rows [start, stop) as a Batch (views where possible): lets the loader transform a
        large chunk once and hand out batch-sized pieces, the per-call cost paid once."""
        stop = min(stop, self.size)
        sparse = {}
        for name, sv in self.sparse.items():
            lo, hi = int(sv.offsets[start]), int(sv.offsets[stop])
            sparse[name] = SparseValues(sv.values[lo:hi], sv.offsets[start:stop + 1] - lo,
                                        None if sv.weights is None else sv.weights[lo:hi])
        return Batch(
            size=stop - start,
            dense={k: v[start:stop] for k, v in self.dense.items()},
            sparse=sparse,
            sequence={k: SequenceValues(v.values[start:stop], v.lengths[start:stop]) for k, v in self.sequence.items()},
            labels={k: v[start:stop] for k, v in self.labels.items()},
            group_ids=None if self.group_ids is None else self.group_ids[start:stop],
        )

    def single_id_features(self) -> frozenset[str]:
        """Sparse features with exactly one id in every row (their bags need no offsets work)."""
        return frozenset(name for name, sv in self.sparse.items()
                         if len(sv.values) == self.size and np.array_equal(sv.offsets, np.arange(self.size + 1)))

    def take(self, rows: np.ndarray, single: frozenset[str] = frozenset(), inputs: bool = True) -> "Batch":
        """The given rows, in that order (copies): the in-memory cache's shuffled batches.
        ``single``: features known to hold one id per row (:meth:`single_id_features`), taken
        by one plain gather each. ``inputs=False``: labels and group ids only (the engine
        gathers the inputs itself, see ``Engine.row_stager``)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not inputs:
            return Batch(size=len(rows), labels={k: v[rows] for k, v in self.labels.items()},
                         group_ids=None if self.group_ids is None else self.group_ids[rows])
        sparse = {}
        ones = np.arange(len(rows) + 1, dtype=np.int64) if single else None
        for name, sv in self.sparse.items():
            if name in single:
                sparse[name] = SparseValues(sv.values[rows], ones, None if sv.weights is None else sv.weights[rows])
                continue
            starts, lengths = sv.offsets[rows], sv.offsets[rows + 1] - sv.offsets[rows]
            offsets = np.zeros(len(rows) + 1, np.int64)
            np.cumsum(lengths, out=offsets[1:])
            # position of every id of the new bags in the old values: its bag's old start plus
            # its place in the bag (one vectorised ragged gather, no loop over rows)
            src = np.arange(int(offsets[-1]), dtype=np.int64) + np.repeat(starts - offsets[:-1], lengths)
            sparse[name] = SparseValues(sv.values[src], offsets, None if sv.weights is None else sv.weights[src])
        return Batch(
            size=len(rows),
            dense={k: v[rows] for k, v in self.dense.items()},
            sparse=sparse,
            sequence={k: SequenceValues(v.values[rows], v.lengths[rows]) for k, v in self.sequence.items()},
            labels={k: v[rows] for k, v in self.labels.items()},
            group_ids=None if self.group_ids is None else self.group_ids[rows],
        )

    @staticmethod
    def concat(batches: list["Batch"]) -> "Batch":
        """Rows of several batches (same features) as one Batch; sequences must share max_len
        or are right-padded with 0 to the longest."""
        if len(batches) == 1:
            return batches[0]
        first = batches[0]
        sparse = {}
        for name in first.sparse:
            parts = [b.sparse[name] for b in batches]
            shift = np.cumsum([0] + [int(p.offsets[-1]) for p in parts[:-1]])
            offsets = np.concatenate([parts[0].offsets[:1]] + [p.offsets[1:] + s for p, s in zip(parts, shift)])
            weights = None if parts[0].weights is None else np.concatenate([p.weights for p in parts])
            sparse[name] = SparseValues(np.concatenate([p.values for p in parts]), offsets, weights)
        sequence = {}
        for name in first.sequence:
            parts = [b.sequence[name] for b in batches]
            width = max(p.values.shape[1] for p in parts)
            values = np.concatenate([np.pad(p.values, ((0, 0), (0, width - p.values.shape[1]))) for p in parts])
            sequence[name] = SequenceValues(values, np.concatenate([p.lengths for p in parts]))
        return Batch(
            size=sum(b.size for b in batches),
            dense={k: np.concatenate([b.dense[k] for b in batches]) for k in first.dense},
            sparse=sparse,
            sequence=sequence,
            labels={k: np.concatenate([b.labels[k] for b in batches]) for k in first.labels},
            group_ids=None if first.group_ids is None else np.concatenate([b.group_ids for b in batches]),
        )

    def nbytes(self) -> int:
        """Bytes held by the arrays (the in-memory cache's size)."""
        arrays = [*self.dense.values(), *self.labels.values()]
        for sv in self.sparse.values():
            arrays += [sv.values, sv.offsets] + ([] if sv.weights is None else [sv.weights])
        for seq in self.sequence.values():
            arrays += [seq.values, seq.lengths]
        if self.group_ids is not None:
            arrays.append(self.group_ids)
        return int(sum(a.nbytes for a in arrays))

    def to_flat(self) -> dict[str, np.ndarray]:
        """The model-input dict (see module docstring); labels and group ids excluded."""
        out: dict[str, np.ndarray] = dict(self.dense)
        for name, sv in self.sparse.items():
            out[f"{name}.values"] = sv.values
            out[f"{name}.offsets"] = sv.offsets
            if sv.weights is not None:
                out[f"{name}.weights"] = sv.weights
        for name, seq in self.sequence.items():
            out[f"{name}.values"] = seq.values
            out[f"{name}.lengths"] = seq.lengths
        return out
