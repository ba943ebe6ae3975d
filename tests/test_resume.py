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

ARGS = ["+experiment=movielens_deepfm", "data.limit_train_rows=12000", "data.limit_eval_rows=3000",
        "data.batch_size=128", "trainer.epochs=2", "trainer.checkpoint.every_n_steps=10",
        "trainer.progress_bar=false", "trainer.export.enabled=false", "data.shuffle_buffer_rows=5000"]


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path: Path, data_dir: Path) -> None:
    straight = tmp_path / "straight"
    run_cli([*ARGS, f"hydra.run.dir={straight}"], cwd=tmp_path)
    expected = json.loads((straight / "metrics.json").read_text())

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "trainer", *ARGS, f"hydra.run.dir={killed}"], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    ckpts = killed / "checkpoints"
    # kill in the second epoch, between step checkpoints
    while time.time() < deadline and not list(ckpts.glob("epoch-0001.pt")):
        time.sleep(0.01)
    while time.time() < deadline and len(list(ckpts.glob("step-*.pt"))) < 2:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "DONE").exists(), "the run finished before it could be killed"
    metrics_before = json.loads((killed / "metrics.json").read_text())
    assert not metrics_before["finished"]

    proc = run_cli([*ARGS, f"hydra.run.dir={killed}", "trainer.resume=true"], cwd=tmp_path)
    assert "resumed from step-" in proc.stderr + proc.stdout
    resumed = json.loads((killed / "metrics.json").read_text())
    assert resumed["finished"] and resumed["steps"] == expected["steps"]
    for key in ("eval/auc", "eval/gauc", "eval/logloss", "train/auc", "train/loss"):
        assert resumed["final"][key] == pytest.approx(expected["final"][key], abs=2e-4), key
