"""A feature group (``model.feature_groups.<name>``) turned into tensors a model can use.

The embeddings come from one shared :class:`EmbeddingCollection` (so groups that name the
same feature or table share parameters and the whole model makes one lookup per width);
a group only selects and arranges: ``forward`` concatenates dense inputs, pooled sparse
embeddings and pooled sequence embeddings in the group's order into [B, output_dim];
``embedding_fields`` gives the pooled embeddings alone (the FM's fields).
"""
from typing import Dict, List

import torch
from torch import Tensor, nn

from easyrec.features.info import FeatureInfo
from easyrec.models.torch.embedding import pool_sequence


class FeatureGroup(nn.Module):
    """Parameter-free view of one group over the model inputs and the embedding dict."""

    names: List[str]
    kinds: List[str]
    mean: List[bool]
    embedded: List[str]

    def __init__(self, features: Dict[str, FeatureInfo], names: List[str]) -> None:
        super().__init__()
        self.names = list(names)
        self.kinds = [features[n].kind for n in names]
        self.mean = [features[n].pooling == "mean" for n in names]
        self.output_dim = sum(int(features[n].dim) for n in names)
        self.embedded = [n for n in names if features[n].kind != "dense"]

    def forward(self, inputs: Dict[str, Tensor], embs: Dict[str, Tensor]) -> Tensor:
        parts: List[Tensor] = []
        for i, name in enumerate(self.names):
            parts.append(self._one(i, name, inputs, embs))
        return torch.cat(parts, dim=1)

    def embedding_fields(self, inputs: Dict[str, Tensor], embs: Dict[str, Tensor]
                         ) -> List[Tensor]:
        """Pooled [B, d] embedding of every sparse/sequence feature, in group order."""
        parts: List[Tensor] = []
        for i, name in enumerate(self.names):
            if self.kinds[i] != "dense":
                parts.append(self._one(i, name, inputs, embs))
        return parts

    def _one(self, i: int, name: str, inputs: Dict[str, Tensor], embs: Dict[str, Tensor]
             ) -> Tensor:
        kind = self.kinds[i]
        if kind == "dense":
            return inputs[name]
        if kind == "sparse":
            return embs[name]
        return pool_sequence(embs[name], inputs[name + ".lengths"], self.mean[i])
