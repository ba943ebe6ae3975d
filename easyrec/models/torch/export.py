"""torch.export of a model's serving graph with a dynamic batch (single requests included).

Why a helper: export specialises sizes 0 and 1 by default, so a graph traced at batch 64
would refuse a batch of 1 (any slice like ``offsets[:-1]`` adds a ``size >= 2`` guard).
Tracing "size-obliviously" keeps one graph valid for every batch >= 1 and every id count
>= 0. The dims: one ``batch`` (min 1) for dense inputs, sequence values and lengths;
``batch + 1`` for offsets; one ``<feature>_nnz`` (min 0) for a sparse feature's values and
weights. A sequence's max_len and a dense width stay fixed.
"""
from typing import Any, Dict

import torch
from torch import Tensor
from torch.export import Dim, ExportedProgram

from easyrec.models.torch.base import RecModel, ServingModule


def export_serving(model: RecModel, inputs: Dict[str, Tensor]) -> ExportedProgram:
    """Export ``ServingModule(model)`` traced on ``inputs`` (a flat batch, batch >= 2).

    Save with ``torch.export.save(program, path)``; load with ``torch.export.load(path)``
    and call ``.module()(inputs)`` to get the predictions dict.
    """
    serving = ServingModule(model)
    shapes = dynamic_shapes(inputs)
    from torch.fx.experimental import _config as fx_config

    if hasattr(fx_config, "backed_size_oblivious"):
        with fx_config.patch(backed_size_oblivious=True):
            return torch.export.export(serving, (inputs,), dynamic_shapes=shapes)
    return torch.export.export(serving, (inputs,), dynamic_shapes=shapes)


def dynamic_shapes(inputs: Dict[str, Tensor]) -> Dict[str, Any]:
    """``dynamic_shapes`` for ``torch.export.export(ServingModule(m), (inputs,), ...)``:
    one ``batch`` dim (min 1, so single-request serving works) for dense inputs, sequence
    values and lengths; ``batch + 1`` for offsets; one ``<feature>_nnz`` dim (min 0) shared
    by a sparse feature's values and weights.
    """
    batch = Dim("batch", min=1)
    spec: Dict[str, Any] = {}
    nnz: Dict[str, Any] = {}  # feature -> its nnz Dim, shared by values and weights
    for key, value in inputs.items():
        feature, _, part = key.rpartition(".")
        if part == "offsets":
            spec[key] = {0: batch + 1}
        elif part in ("values", "weights") and value.dim() == 1:
            if feature not in nnz:
                nnz[feature] = Dim(f"nnz{len(nnz)}_{_dim_name(feature)}", min=0)
            spec[key] = {0: nnz[feature]}
        else:  # dense [B, dim], sequence values [B, L] and lengths [B]
            spec[key] = {0: batch}
    return {"inputs": spec}


def _dim_name(feature: str) -> str:
    """Dim names must be identifiers; feature names may hold other characters."""
    return "".join(c if c.isalnum() else "_" for c in feature)
