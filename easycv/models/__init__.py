"""easycv's model zoo: backbones (ResNet, MobileNet-style), a classifier and a YOLOX-style detector."""
from __future__ import annotations

from typing import Any

import torch


def build_model(spec: Any, num_classes: int, channels: int) -> torch.nn.Module:
    """The model of ``spec`` (a ClassifierSpec or YoloxSpec) for ``num_classes`` classes."""
    from easycv.models.backbones import build_backbone

    if spec.task == "classification":
        from easycv.models.classifier import ImageClassifier

        return ImageClassifier(build_backbone(spec, channels), num_classes, spec.dropout, spec.label_smoothing)
    from easycv.models.yolox import YOLOX

    return YOLOX(build_backbone(spec.backbone, channels), num_classes, spec)
