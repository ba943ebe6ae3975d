"""DSSM two-tower retrieval (Huang et al., 2013), trained with the in-batch softmax of Yi et
al., 2019; tf twin of ``easyrec.models.torch.dssm``.

Config: :class:`easyrec.models.specs.DSSMConfig` -- groups ``user`` and ``item`` (shared
tables are shared across towers, and both towers use one fused lookup); knobs
``tower_units``, ``output_dim``, ``temperature``, ``similarity`` (cosine normalises both
embeddings), ``dropout``, ``activation``, ``recall_k`` (for the trainer's recall@k).

call returns ``user_emb`` / ``item_emb`` [B, output_dim] and, under the task name, the
per-row logit similarity / temperature. ``loss`` treats the rows whose label is > 0.5 as
positive pairs and every item of the batch as a candidate: the mean over positive rows of
the cross-entropy of the row's user against the batch's items. Written with masks (no
boolean indexing), so it traces once; a batch without positives gives a zero that still
has a gradient path.
"""
from __future__ import annotations

from typing import Any, Dict

import tensorflow as tf

from easyrec.features.info import FeatureInfo
from easyrec.models.specs import DSSMConfig
from easyrec.models.tf.base import RecModel
from easyrec.models.tf.embedding import EmbeddingCollection
from easyrec.models.tf.group import FeatureGroup
from easyrec.models.tf.layers import MLP, torch_linear


class DSSM(RecModel):
    """User tower and item tower; score = similarity(user, item) / temperature."""

    retrieval = True

    def __init__(self, cfg: DSSMConfig, features: Dict[str, FeatureInfo]) -> None:
        super().__init__(cfg, features)
        self.user_group = FeatureGroup(features, cfg.feature_groups["user"])
        self.item_group = FeatureGroup(features, cfg.feature_groups["item"])
        names = list(dict.fromkeys(self.user_group.embedded + self.item_group.embedded))
        self.embedding = EmbeddingCollection(features, names, init_std=cfg.embedding_init_std, name="embedding")
        self.user_group.bind(self.embedding.layout)
        self.item_group.bind(self.embedding.layout)
        self.user_mlp = MLP(self.user_group.output_dim, cfg.tower_units, cfg.activation,
                            cfg.dropout, name="user_mlp")
        self.user_out = torch_linear(self.user_mlp.output_dim, cfg.output_dim, name="user_out")
        self.item_mlp = MLP(self.item_group.output_dim, cfg.tower_units, cfg.activation,
                            cfg.dropout, name="item_mlp")
        self.item_out = torch_linear(self.item_mlp.output_dim, cfg.output_dim, name="item_out")
        self.cosine = cfg.similarity == "cosine"
        self.temperature = float(cfg.temperature)
        self.recall_k = tuple(int(k) for k in cfg.recall_k)
        self.built = True  # every variable exists already

    def call(self, inputs: Dict[str, tf.Tensor], training: bool = False
             ) -> Dict[str, tf.Tensor]:
        embs = self.embedding(inputs)
        user = self.user_out(self.user_mlp(self.user_group(inputs, embs), training=training))
        item = self.item_out(self.item_mlp(self.item_group(inputs, embs), training=training))
        user, item = tf.cast(user, tf.float32), tf.cast(item, tf.float32)
        if self.cosine:  # F.normalize: x / max(||x||, 1e-12)
            user = user / tf.maximum(tf.norm(user, axis=1, keepdims=True), 1e-12)
            item = item / tf.maximum(tf.norm(item, axis=1, keepdims=True), 1e-12)
        return {"user_emb": user, "item_emb": item,
                self.task_names[0]: tf.reduce_sum(user * item, axis=1) / self.temperature}

    def task_loss(self, outputs: Dict[str, tf.Tensor], labels: Dict[str, Any]) -> tf.Tensor:
        """In-batch softmax over user x item similarities, positives = rows labelled > 0.5."""
        user, item = outputs["user_emb"], outputs["item_emb"]
        logits = tf.matmul(user, item, transpose_b=True) / self.temperature  # [B, B]
        label = self.task_labels[0]
        if label not in labels:
            raise KeyError(f"task '{self.task_names[0]}' needs label '{label}'; "
                           f"batch has {sorted(labels)}")
        positive = tf.cast(tf.reshape(labels[label], [-1]) > 0.5, logits.dtype)
        # cross-entropy of row r against the items: logsumexp(logits[r]) - logits[r, r]
        per_row = tf.reduce_logsumexp(logits, axis=1) - tf.linalg.diag_part(logits)
        count = tf.reduce_sum(positive)
        return self.task_weights[0] * tf.reduce_sum(per_row * positive) / tf.maximum(count, 1.0)
