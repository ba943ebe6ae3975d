"""DIN (Zhou et al., 2018, "Deep Interest Network for Click-Through Rate Prediction").

Config: :class:`easyrec.models.specs.DINConfig` -- groups ``deep`` (user, candidate and
context features) and ``sequence`` (behaviour sequences). Each sequence attends with the
sparse feature of ``deep`` that shares its ``embedding_name`` (e.g. ``hist_item_ids``
attends with ``item_id``), so the history is weighted by relevance to the candidate instead
of averaged. Knobs: ``attention_units``, ``attention_activation``, ``attention_softmax``,
``hidden_units``, ``dropout``, ``activation``, ``batchnorm``.
"""
from typing import Dict, List

import torch
from torch import Tensor, nn

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import DINConfig, din_target
from easyrec.models.torch.base import RecModel
from easyrec.models.torch.embedding import EmbeddingCollection
from easyrec.models.torch.group import FeatureGroup
from easyrec.models.torch.layers import MLP, TargetAttention, TaskHeads


class DIN(RecModel):
    """MLP over [deep group, attention-pooled sequences]."""

    seq_names: List[str]
    target_names: List[str]

    def __init__(self, cfg: DINConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        deep = cfg.feature_groups["deep"]
        self.deep_group = FeatureGroup(features, deep)
        self.seq_names = list(cfg.feature_groups["sequence"])
        targets = [din_target(n, deep, features) for n in self.seq_names]
        if any(t is None for t in targets):
            raise ValueError("every DIN sequence needs a target; run cfg.check(features)")
        self.target_names = [str(t) for t in targets]
        names = list(dict.fromkeys(self.deep_group.embedded + self.seq_names))
        self.embedding = EmbeddingCollection(features, names, init_std=cfg.embedding_init_std,
                                             sparse_grad=cfg.sparse_grad)
        self.attention = nn.ModuleList([
            TargetAttention(int(features[n].dim), cfg.attention_units,
                            cfg.attention_activation, cfg.attention_softmax)
            for n in self.seq_names])
        width = self.deep_group.output_dim + sum(int(features[n].dim) for n in self.seq_names)
        self.mlp = MLP(width, cfg.hidden_units, cfg.activation, cfg.dropout, cfg.batchnorm)
        self.heads = TaskHeads(self.mlp.output_dim, self.task_names)

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        embs = self.embedding(inputs)
        parts: List[Tensor] = [self.deep_group(inputs, embs)]
        for i, att in enumerate(self.attention):
            name = self.seq_names[i]
            parts.append(att(embs[self.target_names[i]], embs[name], inputs[name + ".lengths"]))
        return self.heads(self.mlp(torch.cat(parts, dim=1)))
