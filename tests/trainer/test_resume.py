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

# 16k rows / 256 = 63 steps per epoch (more than 3 shuffle buffers); step checkpoints every 10 steps.
# One intra-op thread: the straight and the killed run train at the same time on a 2-core machine.
ARGS = ["+experiment=movielens_deepfm", "data.limit_train_rows=16000", "data.limit_eval_rows=2000",
        "data.batch_size=256", "trainer.epochs=2", "trainer.checkpoint.every_n_steps=10",
        "trainer.progress_bar=false", "trainer.export.enabled=false", "data.shuffle_buffer_rows=5000",
        "hardware.threads=1", "trainer.timing.enabled=false"]


@pytest.mark.slow
@pytest.mark.parametrize("backend,extra", [("torch", []), ("tf", []), ("tf", ["data.cache=memory"])],
                         ids=["torch", "tf", "tf-cache"])
def test_sigkill_then_resume_matches_uninterrupted(tmp_path: Path, data_dir: Path, backend: str,
                                                   extra: list[str]) -> None:
    """``tf-cache``: the in-memory cache, whose batches the TF step gathers from its own copy
    of the cached rows (only row indices travel), resumes inside the epoch too."""
    args = [*ARGS, f"trainer.backend={backend}", *extra]
    suffix = ".pt" if backend == "torch" else ".tfckpt"
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # the uninterrupted run and the one to kill are independent: run them side by side
    log = (tmp_path / "straight.log").open("w")
    straight_proc = subprocess.Popen([sys.executable, "-m", "trainer", *args, f"hydra.run.dir={straight}"],
                                     cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc = subprocess.Popen([sys.executable, "-m", "trainer", *args, f"hydra.run.dir={killed}"], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    ckpts = killed / "checkpoints"
    # kill in the second epoch (steps 64-126), right after its second step checkpoint (step 80)
    while time.time() < deadline and not (ckpts / f"step-00000080{suffix}").exists():
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    straight_proc.wait(timeout=300)
    log.close()
    assert straight_proc.returncode == 0, (tmp_path / "straight.log").read_text()[-4000:]
    expected = json.loads((straight / "metrics.json").read_text())
    assert not (killed / "DONE").exists(), "the run finished before it could be killed"
    metrics_before = json.loads((killed / "metrics.json").read_text())
    assert not metrics_before["finished"]

    proc = run_cli([*args, f"hydra.run.dir={killed}", "trainer.resume=true"], cwd=tmp_path)
    assert "resumed from step-0000" in proc.stderr + proc.stdout  # a mid-epoch step checkpoint
    resumed = json.loads((killed / "metrics.json").read_text())
    assert resumed["finished"] and resumed["steps"] == expected["steps"]
    for key in ("eval/auc", "eval/gauc", "eval/logloss", "train/auc", "train/loss"):
        assert resumed["final"][key] == pytest.approx(expected["final"][key], abs=2e-4), key
