"""Training straight from oss:// (the OSS-API emulator on loopback, the real ossfs client) with
credentials from the environment: the run works, and the secret appears nowhere in the run
directory (resolved config, logs, metrics, checkpoints, feature state, export)."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq
import pytest

from tests.conftest import run_cli
from tests.emulators.fixtures import oss_server  # noqa: F401  (fixture)


def _parquet(table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


@pytest.mark.slow
def test_train_from_oss_with_env_credentials_leaks_no_secret(oss_server, tmp_path: Path,  # noqa: F811
                                                             movielens_table: Callable) -> None:
    oss_server.create_bucket("ml-data")
    oss_server.put("ml-data", "ratings/train.parquet", _parquet(movielens_table(3000, 0)))
    oss_server.put("ml-data", "ratings/test.parquet", _parquet(movielens_table(800, 1)))
    secret = oss_server.access_key_secret
    env = {"OSS_ENDPOINT": oss_server.endpoint, "OSS_ACCESS_KEY_ID": oss_server.access_key_id,
           "OSS_ACCESS_KEY_SECRET": secret}
    run = tmp_path / "run"
    run_cli(["+experiment=movielens_deepfm", "data.dataset=null", "data.train_path=oss://ml-data/ratings/train.parquet",
             "data.eval_path=oss://ml-data/ratings/test.parquet", "trainer.epochs=1", "trainer.progress_bar=false",
             f"hydra.run.dir={run}"], cwd=tmp_path, env=env)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] and metrics["final"]["eval/rows"] == 800
    files = [p for p in run.rglob("*") if p.is_file()]
    assert len(files) > 5
    leaked = [str(p) for p in files if secret.encode() in p.read_bytes()]
    assert not leaked, f"secret found in {leaked}"


@pytest.mark.slow
def test_run_mirrored_to_oss_resumes_on_a_fresh_machine(oss_server, tmp_path: Path,  # noqa: F811
                                                        movielens_table: Callable) -> None:
    """paths.remote_dir=oss://...: checkpoints, metrics and the export are published to OSS; a
    second "machine" (an empty working directory) resumes the run from the OSS copy alone."""
    oss_server.create_bucket("runs")
    oss_server.create_bucket("data2")
    oss_server.put("data2", "train.parquet", _parquet(movielens_table(3000, 0)))
    env = {"OSS_ENDPOINT": oss_server.endpoint, "OSS_ACCESS_KEY_ID": oss_server.access_key_id,
           "OSS_ACCESS_KEY_SECRET": oss_server.access_key_secret}
    args = ["+experiment=movielens_deepfm", "data.dataset=null", "data.train_path=oss://data2/train.parquet",
            "data.eval_path=null", "data.batch_size=256", "trainer.progress_bar=false",
            "paths.remote_dir=oss://runs/lingjie"]
    first = tmp_path / "machine1"
    first.mkdir()
    run_cli([*args, "trainer.epochs=1", "hydra.run.dir=outputs/movielens_deepfm/run-a"], cwd=first, env=env)
    keys = oss_server.keys("runs")
    base = "lingjie/movielens_deepfm/run-a"
    for name in ("config.yaml", "metrics.json", "feature_state.json", "checkpoints/latest",
                 "checkpoints/epoch-0001.pt", "export/meta.json", "DONE", "run_info.json"):
        assert f"{base}/{name}" in keys, name
    second = tmp_path / "machine2"
    second.mkdir()
    proc = run_cli([*args, "trainer.epochs=2", f"trainer.resume=oss://runs/{base}",
                    "hydra.run.dir=outputs/movielens_deepfm/tmp-new"], cwd=second, env=env)
    assert "resumed from epoch-0001.pt" in proc.stdout + proc.stderr
    metrics = json.loads((second / "outputs/movielens_deepfm/run-a/metrics.json").read_text())
    assert metrics["epochs_completed"] == 2 and len(metrics["history"]) == 2
    assert "lingjie/movielens_deepfm/run-a/checkpoints/epoch-0002.pt" in oss_server.keys("runs")


@pytest.mark.slow
def test_train_and_predict_from_maxcompute_tables(tmp_path: Path, movielens_table: Callable) -> None:
    """odps:// tables through the trainer (the MaxCompute reader interface, local implementation:
    the pyodps one needs the real service), for training, evaluation and prediction."""
    root = tmp_path / "odps"
    for table, seed, n in (("ratings_train", 0, 3000), ("ratings_test", 1, 800)):
        (root / "proj" / table).mkdir(parents=True)
        pq.write_table(movielens_table(n, seed), root / "proj" / table / "part-0.parquet")
    run = tmp_path / "run"
    common = ["+experiment=movielens_deepfm", "data.dataset=null", "trainer.progress_bar=false",
              f"+data.storage_options.local_root={root}"]
    run_cli([*common, "data.train_path=odps://proj/tables/ratings_train",
             "data.eval_path=odps://proj/tables/ratings_test", "trainer.epochs=1", f"hydra.run.dir={run}"],
            cwd=tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] and metrics["final"]["eval/rows"] == 800
    out = tmp_path / "pred.parquet"
    run_cli([*common, "trainer.mode=predict", "data.eval_path=odps://proj/tables/ratings_test",
             f"trainer.predict.checkpoint={run}", f"trainer.predict.output_path={out}",
             "trainer.predict.passthrough=[user_id]", f"hydra.run.dir={tmp_path / 'p'}"], cwd=tmp_path)
    assert pq.read_table(out).num_rows == 800
