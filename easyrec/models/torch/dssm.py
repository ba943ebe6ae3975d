"""DSSM two-tower retrieval (Huang et al., 2013, "Learning Deep Structured Semantic Models
for Web Search using Clickthrough Data"), trained with the in-batch softmax of Yi et al.,
2019 ("Sampling-Bias-Corrected Neural Modeling for Large Corpus Item Recommendations").

Config: :class:`easyrec.models.specs.DSSMConfig` -- groups ``user`` and ``item`` (shared
tables are shared across towers, and both towers use one fused lookup); knobs
``tower_units``, ``output_dim``, ``temperature``, ``similarity`` (cosine normalises both
embeddings), ``dropout``, ``activation``, ``recall_k`` (for the trainer's recall@k).

forward returns ``user_emb`` / ``item_emb`` [B, output_dim] and, under the task name, the
per-row logit similarity / temperature. ``loss`` treats the rows whose label is > 0.5 as
positive pairs and every item of the batch as a candidate: cross-entropy of each positive
user against the batch's items, so no explicit negative sampling is needed.
"""
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import DSSMConfig
from easyrec.models.torch.base import RecModel
from easyrec.models.torch.embedding import EmbeddingCollection
from easyrec.models.torch.group import FeatureGroup
from easyrec.models.torch.layers import MLP


class DSSM(RecModel):
    """User tower and item tower; score = similarity(user, item) / temperature."""

    retrieval = True

    def __init__(self, cfg: DSSMConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        self.user_group = FeatureGroup(features, cfg.feature_groups["user"])
        self.item_group = FeatureGroup(features, cfg.feature_groups["item"])
        names = list(dict.fromkeys(self.user_group.embedded + self.item_group.embedded))
        self.embedding = EmbeddingCollection(features, names, init_std=cfg.embedding_init_std,
                                             sparse_grad=cfg.sparse_grad)
        self.user_tower = self._tower(self.user_group.output_dim, cfg)
        self.item_tower = self._tower(self.item_group.output_dim, cfg)
        self.cosine = cfg.similarity == "cosine"
        self.temperature = float(cfg.temperature)
        self.recall_k = [int(k) for k in cfg.recall_k]

    @staticmethod
    def _tower(input_dim: int, cfg: DSSMConfig) -> nn.Module:
        mlp = MLP(input_dim, cfg.tower_units, cfg.activation, cfg.dropout)
        return nn.Sequential(mlp, nn.Linear(mlp.output_dim, cfg.output_dim))

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        embs = self.embedding(inputs)
        user = self.user_tower(self.user_group(inputs, embs))
        item = self.item_tower(self.item_group(inputs, embs))
        if self.cosine:
            user = F.normalize(user, dim=1)
            item = F.normalize(item, dim=1)
        out: Dict[str, Tensor] = {"user_emb": user, "item_emb": item}
        out[self.task_names[0]] = (user * item).sum(dim=1) / self.temperature
        return out

    def loss(self, outputs: Dict[str, Tensor], labels: Dict[str, Tensor]) -> Tensor:
        """In-batch softmax over user x item similarities, positives = rows labelled > 0.5.

        A batch without positives gives a zero that still has a grad_fn, so the trainer's
        backward/step never special-cases it.
        """
        user, item = outputs["user_emb"], outputs["item_emb"]
        logits = user @ item.T / self.temperature  # [B, B]
        label = labels[self.task_labels[0]].reshape(-1)
        positive = label > 0.5
        if not bool(positive.any()):
            return logits.sum() * 0.0
        rows = torch.nonzero(positive).view(-1)
        return self.task_weights[0] * F.cross_entropy(logits[rows], rows)
