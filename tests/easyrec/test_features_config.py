"""Feature config dataclasses: defaults, metadata, cross-field checks and error paths."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from easyrec.features.config import (
    FEATURE_TYPES, ComboFeatureConfig, IdFeatureConfig, LabelConfig, RawFeatureConfig,
    SequenceFeatureConfig, TagFeatureConfig, VocabConfig, feature_config_from_dict,
    mapping_spec,
)
from lingjie.errors import ConfigError

ALL = [*FEATURE_TYPES.values(), VocabConfig, LabelConfig]


def test_feature_types_map_type_key_to_class():
    assert set(FEATURE_TYPES) == {"id", "raw", "tag", "sequence", "combo"}
    for key, cls in FEATURE_TYPES.items():
        assert cls().type == key


@pytest.mark.parametrize("cls", ALL)
def test_every_field_has_default_and_help(cls):
    obj = cls()  # every field has a default
    for f in dataclasses.fields(cls):
        assert f.metadata.get("help"), f"{cls.__name__}.{f.name} lacks help"
    as_dict = dataclasses.asdict(obj)
    assert list(as_dict) == [f.name for f in dataclasses.fields(cls)]
    assert cls(**as_dict) == obj  # the defaults survive the dict round trip


def test_list_defaults_are_not_shared():
    a, b = ComboFeatureConfig(), ComboFeatureConfig()
    a.columns.append("x")
    assert b.columns == []


def test_bounds_metadata_present():
    meta = {f.name: f.metadata for f in dataclasses.fields(IdFeatureConfig)}
    assert meta["embedding_dim"]["ge"] == 1
    assert meta["hash_buckets"]["ge"] == 1


def test_id_mapping_exclusive_and_default_vocab():
    assert mapping_spec(IdFeatureConfig()) == ("vocab", 1, None)
    assert mapping_spec(IdFeatureConfig(hash_buckets=7)) == ("hash", 7)
    assert mapping_spec(IdFeatureConfig(num_buckets=3)) == ("identity", 3)
    with pytest.raises(ConfigError) as e:
        IdFeatureConfig(hash_buckets=10, vocab=VocabConfig()).check("features.user_id")
    assert e.value.path == "features.user_id.vocab"
    assert "only one of" in str(e.value)


def test_raw_checks():
    with pytest.raises(ConfigError) as e:
        RawFeatureConfig(boundaries=[1.0], num_quantiles=4).check("features.age")
    assert e.value.path == "features.age.num_quantiles"
    with pytest.raises(ConfigError, match="strictly increasing"):
        RawFeatureConfig(boundaries=[1.0, 1.0]).check("features.age")
    with pytest.raises(ConfigError, match="at least one"):
        RawFeatureConfig(boundaries=[]).check("features.age")
    RawFeatureConfig(boundaries=[0.0, 1.5]).check("features.age")


def test_tag_checks():
    with pytest.raises(ConfigError) as e:
        TagFeatureConfig(weight_separator="|").check("features.genres")
    assert e.value.path == "features.genres.weight_separator"
    with pytest.raises(ConfigError):
        TagFeatureConfig(separator="").check("features.genres")


def test_sequence_share_excludes_own_mapping():
    with pytest.raises(ConfigError) as e:
        SequenceFeatureConfig(share="item_id", hash_buckets=10).check("features.hist")
    assert e.value.path == "features.hist.hash_buckets"
    SequenceFeatureConfig(share="item_id").check("features.hist")


def test_combo_checks():
    with pytest.raises(ConfigError) as e:
        ComboFeatureConfig(columns=["a"], hash_buckets=10).check("features.c")
    assert e.value.path == "features.c.columns"
    with pytest.raises(ConfigError) as e:
        ComboFeatureConfig(columns=["a", "b"]).check("features.c")
    assert e.value.path == "features.c.hash_buckets"
    with pytest.raises(ConfigError, match="'columns'"):
        ComboFeatureConfig(column="a", columns=["a", "b"], hash_buckets=3).check("features.c")


def test_from_dict_unknown_key_suggests():
    with pytest.raises(ConfigError) as e:
        feature_config_from_dict({"type": "id", "hash_bucket": 10}, "features.u")
    assert e.value.path == "features.u.hash_bucket"
    assert "hash_buckets" in e.value.suggestions
    with pytest.raises(ConfigError) as e:
        feature_config_from_dict({"type": "idd"}, "features.u")
    assert e.value.path == "features.u.type" and "id" in e.value.suggestions
    with pytest.raises(ConfigError, match=">= 1"):
        feature_config_from_dict({"type": "id", "embedding_dim": 0}, "features.u")
    cfg = feature_config_from_dict({"type": "id", "vocab": {"min_count": 2}}, "features.u")
    assert cfg.vocab == VocabConfig(min_count=2)


def test_config_module_is_light():
    code = ("import sys, easyrec.features.config, easyrec.features; "
            "print(any(m in sys.modules for m in ('pyarrow', 'pandas', 'numpy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(Path(__file__).resolve().parents[2]))
    assert out.stdout.strip() == "False"
