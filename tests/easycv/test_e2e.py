"""easycv end to end, shrunk: the real CLI and run_job on the bundled digits / mnist-detection data.

Covers train -> best checkpoint -> export, evaluate / predict from the checkpoint alone,
resume equal to an uninterrupted run, a corrupt image (named, or skipped and counted),
hardware=ddp_cpu (2 gloo processes) and a 2-trial Optuna sweep.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import compose, run_cli
from trainer.job import run_job

TINY = ["model.stem_channels=8", "model.widths=[8,16]", "model.depths=[1,1]", "hardware.threads=1",
        "trainer.progress_bar=false", "logger.tensorboard=false"]
DIGITS = ["+experiment=digits_resnet", *TINY, "data.limit_train_rows=192", "data.limit_eval_rows=96",
          "data.batch_size=32", "trainer.epochs=2", "trainer.scheduler.warmup_steps=2",
          "model.ema.warmup_steps=2"]
DETECTION = ["+experiment=mnist_detection", "model.backbone.stem_channels=8", "model.backbone.widths=[8,16,24]",
             "model.neck_channels=16", "model.head_channels=16", "hardware.threads=1",
             "trainer.progress_bar=false", "logger.tensorboard=false", "data.limit_train_rows=64",
             "data.limit_eval_rows=16", "data.batch_size=16", "trainer.epochs=1"]


@pytest.fixture(scope="module")
def cv_data() -> Path:
    """digits and mnist-detection, prepared once (the registry caches them)."""
    from dataio.datasets import ensure_dataset

    path = os.environ.get("LINGJIE_DATA_DIR")
    ensure_dataset("digits", path)
    ensure_dataset("mnist-detection", path)
    return Path(path) if path else Path.home() / ".cache" / "lingjie" / "datasets"


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_bundled_image_datasets(cv_data: Path) -> None:
    """digits: stratified 80/20 PNGs + list files; mnist-detection: COCO boxes inside the canvas."""
    digits = json.loads((cv_data / "digits" / "meta.json").read_text())
    assert digits["rows"] == {"train": 1438, "test": 359}
    lines = (cv_data / "digits" / "test.txt").read_text().split()
    assert len(lines) == 718 and all((cv_data / "digits" / p).exists() for p in lines[::2][:50])
    coco = json.loads((cv_data / "mnist-detection" / "test.json").read_text())
    assert len(coco["images"]) == 500 and [c["name"] for c in coco["categories"]] == [str(d) for d in range(10)]
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 128 and y + h <= 128 and w > 2 and h > 2
    assert 1.0 <= len(coco["annotations"]) / len(coco["images"]) <= 4.0


def _job(overrides: list[str], run_dir: Path) -> Path:
    """run_job in this process (saves the interpreter + torch start-up of a CLI run)."""
    cfg = compose([*overrides, f"paths.run_dir={run_dir}", f"paths.output_root={run_dir.parent}"])
    return run_job(cfg, json.dumps(cfg))


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.slow
def test_digits_train_then_evaluate_predict_from_the_checkpoint(tmp_path: Path, cv_data: Path) -> None:
    run = _job(DIGITS, tmp_path / "train")  # the CLI itself: the ddp / sweep / corrupt-image tests
    m = _metrics(run)
    assert m["finished"] and m["epochs_completed"] == 2 and m["steps"] == 12  # 192 / 32 per epoch
    final = m["final"]
    assert {"eval/top1", "eval/top5", "train/top1", "train/loss"} <= set(final) and final["eval/rows"] == 96
    assert final["eval/top5"] >= final["eval/top1"] > 0.1  # 10 classes: better than chance after 12 steps
    assert m["best"]["metric"] == "eval/top1" and (run / "checkpoints" / "best.pt").exists()
    assert (run / "DONE").exists()
    meta = json.loads((run / "export" / "meta.json").read_text())
    assert meta["classes"] == [str(d) for d in range(10)] and meta["input"]["shape"] == ["batch", 1, 16, 16]

    # evaluate the latest checkpoint alone: the numbers of its last epoch
    ev = _job([*DIGITS, "trainer.mode=evaluate", f"trainer.evaluate.checkpoint={run}"], tmp_path / "eval")
    assert _metrics(ev)["final"]["eval/top1"] == pytest.approx(final["eval/top1"])
    # predict an image folder (the prepared test/<class>/*.png, read unlabelled) to JSON
    pred = _job([*DIGITS, "trainer.mode=predict", f"trainer.predict.checkpoint={run}",
                 f"trainer.predict.input_path={cv_data / 'digits' / 'test'}", "data.limit_eval_rows=20"],
                tmp_path / "pred")
    out = json.loads((pred / "predictions.json").read_text())
    rows = out["predictions"]
    assert out["task"] == "classification" and len(rows) == 20
    assert all(r["label"] in meta["classes"] and len(r["top5"]) == 5 and r["top5"][0]["label"] == r["label"]
               for r in rows)
    hits = sum(r["label"] == Path(r["file"]).parent.name for r in rows)  # folder name = true class
    assert hits / len(rows) >= final["eval/top1"] - 0.35


@pytest.mark.slow
def test_resume_continues_to_the_same_result(tmp_path: Path, cv_data: Path) -> None:
    base = [*DIGITS, "trainer.export.enabled=false", "data.limit_train_rows=96"]
    straight = _job(base, tmp_path / "straight")
    # the same run, "crashed" after epoch 1: its later checkpoints, metrics and DONE are gone
    crashed = tmp_path / "crashed"
    shutil.copytree(straight, crashed)
    ckpts = crashed / "checkpoints"
    for p in [ckpts / "epoch-0002.pt", ckpts / "best.pt", crashed / "DONE", crashed / "metrics.json"]:
        p.unlink(missing_ok=True)
    (ckpts / "latest").write_text("epoch-0001.pt")
    resumed = _job([*base, f"trainer.resume={crashed}"], tmp_path / "again")
    assert resumed == crashed and (crashed / "DONE").exists()  # the interrupted run directory is continued
    a, b = _metrics(straight), _metrics(crashed)
    assert [h["step"] for h in b["history"]] == [3.0, 6.0]
    for key in ("train/loss", "eval/top1", "eval/loss"):  # same data order, augmentation, RNG, EMA
        assert b["final"][key] == pytest.approx(a["final"][key], rel=1e-5, abs=1e-7), key


@pytest.mark.slow
def test_corrupt_image_is_named_or_skipped_and_counted(tmp_path: Path, cv_data: Path) -> None:
    data = tmp_path / "data"
    lines = (cv_data / "digits" / "train.txt").read_text().splitlines()[:64]
    for line in lines:
        rel = line.split()[0]
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(cv_data / "digits" / rel, data / rel)
    (data / "train.txt").write_text("\n".join(lines) + "\n")
    bad = data / lines[5].split()[0]
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    args = [*DIGITS, "data.dataset=null", f"data.train_path={data / 'train.txt'}", "data.eval_path=null",
            "trainer.epochs=1", "trainer.export.enabled=false", "trainer.early_stopping.metric=null"]
    proc = run_cli([*args, f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path, check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert str(bad) in last and "cannot decode image" in last and "data.on_error=skip" in last
    run = _job([*args, "data.on_error=skip"], tmp_path / "skip")
    m = _metrics(run)
    assert m["bad_rows"]["train"] == 1 and m["bad_files"] == [str(bad)] and m["steps"] == 2


@pytest.mark.slow
def test_mnist_detection_trains_exports_and_predicts_boxes(tmp_path: Path, cv_data: Path) -> None:
    run = _job(DETECTION, tmp_path / "train")
    m = _metrics(run)
    assert {"eval/map", "eval/map50", "eval/map75", "train/loss"} <= set(m["final"])
    assert "train/map" not in m["final"]  # detection has no train-time metrics
    assert (run / "export" / "model.pt2").exists()
    assert json.loads((run / "export" / "meta.json").read_text())["postprocess"]["nms_iou"] == 0.65
    pred = _job([*DETECTION, "trainer.mode=predict", f"trainer.predict.checkpoint={run}",
                 "data.limit_eval_rows=4", "model.score_thresh=0.0"], tmp_path / "pred")
    rows = json.loads((pred / "predictions.json").read_text())["predictions"]
    assert len(rows) == 4 and all(len(r["boxes"]) == len(r["scores"]) == len(r["labels"]) for r in rows)
    assert all(0 <= v <= 128 for r in rows for b in r["boxes"] for v in b)  # original image pixels
    assert all(lab in [str(d) for d in range(10)] for r in rows for lab in r["labels"])


@pytest.mark.slow
def test_ddp_cpu_two_processes(tmp_path: Path, cv_data: Path) -> None:
    run = tmp_path / "ddp"
    proc = run_cli([*DIGITS, "hardware=ddp_cpu", "trainer.epochs=1", "trainer.export.enabled=false",
                    f"hydra.run.dir={run}"], cwd=tmp_path)
    assert proc.stdout.strip().splitlines()[-1] == f"run directory: {run}"
    m = _metrics(run)
    assert m["world_size"] == 2 and m["finished"]
    assert m["steps"] == 3  # each rank: 96 of the 192 images in batches of 32
    assert m["final"]["eval/rows"] == 96  # every eval image, gathered from both ranks


SPACE = """# @package _global_
defaults:
  - override /hydra/sweeper: lingjie_optuna
hydra:
  sweep: {dir: sweep}
  sweeper:
    optimize_metric: eval/top1
    direction: maximize
    sampler: random
    seed: 3
    pruner: none
    n_jobs: 2
    params:
      trainer.optimizer.dense.lr: {type: float, low: 0.001, high: 0.01, log: true}
      model.label_smoothing: [0.0, 0.1]
"""


@pytest.mark.slow
def test_two_trial_sweep(tmp_path: Path, cv_data: Path) -> None:
    """The shipped digits_resnet space is checked to compose; a 2-trial sweep runs a tiny one."""
    from easycv.schema import validate_root

    assert compose(["+experiment=digits_resnet", "hparams_search=digits_resnet"])["experiment_name"]
    validate_root(compose(["+experiment=digits_resnet", "model.widths=[16,32,64]", "data.batch_size=128"]))
    (tmp_path / "cfg" / "hparams_search").mkdir(parents=True)
    (tmp_path / "cfg" / "hparams_search" / "t.yaml").write_text(SPACE)
    proc = run_cli(["-m", *DIGITS, "hparams_search=t", f"hydra.searchpath=[file://{tmp_path / 'cfg'}]",
                    "hydra.sweeper.n_trials=2", "trainer.epochs=1", "trainer.export.enabled=false"], cwd=tmp_path)
    with open(tmp_path / "sweep" / "trials.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"], proc.stdout[-3000:]
    assert all(0.0 <= float(r["value"]) <= 1.0 for r in rows)
    assert (tmp_path / "sweep" / "best_config.yaml").exists()
