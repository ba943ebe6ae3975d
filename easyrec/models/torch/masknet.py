"""MaskNet (Wang et al., 2021, "MaskNet: Introducing Feature-Wise Multiplication to CTR
Ranking Models by Instance-Guided Mask").

Config: :class:`easyrec.models.specs.MaskNetConfig` -- group ``deep`` (dense inputs and
pooled embeddings concatenated: v_emb); knobs ``mode`` (``serial``: MaskBlocks in a chain;
``parallel``: side by side on v_emb, concatenated), ``num_blocks``, ``block_dim``,
``reduction_ratio`` (the mask MLP's width over its input's), ``hidden_units``, ``dropout``,
``activation``, ``batchnorm``.
"""
from typing import Dict

from torch import Tensor

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import MaskNetConfig
from easyrec.models.torch.base import RecModel
from easyrec.models.torch.embedding import EmbeddingCollection
from easyrec.models.torch.group import FeatureGroup
from easyrec.models.torch.interactions import MaskNetBlocks
from easyrec.models.torch.layers import MLP, TaskHeads


class MaskNet(RecModel):
    """MaskBlocks (serial or parallel) over ``deep``'s input, then an MLP."""

    def __init__(self, cfg: MaskNetConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        self.deep_group = FeatureGroup(features, cfg.feature_groups["deep"])
        self.embedding = EmbeddingCollection(features, self.deep_group.embedded,
                                             init_std=cfg.embedding_init_std,
                                             sparse_grad=cfg.sparse_grad)
        self.blocks = MaskNetBlocks(self.deep_group.output_dim, cfg.num_blocks, cfg.block_dim,
                                    cfg.reduction_ratio, cfg.mode == "parallel")
        self.mlp = MLP(self.blocks.output_dim, cfg.hidden_units, cfg.activation, cfg.dropout,
                       cfg.batchnorm)
        self.heads = TaskHeads(self.mlp.output_dim, self.task_names)

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        v = self.deep_group(inputs, self.embedding(inputs))
        return self.heads(self.mlp(self.blocks(v)))
