"""A run killed with SIGKILL resumes from its last checkpoint and ends where an
uninterrupted run ends (model, optimizer, RNG and data position are restored)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

# 40k rows / 256 = 157 steps per epoch; step checkpoints every 20 steps
ARGS = ["+experiment=movielens_deepfm", "data.limit_train_rows=40000", "data.limit_eval_rows=5000",
        "data.batch_size=256", "trainer.epochs=2", "trainer.checkpoint.every_n_steps=20",
        "trainer.progress_bar=false", "trainer.export.enabled=false", "data.shuffle_buffer_rows=5000"]


@pytest.mark.slow
@pytest.mark.parametrize("backend,extra", [("torch", []), ("tf", []), ("tf", ["data.cache=memory"])],
                         ids=["torch", "tf", "tf-cache"])
def test_sigkill_then_resume_matches_uninterrupted(tmp_path: Path, data_dir: Path, backend: str,
                                                   extra: list[str]) -> None:
    """``tf-cache``: the in-memory cache, whose batches the TF step gathers from its own copy
    of the cached rows (only row indices travel), resumes inside the epoch too."""
    args = [*ARGS, f"trainer.backend={backend}", *extra]
    suffix = ".pt" if backend == "torch" else ".tfckpt"
    straight = tmp_path / "straight"
    run_cli([*args, f"hydra.run.dir={straight}"], cwd=tmp_path)
    expected = json.loads((straight / "metrics.json").read_text())

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "trainer", *args, f"hydra.run.dir={killed}"], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    ckpts = killed / "checkpoints"
    # kill in the second epoch, right after its second step checkpoint (step 200)
    while time.time() < deadline and not (ckpts / f"step-00000200{suffix}").exists():
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "DONE").exists(), "the run finished before it could be killed"
    metrics_before = json.loads((killed / "metrics.json").read_text())
    assert not metrics_before["finished"]

    proc = run_cli([*args, f"hydra.run.dir={killed}", "trainer.resume=true"], cwd=tmp_path)
    assert "resumed from step-0000" in proc.stderr + proc.stdout  # a mid-epoch step checkpoint
    resumed = json.loads((killed / "metrics.json").read_text())
    assert resumed["finished"] and resumed["steps"] == expected["steps"]
    for key in ("eval/auc", "eval/gauc", "eval/logloss", "train/auc", "train/loss"):
        assert resumed["final"][key] == pytest.approx(expected["final"][key], abs=2e-4), key
