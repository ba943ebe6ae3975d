"""MMoE (Ma et al., 2018, "Modeling Task Relationships in Multi-task Learning with
Multi-gate Mixture-of-Experts").

Config: :class:`easyrec.models.specs.MMoEConfig` -- group ``deep``; knobs ``num_experts``,
``expert_units``, ``gate_units`` ([] = the paper's linear gate), ``tower_units``,
``dropout``, ``activation``. Tasks share the experts but each mixes them with its own
gate, so loosely related tasks (click vs. rating) hurt each other less than with a shared
bottom. Two or more ``tasks`` are the typical use.
"""
from typing import Dict

from torch import Tensor, nn

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import MMoEConfig
from easyrec.models.torch.base import RecModel
from easyrec.models.torch.embedding import EmbeddingCollection
from easyrec.models.torch.group import FeatureGroup
from easyrec.models.torch.layers import MLP, MMoELayer


class MMoE(RecModel):
    """Experts + per-task gates over the deep group, then one tower and logit per task."""

    def __init__(self, cfg: MMoEConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        self.deep_group = FeatureGroup(features, cfg.feature_groups["deep"])
        self.embedding = EmbeddingCollection(features, self.deep_group.embedded, init_std=cfg.embedding_init_std,
                                             sparse_grad=cfg.sparse_grad)
        self.mmoe = MMoELayer(self.deep_group.output_dim, cfg.num_experts, cfg.expert_units,
                              len(cfg.tasks), cfg.gate_units, cfg.activation, cfg.dropout)
        towers = []
        for _ in cfg.tasks:
            tower = MLP(self.mmoe.output_dim, cfg.tower_units, cfg.activation, cfg.dropout)
            towers.append(nn.Sequential(tower, nn.Linear(tower.output_dim, 1)))
        self.towers = nn.ModuleList(towers)

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        mixed = self.mmoe(self.deep_group(inputs, self.embedding(inputs)))
        out: Dict[str, Tensor] = {}
        for i, tower in enumerate(self.towers):
            out[self.task_names[i]] = tower(mixed[i]).squeeze(1)
        return out
