"""Model configs and the registry: light import, field metadata, did-you-mean errors and
cross-field checks."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from easyrec.features.info import FeatureInfo
from easyrec.models import specs
from easyrec.models.specs import (MODEL_REGISTRY, ModelEntry, build_model, get_model_entry)
from lingjie.errors import ConfigError
from tests.easyrec.zoo_helpers import FEATURES, make_config

ROOT = Path(__file__).resolve().parents[2]


def test_specs_import_no_torch() -> None:
    code = ("import sys, easyrec.models.specs; "
            "heavy = [m for m in ('torch', 'numpy', 'tensorflow') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.mark.parametrize("name", sorted(MODEL_REGISTRY))
def test_every_field_has_a_default_and_help(name: str) -> None:
    entry = MODEL_REGISTRY[name]
    assert entry.paper and entry.summary and "torch" in entry.backends
    cfg = entry.config_cls()
    assert cfg.name == name
    for cls in (entry.config_cls, specs.TaskConfig):
        for f in dataclasses.fields(cls):
            has_default = (f.default is not dataclasses.MISSING
                           or f.default_factory is not dataclasses.MISSING)
            assert has_default, f"{cls.__name__}.{f.name}"
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name}"


def test_list_defaults_are_not_shared_between_instances() -> None:
    a, b = specs.DeepFMConfig(), specs.DeepFMConfig()
    a.hidden_units.append(3)
    a.tasks.append(specs.TaskConfig(name="x"))
    assert b.hidden_units == [256, 128, 64] and len(b.tasks) == 1


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ConfigError) as e:
        get_model_entry("deepfmm")
    assert e.value.path == "model.name" and "deepfm" in e.value.suggestions


def test_missing_backend_names_entries_that_have_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # every entry has torch and tf; a backend no entry has yet ("jax") names that fact
    with pytest.raises(ConfigError, match="no model has a 'jax' backend"):
        get_model_entry("deepfm", backend="jax")
    lr = MODEL_REGISTRY["lr"]
    monkeypatch.setitem(MODEL_REGISTRY, "lr", ModelEntry(
        "lr", lr.config_cls, {**lr.backends, "jax": "x:LR"}, lr.paper, lr.summary))
    with pytest.raises(ConfigError) as e:
        get_model_entry("deepfm", backend="jax")
    assert e.value.path == "model.name" and e.value.suggestions == ["lr"]
    assert get_model_entry("lr", backend="jax").backends["jax"] == "x:LR"


def test_build_model_rejects_the_wrong_config_class() -> None:
    cfg = specs.LRConfig(feature_groups={"wide": ["age"]})
    cfg.name = "deepfm"
    with pytest.raises(ConfigError, match="DeepFMConfig"):
        build_model(cfg, FEATURES)


def _raises(cfg: specs.ModelConfig, path: str, *words: str,
            features: dict[str, FeatureInfo] | None = FEATURES, **kw) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        cfg.check(features, **kw)
    assert e.value.path == path, str(e.value)
    for w in words:
        assert w in str(e.value), str(e.value)
    return e.value


def test_missing_group_names_the_model_and_the_groups() -> None:
    cfg = specs.DeepFMConfig(feature_groups={"wide": ["age"], "dep": ["age"]})
    err = _raises(cfg, "model.feature_groups", "'deep' is missing", "deepfm")
    assert err.suggestions == ["dep"]
    _raises(specs.DeepFMConfig(), "model.feature_groups", features=None)


def test_unknown_group_and_empty_group() -> None:
    cfg = specs.DCNv2Config(feature_groups={"deep": ["age"], "wide": ["age"]})
    _raises(cfg, "model.feature_groups.wide", "no group 'wide'")
    _raises(specs.DCNv2Config(feature_groups={"deep": []}), "model.feature_groups.deep",
            "no features")


def test_undefined_feature_names_it_and_the_closest_defined() -> None:
    cfg = specs.DCNv2Config(feature_groups={"deep": ["age", "user"]})
    err = _raises(cfg, "model.feature_groups.deep", "'user'")
    assert "user_id" in err.suggestions
    cfg.check(None)  # without features only structural rules apply


def test_duplicate_feature_in_a_group() -> None:
    cfg = specs.DCNv2Config(feature_groups={"deep": ["age", "age"]})
    _raises(cfg, "model.feature_groups.deep", "twice")


def test_deepfm_fm_needs_one_embedding_dim() -> None:
    cfg = make_config("deepfm")
    cfg.feature_groups["deep"].append("tags")  # width 4 among width-8 fields
    _raises(cfg, "features.tags.embedding_dim", "'tags' has 4", "'user_id' has 8")


def test_din_sequence_needs_a_target_and_sequence_kind() -> None:
    cfg = make_config("din")
    cfg.feature_groups["deep"].remove("item_id")
    _raises(cfg, "model.feature_groups.sequence", "'hist'", "embedding_name 'item'")
    cfg = make_config("din")
    cfg.feature_groups["sequence"] = ["user_id"]
    _raises(cfg, "model.feature_groups.sequence", "sparse", "sequence")


def test_task_rules() -> None:
    cfg = make_config("lr")
    cfg.tasks = [specs.TaskConfig(type="regression")]
    _raises(cfg, "model.tasks.0.loss", "mse")
    cfg.tasks = [specs.TaskConfig(), specs.TaskConfig()]
    _raises(cfg, "model.tasks.1.name", "twice")
    cfg.tasks = []
    _raises(cfg, "model.tasks")
    cfg.tasks = [specs.TaskConfig(label="lik")]
    err = _raises(cfg, "model.tasks.0.label", "'lik'", labels=["like", "click"])
    assert err.suggestions[0] == "like"


def test_dssm_takes_one_binary_task_and_positive_k() -> None:
    cfg = make_config("dssm")
    cfg.tasks = [specs.TaskConfig(), specs.TaskConfig(name="b")]
    _raises(cfg, "model.tasks", "exactly one")
    cfg = make_config("dssm")
    cfg.recall_k = [0]
    _raises(cfg, "model.recall_k")


def test_layer_widths_must_be_positive() -> None:
    cfg = make_config("mmoe")
    cfg.expert_units = [8, 0]
    _raises(cfg, "model.expert_units")
