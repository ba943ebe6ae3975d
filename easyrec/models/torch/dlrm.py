"""DLRM (Naumov et al., 2019, "Deep Learning Recommendation Model for Personalization and
Recommendation Systems").

Config: :class:`easyrec.models.specs.DLRMConfig` -- group ``deep``: its dense features go
through the bottom MLP (``bottom_units`` plus a last layer to the embedding dim), its
sparse/sequence features are the fields; knobs ``top_units``, ``interaction_itself``,
``dropout``, ``activation``, ``batchnorm``. The top MLP reads [bottom output, pairwise dots
of bottom output and fields]; with no dense feature, the flattened fields take the bottom
output's place.
"""
from typing import Dict, List

import torch
from torch import Tensor

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import DLRMConfig
from easyrec.models.torch.base import RecModel
from easyrec.models.torch.embedding import EmbeddingCollection
from easyrec.models.torch.group import FeatureGroup
from easyrec.models.torch.interactions import DotInteraction
from easyrec.models.torch.layers import MLP, TaskHeads


class DLRM(RecModel):
    """Bottom MLP over dense inputs, dot interaction with the fields, top MLP."""

    def __init__(self, cfg: DLRMConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        deep = cfg.feature_groups["deep"]
        self.deep_group = FeatureGroup(features, deep)
        self.dense_group = FeatureGroup(features, [n for n in deep if features[n].kind == "dense"])
        self.embedding = EmbeddingCollection(features, self.deep_group.embedded,
                                             init_std=cfg.embedding_init_std,
                                             sparse_grad=cfg.sparse_grad)
        dim = int(features[self.deep_group.embedded[0]].dim)
        num_fields = len(self.deep_group.embedded)
        self.has_dense = len(self.dense_group.names) > 0
        bottom_units = [int(u) for u in cfg.bottom_units] + [dim] if self.has_dense else []
        self.bottom = MLP(max(self.dense_group.output_dim, 1), bottom_units, cfg.activation)
        self.interaction = DotInteraction(num_fields + int(self.has_dense),
                                          cfg.interaction_itself)
        top_in = self.interaction.output_dim + (dim if self.has_dense else dim * num_fields)
        self.top = MLP(top_in, cfg.top_units, cfg.activation, cfg.dropout, cfg.batchnorm)
        self.heads = TaskHeads(self.top.output_dim, self.task_names)

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        embs = self.embedding(inputs)
        rows: List[Tensor] = self.deep_group.embedding_fields(inputs, embs)
        if self.has_dense:
            bottom = self.bottom(self.dense_group(inputs, embs))
            rows = [bottom] + rows
        else:
            bottom = torch.cat(rows, dim=1)
        dots = self.interaction(torch.stack(rows, dim=1))
        return self.heads(self.top(torch.cat([bottom, dots], dim=1)))
