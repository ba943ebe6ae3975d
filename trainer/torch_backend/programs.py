"""Exported torch programs on disk: which file holds which format, and loading one back.

Every domain's torch export writes ``meta.json`` naming its ``format`` and ``program`` file;
this reads any of them (TorchScript or torch.export) without knowing the domain.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

PROGRAM_FILES = {"torchscript": "model.torchscript.pt", "torch_export": "model.pt2"}


def load_program(out_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The exported callable (dict of tensors -> dict of predictions) and its meta."""
    meta = json.loads((out_dir / "meta.json").read_text())
    path = out_dir / meta["program"]
    if meta["format"] == "torchscript":
        return torch.jit.load(str(path), map_location="cpu"), meta
    return torch.export.load(str(path)).module(), meta
