"""Wide & Deep (Cheng et al., 2016, "Wide & Deep Learning for Recommender Systems"); tf twin
of ``easyrec.models.torch.wide_and_deep``.

Config: :class:`easyrec.models.specs.WideAndDeepConfig` -- groups ``wide`` (a linear term
over ids / crosses) and ``deep`` (an MLP over embeddings and dense inputs); knobs
``hidden_units``, ``dropout``, ``activation``, ``batchnorm``.
logit = wide(x) + head(MLP(deep(x))).
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import WideAndDeepConfig
from easyrec.models.tf.base import RecModel
from easyrec.models.tf.embedding import EmbeddingCollection, WideLinear
from easyrec.models.tf.group import FeatureGroup
from easyrec.models.tf.layers import MLP, TaskHeads


class WideAndDeep(RecModel):
    """Linear wide part plus an MLP over the deep group, summed per task."""

    def __init__(self, cfg: WideAndDeepConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        self.wide = WideLinear(features, cfg.feature_groups["wide"], len(cfg.tasks),
                               name="wide")
        self.deep_group = FeatureGroup(features, cfg.feature_groups["deep"])
        self.embedding = EmbeddingCollection(features, self.deep_group.embedded, init_std=cfg.embedding_init_std,
                                             name="embedding")
        self.deep_group.bind(self.embedding.layout)
        self.mlp = MLP(self.deep_group.output_dim, cfg.hidden_units, cfg.activation,
                       cfg.dropout, cfg.batchnorm, name="mlp")
        self.heads = TaskHeads(self.mlp.output_dim, self.task_names, name="heads")
        self.built = True  # every variable exists already

    def call(self, inputs: Dict[str, tf.Tensor], training: bool = False
             ) -> Dict[str, tf.Tensor]:
        wide = self.wide(inputs)
        x = self.deep_group(inputs, self.embedding(inputs))
        deep = self.heads(self.mlp(x, training=training))
        return {name: deep[name] + wide[:, i] for i, name in enumerate(self.task_names)}
