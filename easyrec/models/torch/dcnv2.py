"""DCN-V2 (Wang et al., 2021, "DCN V2: Improved Deep & Cross Network and Practical Lessons
for Web-scale Learning to Rank Systems").

Config: :class:`easyrec.models.specs.DCNv2Config` -- group ``deep``; knobs
``cross_layers``, ``low_rank`` (None = full d x d cross matrices, r = U V^T of rank r),
``hidden_units``, ``structure`` (``stacked``: cross then MLP; ``parallel``: both on x0,
concatenated), ``dropout``, ``activation``, ``batchnorm``.
"""
from typing import Dict

import torch
from torch import Tensor

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import DCNv2Config
from easyrec.models.torch.base import RecModel
from easyrec.models.torch.embedding import EmbeddingCollection
from easyrec.models.torch.group import FeatureGroup
from easyrec.models.torch.layers import MLP, CrossNetV2, TaskHeads


class DCNv2(RecModel):
    """Cross network + MLP over the deep group's concatenated input x0."""

    def __init__(self, cfg: DCNv2Config, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        self.deep_group = FeatureGroup(features, cfg.feature_groups["deep"])
        self.embedding = EmbeddingCollection(features, self.deep_group.embedded, init_std=cfg.embedding_init_std,
                                             sparse_grad=cfg.sparse_grad)
        d = self.deep_group.output_dim
        self.cross = CrossNetV2(d, cfg.cross_layers, cfg.low_rank or 0)
        self.parallel = cfg.structure == "parallel"
        self.mlp = MLP(d, cfg.hidden_units, cfg.activation, cfg.dropout, cfg.batchnorm)
        head_in = d + self.mlp.output_dim if self.parallel else self.mlp.output_dim
        self.heads = TaskHeads(head_in, self.task_names)

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        x0 = self.deep_group(inputs, self.embedding(inputs))
        if self.parallel:
            h = torch.cat([self.cross(x0), self.mlp(x0)], dim=1)
        else:
            h = self.mlp(self.cross(x0))
        return self.heads(h)
