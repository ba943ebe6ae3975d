"""What a run reports at its end and on the way: the plots of the final evaluation, the
best/last epoch table, and progress bars that ``trainer.progress_bar=false`` silences."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import run_cli
from trainer.metric_report import PredictionCollector, TaskMetrics
from trainer.plots import BinaryCurves, Confusion, roc_points, write_plots
from trainer.run_summary import best_last_rows, format_table, metric_mode, write_run_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HISTORY = [
    {"epoch": 1.0, "train/loss": 0.60, "eval/auc": 0.70, "eval/logloss": 0.50, "eval/rows": 800.0},
    {"epoch": 2.0, "train/loss": 0.50, "eval/auc": 0.76, "eval/logloss": 0.52, "eval/rows": 800.0},
    {"epoch": 3.0, "train/loss": 0.40, "eval/auc": 0.74, "eval/logloss": 0.55, "eval/rows": 800.0},
]


def _binary(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.float32)
    return y, 1 / (1 + np.exp(-(rng.normal(size=n) + 2 * y - 1)))


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5_000  # a drawn figure, not an empty canvas


def test_plot_writer_draws_valid_pngs(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    y, s = _binary()
    rng = np.random.default_rng(1)
    written = write_plots(tmp_path / "plots", [
        BinaryCurves(y, s), Confusion(rng.integers(0, 3, 500), rng.integers(0, 3, 500), ["a", "b", "c"]),
        BinaryCurves(np.zeros(0), np.zeros(0), prefix="empty_")])  # no rows: skipped
    assert sorted(p.name for p in written) == ["calibration.png", "confusion.png", "pr.png", "roc.png"]
    for p in written:
        _assert_png(p)
    assert not list((tmp_path / "plots").glob(".*"))  # atomic writes leave no temp files


def test_roc_points_match_the_metric() -> None:
    from trainer.metrics import auc

    y, s = _binary()
    fpr, tpr = roc_points(y.astype(np.float64), s)
    assert float(np.trapezoid(tpr, fpr)) == pytest.approx(auc(y, s.astype(np.float32)), abs=1e-4)


def test_multi_task_models_get_one_set_per_binary_task() -> None:
    metrics = TaskMetrics({"ctr": "binary", "cvr": "binary", "watch": "regression"})
    c = PredictionCollector(["ctr", "cvr", "watch"])
    y, s = _binary(50)
    c.add({"ctr": s, "cvr": s, "watch": s}, {"ctr": y, "cvr": y, "watch": y}, None)
    assert [i.prefix for i in metrics.plot_inputs(c)] == ["ctr_", "cvr_"]
    assert [i.prefix for i in TaskMetrics({"ctr": "binary"}).plot_inputs(c)] == [""]


def test_classifiers_get_a_confusion_matrix() -> None:
    from easycv.metrics import ClassificationMetrics
    from easynlp.metrics import NLPMetrics

    cv = ClassificationMetrics({"label": "multiclass"}, ["a", "b", "c"])
    c = cv.collector()
    c.add({"label": np.eye(3)[[0, 1, 2, 1]]}, {"label": np.array([0, 1, 1, 1])})
    (conf,) = cv.plot_inputs(c)
    assert isinstance(conf, Confusion) and list(conf.predicted) == [0, 1, 2, 1] and conf.class_names == ["a", "b", "c"]
    nlp = NLPMetrics({"sentiment": "multiclass"}, {"sentiment": ["neg", "pos"]})
    c = nlp.collector()
    c.add({"sentiment": np.array([[0.8, 0.2], [0.3, 0.7]])}, {"sentiment": np.array([0, 1])})
    assert [type(i) for i in nlp.plot_inputs(c)] == [Confusion, BinaryCurves]  # two classes: curves too


def test_no_plots_when_switched_off_or_nothing_was_evaluated(tmp_path: Path) -> None:
    y, s = _binary(50)
    c = PredictionCollector(["ctr"])
    c.add({"ctr": s}, {"ctr": y}, None)
    metrics = TaskMetrics({"ctr": "binary"})
    off = SimpleNamespace(spec=SimpleNamespace(plots=False), last_eval=c)
    none = SimpleNamespace(spec=SimpleNamespace(plots=True), last_eval=None)
    assert write_run_plots(off, metrics, tmp_path / "plots") == []
    assert write_run_plots(none, metrics, tmp_path / "plots") == []
    assert not (tmp_path / "plots").exists()


def test_best_and_last_by_natural_direction() -> None:
    rows = {r.metric: r for r in best_last_rows(HISTORY)}
    assert list(rows) == ["train/loss", "eval/auc", "eval/logloss"]  # eval/rows is not a metric
    assert (rows["eval/auc"].best, rows["eval/auc"].best_epoch, rows["eval/auc"].last) == (0.76, 2, 0.74)
    assert (rows["eval/logloss"].best, rows["eval/logloss"].best_epoch) == (0.50, 1)
    assert (rows["train/loss"].best, rows["train/loss"].best_epoch) == (0.40, 3)
    assert metric_mode("eval/top1") == "max" and metric_mode("eval/mse") == "min"


def test_other_tasks_of_a_multi_task_model_get_rows() -> None:
    history = [{"epoch": 1.0, "eval/auc": 0.7, "eval/like/auc": 0.7, "eval/rating/mse": 1.2},
               {"epoch": 2.0, "eval/auc": 0.8, "eval/like/auc": 0.8, "eval/rating/mse": 1.3}]
    rows = {r.metric: r for r in best_last_rows(history)}
    assert list(rows) == ["eval/auc", "eval/rating/mse"]
    assert rows["eval/rating/mse"].best_epoch == 1


def test_best_follows_the_selection_metric_when_set() -> None:
    rows = {r.metric: r for r in best_last_rows(HISTORY, "eval/logloss", "min")}
    assert {r.best_epoch for r in rows.values()} == {1}  # the epoch early stopping kept as best
    assert rows["eval/auc"].best == 0.70
    table = format_table(list(rows.values()), "eval/logloss")
    assert "by eval/logloss" in table and "0.7000 (1)" in table and "0.7400" in table


def test_progress_bar_false_prints_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataio.progress import progress

    for enabled, expect_output in ((False, False), (True, True)):
        err = io.StringIO()
        monkeypatch.setattr(sys, "stderr", err)
        bar = progress(range(5), desc="fit features", total=5, enabled=enabled)
        assert sum(1 for _ in bar) == 5
        bar.update(0)
        bar.close()
        assert ("fit features" in err.getvalue()) is expect_output


@pytest.mark.parametrize("plots", [True, False])
def test_binary_rec_run_writes_plots_and_the_table(movielens_split: tuple[Path, Path], tmp_path: Path,
                                                   plots: bool) -> None:
    train, test = movielens_split
    run = tmp_path / "run"
    proc = run_cli(["+experiment=movielens_deepfm", "data.dataset=null", "trainer.progress_bar=false",
                    "trainer.export.enabled=false", "data.batch_size=512", "trainer.epochs=1",
                    "trainer.timing.enabled=false", f"trainer.plots={str(plots).lower()}",
                    f"data.train_path={train}", f"data.eval_path={test}", f"hydra.run.dir={run}"], cwd=tmp_path)
    if plots:
        for name in ("roc.png", "pr.png", "calibration.png"):
            _assert_png(run / "plots" / name)
    else:
        assert not (run / "plots").exists()
    assert "best and last epoch" in proc.stdout + proc.stderr
    assert "eval/auc" in (run / "train.log").read_text().split("best and last epoch")[-1]
    assert json.loads((run / "metrics.json").read_text())["finished"]
