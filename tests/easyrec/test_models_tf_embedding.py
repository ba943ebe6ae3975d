"""The tf fused embedding collection: one gather and one segment sum per width, identical
results to per-feature lookups (shared tables, weights, mean pooling, empty bags), the
block layout groups read, sequences, and the wide variant."""
from __future__ import annotations

import numpy as np
import pytest

from easyrec.features.info import FeatureInfo
from easyrec.models.tf.embedding import (EmbeddingCollection, WideLinear, block_key,
                                         pool_sequence)
from easyrec.models.tf.example_inputs import random_inputs
from easyrec.models.tf.group import FeatureGroup
from lingjie.errors import ConfigError
from tests.easyrec.zoo_tf_helpers import tf

FEATURES = {
    "a": FeatureInfo("a", "sparse", 8, num_embeddings=11),
    "b": FeatureInfo("b", "sparse", 8, num_embeddings=7, weighted=True),
    "c": FeatureInfo("c", "sparse", 8, num_embeddings=11, embedding_name="shared"),
    "d": FeatureInfo("d", "sparse", 8, num_embeddings=11, embedding_name="shared",
                     pooling="mean"),
    "e": FeatureInfo("e", "sparse", 4, num_embeddings=5),
    "f": FeatureInfo("f", "sparse", 4, num_embeddings=9, weighted=True, pooling="mean"),
    "s": FeatureInfo("s", "sequence", 8, num_embeddings=11, embedding_name="shared", max_len=4),
    "x": FeatureInfo("x", "dense", 2),
}
EMBEDDED = ["a", "b", "c", "d", "e", "f", "s"]


def _inputs(batch: int, seed: int) -> dict:
    return {k: tf.constant(v) for k, v in random_inputs(FEATURES, batch, seed=seed).items()}


def _reference(coll: EmbeddingCollection, name: str, inputs: dict) -> np.ndarray:
    """Plain per-feature numpy lookup into the feature's own slice of the fused table."""
    info = FEATURES[name]
    fused = next(m for m in coll.fused if m.dim == coll.width_of[name])
    base = fused.table_bases[info.embedding_name or name]
    table = fused.weight.numpy()[base:base + info.num_embeddings]
    if info.kind == "sequence":
        return table[inputs[name + ".values"].numpy()]
    values, offsets = inputs[name + ".values"].numpy(), inputs[name + ".offsets"].numpy()
    weights = inputs[name + ".weights"].numpy() if info.weighted else np.ones(len(values))
    out = np.zeros((len(offsets) - 1, info.dim), np.float32)
    for row in range(len(offsets) - 1):
        lo, hi = offsets[row], offsets[row + 1]
        out[row] = (table[values[lo:hi]] * weights[lo:hi, None]).sum(0)
        if info.pooling == "mean" and hi > lo:
            out[row] /= hi - lo
    return out


def _ops(fn, *args) -> list:
    graph = tf.function(fn).get_concrete_function(*args).graph
    return [op.type for op in graph.get_operations()]


def test_one_gather_and_one_segment_sum_per_width() -> None:
    coll = EmbeddingCollection(FEATURES, [n for n in EMBEDDED if n != "s"])
    assert sorted(m.dim for m in coll.fused) == [4, 8]
    inputs = _inputs(5, seed=0)
    ops = _ops(lambda x: coll(x), inputs)
    assert ops.count("ResourceGather") == 2  # one per width, whatever the feature count
    assert ops.count("SegmentSum") == 2


@pytest.mark.parametrize("in_function", [False, True])
def test_fused_lookup_equals_per_feature_lookups(in_function: bool) -> None:
    tf.keras.utils.set_random_seed(0)
    coll = EmbeddingCollection(FEATURES, EMBEDDED)
    inputs = _inputs(9, seed=4)
    # empty bags inside and at the end of the batch (mean pooling keeps them at 0)
    inputs["d.offsets"] = tf.constant([0, 2, 2, 3, 5, 5, 6, 7, 7, 7], tf.int64)
    inputs["d.values"] = tf.constant([1, 4, 0, 2, 3, 9, 10], tf.int64)
    inputs["e.values"] = tf.zeros([0], tf.int64)  # a feature with no ids at all
    inputs["e.offsets"] = tf.zeros([10], tf.int64)
    out = tf.function(coll)(inputs) if in_function else coll(inputs)
    assert set(out) == set(EMBEDDED) | {block_key(4), block_key(8)}
    for name in EMBEDDED:
        want = _reference(coll, name, inputs)
        np.testing.assert_allclose(out[name], want, rtol=1e-5, atol=1e-6, err_msg=name)
        shape = (9, FEATURES[name].dim) if name != "s" else (9, 4, 8)
        assert tuple(out[name].shape) == shape
    assert float(tf.reduce_sum(tf.abs(out["e"]))) == 0.0
    # the block holds the width's sparse features side by side
    np.testing.assert_array_equal(out[block_key(8)][:, 2], out["c"])


def test_shared_table_is_stored_once_and_trained_by_every_user() -> None:
    coll = EmbeddingCollection(FEATURES, ["a", "c", "d", "s"])
    (fused,) = coll.fused
    assert fused.table_bases == {"a": 0, "shared": 11}
    assert tuple(fused.weight.shape) == (22, 8)
    inputs = _inputs(4, seed=1)
    inputs.update({"c.values": tf.constant([3], tf.int64),
                   "c.offsets": tf.constant([0, 1, 1, 1, 1], tf.int64),
                   "d.values": tf.constant([3], tf.int64),
                   "d.offsets": tf.constant([0, 1, 1, 1, 1], tf.int64)})
    with tf.GradientTape() as tape:
        out = coll(inputs)
        loss = tf.reduce_sum(out["d"])
    np.testing.assert_array_equal(out["c"][0], out["d"][0])
    np.testing.assert_array_equal(out["c"][0], fused.weight.numpy()[11 + 3])
    grad = tf.convert_to_tensor(tape.gradient(loss, fused.weight)).numpy()
    assert np.abs(grad[11 + 3]).sum() > 0
    assert np.abs(grad[3]).sum() == 0  # table "a" row 3 untouched


def test_sequence_reads_the_table_it_shares() -> None:
    coll = EmbeddingCollection(FEATURES, ["c", "s"])
    inputs = _inputs(3, seed=2)
    weight = coll.fused[0].weight.numpy()
    np.testing.assert_array_equal(coll(inputs)["s"], weight[inputs["s.values"].numpy()])


def test_tables_with_one_name_but_different_shapes_are_rejected() -> None:
    bad = dict(FEATURES, d=FeatureInfo("d", "sparse", 8, num_embeddings=12,
                                       embedding_name="shared"))
    with pytest.raises(ConfigError, match="features.d.embedding_name"):
        EmbeddingCollection(bad, ["c", "d"])


def test_dense_features_cannot_be_embedded() -> None:
    with pytest.raises(ValueError, match="dense"):
        EmbeddingCollection(FEATURES, ["x"])


def test_init_is_normal_with_std_one_over_sqrt_dim() -> None:
    tf.keras.utils.set_random_seed(1)
    big = {"z": FeatureInfo("z", "sparse", 16, num_embeddings=20000)}
    table = EmbeddingCollection(big, ["z"]).fused[0].weight.numpy()
    assert abs(table.std() - 0.25) < 0.01 and abs(table.mean()) < 0.01


def test_pool_sequence_ignores_padding() -> None:
    emb = tf.reshape(tf.range(24, dtype=tf.float32), [2, 3, 4])
    lengths = tf.constant([2, 0], tf.int64)
    np.testing.assert_allclose(pool_sequence(emb, lengths, mean=False)[0],
                               emb[0, :2].numpy().sum(0))
    np.testing.assert_allclose(pool_sequence(emb, lengths, mean=True)[0],
                               emb[0, :2].numpy().mean(0))
    assert float(tf.reduce_sum(tf.abs(pool_sequence(emb, lengths, mean=True)[1]))) == 0


def test_bound_group_reads_blocks_and_equals_the_unbound_group() -> None:
    names = ["x", "a", "b", "c", "e", "s", "d", "f"]
    coll = EmbeddingCollection(FEATURES, [n for n in names if n != "x"])
    bound = FeatureGroup(FEATURES, names).bind(coll.layout)
    plain = FeatureGroup(FEATURES, names)
    inputs = _inputs(6, seed=5)
    embs = coll(inputs)
    np.testing.assert_array_equal(bound(inputs, embs), plain(inputs, embs))
    assert bound(inputs, embs).shape == (6, bound.output_dim)
    # runs of neighbours in one block: [a b c] [e] s [d] [f]
    kinds = [p[0] for p in bound._pieces]
    assert kinds == ["feature", "block", "block", "feature", "block", "block"]
    fm_names = ["a", "b", "c", "d"]
    fm_group = FeatureGroup(FEATURES, ["x"] + fm_names).bind(coll.layout)
    np.testing.assert_array_equal(fm_group.field_block(inputs, embs),
                                  tf.stack([embs[n] for n in fm_names], axis=1))
    assert fm_group._fields is not None  # one block: no stack needed


def test_wide_linear_is_bias_plus_per_id_weights_plus_dense() -> None:
    names = ["a", "b", "e", "d", "s", "x"]
    wide = WideLinear(FEATURES, names, out_dim=2)
    (bag,) = wide.emb.fused
    assert bag.dim == 2  # every table has width out_dim
    inputs = _inputs(6, seed=3)
    # tables and bias start at zero (a new LR predicts 0.5 whatever ids it sees)
    np.testing.assert_allclose(wide(inputs), wide.dense(inputs["x"]), atol=1e-6)
    bag.weight.assign(tf.random.normal(bag.weight.shape))
    wide.bias.assign([0.5, -0.5])
    embs = wide.emb(inputs)
    want = (embs["a"] + embs["b"] + embs["e"] + embs["d"]
            + pool_sequence(embs["s"], inputs["s.lengths"], mean=False)
            + wide.dense(inputs["x"]) + tf.constant([0.5, -0.5]))
    np.testing.assert_allclose(wide(inputs), want, rtol=1e-5, atol=1e-5)
