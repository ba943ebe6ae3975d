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
