"""Shared set-up of the tf.keras model-zoo tests: thread counts, batches and models.

The zoo's features and configs are the torch tests' own (``tests.easyrec.zoo_helpers``), and
batches are the same torch batches converted to tf tensors, so both backends are always
tested on identical inputs. Skipped as a whole where tensorflow is not installed.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Tuple

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")

from easyrec.models import specs  # noqa: E402
from tests.easyrec.zoo_helpers import (ALL_CONFIGS, FEATURES, TWO_TASKS,  # noqa: E402,F401
                                       make_batch, make_config)


def _limit_threads() -> None:
    """Tiny models run fastest on one intra-op thread (no hand-offs), and the suite shares
    this machine's two cores. TF fixes its thread pools when the runtime starts, so this
    runs at import, before any op; if some earlier test already started TF it is a no-op."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass


_limit_threads()

Tensors = Dict[str, Any]


def tf_batch(batch_size: int, seed: int = 0) -> Tuple[Tensors, Tensors]:
    """``make_batch`` (row i has user i and item i) as tf tensors."""
    inputs, labels = make_batch(batch_size, seed=seed)
    return ({k: tf.constant(v.numpy()) for k, v in inputs.items()},
            {k: tf.constant(v.numpy()) for k, v in labels.items()})


def to_numpy(tensors: Tensors) -> Dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in tensors.items()}


def build(name: str, seed: int = 0, **overrides: Any) -> Any:
    """The tf model of zoo config ``name`` (optionally with changed knobs)."""
    cfg = make_config(name)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    tf.keras.utils.set_random_seed(seed)
    return specs.build_model(cfg, FEATURES, backend="tf")


def train_step(model: Any, lr: float = 0.03) -> Callable[[Tensors, Tensors], Any]:
    """One Adam step on all trainable variables, compiled with tf.function."""
    opt = tf.keras.optimizers.Adam(lr)
    variables = model.trainable_variables
    opt.build(variables)

    @tf.function
    def step(inputs: Tensors, labels: Tensors) -> Any:
        with tf.GradientTape() as tape:
            loss = model.loss(model(inputs, training=True), labels)
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return step
