"""AutoInt (Song et al., 2019, "AutoInt: Automatic Feature Interaction Learning via
Self-Attentive Neural Networks").

Config: :class:`easyrec.models.specs.AutoIntConfig` -- group ``deep`` (its sparse/sequence
features are the attention's fields; with its dense features, the MLP's input); knobs
``attention_layers``, ``attention_heads``, ``attention_dim``, ``residual``, ``hidden_units``
(the parallel MLP of AutoInt+; [] = attention only), ``dropout``, ``activation``,
``batchnorm``. logit = Linear([flattened attention output, MLP output]).
"""
from typing import Dict, List

import torch
from torch import Tensor, nn

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import AutoIntConfig
from easyrec.models.torch.base import RecModel
from easyrec.models.torch.embedding import EmbeddingCollection
from easyrec.models.torch.group import FeatureGroup
from easyrec.models.torch.interactions import InteractingLayer
from easyrec.models.torch.layers import MLP, TaskHeads


class AutoInt(RecModel):
    """Self-attention layers over ``deep``'s fields, beside an optional MLP over ``deep``."""

    def __init__(self, cfg: AutoIntConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        self.deep_group = FeatureGroup(features, cfg.feature_groups["deep"])
        self.embedding = EmbeddingCollection(features, self.deep_group.embedded,
                                             init_std=cfg.embedding_init_std,
                                             sparse_grad=cfg.sparse_grad)
        width = int(features[self.deep_group.embedded[0]].dim)
        layers: List[nn.Module] = []
        for _ in range(cfg.attention_layers):
            layer = InteractingLayer(width, cfg.attention_heads, cfg.attention_dim,
                                     cfg.residual)
            layers.append(layer)
            width = layer.output_dim
        self.attention = nn.Sequential(*layers)
        attn_out = width * len(self.deep_group.embedded)
        self.use_mlp = len(cfg.hidden_units) > 0
        self.mlp = MLP(self.deep_group.output_dim, cfg.hidden_units, cfg.activation,
                       cfg.dropout, cfg.batchnorm)
        self.heads = TaskHeads(attn_out + (self.mlp.output_dim if self.use_mlp else 0),
                               self.task_names)

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        embs = self.embedding(inputs)
        fields = torch.stack(self.deep_group.embedding_fields(inputs, embs), dim=1)
        h = self.attention(fields).flatten(1)
        if self.use_mlp:
            h = torch.cat([h, self.mlp(self.deep_group(inputs, embs))], dim=1)
        return self.heads(h)
