"""Backend-neutral numpy batches -> torch tensors (zero-copy where the dtype already fits)."""
from __future__ import annotations

import numpy as np
import torch

from easyrec.features.batch import Batch


def as_tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.to(device, non_blocking=True) if device.type != "cpu" else t


def to_inputs(batch: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    """The model-input dict (see easyrec.features.batch) as tensors."""
    return {k: as_tensor(v, device) for k, v in batch.to_flat().items()}


def to_labels(batch: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: as_tensor(v.astype(np.float32, copy=False), device) for k, v in batch.labels.items()}
