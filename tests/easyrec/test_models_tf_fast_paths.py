"""TF step fast paths: single-id features gathered directly give the bag path's block and
gradients; FusedAdam (one ResourceApplyAdam per variable) is Keras' Adam; SparseAdam's
row-wise L2 touches only looked-up rows."""
from __future__ import annotations

import dataclasses

import numpy as np

from easyrec.features.info import FeatureInfo
from easyrec.models.tf.embedding import FusedEmbeddingBag
from easyrec.models.tf.sparse_adam import SparseAdam
from easyrec.tf_backend.optim import FusedAdam
from tests.easyrec.zoo_tf_helpers import tf


def _infos(single: bool) -> list[FeatureInfo]:
    return [FeatureInfo(name=n, kind="sparse", dim=4, num_embeddings=rows, single=single)
            for n, rows in (("a", 7), ("b", 11), ("c", 5))]


def _inputs(lengths: dict[str, np.ndarray], b: int, seed: int) -> dict:
    """Ids of the three features; a feature named in ``lengths`` is a bag of that many ids per
    row (0 = an empty bag), the others one id per row."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for info in _infos(True):
        n = lengths.get(info.name, np.ones(b, np.int64))
        inputs[info.name + ".values"] = tf.constant(rng.integers(0, info.num_embeddings, int(n.sum())), tf.int64)
        inputs[info.name + ".offsets"] = tf.constant(np.concatenate([[0], np.cumsum(n)]), tf.int64)
    return inputs


def _block_sum_grad(infos: list[FeatureInfo], inputs: dict) -> tuple[np.ndarray, ...]:
    """(block, block_sum, table gradient of a weighted sum of the block) of a fresh bag."""
    tf.keras.utils.set_random_seed(3)
    bag = FusedEmbeddingBag(4, [(i.name, i.num_embeddings) for i in infos], infos, [], 0.5)
    with tf.GradientTape() as tape:
        block = bag.block(inputs)
        loss = tf.reduce_sum(block * tf.reshape(tf.range(12, dtype=tf.float32) % 5, [1, 3, 4]))
    grad = tf.convert_to_tensor(tape.gradient(loss, bag.weight))
    return block.numpy(), bag.block_sum(inputs).numpy(), grad.numpy(), (bag._single_idx, bag._bag_idx)


def test_single_id_block_equals_the_bag_path() -> None:
    inputs = _inputs({}, 9, seed=0)
    single, bags = _block_sum_grad(_infos(True), inputs), _block_sum_grad(_infos(False), inputs)
    assert single[3] == ([0, 1, 2], []) and bags[3] == ([], [0, 1, 2])
    for x, y in zip(single[:3], bags[:3]):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)
    assert single[0].shape == (9, 3, 4)


def test_mixed_single_and_bag_block_equals_the_bag_path() -> None:
    """Single-id features gathered directly next to a multi-value bag (the MovieLens shape:
    the bag in the middle, so the block is reassembled from three runs) give the all-bag
    path's block, block_sum and table gradient."""
    lengths = np.random.default_rng(1).integers(0, 4, 9)  # bag "b": 0-3 ids per row
    inputs = _inputs({"b": lengths}, 9, seed=1)
    hybrid = _block_sum_grad([dataclasses.replace(i, single=i.name != "b") for i in _infos(True)], inputs)
    bags = _block_sum_grad(_infos(False), inputs)
    assert hybrid[3] == ([0, 2], [1])
    for x, y in zip(hybrid[:3], bags[:3]):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)
    assert np.abs(hybrid[0][:, 1]).sum() > 0 and np.all(hybrid[0][lengths == 0, 1] == 0)


def test_fused_adam_matches_keras_adam() -> None:
    """Several variables in one apply (the step's scalars are shared by all of them), one of
    them with an IndexedSlices gradient (Keras' own update), over 5 steps."""
    rng = np.random.default_rng(1)
    shapes = [(6, 3), (4,), (5, 2)]
    starts = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    fused_vars, plain_vars = [tf.Variable(x) for x in starts], [tf.Variable(x) for x in starts]
    fused, plain = FusedAdam(0.01), tf.keras.optimizers.Adam(0.01)

    @tf.function
    def step(g0: tf.Tensor, g1: tf.Tensor, rows: tf.Tensor, g2: tf.Tensor) -> None:
        for opt, (a, b, c) in ((fused, fused_vars), (plain, plain_vars)):
            opt.apply_gradients([(g0, a), (g1, b), (tf.IndexedSlices(g2, rows, tf.constant([5, 2])), c)])

    for _ in range(5):
        step(*(tf.constant(rng.standard_normal(s).astype(np.float32)) for s in [(6, 3), (4,)]),
             tf.constant([0, 3], tf.int64), tf.constant(rng.standard_normal((2, 2)).astype(np.float32)))
    for a, b, start in zip(fused_vars, plain_vars, starts):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
        assert not np.allclose(a.numpy(), start)  # every variable moved


def test_sparse_adam_l2_only_on_looked_up_rows() -> None:
    start = np.ones((5, 2), np.float32)
    v = tf.Variable(start)
    g = tf.IndexedSlices(tf.zeros([2, 2]), tf.constant([1, 1], tf.int64), tf.constant([5, 2], tf.int64))
    SparseAdam(0.1, l2=0.5).apply_gradients([(g, v)])
    moved = np.abs(v.numpy() - start).sum(axis=1)
    assert moved[1] > 0 and np.all(moved[[0, 2, 3, 4]] == 0)


def test_densify_sums_repeated_rows_like_tf() -> None:
    """``densify`` (a sparse x dense product) gives tf.convert_to_tensor's dense sum of an
    IndexedSlices: repeated rows added, untouched rows 0, values of rank 2 and 3, no rows."""
    from easyrec.models.tf.sparse_adam import densify

    rng = np.random.default_rng(7)
    for shape in [(9, 4), (6, 2, 3), (0, 4)]:
        values = tf.constant(rng.standard_normal(shape).astype(np.float32))
        rows = tf.constant(rng.integers(0, 5, shape[0]), tf.int64)
        slices = tf.IndexedSlices(values, rows, tf.constant([7, *shape[1:]], tf.int64))  # rows 5, 6 untouched
        want = tf.convert_to_tensor(slices).numpy()
        got = tf.function(lambda v, r: densify(tf.IndexedSlices(v, r), 7))(values, rows).numpy()
        assert got.shape == (7, *shape[1:])
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        if shape[0]:
            assert len(set(rows.numpy())) < shape[0] and (got == 0).all(axis=tuple(range(1, got.ndim))).any()
