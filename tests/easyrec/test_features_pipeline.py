"""The pipeline as a whole: state round trip, shared-table rules, errors and speed."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pyarrow as pa
import pytest

from easyrec.features.batch import Batch
from easyrec.features.config import IdFeatureConfig, RawFeatureConfig, VocabConfig
from easyrec.features.pipeline import FeaturePipeline
from lingjie.errors import ConfigError, DataError

FEATURES = {
    "user_id": {"type": "id", "embedding_dim": 8},
    "item_id": {"type": "id", "vocab": {"min_count": 1, "max_size": 50}, "embedding_dim": 8},
    "city": {"type": "id", "hash_buckets": 64},
    "age": {"type": "id", "num_buckets": 100},
    "price": {"type": "raw", "normalizer": "zscore"},
    "price_bucket": {"type": "raw", "column": "price", "num_quantiles": 5},
    "genres": {"type": "tag", "weight_separator": ":"},
    "hist": {"type": "sequence", "share": "item_id", "max_len": 4},
    "user_city": {"type": "combo", "columns": ["user_id", "city"], "hash_buckets": 1000},
}


def make_table(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    items = rng.zipf(1.5, n) % 200
    price = rng.lognormal(3, 1, n)
    price[::17] = np.nan
    genres = np.array(["drama:1|comedy:0.5", "action", "", "comedy|horror:2"], dtype=object)
    lens = rng.integers(0, 8, n)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
    hist = pa.ListArray.from_arrays(pa.array(offsets), pa.array(rng.zipf(1.5, offsets[-1]) % 200))
    return pa.table({
        "user_id": pa.array(rng.integers(0, 1000, n)),
        "item_id": pa.array(items),
        "city": pa.array(rng.choice(["bj", "sh", "hz", None], n)),
        "age": pa.array(rng.integers(0, 120, n)),
        "price": pa.array(price, from_pandas=True),
        "genres": pa.array(genres[rng.integers(0, 4, n)]),
        "hist": hist,
        "click": pa.array(rng.integers(0, 2, n)),
    })


def fitted(n: int = 2000) -> tuple[FeaturePipeline, pa.Table]:
    t = make_table(n)
    p = FeaturePipeline(FEATURES, labels={"click": {}}, group_by="user_id")
    return p.fit(t.to_batches(max_chunksize=300)), t


def assert_batches_equal(a: Batch, b: Batch) -> None:
    fa, fb = a.to_flat(), b.to_flat()
    assert fa.keys() == fb.keys()
    for k in fa:
        assert fa[k].dtype == fb[k].dtype, k
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)
    assert a.labels.keys() == b.labels.keys()
    for k in a.labels:
        np.testing.assert_array_equal(a.labels[k], b.labels[k])
    np.testing.assert_array_equal(a.group_ids, b.group_ids)


def test_output_contract_shapes_and_ranges():
    p, t = fitted()
    out = p.transform(t)
    infos = p.feature_infos()
    n = t.num_rows
    assert out.size == n
    for name, info in infos.items():
        if info.kind == "dense":
            assert out.dense[name].shape == (n, info.dim) and out.dense[name].dtype == np.float32
        elif info.kind == "sparse":
            sv = out.sparse[name]
            assert sv.values.dtype == np.int64 and sv.offsets.dtype == np.int64
            assert sv.offsets.shape == (n + 1,) and sv.offsets[0] == 0
            assert sv.offsets[-1] == len(sv.values)
            assert sv.values.min() >= 0 and sv.values.max() < info.num_embeddings
            assert (sv.weights is not None) == info.weighted
        else:
            seq = out.sequence[name]
            assert seq.values.shape == (n, info.max_len) and seq.values.dtype == np.int64
            assert seq.values.max() < info.num_embeddings and seq.lengths.dtype == np.int64
    assert out.labels["click"].shape == (n,) and out.group_ids.shape == (n,)
    assert infos["hist"].embedding_name == "item_id" and infos["hist"].num_embeddings == 51


def test_save_load_round_trip_identical(tmp_path):
    p, t = fitted()
    path = tmp_path / "sub" / "features.json"
    p.save(str(path))
    assert os.listdir(path.parent) == ["features.json"]  # no temp file left behind
    json.loads(path.read_text())
    q = FeaturePipeline.load(str(path))
    assert q == p and q.fitted
    assert q.feature_infos() == p.feature_infos()
    other = make_table(500, seed=1)
    assert_batches_equal(p.transform(other), q.transform(other))
    r = FeaturePipeline.from_state_dict(json.loads(json.dumps(p.state_dict())))
    assert_batches_equal(p.transform(other), r.transform(other))


def test_save_to_fsspec_url_and_overwrite():
    p, t = fitted(300)
    url = "memory://lingjie-tests/features.json"
    p.save(url)
    p.save(url)
    q = FeaturePipeline.load(url)
    assert_batches_equal(p.transform(t), q.transform(t))


def test_load_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        FeaturePipeline.load(str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    p, _ = fitted(100)
    state = p.state_dict()
    state["version"] = 99
    bad.write_text(json.dumps(state))
    with pytest.raises(DataError, match="version 99"):
        FeaturePipeline.load(str(bad))


def test_unfitted_state_round_trip_and_errors():
    p = FeaturePipeline({"u": IdFeatureConfig(vocab=VocabConfig(min_count=2))})
    q = FeaturePipeline.from_state_dict(p.state_dict())
    assert q == p and not q.fitted
    with pytest.raises(RuntimeError, match="not fitted"):
        q.transform(pa.table({"u": [1]}))
    with pytest.raises(RuntimeError, match="not fitted"):
        q.feature_infos()


def test_fit_on_empty_stream_is_data_error():
    p = FeaturePipeline({"u": {"type": "id"}})
    with pytest.raises(DataError, match="no rows"):
        p.fit([])
    with pytest.raises(DataError, match="no rows"):
        p.fit([pa.record_batch({"u": pa.array([], pa.int64())})])


def test_missing_column_names_column_and_available():
    p = FeaturePipeline({"user_id": {"type": "id"}, "age": {"type": "raw"}})
    with pytest.raises(DataError) as e:
        p.fit([pa.table({"user_id": [1], "agee": [3]})])
    assert "'age'" in str(e.value) and "available columns: user_id, agee" in str(e.value)
    p.fit([pa.table({"user_id": [1], "age": [3]})])
    with pytest.raises(DataError, match="'user_id'"):
        p.transform(pa.table({"age": [3]}), with_labels=False)


def test_accepts_record_batch_and_chunked_table():
    p, t = fitted(900)
    chunked = pa.concat_tables([t.slice(0, 400), t.slice(400)])
    assert chunked.column("hist").num_chunks == 2
    rb = t.combine_chunks().to_batches()[0]
    assert_batches_equal(p.transform(chunked), p.transform(rb))


def test_refit_gives_same_state():
    p, t = fitted(500)
    before = p.state_dict()
    p.fit(t.to_batches(max_chunksize=100))
    assert p.state_dict() == before


def test_shared_table_dim_conflict():
    with pytest.raises(ConfigError) as e:
        FeaturePipeline({"a": {"type": "id", "embedding_name": "t", "embedding_dim": 8},
                         "b": {"type": "id", "embedding_name": "t", "embedding_dim": 4}})
    assert e.value.path == "features.b.embedding_dim"


def test_shared_table_mapping_conflict():
    with pytest.raises(ConfigError) as e:
        FeaturePipeline({"a": {"type": "id", "embedding_name": "t", "hash_buckets": 10},
                         "b": {"type": "id", "embedding_name": "t"}})
    assert e.value.path == "features.b.embedding_name"


def test_shared_table_size_conflict_found_at_fit():
    p = FeaturePipeline({"a": {"type": "raw", "boundaries": [1.0], "embedding_name": "t"},
                         "b": {"type": "combo", "columns": ["a", "c"], "hash_buckets": 5,
                               "embedding_name": "t"}})
    with pytest.raises(ConfigError, match="share embedding table 't'"):
        p.fit([pa.table({"a": [1.0], "c": ["x"]})])


def test_bad_feature_names_and_empty_config():
    with pytest.raises(ConfigError):
        FeaturePipeline({})
    with pytest.raises(ConfigError, match="no '.'"):
        FeaturePipeline({"a.values": {"type": "id"}})


def test_dataclass_configs_accepted_and_checked():
    with pytest.raises(ConfigError) as e:
        FeaturePipeline({"p": RawFeatureConfig(boundaries=[2.0, 1.0])})
    assert e.value.path == "features.p.boundaries"


def test_transform_is_vectorised_fast():
    n = 200_000
    rng = np.random.default_rng(0)
    cols, feats = {}, {}
    for i in range(4):
        cols[f"id{i}"] = pa.array(rng.zipf(1.3, n) % 100_000)
        feats[f"id{i}"] = {"type": "id"}
    cols["s0"] = pa.array(np.char.add("v", (rng.zipf(1.3, n) % 5000).astype(str)))
    feats["s0"] = {"type": "id", "hash_buckets": 10_000}
    for i in range(2):
        cols[f"x{i}"] = pa.array(rng.normal(size=n))
        feats[f"x{i}"] = {"type": "raw", "normalizer": "zscore"}
    feats["xq"] = {"type": "raw", "column": "x0", "num_quantiles": 10}
    tag_vocab = np.array(["a", "b", "c", "d", "e", "f"], dtype=object)
    first = tag_vocab[rng.integers(0, 6, n)].astype(str)
    second = tag_vocab[rng.integers(0, 6, n)].astype(str)
    cols["tags"] = pa.array(np.char.add(np.char.add(first, "|"), second))
    feats["tags"] = {"type": "tag"}
    lens = rng.integers(0, 30, n)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
    cols["hist"] = pa.ListArray.from_arrays(pa.array(offsets),
                                            pa.array(rng.zipf(1.3, offsets[-1]) % 100_000))
    feats["hist"] = {"type": "sequence", "share": "id0", "max_len": 20}
    t = pa.table(cols)
    p = FeaturePipeline(feats)
    start = time.perf_counter()
    p.fit(t.to_batches(max_chunksize=50_000))
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    out = p.transform(t, with_labels=False)
    transform_s = time.perf_counter() - start
    assert out.size == n and len(p.features) == 10
    assert transform_s < 3.0, f"transform of {n} rows x 10 features took {transform_s:.2f}s"
    assert fit_s < 6.0, f"fit took {fit_s:.2f}s"


def test_empty_batch_transforms_to_empty_arrays():
    p, t = fitted(300)
    out = p.transform(t.slice(0, 0))
    assert out.size == 0
    flat = out.to_flat()
    assert flat["price"].shape == (0, 1)
    assert flat["genres.offsets"].tolist() == [0] and flat["genres.values"].shape == (0,)
    assert flat["hist.values"].shape == (0, 4)
    assert out.labels["click"].shape == (0,) and out.group_ids.shape == (0,)
