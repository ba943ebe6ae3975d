"""raw features: normalisers, null filling, boundaries and fitted quantile buckets."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from easyrec.features.pipeline import FeaturePipeline
from lingjie.errors import DataError

X = [1.0, 2.0, None, 4.0, 5.0]  # mean 3, population std sqrt(2.5), min 1, max 5


def run(cfg, train=X, test=None):
    t = pa.table({"x": pa.array(train, pa.float64())})
    p = FeaturePipeline({"x": {"type": "raw", **cfg}}).fit(t.to_batches(max_chunksize=2))
    test_t = t if test is None else pa.table({"x": pa.array(test, pa.float64())})
    return p, p.transform(test_t, with_labels=False)


def test_none_fills_null_with_mean_and_is_dense_float32():
    p, out = run({})
    d = out.dense["x"]
    assert d.dtype == np.float32 and d.shape == (5, 1)
    assert d[:, 0].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    info = p.feature_infos()["x"]
    assert (info.kind, info.dim) == ("dense", 1)


def test_zscore():
    _, out = run({"normalizer": "zscore"})
    expect = (np.array([1, 2, 3, 4, 5.0]) - 3) / np.sqrt(2.5)
    np.testing.assert_allclose(out.dense["x"][:, 0], expect, rtol=1e-6)


def test_minmax_and_explicit_fill():
    _, out = run({"normalizer": "minmax", "fill_null": 0.0}, test=[1.0, 5.0, 3.0, None, 9.0])
    np.testing.assert_allclose(out.dense["x"][:, 0], [0, 1, 0.5, -0.25, 2.0])


def test_log1p_sign_preserving():
    _, out = run({"normalizer": "log1p"}, test=[0.0, np.e - 1, -(np.e - 1)])
    np.testing.assert_allclose(out.dense["x"][:, 0], [0, 1, -1], rtol=1e-6)


def test_constant_column_does_not_divide_by_zero():
    _, out = run({"normalizer": "zscore"}, train=[2.0, 2.0], test=[2.0, 3.0])
    assert out.dense["x"][:, 0].tolist() == [0.0, 0.0]


def test_integer_and_string_numeric_columns():
    p = FeaturePipeline({"x": {"type": "raw"}}).fit([pa.table({"x": pa.array([1, 3], pa.int32())})])
    out = p.transform(pa.table({"x": ["2.5", None]}), with_labels=False)
    assert out.dense["x"][:, 0].tolist() == [2.5, 2.0]
    with pytest.raises(DataError, match="'x'"):
        p.transform(pa.table({"x": ["abc"]}), with_labels=False)


def test_boundaries_bucketise_with_embedding():
    p, out = run({"boundaries": [2.0, 4.0], "embedding_dim": 8},
                 test=[1.0, 2.0, 3.9, 4.0, 100.0, None])
    sv = out.sparse["x"]
    assert sv.values.tolist() == [0, 1, 1, 2, 2, 1]  # null -> mean 3 -> bucket 1
    assert sv.offsets.tolist() == list(range(7))
    info = p.feature_infos()["x"]
    assert (info.kind, info.num_embeddings, info.dim) == ("sparse", 3, 8)
    assert "x" not in out.dense


def test_quantile_buckets_fitted_from_stream():
    train = list(np.arange(1000, dtype=float))
    p, out = run({"num_quantiles": 4}, train=train, test=[0.0, 300.0, 600.0, 999.0])
    b = p.features["x"].boundaries
    np.testing.assert_allclose(b, [249.75, 499.5, 749.25])
    assert out.sparse["x"].values.tolist() == [0, 1, 2, 3]
    assert p.feature_infos()["x"].num_embeddings == 4


def test_quantile_sample_is_bounded_and_deduplicated(monkeypatch):
    import easyrec.features.raw_feature as rf

    monkeypatch.setattr(rf, "SAMPLE_SIZE", 500)
    rng = np.random.default_rng(1)
    train = rng.uniform(0, 1, 20000)
    p, _ = run({"num_quantiles": 4}, train=list(train))
    np.testing.assert_allclose(p.features["x"].boundaries, [0.25, 0.5, 0.75], atol=0.06)
    p, _ = run({"num_quantiles": 10}, train=[1.0] * 50 + [2.0] * 50)
    assert p.features["x"].boundaries == [1.0, 1.5, 2.0]  # repeated edges collapse


def test_all_null_column_fits_neutrally():
    _, out = run({"normalizer": "zscore"}, train=[None, None], test=[None, 1.0])
    assert out.dense["x"][:, 0].tolist() == [0.0, 1.0]
