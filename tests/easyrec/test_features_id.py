"""id features: vocabulary, hashing and identity mappings."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from easyrec.features.pipeline import FeaturePipeline
from lingjie.errors import DataError


def fit(features, *batches, **kw):
    return FeaturePipeline(features, **kw).fit(list(batches))


def sparse(pipe, table, name):
    return pipe.transform(table, with_labels=False).sparse[name]


def test_vocab_order_by_frequency_then_value_and_oov():
    t = pa.table({"city": ["b", "a", "c", "a", "b", None, "d"]})
    p = fit({"city": {"type": "id"}}, t)
    # a:2, b:2 (tie -> by value), c:1, d:1; row 0 = OOV/null
    assert p.mappings["city"].vocabulary == ["a", "b", "c", "d"]
    sv = sparse(p, pa.table({"city": ["a", "b", "zzz", None, "d"]}), "city")
    assert sv.values.tolist() == [1, 2, 0, 0, 4]
    assert sv.values.dtype == np.int64
    assert sv.offsets.tolist() == [0, 1, 2, 3, 4, 5]
    assert sv.weights is None
    info = p.feature_infos()["city"]
    assert (info.kind, info.num_embeddings, info.dim) == ("sparse", 5, 16)
    assert info.embedding_name == "city"


def test_vocab_min_count_and_max_size_streamed_over_batches():
    b1 = pa.record_batch({"u": pa.array([1, 1, 2, 3], pa.int64())})
    b2 = pa.record_batch({"u": pa.array([2, 1, 4, 4], pa.int64())})
    p = fit({"u": {"type": "id", "vocab": {"min_count": 2}}}, b1, b2)
    assert p.mappings["u"].vocabulary == ["1", "2", "4"]  # 3 seen once: dropped
    assert sparse(p, pa.table({"u": [4, 3, 1]}), "u").values.tolist() == [3, 0, 1]
    p = fit({"u": {"type": "id", "vocab": {"max_size": 2}}}, b1, b2)
    assert p.mappings["u"].vocabulary == ["1", "2"]
    assert p.feature_infos()["u"].num_embeddings == 3


def test_int_column_at_fit_matches_string_column_at_predict():
    p = fit({"u": {"type": "id"}}, pa.table({"u": pa.array([7, 8, 8], pa.int32())}))
    assert sparse(p, pa.table({"u": ["8", "7", "9"]}), "u").values.tolist() == [1, 2, 0]
    assert sparse(p, pa.table({"u": [8.0, None, float("nan")]}), "u").values.tolist() == [1, 0, 0]
    dict_col = pa.table({"u": pa.array(["7", "8"]).dictionary_encode()})
    assert sparse(p, dict_col, "u").values.tolist() == [2, 1]


def test_hash_buckets():
    p = fit({"item": {"type": "id", "hash_buckets": 1000}}, pa.table({"item": ["x"]}))
    sv = sparse(p, pa.table({"item": ["item_42", None, "item_42"]}), "item")
    assert sv.values.tolist() == [3438392347204156075 % 1000, 0, 3438392347204156075 % 1000]
    assert p.feature_infos()["item"].num_embeddings == 1000


def test_identity_buckets():
    p = fit({"age": {"type": "id", "num_buckets": 5}}, pa.table({"age": [0]}))
    t = pa.table({"age": pa.array([0, 4, 5, -1, None, 2], pa.int64())})
    assert sparse(p, t, "age").values.tolist() == [0, 4, 5, 5, 5, 2]
    t = pa.table({"age": ["3", " 1 ", "x", None, "9", "-1"]})
    assert sparse(p, t, "age").values.tolist() == [3, 1, 5, 5, 5, 5]
    t = pa.table({"age": [1.0, 1.5, float("nan"), 4.0]})
    assert sparse(p, t, "age").values.tolist() == [1, 5, 5, 4]
    assert p.feature_infos()["age"].num_embeddings == 6


def test_shared_embedding_name_shares_vocab():
    t = pa.table({"a": ["x", "y", "y"], "b": ["z", "y", None]})
    p = fit({"a": {"type": "id", "embedding_name": "shared"},
             "b": {"type": "id", "embedding_name": "shared"}}, t)
    assert p.mappings["shared"].vocabulary == ["y", "x", "z"]
    out = p.transform(t, with_labels=False)
    assert out.sparse["a"].values.tolist() == [2, 1, 1]
    assert out.sparse["b"].values.tolist() == [3, 1, 0]
    infos = p.feature_infos()
    assert infos["a"].embedding_name == infos["b"].embedding_name == "shared"
    assert infos["a"].num_embeddings == infos["b"].num_embeddings == 4


def test_list_column_is_rejected_for_id():
    with pytest.raises(DataError, match="type: tag"):
        fit({"u": {"type": "id"}}, pa.table({"u": [[1, 2]]}))


@pytest.mark.parametrize("values", [
    pa.array(["a", "b", None, "zz", "c", "a", ""]),
    pa.array([3, 1, None, 7, 3], type=pa.int64()),
    pa.array([1.0, float("nan"), 2.0, None, 5.0]),
    pa.array(["b", "a", "q"]).dictionary_encode(),
])
def test_vocab_lookup_paths_agree(values: pa.Array, monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrow's index_in (small vocabularies) and the pandas index (large ones) map alike."""
    from easyrec.features import id_mapping

    m = id_mapping.VocabMapping()
    m.update(pa.array(["a", "b", "c", "1", "3", "5", "2"] + [f"x{i}" for i in range(100)]))
    m.finish()
    direct = m.lookup(values)
    monkeypatch.setattr(id_mapping, "DIRECT_LOOKUP_VOCAB", 0)  # vocabulary (107) > 2 x rows: pandas path
    indexed = m.lookup(values)
    assert direct.dtype == indexed.dtype == np.int64
    assert direct.tolist() == indexed.tolist()
    assert 0 in direct.tolist()  # null / unknown -> OOV row 0
