"""Delta exports of dynamic embedding tables (movielens_deepfm_dynamic): admitted, changed and
evicted keys replay exactly on torch.export (padded tables) and TorchScript (resized buffers)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.continuous.helpers import movielens_rows, train_with_deltas


@pytest.mark.parametrize("fmt", ["torch_export", pytest.param("torchscript", marks=pytest.mark.slow)])
def test_dynamic_tables_with_evictions_replay_exactly(fmt: str, tmp_path: Path) -> None:
    """Dynamic tables: admitted, changed and evicted keys (user_id capped at 60 rows) replay
    exactly; torch.export keeps its padded table size, TorchScript resizes its buffers."""
    from easyrec.serving import ExportedModel

    run, kept = train_with_deltas(tmp_path, "movielens_deepfm_dynamic", "features.user_id.dynamic.capacity=60",
                                  f"trainer.export.format={fmt}")
    manifests = [json.loads((p / "manifest.json").read_text()) for p in sorted((kept / "deltas").iterdir())]
    assert [m["step"] for m in manifests] == [2, 4, 6, 8]
    users = [t for m in manifests for n, t in m["tables"].items() if n == "embedding.dynamic.0"]
    assert users and all(t["kind"] == "dynamic" and t["rows"] == 60 for t in users)
    assert sum(t["evicted"] for t in users) > 0 and sum(t["admitted"] for t in users) > 60
    model, full = ExportedModel(kept), ExportedModel(run / "export")
    table = movielens_rows()
    before = model.predict(table)["like"]
    assert model.apply_pending_deltas() == [2, 4, 6, 8]
    replayed, expected = model.predict(table)["like"], full.predict(table)["like"]
    assert np.abs(before - expected).max() > 1e-3
    np.testing.assert_array_equal(replayed, expected)
