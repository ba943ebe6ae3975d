"""sequence features: truncation to max_len (newest first), padding, lengths and sharing."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from easyrec.features.pipeline import FeaturePipeline
from lingjie.errors import ConfigError


def test_truncation_padding_lengths_own_vocab():
    t = pa.table({"hist": ["a|b|c|d", "b", None, "", "c|b"]})
    p = FeaturePipeline({"hist": {"type": "sequence", "max_len": 3}}).fit([t])
    assert p.mappings["hist"].vocabulary == ["b", "c", "a", "d"]
    seq = p.transform(t, with_labels=False).sequence["hist"]
    assert seq.values.dtype == np.int64 and seq.values.shape == (5, 3)
    assert seq.values.tolist() == [[3, 1, 2], [1, 0, 0], [0, 0, 0], [0, 0, 0], [2, 1, 0]]
    assert seq.lengths.tolist() == [3, 1, 0, 0, 2]
    info = p.feature_infos()["hist"]
    assert (info.kind, info.max_len, info.num_embeddings) == ("sequence", 3, 5)


def test_share_uses_item_vocab_table_and_dim():
    t = pa.table({
        "item_id": pa.array([10, 20, 20], pa.int64()),
        "hist_item_id": pa.array([[20, 30, 10], [], None], pa.list_(pa.int64())),
    })
    p = FeaturePipeline({
        "item_id": {"type": "id", "embedding_dim": 8},
        "hist_item_id": {"type": "sequence", "share": "item_id", "max_len": 2},
    }).fit([t])
    # one vocabulary over both columns: 20 x3, 10 x2, 30 x1
    assert p.mappings["item_id"].vocabulary == ["20", "10", "30"]
    out = p.transform(t, with_labels=False)
    assert out.sparse["item_id"].values.tolist() == [2, 1, 1]
    assert out.sequence["hist_item_id"].values.tolist() == [[1, 3], [0, 0], [0, 0]]
    assert out.sequence["hist_item_id"].lengths.tolist() == [2, 0, 0]
    infos = p.feature_infos()
    item, hist = infos["item_id"], infos["hist_item_id"]
    assert hist.embedding_name == item.embedding_name == "item_id"
    assert hist.dim == item.dim == 8
    assert hist.num_embeddings == item.num_embeddings == 4


def test_share_with_hash_and_custom_embedding_name():
    t = pa.table({"item": ["item_42"], "hist": [["item_42", "other"]]})
    p = FeaturePipeline({
        "item": {"type": "id", "hash_buckets": 1000, "embedding_name": "items"},
        "hist": {"type": "sequence", "share": "item"},
    }).fit([t])
    seq = p.transform(t, with_labels=False).sequence["hist"]
    assert seq.values[0, 0] == 3438392347204156075 % 1000
    assert seq.values.shape == (1, 50)
    assert p.feature_infos()["hist"].embedding_name == "items"


def test_share_target_must_be_an_id_feature():
    with pytest.raises(ConfigError) as e:
        FeaturePipeline({"item_id": {"type": "id"},
                         "hist": {"type": "sequence", "share": "item_di"}})
    assert e.value.path == "features.hist.share"
    assert e.value.suggestions == ["item_id"]
    with pytest.raises(ConfigError, match="is a raw feature"):
        FeaturePipeline({"price": {"type": "raw"}, "hist": {"type": "sequence", "share": "price"}})


def test_long_batch_vectorised_truncation():
    n = 10000
    rng = np.random.default_rng(0)
    lens = rng.integers(0, 80, n)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
    vals = pa.array(rng.integers(0, 500, offsets[-1]), pa.int64())
    t = pa.table({"h": pa.ListArray.from_arrays(pa.array(offsets), vals)})
    p = FeaturePipeline({"h": {"type": "sequence", "num_buckets": 500}}).fit([t])
    seq = p.transform(t, with_labels=False).sequence["h"]
    assert seq.lengths.tolist() == np.minimum(lens, 50).tolist()
    row = 7
    assert seq.values[row, : min(lens[row], 50)].tolist() == \
        vals.to_numpy()[offsets[row]: offsets[row] + min(lens[row], 50)].tolist()
    assert (seq.values[row, min(lens[row], 50):] == 0).all()
