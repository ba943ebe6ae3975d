"""torch and tensorflow in one process: every model type takes a training step on both
backends, in this (pytest's) process where torch was imported first, and in a fresh process
that imports tensorflow first."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from easyrec.models import specs
from tests.easyrec.zoo_tf_helpers import (ALL_CONFIGS, FEATURES, make_batch, make_config, tf,
                                          tf_batch)

ROOT = Path(__file__).resolve().parents[2]


def _one_step_each(name: str) -> tuple:
    """(torch loss before, after) and (tf loss before, after) for one Adam step."""
    torch.manual_seed(0)
    t_model = specs.build_model(make_config(name), FEATURES, backend="torch")
    inputs, labels = make_batch(16, seed=1)
    labels["like"][:4] = 1.0
    opt = torch.optim.Adam(t_model.parameters(), lr=0.05)
    t_before = t_model.loss(t_model(inputs), labels)
    t_before.backward()
    opt.step()
    t_after = t_model.loss(t_model(inputs), labels).item()

    tf.keras.utils.set_random_seed(0)
    k_model = specs.build_model(make_config(name), FEATURES, backend="tf")
    k_inputs, k_labels = tf_batch(16, seed=1)
    k_labels["like"] = tf.constant(labels["like"].numpy())
    k_opt = tf.keras.optimizers.Adam(0.05)
    with tf.GradientTape() as tape:
        k_before = k_model.loss(k_model(k_inputs, training=True), k_labels)
    variables = k_model.trainable_variables
    k_opt.apply_gradients(zip(tape.gradient(k_before, variables), variables))
    k_after = float(k_model.loss(k_model(k_inputs, training=True), k_labels))
    return (t_before.item(), t_after), (float(k_before), k_after)


@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_one_step_of_each_backend_in_one_process(name: str) -> None:
    (t0, t1), (k0, k1) = _one_step_each(name)
    assert np.isfinite([t0, t1, k0, k1]).all()
    assert t1 < t0 and k1 < k0
    assert "torch" in sys.modules and "tensorflow" in sys.modules


def test_tensorflow_imported_before_torch_in_a_fresh_process() -> None:
    code = textwrap.dedent(f"""
        import os, sys
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import torch
        torch.set_num_threads(1)
        sys.path.insert(0, {str(ROOT)!r})
        from tests.easyrec.test_models_tf_mixed import _one_step_each
        for name in {ALL_CONFIGS!r}:
            (t0, t1), (k0, k1) = _one_step_each(name)
            assert t1 < t0 and k1 < k0, (name, t0, t1, k0, k1)
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
