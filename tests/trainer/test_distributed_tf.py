"""TF MultiWorkerMirroredStrategy: two local worker processes (hardware=tf_multiworker), real data."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

MWMS = ["+experiment=movielens_deepfm", "trainer.backend=tf", "hardware=tf_multiworker", "hardware.num_workers=2",
        "trainer.progress_bar=false"]
SHRUNK = ["data.limit_train_rows=4000", "data.limit_eval_rows=2000", "trainer.epochs=1"]


@pytest.mark.slow
def test_two_tf_workers_train_with_all_reduced_gradients(tmp_path: Path, data_dir: Path) -> None:
    run = tmp_path / "mwms"
    proc = run_cli([*MWMS, *SHRUNK, f"hydra.run.dir={run}"], cwd=tmp_path, timeout=300)
    assert proc.stdout.strip().splitlines()[-1] == f"run directory: {run}"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["finished"] and metrics["backend"] == "tf"
    assert metrics["steps"] > 0
    assert metrics["final"]["eval/rows"] == 2000  # every eval row, gathered from both workers
    # the engine compares the workers' weights at each epoch end (collective) and fails otherwise
    assert "weights identical on all 2 workers" in proc.stderr
    assert (run / "DONE").exists()
    assert (run / "export" / "saved_model" / "saved_model.pb").exists()
    assert (run / "checkpoints" / "epoch-0001.tfckpt" / "meta.json").exists()
    assert sorted(p.name for p in (run / "logs").glob("worker-*.log")) == ["worker-0.log", "worker-1.log"]
    # only the chief writes: no stray temp checkpoints of the other worker in the run dir
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_tf_worker_dying_at_start_shows_its_log_tail(tmp_path: Path) -> None:
    proc = run_cli([*MWMS, "data.dataset=null", f"data.train_path={tmp_path / 'missing.parquet'}",
                    "data.eval_path=null", f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path, check=False,
                   timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "a training worker failed: worker" in proc.stderr
    assert "its log ends with" in proc.stderr and "missing.parquet" in proc.stderr.split("its log ends with")[-1]


def test_more_tf_workers_than_cores_is_a_clear_error(tmp_path: Path) -> None:
    cores = os.cpu_count() or 1
    proc = run_cli([*MWMS, f"hardware.num_workers={cores + 1}", f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path,
                   check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "hardware.num_workers" in proc.stderr


_MIRRORED_STEP = r'''
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from tests.conftest import compose, movielens_like
from trainer.distributed import DistContext
from easyrec.data import make_pipeline
from easyrec.restore import make_engine
from trainer.schema.validate import validate
from trainer import tf_strategy as multiworker

spec = validate(compose(["+experiment=movielens_deepfm", "trainer.backend=tf", "trainer.optimizer.dense.name=sgd",
                         "trainer.optimizer.sparse.name=sgd", "trainer.optimizer.dense.lr=0.5",
                         "trainer.optimizer.sparse.lr=0.5"]))
pipeline = make_pipeline(spec)
table = movielens_like(512)
pipeline.fit(iter(table.to_batches()))
batch = pipeline.transform(table)
tf.keras.utils.set_random_seed(0)
single = make_engine("tf", spec.model, pipeline, spec.root.trainer, total_steps=10)
start = [np.array(v) for v in single.model.variables]
# two replicas in one process: the engine's replica-context all-reduce and Keras' optimizer
# run exactly as under MultiWorkerMirroredStrategy; each replica gets the same batch, so
# the MEAN gradient is the single-process gradient (a SUM would double the step)
multiworker._STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
mirrored = make_engine("tf", spec.model, pipeline, spec.root.trainer, total_steps=10, dist=DistContext("tf", 0, 2))
assert mirrored.strategy is multiworker._STRATEGY
for v, w in zip(mirrored.model.variables, start):
    v.assign(w)
for _ in range(2):
    loss_single, _ = single.train_step(batch)
    mirrored.local_has_next = True
    loss_mirrored, _ = mirrored.train_step(batch)
    assert abs(loss_single - loss_mirrored) < 1e-5, (loss_single, loss_mirrored)
assert mirrored.all_have_next
moved = 0.0
for a, b, w in zip(single.model.variables, mirrored.model.variables, start):
    np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-4, atol=1e-6)
    moved = max(moved, float(np.abs(np.array(a) - w).max()))
assert moved > 1e-3, moved
mirrored.local_has_next = False  # one replica-set says "no more batches": the flag is all-reduced
mirrored.train_step(batch)
assert not mirrored.all_have_next
mirrored.check_replicas_in_sync()
print("OK")
'''


@pytest.mark.slow
def test_mirrored_step_is_the_single_process_step_on_the_mean_gradient(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    proc = subprocess.run([sys.executable, "-c", _MIRRORED_STEP], cwd=ROOT, env=env, text=True, capture_output=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stderr[-4000:]
