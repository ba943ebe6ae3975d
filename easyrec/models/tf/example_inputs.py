"""Random flat model inputs built from FeatureInfos alone (numpy; no framework import).

The numpy twin of ``easyrec.models.torch.example_inputs``: tests and benchmarks of the tf
zoo need batches before any data pipeline exists. Same layout (``Batch.to_flat``).
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from easyrec.features.info import FeatureInfo


def random_inputs(features: Dict[str, FeatureInfo], batch_size: int, seed: int = 0,
                  max_bag: int = 3) -> Dict[str, np.ndarray]:
    """Random flat model inputs for ``features``: sparse bags hold 0..max_bag ids (row 0 at
    least one); sequences are padded with 0 after a random length in [0, max_len]."""
    rng = np.random.default_rng(seed)
    out: Dict[str, np.ndarray] = {}
    for name, info in features.items():
        if info.kind == "dense":
            out[name] = rng.standard_normal((batch_size, info.dim)).astype(np.float32)
        elif info.kind == "sparse":
            counts = rng.integers(0, max_bag + 1, batch_size)
            counts[0] = max(int(counts[0]), 1)
            offsets = np.zeros(batch_size + 1, dtype=np.int64)
            offsets[1:] = np.cumsum(counts)
            nnz = int(offsets[-1])
            out[name + ".values"] = rng.integers(0, info.num_embeddings, nnz).astype(np.int64)
            out[name + ".offsets"] = offsets
            if info.weighted:
                out[name + ".weights"] = rng.random(nnz).astype(np.float32)
        else:
            lengths = rng.integers(0, info.max_len + 1, batch_size).astype(np.int64)
            values = rng.integers(1, info.num_embeddings, (batch_size, info.max_len))
            mask = np.arange(info.max_len)[None, :] < lengths[:, None]
            out[name + ".values"] = (values * mask).astype(np.int64)
            out[name + ".lengths"] = lengths
    return out
