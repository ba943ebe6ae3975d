"""Image classifier: backbone -> global average pooling -> dropout -> linear head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from easycv.models.backbones import Backbone


class ImageClassifier(nn.Module):
    """``forward(images) -> {"logits"}``, ``loss`` (cross-entropy), ``predict`` (class probabilities)."""

    def __init__(self, backbone: Backbone, num_classes: int, dropout: float = 0.0,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.channels[-1], num_classes)
        self.label_smoothing = label_smoothing

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.backbone(images)[-1]
        return {"logits": self.head(self.dropout(feats.mean((2, 3))))}

    def loss(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs["logits"], labels, label_smoothing=self.label_smoothing)

    def predict(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"label": outputs["logits"].float().softmax(-1)}

    def serve(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The exported computation: class probabilities."""
        return self.predict(self.forward(images))
