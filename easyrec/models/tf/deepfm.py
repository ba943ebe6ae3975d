"""DeepFM (Guo et al., 2017, "DeepFM: A Factorization-Machine based Neural Network for CTR
Prediction"); tf twin of ``easyrec.models.torch.deepfm``.

Config: :class:`easyrec.models.specs.DeepFMConfig` -- groups ``wide`` (first-order term)
and ``deep`` (its sparse/sequence features are the FM's fields, and together with its dense
features the DNN's input: FM and DNN share the same embeddings); knobs ``hidden_units``,
``dropout``, ``activation``, ``batchnorm``. All FM fields share one embedding dim (checked
by the config). logit = first order + FM + DNN.
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import DeepFMConfig
from easyrec.models.tf.base import RecModel
from easyrec.models.tf.embedding import EmbeddingCollection, WideLinear
from easyrec.models.tf.group import FeatureGroup
from easyrec.models.tf.layers import MLP, TaskHeads, fm_interaction


class DeepFM(RecModel):
    """First order over ``wide`` + FM over ``deep``'s embeddings + DNN over ``deep``."""

    def __init__(self, cfg: DeepFMConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        self.wide = WideLinear(features, cfg.feature_groups["wide"], len(cfg.tasks),
                               name="wide")
        self.deep_group = FeatureGroup(features, cfg.feature_groups["deep"])
        self.embedding = EmbeddingCollection(features, self.deep_group.embedded, init_std=cfg.embedding_init_std,
                                             name="embedding")
        self.deep_group.bind(self.embedding.layout)
        self.use_fm = len(self.deep_group.embedded) >= 2
        self.mlp = MLP(self.deep_group.output_dim, cfg.hidden_units, cfg.activation,
                       cfg.dropout, cfg.batchnorm, name="mlp")
        self.heads = TaskHeads(self.mlp.output_dim, self.task_names, name="heads")
        self.built = True  # every variable exists already

    def call(self, inputs: Dict[str, tf.Tensor], training: bool = False
             ) -> Dict[str, tf.Tensor]:
        embs = self.embedding(inputs)
        first = self.wide(inputs)
        deep = self.heads(self.mlp(self.deep_group(inputs, embs), training=training))
        out: Dict[str, tf.Tensor] = {}
        if self.use_fm:
            fm = fm_interaction(self.deep_group.field_block(inputs, embs))[:, 0]
            for i, name in enumerate(self.task_names):
                out[name] = first[:, i] + fm + deep[name]
        else:
            for i, name in enumerate(self.task_names):
                out[name] = first[:, i] + deep[name]
        return out
