"""The fused embedding collection: one EmbeddingBag call per width, identical results to
per-feature lookups, shared tables, mean pooling, weights, sequences and the wide variant."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from easyrec.features.info import FeatureInfo
from easyrec.models.torch.embedding import EmbeddingCollection, WideLinear, pool_sequence
from easyrec.models.torch.example_inputs import random_inputs
from lingjie.errors import ConfigError

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


def _reference(coll: EmbeddingCollection, name: str, inputs: dict) -> torch.Tensor:
    """Plain per-feature lookup into the feature's own slice of the fused weight."""
    info = FEATURES[name]
    fused = next(m for m in coll.fused if m.dim == coll.width_of[name])
    base = fused.table_bases[info.embedding_name or name]
    table = fused.bag.weight[base:base + info.num_embeddings]
    if info.kind == "sequence":
        return F.embedding(inputs[name + ".values"], table)
    offsets = inputs[name + ".offsets"]
    pooled = F.embedding_bag(inputs[name + ".values"], table, offsets, mode="sum",
                             per_sample_weights=inputs.get(name + ".weights"),
                             include_last_offset=True)
    if info.pooling == "mean":
        pooled = pooled / (offsets[1:] - offsets[:-1]).clamp(min=1).unsqueeze(1)
    return pooled


def test_one_embedding_bag_call_per_width() -> None:
    coll = EmbeddingCollection(FEATURES, EMBEDDED)
    bags = [m for m in coll.modules() if isinstance(m, torch.nn.EmbeddingBag)]
    assert sorted(b.embedding_dim for b in bags) == [4, 8]
    calls: list[int] = []
    for b in bags:
        b.register_forward_hook(lambda mod, args, out: calls.append(mod.embedding_dim))
    coll(random_inputs(FEATURES, 5))
    assert sorted(calls) == [4, 8]


def test_fused_lookup_equals_per_feature_lookups() -> None:
    torch.manual_seed(0)
    coll = EmbeddingCollection(FEATURES, EMBEDDED)
    inputs = random_inputs(FEATURES, 9, seed=4)
    inputs["d.offsets"][3] = inputs["d.offsets"][2]  # an empty bag, for the mean's guard
    out = coll(inputs)
    assert set(out) == set(EMBEDDED)
    for name in EMBEDDED:
        want = _reference(coll, name, inputs)
        torch.testing.assert_close(out[name], want)
        shape = (9, FEATURES[name].dim) if name != "s" else (9, 4, 8)
        assert out[name].shape == shape


def test_shared_table_is_stored_once_and_trained_by_every_user() -> None:
    coll = EmbeddingCollection(FEATURES, ["a", "c", "d", "s"])
    (fused,) = coll.fused
    assert fused.table_bases == {"a": 0, "shared": 11}
    assert fused.bag.weight.shape == (22, 8)
    inputs = random_inputs(FEATURES, 4, seed=1)
    only_c = {"c.values": torch.tensor([3]), "c.offsets": torch.tensor([0, 1, 1, 1, 1]),
              "d.values": torch.tensor([3]), "d.offsets": torch.tensor([0, 1, 1, 1, 1])}
    inputs.update(only_c)
    out = coll(inputs)
    torch.testing.assert_close(out["c"][0], out["d"][0])
    torch.testing.assert_close(out["c"][0], fused.bag.weight[11 + 3])
    out["d"].sum().backward()
    assert fused.bag.weight.grad[11 + 3].abs().sum() > 0
    assert fused.bag.weight.grad[3].abs().sum() == 0  # table "a" row 3 untouched


def test_sequence_reads_the_table_it_shares() -> None:
    coll = EmbeddingCollection(FEATURES, ["c", "s"])
    inputs = random_inputs(FEATURES, 3, seed=2)
    out = coll(inputs)
    weight = coll.fused[0].bag.weight
    ids = inputs["s.values"]
    torch.testing.assert_close(out["s"], weight[ids])


def test_tables_with_one_name_but_different_shapes_are_rejected() -> None:
    bad = dict(FEATURES, d=FeatureInfo("d", "sparse", 8, num_embeddings=12,
                                       embedding_name="shared"))
    with pytest.raises(ConfigError, match="features.d.embedding_name"):
        EmbeddingCollection(bad, ["c", "d"])


def test_dense_features_cannot_be_embedded() -> None:
    with pytest.raises(ValueError, match="dense"):
        EmbeddingCollection(FEATURES, ["x"])


def test_pool_sequence_ignores_padding() -> None:
    emb = torch.arange(24, dtype=torch.float32).view(2, 3, 4)
    lengths = torch.tensor([2, 0])
    torch.testing.assert_close(pool_sequence(emb, lengths, mean=False)[0], emb[0, :2].sum(0))
    torch.testing.assert_close(pool_sequence(emb, lengths, mean=True)[0], emb[0, :2].mean(0))
    assert pool_sequence(emb, lengths, mean=True)[1].abs().sum() == 0


def test_wide_linear_is_bias_plus_per_id_weights_plus_dense() -> None:
    names = ["a", "b", "e", "s", "x"]
    wide = WideLinear(FEATURES, names, out_dim=2)
    bags = [m for m in wide.modules() if isinstance(m, torch.nn.EmbeddingBag)]
    assert len(bags) == 1 and bags[0].embedding_dim == 2  # every table has width out_dim
    inputs = random_inputs(FEATURES, 6, seed=3)
    # tables and bias start at zero (a new LR predicts 0.5 whatever ids it sees)
    torch.testing.assert_close(wide(inputs), wide.dense[0](inputs["x"]))
    with torch.no_grad():
        bags[0].weight.normal_()
        wide.bias.fill_(0.5)
    embs = wide.emb(inputs)
    want = (embs["a"] + embs["b"] + embs["e"]
            + pool_sequence(embs["s"], inputs["s.lengths"], mean=False)
            + wide.dense[0](inputs["x"]) + 0.5)
    torch.testing.assert_close(wide(inputs), want)
