"""AutoInt (Song et al., 2019, "AutoInt: Automatic Feature Interaction Learning via
Self-Attentive Neural Networks"); tf twin of ``easyrec.models.torch.autoint``.

Config: :class:`easyrec.models.specs.AutoIntConfig` -- group ``deep`` (its sparse/sequence
features are the attention's fields; with its dense features, the MLP's input); knobs
``attention_layers``, ``attention_heads``, ``attention_dim``, ``residual``, ``hidden_units``
(the parallel MLP of AutoInt+; [] = attention only), ``dropout``, ``activation``,
``batchnorm``. logit = Linear([flattened attention output, MLP output]).
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import AutoIntConfig
from easyrec.models.tf.base import RecModel
from easyrec.models.tf.embedding import EmbeddingCollection
from easyrec.models.tf.group import FeatureGroup
from easyrec.models.tf.interactions import InteractingLayer
from easyrec.models.tf.layers import MLP, LayerList, TaskHeads


class AutoInt(RecModel):
    """Self-attention layers over ``deep``'s fields, beside an optional MLP over ``deep``."""

    def __init__(self, cfg: AutoIntConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        self.deep_group = FeatureGroup(features, cfg.feature_groups["deep"])
        self.embedding = EmbeddingCollection(features, self.deep_group.embedded,
                                             init_std=cfg.embedding_init_std, name="embedding")
        self.deep_group.bind(self.embedding.layout)
        width = int(features[self.deep_group.embedded[0]].dim)
        layers = []
        for _ in range(cfg.attention_layers):
            layers.append(InteractingLayer(width, cfg.attention_heads, cfg.attention_dim,
                                           cfg.residual))
            width = layers[-1].output_dim
        self.attention = LayerList(layers, name="attention")
        self.attention_out = width * len(self.deep_group.embedded)
        self.use_mlp = len(cfg.hidden_units) > 0
        self.mlp = MLP(self.deep_group.output_dim, cfg.hidden_units, cfg.activation,
                       cfg.dropout, cfg.batchnorm, name="mlp")
        self.heads = TaskHeads(self.attention_out + (self.mlp.output_dim if self.use_mlp else 0),
                               self.task_names, name="heads")
        self.built = True  # every variable exists already

    def call(self, inputs: Dict[str, tf.Tensor], training: bool = False
             ) -> Dict[str, tf.Tensor]:
        embs = self.embedding(inputs)
        h = self.deep_group.field_block(inputs, embs)
        for layer in self.attention:
            h = layer(h)
        h = tf.reshape(h, [-1, self.attention_out])
        if self.use_mlp:
            h = tf.concat([tf.cast(h, tf.float32),
                           tf.cast(self.mlp(self.deep_group(inputs, embs), training=training),
                                   tf.float32)], axis=1)
        return self.heads(h)
