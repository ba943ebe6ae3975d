"""xDeepFM (Lian et al., 2018, "xDeepFM: Combining Explicit and Implicit Feature Interactions
for Recommender Systems"); tf twin of ``easyrec.models.torch.xdeepfm``.

Config: :class:`easyrec.models.specs.XDeepFMConfig` -- groups ``wide`` (linear part) and
``deep`` (its sparse/sequence features are the CIN's fields, and with its dense features the
DNN's input, sharing the embeddings); knobs ``cin_layer_sizes``, ``cin_split_half``,
``cin_activation``, ``hidden_units``, ``dropout``, ``activation``, ``batchnorm``.
logit = linear + Linear(CIN pooled maps) + Linear(DNN).
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import XDeepFMConfig
from easyrec.models.tf.base import RecModel
from easyrec.models.tf.embedding import EmbeddingCollection, WideLinear
from easyrec.models.tf.group import FeatureGroup
from easyrec.models.tf.interactions import CIN
from easyrec.models.tf.layers import MLP, TaskHeads


class XDeepFM(RecModel):
    """Linear over ``wide`` + CIN over ``deep``'s fields + DNN over ``deep``."""

    def __init__(self, cfg: XDeepFMConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        self.wide = WideLinear(features, cfg.feature_groups["wide"], len(cfg.tasks),
                               name="wide")
        self.deep_group = FeatureGroup(features, cfg.feature_groups["deep"])
        self.embedding = EmbeddingCollection(features, self.deep_group.embedded,
                                             init_std=cfg.embedding_init_std, name="embedding")
        self.deep_group.bind(self.embedding.layout)
        self.cin = CIN(len(self.deep_group.embedded), cfg.cin_layer_sizes, cfg.cin_split_half,
                       cfg.cin_activation, name="cin")
        self.use_mlp = len(cfg.hidden_units) > 0
        self.mlp = MLP(self.deep_group.output_dim, cfg.hidden_units, cfg.activation,
                       cfg.dropout, cfg.batchnorm, name="mlp")
        head_in = self.cin.output_dim + (self.mlp.output_dim if self.use_mlp else 0)
        self.heads = TaskHeads(head_in, self.task_names, name="heads")
        self.built = True  # every variable exists already

    def call(self, inputs: Dict[str, tf.Tensor], training: bool = False
             ) -> Dict[str, tf.Tensor]:
        embs = self.embedding(inputs)
        first = self.wide(inputs)
        h = self.cin(self.deep_group.field_block(inputs, embs))
        if self.use_mlp:
            h = tf.concat([h, self.mlp(self.deep_group(inputs, embs), training=training)],
                          axis=1)
        deep = self.heads(h)
        return {name: first[:, i] + deep[name] for i, name in enumerate(self.task_names)}
