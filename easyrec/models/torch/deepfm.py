"""DeepFM (Guo et al., 2017, "DeepFM: A Factorization-Machine based Neural Network for CTR
Prediction").

Config: :class:`easyrec.models.specs.DeepFMConfig` -- groups ``wide`` (first-order term)
and ``deep`` (its sparse/sequence features are the FM's fields, and together with its dense
features the DNN's input: FM and DNN share the same embeddings, the paper's point); knobs
``hidden_units``, ``dropout``, ``activation``, ``batchnorm``. All FM fields must share one
embedding dim (checked by the config). logit = first order + FM + DNN.
"""
from typing import Dict

import torch
from torch import Tensor

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import DeepFMConfig
from easyrec.models.torch.base import RecModel
from easyrec.models.torch.embedding import EmbeddingCollection, WideLinear
from easyrec.models.torch.group import FeatureGroup
from easyrec.models.torch.layers import MLP, FMInteraction, TaskHeads


class DeepFM(RecModel):
    """First order over ``wide`` + FM over ``deep``'s embeddings + DNN over ``deep``."""

    def __init__(self, cfg: DeepFMConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        deep = cfg.feature_groups["deep"]
        self.wide = WideLinear(features, cfg.feature_groups["wide"], len(cfg.tasks),
                               cfg.sparse_grad)
        self.deep_group = FeatureGroup(features, deep)
        self.embedding = EmbeddingCollection(features, self.deep_group.embedded, init_std=cfg.embedding_init_std,
                                             sparse_grad=cfg.sparse_grad)
        self.use_fm = len(self.deep_group.embedded) >= 2
        self.fm = FMInteraction()
        self.mlp = MLP(self.deep_group.output_dim, cfg.hidden_units, cfg.activation,
                       cfg.dropout, cfg.batchnorm)
        self.heads = TaskHeads(self.mlp.output_dim, self.task_names)

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        embs = self.embedding(inputs)
        first = self.wide(inputs)
        deep = self.heads(self.mlp(self.deep_group(inputs, embs)))
        out: Dict[str, Tensor] = {}
        if self.use_fm:
            fields = torch.stack(self.deep_group.embedding_fields(inputs, embs), dim=1)
            fm = self.fm(fields).squeeze(1)
            for i, name in enumerate(self.task_names):
                out[name] = first[:, i] + fm + deep[name]
        else:
            for i, name in enumerate(self.task_names):
                out[name] = first[:, i] + deep[name]
        return out
