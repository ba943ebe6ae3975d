"""Export: a torch.export, TorchScript or ONNX program + the fitted feature state, self-contained.

The exported directory is all a server needs: ``feature_state.json`` turns raw rows into the
model-input dict with the same code as training (online/offline consistency), and the
program maps that dict to predictions.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from dataio.atomic import atomic_write_bytes, atomic_write_json
from easyrec.features.batch import Batch

from trainer.torch_backend.programs import PROGRAM_FILES


def export_model(model: torch.nn.Module, pipeline: Any, example: Batch, out_dir: Path, fmt: str,
                 task_types: dict[str, str], extra_meta: dict[str, Any] | None = None) -> Path:
    """Write the program, feature_state.json and meta.json into ``out_dir``; returns out_dir."""
    from easyrec.models.torch.base import ServingModule

    from easyrec.dynamic.module import frozen_for_export

    out_dir.mkdir(parents=True, exist_ok=True)
    from trainer.torch_backend.tensors import to_inputs

    inputs = to_inputs(example, torch.device("cpu"))
    onnx_meta: dict[str, Any] = {}
    with frozen_for_export(model):  # dynamic tables -> sorted keys + rows (searchsorted lookup)
        serving = ServingModule(model).eval()
        if fmt == "torchscript":
            buf = io.BytesIO()
            torch.jit.save(torch.jit.script(serving), buf)
            data = buf.getvalue()
        else:
            from easyrec.models.torch.export import export_serving

            exported = export_serving(model, inputs)
            if fmt == "onnx":
                from trainer.torch_backend.onnx_program import onnx_bytes

                with torch.no_grad():
                    outputs = list(serving(inputs))
                data = onnx_bytes(exported, list(inputs), outputs)
                onnx_meta = {"onnx_inputs": list(inputs), "outputs": outputs}
            else:
                buf = io.BytesIO()
                torch.export.save(exported, buf)
                data = buf.getvalue()
    atomic_write_bytes(out_dir / PROGRAM_FILES[fmt], data)
    pipeline.save(str(out_dir / "feature_state.json"))
    meta = {"format": fmt, "domain": "rec", "program": PROGRAM_FILES[fmt], "inputs": sorted(inputs), "tasks": task_types,
            "input_columns": pipeline.required_columns(with_labels=False), **onnx_meta, **(extra_meta or {})}
    atomic_write_json(out_dir / "meta.json", meta)
    return out_dir
