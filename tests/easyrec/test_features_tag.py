"""tag features: splitting, list columns, weights and mean pooling as normalised weights."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from easyrec.features.pipeline import FeaturePipeline
from lingjie.errors import DataError


def fit_transform(cfg, train, test=None):
    t = pa.table({"tags": train})
    p = FeaturePipeline({"tags": {"type": "tag", **cfg}}).fit(t.to_batches(max_chunksize=2))
    return p, p.transform(t if test is None else pa.table({"tags": test}), with_labels=False)


def test_string_column_mean_pooling():
    p, out = fit_transform({}, ["a|b", "b", None, "", "c | a||"])
    assert p.mappings["tags"].vocabulary == ["a", "b", "c"]  # a:2, b:2, c:1
    sv = out.sparse["tags"]
    assert sv.values.tolist() == [1, 2, 2, 3, 1]
    assert sv.offsets.tolist() == [0, 2, 3, 3, 3, 5]
    assert sv.weights.dtype == np.float32
    np.testing.assert_allclose(sv.weights, [0.5, 0.5, 1.0, 0.5, 0.5])
    info = p.feature_infos()["tags"]
    assert info.weighted and info.pooling == "sum" and info.kind == "sparse"
    assert info.num_embeddings == 4


def test_sum_pooling_without_weights():
    p, out = fit_transform({"pooling": "sum"}, ["a|b", "b"])
    assert out.sparse["tags"].weights is None
    assert not p.feature_infos()["tags"].weighted


def test_list_column_and_oov():
    train = pa.array([[1, 2], [2], None, [], [3, None]], pa.list_(pa.int64()))
    p, out = fit_transform({"pooling": "sum"}, train,
                           test=pa.array([[2, 99], None, [1]], pa.list_(pa.int64())))
    sv = out.sparse["tags"]
    assert sv.values.tolist() == [1, 0, 2]  # 2 most frequent; 99 unseen -> OOV 0
    assert sv.offsets.tolist() == [0, 2, 2, 3]


def test_sliced_list_batch():
    arr = pa.array([["x"], ["a", "b"], ["c"]], pa.list_(pa.string()))
    t = pa.table({"tags": arr})
    p = FeaturePipeline({"tags": {"type": "tag", "hash_buckets": 10}}).fit([t])
    out = p.transform(t.slice(1, 2), with_labels=False)
    assert out.sparse["tags"].offsets.tolist() == [0, 2, 3]
    assert out.size == 2


def test_weights_sum_and_mean():
    data = ["a:0.5|b:1.5", "c", "x:y:2", None]
    p, out = fit_transform({"weight_separator": ":", "pooling": "sum"}, data)
    sv = out.sparse["tags"]
    voc = p.mappings["tags"].vocabulary
    assert sorted(voc) == ["a", "b", "c", "x:y"]  # the weight follows the last separator
    np.testing.assert_allclose(sv.weights, [0.5, 1.5, 1.0, 2.0])
    assert sv.offsets.tolist() == [0, 2, 3, 4, 4]
    assert p.feature_infos()["tags"].weighted
    _, out = fit_transform({"weight_separator": ":"}, data)
    np.testing.assert_allclose(out.sparse["tags"].weights, [0.25, 0.75, 1.0, 1.0])


def test_zero_weight_row_does_not_divide_by_zero():
    _, out = fit_transform({"weight_separator": ":"}, ["a:0|b:0", "a:2"])
    np.testing.assert_allclose(out.sparse["tags"].weights, [0.0, 0.0, 1.0])


def test_bad_weight_is_a_data_error():
    with pytest.raises(DataError, match="not a number"):
        fit_transform({"weight_separator": ":"}, ["a:zz"])


def test_hash_and_identity_tags():
    _, out = fit_transform({"hash_buckets": 1000, "pooling": "sum"}, ["item_42|item_42"])
    assert out.sparse["tags"].values.tolist() == [3438392347204156075 % 1000] * 2
    p, out = fit_transform({"num_buckets": 3, "separator": ","}, ["0,2,7", "1"])
    assert out.sparse["tags"].values.tolist() == [0, 2, 3, 1]
    assert p.feature_infos()["tags"].num_embeddings == 4


def test_scalar_non_string_column_rejected():
    with pytest.raises(DataError, match="list column"):
        fit_transform({}, pa.array([1, 2]))


def test_large_types_and_record_batch_reader():
    large = pa.array([["a", "b"], ["b"]], pa.large_list(pa.large_string()))
    p, out = fit_transform({"pooling": "sum"}, large)
    assert out.sparse["tags"].values.tolist() == [2, 1, 1]
    t = pa.table({"tags": pa.array(["a|b", "b"], pa.large_string())})
    reader = pa.RecordBatchReader.from_batches(t.schema, t.to_batches())
    p = FeaturePipeline({"tags": {"type": "tag"}}).fit(reader)
    assert p.transform(t, with_labels=False).sparse["tags"].values.tolist() == [2, 1, 1]
