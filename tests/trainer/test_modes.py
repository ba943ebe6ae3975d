"""evaluate / predict / export modes, and the export round trip in a fresh process."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT, SHRINK, run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    run = tmp_path_factory.mktemp("trained") / "run"
    # no export at the end of training: the tests below export this checkpoint themselves
    run_cli(["+experiment=movielens_din", *SHRINK, "trainer.export.enabled=false", f"hydra.run.dir={run}"],
            cwd=run.parent)
    return run


@pytest.mark.slow
def test_evaluate_mode_reproduces_training_eval(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    run_cli(["+experiment=movielens_din", *SHRINK, "trainer.mode=evaluate",
             f"trainer.evaluate.checkpoint={trained}", f"hydra.run.dir={out}"], cwd=tmp_path)
    got = json.loads((out / "metrics.json").read_text())["final"]
    want = json.loads((trained / "metrics.json").read_text())["final"]
    assert got["eval/auc"] == pytest.approx(want["eval/auc"], abs=1e-6)
    assert got["eval/gauc"] == pytest.approx(want["eval/gauc"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_predict_mode_writes_scores_with_passthrough(trained: Path, tmp_path: Path, data_dir: Path,
                                                     fmt: str) -> None:
    out = tmp_path / f"pred.{fmt}"
    run_cli(["+experiment=movielens_din", "trainer.mode=predict", "trainer.progress_bar=false",
             f"trainer.predict.checkpoint={trained}", f"trainer.predict.output_path={out}",
             f"trainer.predict.format={fmt}", "trainer.predict.passthrough=[user_id,item_id]",
             f"hydra.run.dir={tmp_path / 'p'}"], cwd=tmp_path)
    if fmt == "parquet":
        table = pq.read_table(out)
    else:
        import pyarrow.csv as pcsv

        table = pcsv.read_csv(out)
    assert table.column_names == ["user_id", "item_id", "like"]
    assert table.num_rows == pq.ParquetFile(data_dir / "movielens-100k" / "test.parquet").metadata.num_rows
    scores = table.column("like").to_numpy()
    assert np.all((scores > 0) & (scores < 1))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torchscript", "torch_export"])
def test_export_round_trip_in_fresh_process(trained: Path, tmp_path: Path, data_dir: Path, fmt: str) -> None:
    """Export the checkpoint, load it in a new interpreter, score raw rows: same predictions."""
    out = tmp_path / "exp"
    run_cli(["+experiment=movielens_din", "trainer.mode=export", f"trainer.export.format={fmt}",
             f"trainer.export.checkpoint={trained}", f"hydra.run.dir={out}"], cwd=tmp_path)
    test_file = data_dir / "movielens-100k" / "test.parquet"
    rows = pq.read_table(test_file).slice(0, 500)
    # reference: the checkpoint itself, restored in this process
    from easyrec.restore import restore
    from trainer.run_dir import RunDir

    restored = restore(RunDir(trained).latest_checkpoint())
    want = restored.engine.predict(restored.state.transform(rows, with_labels=False))["like"]
    script = (
        "import sys, numpy as np, pyarrow.parquet as pq\n"
        "from easyrec.serving import ExportedModel\n"
        f"m = ExportedModel({str(out / 'export')!r})\n"
        f"rows = pq.read_table({str(test_file)!r}).slice(0, 500).to_pylist()\n"
        "np.save(sys.argv[1], m.predict(rows)['like'])\n"
    )
    npy = tmp_path / "scores.npy"
    subprocess.run([sys.executable, "-c", script, str(npy)], check=True, cwd=tmp_path,
                   env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    got = np.load(npy)
    assert got.shape == want.reshape(-1).shape
    np.testing.assert_allclose(got.reshape(-1), want.reshape(-1), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def trained_tf(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    run = tmp_path_factory.mktemp("trained_tf") / "run"
    run_cli(["+experiment=movielens_din", *SHRINK, "trainer.backend=tf", f"hydra.run.dir={run}"], cwd=run.parent)
    return run


@pytest.mark.slow
def test_tf_savedmodel_round_trip_in_fresh_process(trained_tf: Path, tmp_path: Path, data_dir: Path) -> None:
    """The TF run's SavedModel, loaded with tf.saved_model.load in a new interpreter, scores raw
    rows exactly like the checkpoint restored here."""
    test_file = data_dir / "movielens-100k" / "test.parquet"
    rows = pq.read_table(test_file).slice(0, 300)
    from easyrec.restore import restore
    from trainer.run_dir import RunDir

    restored = restore(RunDir(trained_tf).latest_checkpoint())
    want = restored.engine.predict(restored.state.transform(rows, with_labels=False))["like"]
    script = (
        "import sys, re, json, numpy as np, pyarrow.parquet as pq, tensorflow as tf\n"
        "from easyrec.features.pipeline import FeaturePipeline\n"
        f"d = {str(trained_tf / 'export')!r}\n"
        "model = tf.saved_model.load(d + '/saved_model')\n"
        "pipe = FeaturePipeline.load(d + '/feature_state.json')\n"
        "wanted = set(json.load(open(d + '/meta.json'))['inputs'])\n"
        f"rows = pq.read_table({str(test_file)!r}).slice(0, 300)\n"
        "flat = {re.sub(r'[^A-Za-z0-9_]', '_', k): v for k, v in pipe.transform(rows, with_labels=False).to_flat().items()"
        " if k in wanted}\n"
        "np.save(sys.argv[1], model.signatures['serving_default'](**flat)['like'].numpy())\n"
    )
    npy = tmp_path / "scores.npy"
    subprocess.run([sys.executable, "-c", script, str(npy)], check=True, cwd=tmp_path,
                   env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"})
    np.testing.assert_allclose(np.load(npy).reshape(-1), want.reshape(-1), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_tf_checkpoint_predict_mode(trained_tf: Path, tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "pred.parquet"
    run_cli(["+experiment=movielens_din", "trainer.mode=predict", "trainer.progress_bar=false",
             f"trainer.predict.checkpoint={trained_tf}", f"trainer.predict.output_path={out}",
             "trainer.predict.passthrough=[user_id]", f"hydra.run.dir={tmp_path / 'p'}"], cwd=tmp_path)
    scores = pq.read_table(out).column("like").to_numpy()
    assert len(scores) == pq.ParquetFile(data_dir / "movielens-100k" / "test.parquet").metadata.num_rows
    assert np.all((scores > 0) & (scores < 1))
