"""Random flat model inputs built from FeatureInfos alone.

Export needs example inputs to trace, and tests need batches, before any data pipeline
exists; both only know the features.
"""
from typing import Dict

import torch
from torch import Tensor

from easyrec.features.info import FeatureInfo


def random_inputs(features: Dict[str, FeatureInfo], batch_size: int, seed: int = 0,
                  max_bag: int = 3) -> Dict[str, Tensor]:
    """Random flat model inputs (``Batch.to_flat`` layout) for ``features``.

    Sparse bags hold 0..max_bag ids (row 0 always holds at least one); sequences are
    padded with 0 after a random length in [0, max_len].
    """
    g = torch.Generator().manual_seed(seed)
    out: Dict[str, Tensor] = {}
    for name, info in features.items():
        if info.kind == "dense":
            out[name] = torch.randn(batch_size, info.dim, generator=g)
        elif info.kind == "sparse":
            counts = torch.randint(0, max_bag + 1, (batch_size,), generator=g)
            counts[0] = max(int(counts[0]), 1)
            offsets = torch.zeros(batch_size + 1, dtype=torch.long)
            offsets[1:] = torch.cumsum(counts, 0)
            nnz = int(offsets[-1])
            out[name + ".values"] = torch.randint(0, info.num_embeddings, (nnz,), generator=g)
            out[name + ".offsets"] = offsets
            if info.weighted:
                out[name + ".weights"] = torch.rand(nnz, generator=g)
        else:
            lengths = torch.randint(0, info.max_len + 1, (batch_size,), generator=g)
            values = torch.randint(1, info.num_embeddings, (batch_size, info.max_len), generator=g)
            mask = torch.arange(info.max_len).unsqueeze(0) < lengths.unsqueeze(1)
            out[name + ".values"] = values * mask
            out[name + ".lengths"] = lengths
    return out
