"""DIN (Zhou et al., 2018, "Deep Interest Network for Click-Through Rate Prediction"); tf
twin of ``easyrec.models.torch.din``.

Config: :class:`easyrec.models.specs.DINConfig` -- groups ``deep`` (user, candidate and
context features) and ``sequence`` (behaviour sequences). Each sequence attends with the
sparse feature of ``deep`` that shares its ``embedding_name`` (e.g. ``hist_item_ids``
attends with ``item_id``). Knobs: ``attention_units``, ``attention_activation``,
``attention_softmax``, ``hidden_units``, ``dropout``, ``activation``, ``batchnorm``.
"""
from __future__ import annotations

from typing import Dict, List

import tensorflow as tf

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import DINConfig, din_target
from easyrec.models.tf.base import RecModel
from easyrec.models.tf.embedding import EmbeddingCollection
from easyrec.models.tf.group import FeatureGroup
from easyrec.models.tf.layers import MLP, LayerList, TargetAttention, TaskHeads


class DIN(RecModel):
    """MLP over [deep group, attention-pooled sequences]."""

    def __init__(self, cfg: DINConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        deep = cfg.feature_groups["deep"]
        self.deep_group = FeatureGroup(features, deep)
        self.seq_names = tuple(cfg.feature_groups["sequence"])
        targets = [din_target(n, deep, features) for n in self.seq_names]
        if any(t is None for t in targets):
            raise ValueError("every DIN sequence needs a target; run cfg.check(features)")
        self.target_names = tuple(str(t) for t in targets)
        names = list(dict.fromkeys(self.deep_group.embedded + list(self.seq_names)))
        self.embedding = EmbeddingCollection(features, names, init_std=cfg.embedding_init_std, name="embedding")
        self.deep_group.bind(self.embedding.layout)
        self.attention = LayerList([
            TargetAttention(int(features[n].dim), cfg.attention_units,
                            cfg.attention_activation, cfg.attention_softmax,
                            name=f"attention_{i}")
            for i, n in enumerate(self.seq_names)], name="attention")
        width = self.deep_group.output_dim + sum(int(features[n].dim) for n in self.seq_names)
        self.mlp = MLP(width, cfg.hidden_units, cfg.activation, cfg.dropout, cfg.batchnorm,
                       name="mlp")
        self.heads = TaskHeads(self.mlp.output_dim, self.task_names, name="heads")
        self.built = True  # every variable exists already

    def call(self, inputs: Dict[str, tf.Tensor], training: bool = False
             ) -> Dict[str, tf.Tensor]:
        embs = self.embedding(inputs)
        parts: List[tf.Tensor] = [self.deep_group(inputs, embs)]
        for att, name, target in zip(self.attention, self.seq_names, self.target_names):
            pooled = att(embs[target], embs[name], inputs[name + ".lengths"])
            parts.append(tf.cast(pooled, tf.float32))
        return self.heads(self.mlp(tf.concat(parts, axis=1), training=training))
