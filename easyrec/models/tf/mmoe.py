"""MMoE (Ma et al., 2018, "Modeling Task Relationships in Multi-task Learning with
Multi-gate Mixture-of-Experts"); tf twin of ``easyrec.models.torch.mmoe``.

Config: :class:`easyrec.models.specs.MMoEConfig` -- group ``deep``; knobs ``num_experts``,
``expert_units``, ``gate_units`` ([] = the paper's linear gate), ``tower_units``,
``dropout``, ``activation``. Tasks share the experts; each mixes them with its own gate.
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import MMoEConfig
from easyrec.models.tf.base import RecModel
from easyrec.models.tf.embedding import EmbeddingCollection
from easyrec.models.tf.group import FeatureGroup
from easyrec.models.tf.layers import MLP, LayerList, MMoELayer, torch_linear


class MMoE(RecModel):
    """Experts + per-task gates over the deep group, then one tower and logit per task."""

    def __init__(self, cfg: MMoEConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        self.deep_group = FeatureGroup(features, cfg.feature_groups["deep"])
        self.embedding = EmbeddingCollection(features, self.deep_group.embedded, init_std=cfg.embedding_init_std,
                                             name="embedding")
        self.deep_group.bind(self.embedding.layout)
        self.mmoe = MMoELayer(self.deep_group.output_dim, cfg.num_experts, cfg.expert_units,
                              len(cfg.tasks), cfg.gate_units, cfg.activation, cfg.dropout,
                              name="mmoe")
        self.towers = LayerList([MLP(self.mmoe.output_dim, cfg.tower_units, cfg.activation,
                                     cfg.dropout, name=f"tower_{i}")
                                 for i in range(len(cfg.tasks))], name="towers")
        self.tower_out = LayerList([torch_linear(t.output_dim, 1, name=f"tower_out_{i}")
                                    for i, t in enumerate(self.towers)], name="tower_out")
        self.built = True  # every variable exists already

    def call(self, inputs: Dict[str, tf.Tensor], training: bool = False
             ) -> Dict[str, tf.Tensor]:
        x = self.deep_group(inputs, self.embedding(inputs))
        mixed = self.mmoe(x, training=training)
        out: Dict[str, tf.Tensor] = {}
        for i, name in enumerate(self.task_names):
            h = self.towers[i](mixed[i], training=training)
            out[name] = tf.cast(tf.reshape(self.tower_out[i](h), [-1]), tf.float32)
        return out
