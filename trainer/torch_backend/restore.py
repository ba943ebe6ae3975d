"""Rebuild the feature pipeline and model from one checkpoint file (evaluate/predict/export)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer.torch_backend.checkpoint import load_checkpoint


@dataclass
class Restored:
    model: torch.nn.Module
    pipeline: Any
    device: torch.device
    state: dict[str, Any]


def restore(path: Path, spec: Any) -> Restored:
    """Model + pipeline as they were at the checkpoint; the model config is the checkpoint's."""
    from easyrec.features.pipeline import FeaturePipeline
    from easyrec.models.specs import build_model
    from trainer.schema.validate import build_model as build_model_config

    state = load_checkpoint(path)
    pipeline = FeaturePipeline.from_state_dict(state["feature_state"])
    model_cfg = build_model_config(state["config"]["model"])
    model = build_model(model_cfg, pipeline.feature_infos(), backend="torch")
    model.load_state_dict(state["model"])
    model.eval()
    device = torch.device("cpu")
    return Restored(model=model, pipeline=pipeline, device=device, state=state)
