"""xDeepFM (Lian et al., 2018, "xDeepFM: Combining Explicit and Implicit Feature Interactions
for Recommender Systems").

Config: :class:`easyrec.models.specs.XDeepFMConfig` -- groups ``wide`` (linear part) and
``deep`` (its sparse/sequence features are the CIN's fields, and with its dense features the
DNN's input, sharing the embeddings); knobs ``cin_layer_sizes``, ``cin_split_half``,
``cin_activation``, ``hidden_units``, ``dropout``, ``activation``, ``batchnorm``.
logit = linear + Linear(CIN pooled maps) + Linear(DNN).
"""
from typing import Dict

import torch
from torch import Tensor

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import XDeepFMConfig
from easyrec.models.torch.base import RecModel
from easyrec.models.torch.embedding import EmbeddingCollection, WideLinear
from easyrec.models.torch.group import FeatureGroup
from easyrec.models.torch.interactions import CIN
from easyrec.models.torch.layers import MLP, TaskHeads


class XDeepFM(RecModel):
    """Linear over ``wide`` + CIN over ``deep``'s fields + DNN over ``deep``."""

    def __init__(self, cfg: XDeepFMConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        self.wide = WideLinear(features, cfg.feature_groups["wide"], len(cfg.tasks),
                               cfg.sparse_grad)
        self.deep_group = FeatureGroup(features, cfg.feature_groups["deep"])
        self.embedding = EmbeddingCollection(features, self.deep_group.embedded,
                                             init_std=cfg.embedding_init_std,
                                             sparse_grad=cfg.sparse_grad)
        self.cin = CIN(len(self.deep_group.embedded), cfg.cin_layer_sizes, cfg.cin_split_half,
                       cfg.cin_activation)
        self.use_mlp = len(cfg.hidden_units) > 0
        self.mlp = MLP(self.deep_group.output_dim, cfg.hidden_units, cfg.activation,
                       cfg.dropout, cfg.batchnorm)
        head_in = self.cin.output_dim + (self.mlp.output_dim if self.use_mlp else 0)
        self.heads = TaskHeads(head_in, self.task_names)

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        embs = self.embedding(inputs)
        first = self.wide(inputs)
        h = self.cin(torch.stack(self.deep_group.embedding_fields(inputs, embs), dim=1))
        if self.use_mlp:
            h = torch.cat([h, self.mlp(self.deep_group(inputs, embs))], dim=1)
        deep = self.heads(h)
        out: Dict[str, Tensor] = {}
        for i, name in enumerate(self.task_names):
            out[name] = first[:, i] + deep[name]
        return out
