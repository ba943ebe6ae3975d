"""combo features (hashed crosses), labels with thresholds, and group ids."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from easyrec.features.hashing import hash_to_buckets
from easyrec.features.pipeline import FeaturePipeline
from lingjie.errors import ConfigError, DataError


def test_combo_hash_of_joined_string_forms():
    t = pa.table({"u": pa.array([1, 1, 2, None], pa.int64()), "c": ["x", "y", "x", "x"]})
    p = FeaturePipeline({"uc": {"type": "combo", "columns": ["u", "c"], "hash_buckets": 97}})
    p.fit(t)
    sv = p.transform(t, with_labels=False).sparse["uc"]
    expect = hash_to_buckets(pa.array(["1\x1fx", "1\x1fy", "2\x1fx", "\x1e\x1fx"]), 97)
    assert sv.values.tolist() == expect.tolist()
    assert sv.offsets.tolist() == [0, 1, 2, 3, 4]
    assert len(set(sv.values.tolist())) == 4
    # int 1 and string "1" cross the same
    t2 = pa.table({"u": ["1"], "c": ["x"]})
    assert p.transform(t2, with_labels=False).sparse["uc"].values[0] == sv.values[0]
    info = p.feature_infos()["uc"]
    assert (info.kind, info.num_embeddings) == ("sparse", 97)
    assert p.required_columns() == ["u", "c"]


def test_combo_keeps_separator_inside_values_distinct():
    t = pa.table({"a": ["p|q", "p"], "b": ["r", "q|r"]})
    p = FeaturePipeline({"ab": {"type": "combo", "columns": ["a", "b"],
                                "hash_buckets": 1 << 40}}).fit([t])
    v = p.transform(t, with_labels=False).sparse["ab"].values
    assert v[0] != v[1]


def test_combo_config_errors():
    with pytest.raises(ConfigError) as e:
        FeaturePipeline({"uc": {"type": "combo", "columns": ["u", "c"]}})
    assert e.value.path == "features.uc.hash_buckets"


def test_labels_threshold_and_plain():
    t = pa.table({"rating": pa.array([1, 4, 5, 3], pa.int8()), "click": [True, False, True, True],
                  "u": ["a", "b", "a", None]})
    p = FeaturePipeline({"u": {"type": "id"}},
                        labels={"like": {"column": "rating", "threshold": 4},
                                "click": {}, "rating": {}}, group_by="u").fit([t])
    out = p.transform(t)
    assert out.labels["like"].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert out.labels["like"].dtype == np.float32
    assert out.labels["click"].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert out.labels["rating"].tolist() == [1.0, 4.0, 5.0, 3.0]
    assert p.required_columns() == ["u", "rating", "click"]
    assert p.required_columns(with_labels=False) == ["u"]
    g = out.group_ids
    assert g.dtype == np.int64 and g[0] == g[2] != g[1] and g[3] == 0
    pred = p.transform(t.select(["u"]), with_labels=False)
    assert pred.labels == {} and pred.group_ids is None


def test_null_label_is_data_error_naming_column():
    t = pa.table({"u": ["a", "b"], "y": [1.0, None]})
    p = FeaturePipeline({"u": {"type": "id"}}, labels={"label": {"column": "y"}}).fit([t])
    with pytest.raises(DataError, match="'y'.*batch row 1") as e:
        p.transform(t)
    assert e.value.row == 1
    with pytest.raises(DataError, match="not numeric"):
        p.transform(pa.table({"u": ["a"], "y": ["yes"]}))


def test_missing_group_by_column_named():
    t = pa.table({"u": ["a"], "y": [1]})
    p = FeaturePipeline({"u": {"type": "id"}}, labels={"y": {}}, group_by="user").fit([t])
    with pytest.raises(DataError, match="'user'.*available columns: u, y"):
        p.transform(t)
