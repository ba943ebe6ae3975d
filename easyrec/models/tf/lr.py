"""Logistic regression: the linear baseline every other model must beat (tf twin of
``easyrec.models.torch.lr``).

Config: :class:`easyrec.models.specs.LRConfig` -- group ``wide`` (dense, sparse or sequence
features); no other knobs. logit = bias + sum of one learned weight per id (one fused
lookup) + a Dense over the dense inputs. With several tasks each gets its own weights.
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import LRConfig
from easyrec.models.tf.base import RecModel
from easyrec.models.tf.embedding import WideLinear


class LR(RecModel):
    """bias + w . x over the wide group, one output column per task."""

    def __init__(self, cfg: LRConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        self.wide = WideLinear(features, cfg.feature_groups["wide"], len(cfg.tasks),
                               name="wide")
        self.built = True  # every variable exists already

    def call(self, inputs: Dict[str, tf.Tensor], training: bool = False
             ) -> Dict[str, tf.Tensor]:
        logits = self.wide(inputs)
        return {name: logits[:, i] for i, name in enumerate(self.task_names)}
