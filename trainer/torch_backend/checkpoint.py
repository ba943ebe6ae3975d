"""Checkpoints: everything needed to continue exactly, written atomically.

A checkpoint holds the model, optimizers, schedulers, RNG states, the data position
(epoch, batches done in it), metric history and early-stopping state, plus the resolved
config and fitted feature state, so one .pt file alone can evaluate, predict or export.
"""
from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.errors import DataError
from dataio.atomic import atomic_write_bytes
from trainer.run_dir import RunDir

FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_checkpoint(run: RunDir, name: str, state: dict[str, Any], keep_last: int | None = None) -> Path:
    """Write ``checkpoints/<name>.pt`` atomically, then point ``latest`` at it; prune old steps."""
    state = {"format_version": FORMAT_VERSION, **state}
    buf = io.BytesIO()
    torch.save(state, buf)
    path = run.checkpoints / f"{name}.pt"
    atomic_write_bytes(path, buf.getvalue())
    if name != "best":
        atomic_write_bytes(run.checkpoints / "latest", path.name.encode())
    if keep_last:
        steps = sorted(run.checkpoints.glob("step-*.pt"))
        for old in steps[:-keep_last]:
            old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file; a truncated or foreign file is one clear DataError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise DataError(f"cannot read checkpoint ({type(exc).__name__}: {exc})", file=str(path)) from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise DataError("not a Lingjie checkpoint", file=str(path))
    return state
