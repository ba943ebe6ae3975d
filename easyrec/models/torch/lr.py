"""Logistic regression: the linear baseline every other model must beat.

Config: :class:`easyrec.models.specs.LRConfig` -- group ``wide`` (dense, sparse or sequence
features); no other knobs. logit = bias + sum of one learned weight per id (one fused
lookup) + a Linear over the dense inputs. With several tasks each gets its own weights.
"""
from typing import Dict

from torch import Tensor

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import LRConfig
from easyrec.models.torch.base import RecModel
from easyrec.models.torch.embedding import WideLinear


class LR(RecModel):
    """bias + w . x over the wide group, one output column per task."""

    def __init__(self, cfg: LRConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        self.wide = WideLinear(features, cfg.feature_groups["wide"], len(cfg.tasks),
                               cfg.sparse_grad)

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        logits = self.wide(inputs)
        out: Dict[str, Tensor] = {}
        for i, name in enumerate(self.task_names):
            out[name] = logits[:, i]
        return out
