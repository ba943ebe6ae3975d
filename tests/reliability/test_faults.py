"""SIGKILL at named points of a run (``lingjie.faults``), then ``trainer.resume=true``: the
resumed run ends with the metrics of the uninterrupted one, and leaves no temp files.

Every kill is a real SIGKILL of the training process at a fault point (no cleanup runs):
during the feature fit, mid-epoch (after a step checkpoint), inside a checkpoint write (temp
file complete, rename not done), during evaluation, and after the export before DONE.
"""
from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.reliability.case import SMALL

# 600 rows / 128 = 5 steps an epoch, 2 epochs; a step checkpoint every 2 steps; one intra-op
# thread per run (two runs at a time on a 2-core machine: two-thread runs spin against each other)
ARGS = [*SMALL, "trainer.epochs=2", "trainer.checkpoint.every_n_steps=2", "hardware.threads=1"]
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


def _kill_then_resume(point: str, out: Path) -> tuple[subprocess.CompletedProcess, list[tuple[Path, bool]], Any]:
    """Run until the fault point kills it, note the run dirs (and whether each had finished),
    then ``trainer.resume=true``."""
    args = [*ARGS, f"paths.output_root={out}"]
    killed = run_cli(args, cwd=out.parent, env={"LINGJIE_FAULT": point}, check=False)
    base = out / "movielens_deepfm"
    runs = [(p, (p / "DONE").exists()) for p in sorted(base.iterdir())] if base.is_dir() else []
    if killed.returncode != -9:
        return killed, runs, None
    return killed, runs, run_cli([*args, "trainer.resume=true"], cwd=out.parent, check=False)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    """The straight run and every fault scenario, two processes at a time (2-core machine)."""
    def straight() -> dict:
        tmp = tmp_path_factory.mktemp("straight")
        run_cli([*ARGS, f"hydra.run.dir={tmp / 'run'}"], cwd=tmp)
        return json.loads((tmp / "run" / "metrics.json").read_text())

    def scenario(point: str) -> tuple[Path, Any]:
        out = tmp_path_factory.mktemp("fault") / "out"
        out.parent.mkdir(parents=True, exist_ok=True)
        return out, _kill_then_resume(point, out)

    with ThreadPoolExecutor(max_workers=2) as pool:
        base = pool.submit(straight)
        runs = dict(zip(POINTS, pool.map(scenario, POINTS)))
        return {"straight": base.result(), **runs}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(POINTS))
def test_killed_then_resumed_matches_uninterrupted(point: str, outcomes: dict[str, Any]) -> None:
    straight = outcomes["straight"]
    out, (killed, killed_runs, proc) = outcomes[point]
    assert killed.returncode == -9, f"not killed at {point}: exit {killed.returncode}\n{killed.stderr[-2000:]}"
    assert len(killed_runs) == 1 and not killed_runs[0][1], f"the killed run finished: {killed_runs}"
    run = killed_runs[0][0]
    assert proc.returncode == 0, f"resume failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
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
