"""DLRM (Naumov et al., 2019, "Deep Learning Recommendation Model for Personalization and
Recommendation Systems"); tf twin of ``easyrec.models.torch.dlrm``.

Config: :class:`easyrec.models.specs.DLRMConfig` -- group ``deep``: its dense features go
through the bottom MLP (``bottom_units`` plus a last layer to the embedding dim), its
sparse/sequence features are the fields; knobs ``top_units``, ``interaction_itself``,
``dropout``, ``activation``, ``batchnorm``. The top MLP reads [bottom output, pairwise dots
of bottom output and fields]; with no dense feature, the flattened fields take the bottom
output's place.
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import DLRMConfig
from easyrec.models.tf.base import RecModel
from easyrec.models.tf.embedding import EmbeddingCollection
from easyrec.models.tf.group import FeatureGroup
from easyrec.models.tf.interactions import DotInteraction
from easyrec.models.tf.layers import MLP, TaskHeads


class DLRM(RecModel):
    """Bottom MLP over dense inputs, dot interaction with the fields, top MLP."""

    def __init__(self, cfg: DLRMConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        deep = cfg.feature_groups["deep"]
        self.deep_group = FeatureGroup(features, deep)
        self.dense_group = FeatureGroup(features, [n for n in deep if features[n].kind == "dense"])
        self.embedding = EmbeddingCollection(features, self.deep_group.embedded,
                                             init_std=cfg.embedding_init_std, name="embedding")
        self.deep_group.bind(self.embedding.layout)
        dim = int(features[self.deep_group.embedded[0]].dim)
        num_fields = len(self.deep_group.embedded)
        self.has_dense = len(self.dense_group.names) > 0
        bottom_units = [int(u) for u in cfg.bottom_units] + [dim] if self.has_dense else []
        self.bottom = MLP(max(self.dense_group.output_dim, 1), bottom_units, cfg.activation,
                          name="bottom")
        self.interaction = DotInteraction(num_fields + int(self.has_dense),
                                          cfg.interaction_itself, name="interaction")
        top_in = self.interaction.output_dim + (dim if self.has_dense else dim * num_fields)
        self.top = MLP(top_in, cfg.top_units, cfg.activation, cfg.dropout, cfg.batchnorm,
                       name="top")
        self.heads = TaskHeads(self.top.output_dim, self.task_names, name="heads")
        self.built = True  # every variable exists already

    def call(self, inputs: Dict[str, tf.Tensor], training: bool = False
             ) -> Dict[str, tf.Tensor]:
        embs = self.embedding(inputs)
        fields = self.deep_group.field_block(inputs, embs)  # [B, F, d]
        if self.has_dense:
            bottom = tf.cast(self.bottom(self.dense_group(inputs, embs), training=training),
                             tf.float32)
            rows = tf.concat([bottom[:, None, :], fields], axis=1)
        else:
            bottom = tf.reshape(fields, [-1, fields.shape[1] * fields.shape[2]])
            rows = fields
        dots = self.interaction(rows)
        top_in = tf.concat([tf.cast(bottom, dots.dtype), dots], axis=1)
        return self.heads(self.top(top_in, training=training))
