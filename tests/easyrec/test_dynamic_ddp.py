"""Dynamic tables under DDP (2 gloo processes, replicated mode) with uneven shards."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

ARGS = ["+experiment=movielens_deepfm_dynamic", "trainer.progress_bar=false", "data.limit_eval_rows=4000",
        "data.eval_batch_size=500",  # 500-row eval chunks: both ranks score half of the rows
        "hardware.threads=1"]


@pytest.mark.slow
def test_ddp_replicas_stay_equal_and_match_single_process_eval(tmp_path: Path, data_dir: Path) -> None:
    run = tmp_path / "ddp"
    # 9000 rows in 1024-row chunks dealt round-robin: rank 0 gets 5 chunks, rank 1 gets 4 (it
    # joins early and applies rank 0's table updates through the Join hook)
    run_cli([*ARGS, "hardware=ddp_cpu", "hardware.nproc_per_node=2", "data.limit_train_rows=9000",
             "data.batch_size=256", "trainer.epochs=1", f"hydra.run.dir={run}"], cwd=tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["finished"]
    assert metrics["final"]["eval/rows"] == 4000 and metrics["final"]["eval/auc"] > 0.55
    # each rank scored its half of the eval set with its own replica of the tables; one process
    # scoring everything with rank 0's checkpoint gets the same numbers only if they are equal
    single = tmp_path / "single"
    run_cli([*ARGS, "trainer.mode=evaluate", f"trainer.evaluate.checkpoint={run}", f"hydra.run.dir={single}"],
            cwd=tmp_path)
    got = json.loads((single / "metrics.json").read_text())["final"]
    for key in ("eval/auc", "eval/gauc", "eval/logloss"):
        assert got[key] == pytest.approx(metrics["final"][key], abs=1e-6), key
