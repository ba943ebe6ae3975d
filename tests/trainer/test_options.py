"""Trainer knobs end to end on small written data: optimizers, schedules, clipping, early stopping."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import run_cli
from trainer.schema.spec import SchedulerSpec
from trainer.torch_backend.optim import lr_factor

BASE = ["+experiment=movielens_deepfm", "data.dataset=null", "trainer.progress_bar=false",
        "trainer.export.enabled=false", "data.batch_size=256"]


@pytest.fixture(scope="module")
def split(movielens_split: tuple[Path, Path]) -> list[str]:
    train, test = movielens_split
    return [f"data.train_path={train}", f"data.eval_path={test}"]


def test_lr_schedules() -> None:
    const = SchedulerSpec(name="constant", warmup_steps=10)
    assert lr_factor(0, const, 100) == pytest.approx(0.1)
    assert lr_factor(9, const, 100) == pytest.approx(1.0)
    assert lr_factor(50, const, 100) == 1.0
    cos = SchedulerSpec(name="cosine", warmup_steps=0, min_lr_ratio=0.1)
    assert lr_factor(0, cos, 100) == pytest.approx(1.0)
    assert lr_factor(50, cos, 100) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(100, cos, 100) == pytest.approx(0.1)
    exp = SchedulerSpec(name="exponential", gamma=0.5, decay_steps=10)
    assert lr_factor(20, exp, 100) == pytest.approx(0.25)
    assert all(math.isfinite(lr_factor(s, cos, 100)) for s in range(200))


@pytest.mark.parametrize("overrides", [
    ["trainer.optimizer.sparse.name=adagrad", "trainer.optimizer.sparse.lr=0.05",
     "trainer.optimizer.dense.name=sgd", "trainer.optimizer.dense.momentum=0.9", "trainer.optimizer.dense.lr=0.01",
     "trainer.scheduler.name=cosine", "trainer.scheduler.warmup_steps=3", "trainer.grad_clip_norm=1.0"],
    ["model.sparse_grad=true", "trainer.optimizer.sparse.weight_decay=0", "trainer.optimizer.dense.name=adamw",
     "trainer.optimizer.dense.weight_decay=0.01", "trainer.scheduler.name=exponential",
     "trainer.scheduler.decay_steps=5"],
], ids=["adagrad-sgd-cosine-clip", "sparse_adam-adamw-exponential"])
def test_optimizer_and_schedule_combinations_train(split: list[str], tmp_path: Path, overrides: list[str]) -> None:
    run = tmp_path / "run"
    run_cli([*BASE, *split, "trainer.epochs=2", *overrides, f"hydra.run.dir={run}"], cwd=tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    losses = [h["train/loss"] for h in metrics["history"]]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert losses[1] < losses[0]


def test_sparse_grad_with_weight_decay_is_a_clear_error(split: list[str], tmp_path: Path) -> None:
    proc = run_cli([*BASE, *split, "model.sparse_grad=true", f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path,
                   check=False)
    assert proc.returncode == 2
    assert "trainer.optimizer.sparse.weight_decay" in proc.stderr and "Traceback" not in proc.stderr


def test_early_stopping_stops_and_keeps_best(split: list[str], tmp_path: Path) -> None:
    run = tmp_path / "run"
    # min_delta=1 makes every epoch after the first "no improvement"
    run_cli([*BASE, *split, "trainer.epochs=6", "trainer.early_stopping.metric=eval/auc",
             "trainer.early_stopping.patience=2", "trainer.early_stopping.min_delta=1.0",
             "trainer.export.enabled=true", f"hydra.run.dir={run}"], cwd=tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stopped_early"] and metrics["epochs_completed"] == 3
    assert metrics["best"]["value"] == pytest.approx(metrics["history"][0]["eval/auc"])
    assert (run / "checkpoints" / "best.pt").exists()


def test_unknown_early_stopping_metric_lists_available(split: list[str], tmp_path: Path) -> None:
    proc = run_cli([*BASE, *split, "trainer.epochs=1", "trainer.early_stopping.metric=eval/acc",
                    f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path, check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert "eval/acc" in last and "eval/auc" in last


def test_multirun_sweep_writes_one_run_dir_per_job(split: list[str], tmp_path: Path) -> None:
    """`-m` launches one job per value; each job is a complete run directory."""
    proc = run_cli([*BASE, *split, "trainer.epochs=1", "trainer.optimizer.dense.lr=0.001,0.003", "-m"],
                   cwd=tmp_path)
    runs = sorted(tmp_path.glob("outputs/movielens_deepfm/multirun/*/*/metrics.json"))
    assert len(runs) == 2, proc.stdout[-2000:]
    assert all(json.loads(p.read_text())["finished"] for p in runs)


def test_bf16_autocast_trains_on_cpu(split: list[str], tmp_path: Path) -> None:
    """hardware.precision=bf16: the torch forward runs under CPU autocast; training still learns."""
    run = tmp_path / "run"
    run_cli([*BASE, *split, "trainer.epochs=2", "hardware.precision=bf16", f"hydra.run.dir={run}"], cwd=tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    losses = [h["train/loss"] for h in metrics["history"]]
    assert all(math.isfinite(x) for x in losses) and losses[1] < losses[0]
    assert metrics["final"]["eval/auc"] > 0.55
