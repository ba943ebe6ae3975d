"""SIGKILL at named points of a run (``lingjie.faults``), then ``trainer.resume=true``: the
resumed run ends with the metrics of the uninterrupted one, and leaves no temp files.

Every kill is a real SIGKILL of the training process at a fault point (no cleanup runs):
during the feature fit, mid-epoch (after a step checkpoint), inside a checkpoint write (temp
file complete, rename not done), during evaluation, and after the export before DONE.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.reliability.case import SMALL

# 600 rows / 128 = 5 steps an epoch, 2 epochs; a step checkpoint every 2 steps
ARGS = [*SMALL, "trainer.epochs=2", "trainer.checkpoint.every_n_steps=2"]
KEYS = ("eval/auc", "eval/logloss", "train/auc", "train/loss")

# fault point -> where the run was when it died
POINTS = {
    "feature_fit": "fitting the feature pipeline (no checkpoint yet)",
    "train_step@7": "mid-epoch 2, a step after the step-6 checkpoint",
    "write step-00000004.pt": "writing the step-4 checkpoint (temp file done, rename not)",
    "eval_step": "evaluating epoch 1",
    "write epoch-0002.pt": "writing the last epoch checkpoint",
    "export": "after the export, before DONE",
}


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict:
    tmp = tmp_path_factory.mktemp("straight")
    run_cli([*ARGS, f"hydra.run.dir={tmp / 'run'}"], cwd=tmp)
    return json.loads((tmp / "run" / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("point", list(POINTS))
def test_killed_then_resumed_matches_uninterrupted(point: str, straight: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [*ARGS, f"paths.output_root={out}"]
    killed = run_cli(args, cwd=tmp_path, env={"LINGJIE_FAULT": point}, check=False)
    assert killed.returncode == -9, f"not killed at {point}: exit {killed.returncode}\n{killed.stderr[-2000:]}"
    (run,) = (out / "movielens_deepfm").iterdir()
    assert not (run / "DONE").exists()

    proc = run_cli([*args, "trainer.resume=true"], cwd=tmp_path)
    assert "Traceback" not in proc.stderr
    runs = [p for p in (out / "movielens_deepfm").iterdir() if (p / "DONE").exists()]
    assert len(runs) == 1, f"expected one finished run, found {runs}"
    if point != "feature_fit":  # nothing to resume from a kill before the first checkpoint
        assert runs[0] == run, "resume started a new run instead of continuing the killed one"
    resumed = json.loads((runs[0] / "metrics.json").read_text())
    assert resumed["finished"] and resumed["steps"] == straight["steps"]
    for key in KEYS:
        assert resumed["final"][key] == pytest.approx(straight["final"][key], abs=1e-6), key
    assert (runs[0] / "export").is_dir()
    left = [p.name for p in runs[0].rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".old.")]
    assert not left, f"temp files left behind: {left}"
