"""The logger group's trackers (TensorBoard, metrics.csv, MLflow) on real runs, read back
through each tool's public reader: tensorboard's EventAccumulator, csv, mlflow.MlflowClient.

One passing run (logger=all, two epochs) and one failing run (a callback raises after epoch 1)
share a working directory, so both land in the same default MLflow store."""
from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import run_cli

SECRET = "LiteralPw-7f3a9c"
TINY = ["+experiment=movielens_deepfm", "data.limit_train_rows=512", "data.limit_eval_rows=256",
        "data.batch_size=256", "data.eval_batch_size=1024", "trainer.progress_bar=false", "hardware.threads=1",
        "trainer.timing.enabled=false", "trainer.log_every_n_steps=1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> SimpleNamespace:
    cwd = tmp_path_factory.mktemp("tracking")
    ok = run_cli([*TINY, "trainer.epochs=2", "logger=all", f"+data.storage_options.password={SECRET}",
                  f"hydra.run.dir={cwd / 'ok'}"], cwd=cwd)
    failed = run_cli([*TINY, "trainer.epochs=2", "logger=all",
                      "trainer.callbacks=[{_target_:tests.trainer.callback_probe.Raiser,at_epoch:1}]",
                      f"hydra.run.dir={cwd / 'failed'}"], cwd=cwd, check=False)
    return SimpleNamespace(cwd=cwd, ok=cwd / "ok", failed=cwd / "failed", ok_proc=ok, failed_proc=failed)


def _client(cwd: Path) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{cwd / 'outputs' / 'mlflow.db'}")


def test_tensorboard_scalars_and_hparams(runs: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    # TensorBoard's reader imports TensorFlow when it can (seconds of CI) only for file I/O; a
    # blocked import makes it use its own stub, the same reader any TF-less install runs
    if "tensorflow" not in sys.modules:
        monkeypatch.setitem(sys.modules, "tensorflow", None)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    scalars = EventAccumulator(str(runs.ok / "tensorboard"))
    scalars.Reload()
    tags = scalars.Tags()["scalars"]
    assert {"train/loss", "train/lr", "eval/auc"} <= set(tags)
    assert [e.step for e in scalars.Scalars("eval/auc")] == [2, 4]  # 512 rows / 256 a batch, two epochs
    hp = EventAccumulator(str(runs.ok / "tensorboard" / "hparams"))
    hp.Reload()
    content = hp.PluginTagToContent("hparams")
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["model.name"].string_value == "deepfm"
    assert start.hparams["trainer.optimizer.dense.lr"].number_value == pytest.approx(1e-3)
    assert "eval/auc" in hp.Tags()["scalars"]  # the final metrics beside the hparams


def test_metrics_csv_has_a_row_per_epoch(runs: SimpleNamespace) -> None:
    with open(runs.ok / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["epoch"], r["step"]) for r in rows] == [("1", "2"), ("2", "4")]
    final = json.loads((runs.ok / "metrics.json").read_text())["final"]
    assert float(rows[-1]["eval/auc"]) == pytest.approx(final["eval/auc"])
    # the failed run keeps the epoch it finished
    assert len((runs.failed / "metrics.csv").read_text().splitlines()) == 2


def test_mlflow_run_has_params_metrics_artifacts_and_no_secret(runs: SimpleNamespace) -> None:
    console = runs.ok_proc.stderr + runs.ok_proc.stdout  # the first run created the store: MLflow kept quiet
    assert "alembic" not in console and "Creating initial MLflow" not in console
    assert not (runs.cwd / "mlruns").exists()  # artifacts go beside the store, not into the cwd
    client = _client(runs.cwd)
    run = client.get_run((runs.ok / "mlflow_run_id").read_text())
    assert run.info.status == "FINISHED" and run.info.run_name == "ok"
    assert client.get_experiment(run.info.experiment_id).name == "movielens_deepfm"
    params = run.data.params
    assert params["model.name"] == "deepfm" and params["trainer.epochs"] == "2"
    assert params["data.storage_options.password"] == "***"
    assert SECRET not in json.dumps(params) and SECRET not in json.dumps(run.data.tags)
    history = client.get_metric_history(run.info.run_id, "eval/auc")
    assert [m.step for m in history] == [1, 2]
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.json", "metrics.csv", "run_info.json", "export"} <= names
    local = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(runs.cwd / "dl")))
    assert SECRET not in local.read_text()
    assert str(runs.cwd / "outputs" / "mlartifacts") in run.info.artifact_uri


def test_a_failing_run_ends_its_mlflow_run_failed(runs: SimpleNamespace) -> None:
    assert runs.failed_proc.returncode != 0 and "planted failure" in runs.failed_proc.stderr
    assert (runs.failed / "FAILED").exists()
    client = _client(runs.cwd)
    run = client.get_run((runs.failed / "mlflow_run_id").read_text())
    assert run.info.status == "FAILED"
    assert "planted failure after epoch 1" in run.data.tags["lingjie.error"]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "eval/auc")] == [1]


def test_file_store_uri_is_allowed_for_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file:// store the user chose works (MLflow 3 needs MLFLOW_ALLOW_FILE_STORE for it);
    Ctrl-C marks the run KILLED."""
    from trainer.run_dir import RunDir
    from trainer.tracking_mlflow import MlflowTarget, MlflowTracker, is_file_store

    assert is_file_store("mlruns") and is_file_store("file:///x") and not is_file_store("sqlite:///x.db")
    assert not is_file_store("databricks") and not is_file_store("http://host:5000")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # restored (unset) after the test
    uri = (tmp_path / "store").as_uri()
    (tmp_path / "run").mkdir()
    tracker = MlflowTracker(MlflowTarget(uri, "exp", "r1", (tmp_path / "art").as_uri()), RunDir(tmp_path / "run"),
                            {"a.b": 1, "x@y": [1, 2], "long": "v" * 7000}, {})
    loop = SimpleNamespace(progress=SimpleNamespace(epoch=1, global_step=3))
    tracker.on_fit_start(loop)
    assert os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true"
    tracker.on_epoch_end(loop, {"epoch": 1.0, "eval/recall@10": 0.5, "eval/auc": float("nan")})
    run_id = tracker.run_id
    tracker.on_run_failed(loop, KeyboardInterrupt())
    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri=uri).get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.params["x_y"] == "[1, 2]" and len(run.data.params["long"]) == 6000
    assert run.data.metrics == {"eval/recall_10": 0.5, "global_step": 3.0}


def test_history_csv_adds_late_columns() -> None:
    from trainer.tracking import history_csv

    text = history_csv([{"epoch": 1.0, "step": 5.0, "a/x": 0.5}, {"epoch": 2.0, "step": 10.0, "a/x": 0.25, "b/y": 1.0}])
    assert text.splitlines() == ["epoch,step,a/x,b/y", "1,5,0.5,", "2,10,0.25,1.0"]


def test_missing_mlflow_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from lingjie.errors import ConfigError
    from tests.conftest import compose
    from trainer.schema.validate import validate
    from trainer.tracking import require_trackers

    root = validate(compose(["logger=mlflow"])).root
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ConfigError) as err:
        require_trackers(root)
    assert "logger.mlflow needs the 'mlflow' extra" in str(err.value)
    assert "pip install 'lingjie[mlflow]'" in str(err.value)



@pytest.mark.parametrize("option, on", [("default", "tensorboard csv"), ("tensorboard", "tensorboard"),
                                        ("csv", "csv"), ("mlflow", "mlflow"), ("all", "tensorboard csv mlflow"),
                                        ("none", "")])
def test_logger_group_options(option: str, on: str) -> None:
    from tests.conftest import compose
    from trainer.schema.validate import validate

    logger = validate(compose([f"logger={option}"])).root.logger
    enabled = {"tensorboard": logger.tensorboard, "csv": logger.csv, "mlflow": logger.mlflow.enabled}
    assert sorted(k for k, v in enabled.items() if v) == sorted(on.split())


TRACK_ONE = """
import sys
from pathlib import Path
from types import SimpleNamespace
from trainer.run_dir import RunDir
from trainer.tracking_mlflow import MlflowTarget, MlflowTracker
store, name = Path(sys.argv[1]), sys.argv[2]
(store / name).mkdir()
t = MlflowTracker(MlflowTarget(f"sqlite:///{store / 'mlflow.db'}", "exp", name, (store / "art").as_uri()),
                  RunDir(store / name), {"a": 1}, {})
loop = SimpleNamespace(progress=SimpleNamespace(epoch=1, global_step=1, history=[]))
t.on_fit_start(loop)
t.on_run_end(loop)
"""


def test_parallel_runs_share_a_fresh_sqlite_store(tmp_path: Path) -> None:
    """Two processes opening a new store at once (parallel sweep trials) both track: without
    the creation lock both race through MLflow's table migrations and fail."""
    import subprocess

    from tests.conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", TRACK_ONE, str(tmp_path), f"r{i}"], env=env,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    assert sorted((r.info.run_name, r.info.status) for r in runs) == [("r0", "FINISHED"), ("r1", "FINISHED")]
