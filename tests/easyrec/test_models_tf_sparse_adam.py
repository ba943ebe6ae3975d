"""SparseAdam (lazy Adam for embedding tables): on looked-up rows it is Adam on the summed
(coalesced) gradient, other rows and their moments stay as they are, dense variables get
plain Adam, and it trains a zoo model inside tf.function."""
from __future__ import annotations

import numpy as np
import pytest

from easyrec.models.tf.sparse_adam import SparseAdam, coalesce
from tests.easyrec.zoo_tf_helpers import build, tf, tf_batch


def _grad(rng: np.random.Generator, rows: int = 60) -> tf.IndexedSlices:
    idx = rng.integers(0, rows // 2, 40)  # rows >= 30 never looked up; repeats in between
    values = rng.standard_normal((40, 4)).astype(np.float32)
    return tf.IndexedSlices(tf.constant(values), tf.constant(idx, tf.int64),
                            tf.constant([rows, 4], tf.int64))


def test_coalesce_sums_repeated_rows() -> None:
    g = _grad(np.random.default_rng(0))
    rows, summed = coalesce(g)
    want = tf.math.unsorted_segment_sum(g.values, g.indices, 60).numpy()
    assert len(set(rows.numpy())) == len(rows.numpy())
    np.testing.assert_allclose(summed, want[rows.numpy()], rtol=1e-5, atol=1e-6)


def test_looked_up_rows_follow_adam_and_the_others_stay() -> None:
    rng = np.random.default_rng(1)
    start = rng.standard_normal((60, 4)).astype(np.float32)
    lazy, dense = tf.Variable(start), tf.Variable(start)
    opt_lazy, opt_dense = SparseAdam(0.1), tf.keras.optimizers.Adam(0.1)
    g = _grad(rng)
    for _ in range(3):  # the same rows each step: lazy == dense Adam on the summed gradient
        opt_lazy.apply_gradients([(g, lazy)])
        opt_dense.apply_gradients([(tf.convert_to_tensor(g), dense)])
    np.testing.assert_allclose(lazy.numpy(), dense.numpy(), rtol=1e-5, atol=2e-5)
    np.testing.assert_array_equal(lazy.numpy()[30:], start[30:])
    # a step that touches other rows leaves the first rows' weights and moments alone
    before = lazy.numpy().copy()
    other = tf.IndexedSlices(tf.ones([2, 4]), tf.constant([40, 41], tf.int64),
                             tf.constant([60, 4], tf.int64))
    opt_lazy.apply_gradients([(other, lazy)])
    after = lazy.numpy()
    np.testing.assert_array_equal(after[:40], before[:40])
    assert not np.allclose(after[40:42], before[40:42])


def test_dense_gradients_get_plain_adam() -> None:
    a, b = tf.Variable(tf.ones([3, 2])), tf.Variable(tf.ones([3, 2]))
    g = tf.constant([[0.1, -0.2], [0.3, 0.0], [1.0, 2.0]])
    SparseAdam(0.01).apply_gradients([(g, a)])
    tf.keras.optimizers.Adam(0.01).apply_gradients([(g, b)])
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


def test_rejects_what_needs_every_row() -> None:
    with pytest.raises(ValueError, match="amsgrad"):
        SparseAdam(amsgrad=True)


def test_trains_a_zoo_model_inside_tf_function() -> None:
    model = build("deepfm")
    inputs, labels = tf_batch(64, seed=3)
    sparse, dense = model.sparse_variables(), model.dense_variables()
    opt_s, opt_d = SparseAdam(0.03), tf.keras.optimizers.Adam(0.03)
    opt_s.build(sparse)
    opt_d.build(dense)

    @tf.function
    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = model.loss(model(inputs, training=True), labels)
        grads = tape.gradient(loss, sparse + dense)
        opt_s.apply_gradients(zip(grads[:len(sparse)], sparse))
        opt_d.apply_gradients(zip(grads[len(sparse):], dense))
        return loss

    first = float(step())
    for _ in range(80):
        last = float(step())
    assert last < 0.25 * first
