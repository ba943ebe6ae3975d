"""Exported torch programs on disk: which file holds which format, and loading one back.

Every domain's torch export writes ``meta.json`` naming its ``format`` and ``program`` file;
this reads any of them (torch.export, TorchScript or ONNX) without knowing the domain.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

PROGRAM_FILES = {"torch_export": "model.pt2", "torchscript": "model.torchscript.pt", "onnx": "model.onnx"}


def load_program(out_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The exported callable (inputs -> dict of predictions) and its meta.

    An ONNX export runs in onnxruntime (CPU) behind the same call, with the input names its
    meta.json records (``onnx_inputs``), so predict-from-export works for every format."""
    meta = json.loads((out_dir / "meta.json").read_text())
    path = out_dir / meta["program"]
    if meta["format"] == "torchscript":
        return torch.jit.load(str(path), map_location="cpu"), meta
    if meta["format"] == "onnx":
        from trainer.torch_backend.onnx_program import OnnxProgram

        return OnnxProgram(path, meta["onnx_inputs"]), meta
    return torch.export.load(str(path)).module(), meta
