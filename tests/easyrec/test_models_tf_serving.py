"""SavedModel export of every tf.keras zoo model through ``serving_signature``: saved here,
loaded in a fresh Python process (no easyrec import there), same predictions as eager for
batch sizes 1 and 7 and for a feature with no ids in the batch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from easyrec.models.tf.base import input_signature, save_serving, serving_signature
from tests.easyrec.zoo_tf_helpers import ALL_CONFIGS, FEATURES, build, tf, tf_batch, to_numpy

LOADER = r"""
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
jobs = json.loads(sys.argv[1])
for job in jobs:
    fn = tf.saved_model.load(job["model"]).signatures["serving_default"]
    keys = sorted(fn.structured_input_signature[1].values(), key=lambda s: s.name)
    with np.load(job["inputs"]) as data:
        out = fn(**{k: tf.constant(data[k]) for k in data.files})
    np.savez(job["outputs"], **{k: v.numpy() for k, v in out.items()},
             __input_keys__=np.array([s.name for s in keys]))
assert not any(m.startswith("easyrec") for m in sys.modules)
"""


def _cases() -> dict:
    cases = {"b1": tf_batch(1, seed=1)[0], "b7": tf_batch(7, seed=7)[0]}
    empty = dict(tf_batch(4, seed=2)[0])
    empty["tags.values"] = tf.zeros([0], tf.int64)
    empty["tags.weights"] = tf.zeros([0])
    empty["tags.offsets"] = tf.zeros([5], tf.int64)
    cases["empty_tags"] = empty
    return cases


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every config saved once, every case predicted by one fresh process."""
    root = tmp_path_factory.mktemp("tf_serving")
    models, jobs = {}, []
    for name in ALL_CONFIGS:
        model = build(name)
        path = root / name
        if name == "deepfm":
            save_serving(model, str(path))
        else:  # what the trainer writes
            tf.saved_model.save(model, str(path),
                                signatures={"serving_default": serving_signature(model)})
        models[name] = model
        for case, inputs in _cases().items():
            np.savez(root / f"{name}-{case}-in.npz", **to_numpy(inputs))
            jobs.append({"model": str(path), "inputs": str(root / f"{name}-{case}-in.npz"),
                         "outputs": str(root / f"{name}-{case}-out.npz")})
    subprocess.run([sys.executable, "-c", LOADER, json.dumps(jobs)], check=True, timeout=300,
                   cwd=root)
    return {"root": root, "models": models}


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_saved_model_in_a_fresh_process_matches_eager(exported: dict, name: str) -> None:
    model = exported["models"][name]
    for case, inputs in _cases().items():
        want = model.predict_outputs(model(inputs, training=False))
        with np.load(Path(exported["root"]) / f"{name}-{case}-out.npz") as got:
            assert set(got.files) - {"__input_keys__"} == set(want)
            for k, v in want.items():
                np.testing.assert_allclose(got[k], v.numpy(), rtol=1e-5, atol=1e-6,
                                           err_msg=f"{name} {case} {k}")
            # the signature's inputs are the flat batch keys, dots included
            assert sorted(got["__input_keys__"]) == sorted(input_signature(FEATURES))


def test_input_signature_has_dynamic_batch_and_nnz_and_fixed_widths() -> None:
    spec = input_signature(FEATURES)
    assert spec["age"].shape.as_list() == [None, 3] and spec["age"].dtype == tf.float32
    assert spec["tags.values"].shape.as_list() == [None]
    assert spec["tags.offsets"].shape.as_list() == [None]
    assert spec["tags.weights"].dtype == tf.float32
    assert "user_id.weights" not in spec
    assert spec["hist.values"].shape.as_list() == [None, 6]
    assert spec["hist.lengths"].dtype == tf.int64
