"""Wide & Deep (Cheng et al., 2016, "Wide & Deep Learning for Recommender Systems").

Config: :class:`easyrec.models.specs.WideAndDeepConfig` -- groups ``wide`` (memorisation:
a linear term over ids / crosses) and ``deep`` (generalisation: an MLP over embeddings and
dense inputs); knobs ``hidden_units``, ``dropout``, ``activation``, ``batchnorm``.
logit = wide(x) + head(MLP(deep(x))).
"""
from typing import Dict

from torch import Tensor

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import WideAndDeepConfig
from easyrec.models.torch.base import RecModel
from easyrec.models.torch.embedding import EmbeddingCollection, WideLinear
from easyrec.models.torch.group import FeatureGroup
from easyrec.models.torch.layers import MLP, TaskHeads


class WideAndDeep(RecModel):
    """Linear wide part plus an MLP over the deep group, summed per task."""

    def __init__(self, cfg: WideAndDeepConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        deep = cfg.feature_groups["deep"]
        self.wide = WideLinear(features, cfg.feature_groups["wide"], len(cfg.tasks),
                               cfg.sparse_grad)
        self.deep_group = FeatureGroup(features, deep)
        self.embedding = EmbeddingCollection(features, self.deep_group.embedded, init_std=cfg.embedding_init_std,
                                             sparse_grad=cfg.sparse_grad)
        self.mlp = MLP(self.deep_group.output_dim, cfg.hidden_units, cfg.activation,
                       cfg.dropout, cfg.batchnorm)
        self.heads = TaskHeads(self.mlp.output_dim, self.task_names)

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        wide = self.wide(inputs)
        deep = self.heads(self.mlp(self.deep_group(inputs, self.embedding(inputs))))
        out: Dict[str, Tensor] = {}
        for i, name in enumerate(self.task_names):
            out[name] = deep[name] + wide[:, i]
        return out
