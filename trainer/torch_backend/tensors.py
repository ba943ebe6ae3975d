"""Backend-neutral numpy batches -> torch tensors (zero-copy where the dtype already fits)."""
from __future__ import annotations

import numpy as np
import torch

from typing import Any


def as_tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    """Zero-copy for writable contiguous arrays; read-only ones (Arrow's zero-copy buffers, memory
    maps) are copied, since torch cannot mark a tensor read-only and an in-place op would write
    into the source (undefined behaviour; torch warns)."""
    t = torch.from_numpy(np.require(a, requirements=("C", "W")))
    return t.to(device, non_blocking=True) if device.type != "cpu" else t


def to_inputs(batch: Any, device: torch.device) -> dict[str, torch.Tensor]:
    """The batch's flat model-input dict (``to_flat()``) as tensors."""
    return {k: as_tensor(v, device) for k, v in batch.to_flat().items()}


def to_labels(batch: Any, device: torch.device) -> dict[str, torch.Tensor]:
    return {k: as_tensor(v.astype(np.float32, copy=False), device) for k, v in batch.labels.items()}
