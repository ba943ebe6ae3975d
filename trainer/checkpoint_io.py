"""Read any Lingjie checkpoint (torch ``.pt`` file or TF ``.tfckpt`` directory) without
knowing its backend first: evaluate/predict/export modes look at ``meta`` to rebuild the
feature pipeline and the model, then hand the file to the right engine."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from lingjie.errors import DataError

TF_SUFFIX = ".tfckpt"
META_FILE = "meta.pkl"


def checkpoint_backend(path: Path) -> str:
    return "tf" if path.suffix == TF_SUFFIX else "torch"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The whole torch checkpoint dict, or ``{"meta": ...}`` of a TF checkpoint directory."""
    path = Path(path)
    if path.suffix == TF_SUFFIX:
        try:
            with open(path / META_FILE, "rb") as fh:
                return {"backend": "tf", "meta": pickle.load(fh)}
        except Exception as exc:  # noqa: BLE001 - any failure means an unusable checkpoint
            raise DataError(f"cannot read TF checkpoint ({type(exc).__name__}: {exc})", file=str(path)) from None
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot read checkpoint ({type(exc).__name__}: {exc})", file=str(path)) from None
    if not isinstance(state, dict) or "meta" not in state:
        raise DataError("not a Lingjie checkpoint", file=str(path))
    return state


def read_meta(path: str | Path) -> dict[str, Any]:
    return read_checkpoint(path)["meta"]
