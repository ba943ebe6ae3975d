"""DeltaWriter's schedule and the row diff on a tiny module (no training run): changed rows
only, dense tensors in full, a full export after ``full_every_deltas`` deltas (older deltas
removed), the seconds schedule, and an apply that reproduces the module exactly."""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from dataio.atomic import atomic_write_json
from easyrec.delta_apply import apply_delta
from easyrec.delta_format import list_deltas
from easyrec.delta_writer import DeltaWriter


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(10, 4, mode="sum")
        self.dense = nn.Linear(4, 1)


class Serving(nn.Module):  # what the export wraps: the model under ``model.``
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model


def writer(tmp_path: Path, exports: list[str], every_steps: int = 2, every_seconds: float | None = None,
           full_every: int = 10) -> DeltaWriter:
    def full(version: str) -> Path:
        exports.append(version)
        atomic_write_json(tmp_path / "meta.json", {"version": version})
        return tmp_path

    spec = SimpleNamespace(delta_every_steps=every_steps, delta_every_seconds=every_seconds,
                           full_every_deltas=full_every, format="torchscript")
    return DeltaWriter(spec, tmp_path, full)


def test_changed_rows_and_exact_apply(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, exports = Tiny(), []
    w = writer(tmp_path, exports)
    w.full(model, 0)
    served = Serving(copy.deepcopy(model))  # the "program" of the base export
    with torch.no_grad():
        model.bag.weight[[1, 3]] += 0.5
        model.dense.weight.mul_(2)
    assert w.maybe_write(model, 1) is None  # not due
    path = w.maybe_write(model, 2)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["base"] == "0" and manifest["previous"] is None and manifest["step"] == 2
    assert manifest["tables"] == {"bag.weight": {"kind": "rows", "rows": 10, "changed": 2}}
    assert manifest["dense"] == {"dense.weight": 4, "dense.bias": 1}
    assert apply_delta(served, path, "0", None)["step"] == 2
    for name, value in model.state_dict().items():
        assert torch.equal(served.model.state_dict()[name], value), name


def test_full_export_after_k_deltas_removes_the_old_chain(tmp_path: Path) -> None:
    model, exports = Tiny(), []
    w = writer(tmp_path, exports, full_every=2)
    w.full(model, 0)
    for step in (2, 4, 6, 8):
        with torch.no_grad():
            model.bag.weight[step % 10] += 1
        w.maybe_write(model, step)
    assert exports == ["0", "6"]  # deltas 2 and 4, then a full export at 6, then delta 8 on it
    chain = list_deltas(tmp_path)
    assert [s for s, _ in chain] == [8]
    assert json.loads((chain[0][1] / "manifest.json").read_text())["base"] == "6"


def test_seconds_schedule(tmp_path: Path) -> None:
    model, exports = Tiny(), []
    w = writer(tmp_path, exports, every_steps=0, every_seconds=0.2)
    w.full(model, 0)
    assert w.maybe_write(model, 1) is None
    time.sleep(0.25)
    assert w.maybe_write(model, 2) is not None and [s for s, _ in list_deltas(tmp_path)] == [2]


def test_exported_model_of_another_format_refuses_deltas(tmp_path: Path) -> None:
    from easyrec.serving import ExportedModel
    from lingjie.errors import DataError

    model = ExportedModel.__new__(ExportedModel)
    model.dir, model.meta, model.version, model.delta_step = tmp_path, {"format": "saved_model"}, "1", None
    with pytest.raises(DataError, match="saved_model export cannot take deltas"):
        model.with_delta(tmp_path)
