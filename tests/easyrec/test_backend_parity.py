"""Same config and seed on torch and TF: test AUCs agree (shrunk data, loose bound; the full
numbers are in the README: torch 0.704, tf 0.700 on movielens_deepfm)."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import run_cli

# One intra-op thread per run: the two backends train side by side on a 2-core machine.
ARGS = ["+experiment=movielens_deepfm", "data.limit_train_rows=30000", "trainer.epochs=2",
        "trainer.progress_bar=false", "trainer.export.enabled=false", "hardware.threads=1"]


@pytest.mark.slow
def test_torch_and_tf_reach_the_same_auc(tmp_path: Path, data_dir: Path) -> None:
    def auc(backend: str) -> float:
        run = tmp_path / backend
        run_cli([*ARGS, f"trainer.backend={backend}", f"hydra.run.dir={run}"], cwd=tmp_path)
        return json.loads((run / "metrics.json").read_text())["final"]["eval/auc"]

    with ThreadPoolExecutor(max_workers=2) as pool:
        aucs = dict(zip(("torch", "tf"), pool.map(auc, ("torch", "tf"))))
    assert aucs["torch"] > 0.65 and aucs["tf"] > 0.65, aucs
    assert abs(aucs["torch"] - aucs["tf"]) < 0.02, aucs
