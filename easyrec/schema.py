"""Validate a ``domain: rec`` config into a typed :class:`RunSpec` before anything heavy is imported.

Imports only stdlib and the light schema modules (easyrec.features.config, easyrec.models.specs),
so `python -m trainer` with a typo fails in well under a second with one clear message.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from easyrec.data_spec import DataSpec
from lingjie.errors import ConfigError
from lingjie.schema import build, close_names
from trainer.schema.spec import RootSpec, build_root


@dataclass
class RunSpec:
    """The validated config: typed groups, typed features and the typed model config."""

    root: RootSpec
    features: dict[str, Any]  # feature name -> easyrec.features.config dataclass
    labels: dict[str, Any]  # label name -> easyrec.features.config.LabelConfig
    model: Any  # easyrec.models.specs.ModelConfig subclass

    @property
    def task_types(self) -> dict[str, str]:
        return {t.name: t.type for t in self.model.tasks}


def build_features(raw: dict[str, Any]) -> dict[str, Any]:
    from easyrec.features.config import FEATURE_TYPES

    features = {}
    for name, item in (raw or {}).items():
        path = f"features.{name}"
        if not isinstance(item, dict):
            raise ConfigError(path, f"expected a mapping with a 'type' ({', '.join(FEATURE_TYPES)}), got {item!r}")
        ftype = item.get("type")
        if ftype not in FEATURE_TYPES:
            raise ConfigError(f"{path}.type", f"unknown feature type {ftype!r}; valid: {', '.join(FEATURE_TYPES)}",
                              close_names(str(ftype), FEATURE_TYPES))
        feat = build(FEATURE_TYPES[ftype], item, path)
        feat.check(path)
        features[name] = feat
    return features


def build_model_config(raw: dict[str, Any], backend: str = "torch") -> Any:
    """The typed config of the model-zoo entry ``model.name`` on ``backend``."""
    from easyrec.models.specs import get_model_entry

    if not raw or "name" not in raw:
        raise ConfigError("model.name", "no model chosen; pick one with model=<name> (see README: model zoo)")
    entry = get_model_entry(str(raw["name"]), backend=backend)
    return build(entry.config_cls, raw, "model")


def validate(cfg: dict[str, Any]) -> Any:
    """Check a plain (resolved) ``domain: rec`` config; raise ConfigError naming the path and the fix."""
    root = build_root(cfg, DataSpec)
    features = build_features(root.features)
    model = build_model_config(root.model, root.trainer.backend)
    from easyrec.features.config import LabelConfig

    labels = {}
    for name, lab in root.data.labels.items():
        if not lab.column:
            raise ConfigError(f"data.labels.{name}.column", "required: the input column of this label")
        labels[name] = LabelConfig(column=lab.column, threshold=lab.threshold)
    # cross references: model groups -> features, tasks -> labels, backend
    for group, names in model.feature_groups.items():
        for i, fname in enumerate(names):
            if fname not in features:
                raise ConfigError(f"model.feature_groups.{group}[{i}]",
                                  f"feature '{fname}' is used by the model but not defined under features:",
                                  close_names(fname, features))
    for i, task in enumerate(model.tasks):
        if task.label not in labels:
            raise ConfigError(f"model.tasks[{i}].label", f"label '{task.label}' is not defined under data.labels "
                              f"(defined: {', '.join(labels) or 'none'})", close_names(task.label, labels))
    if root.trainer.backend != "torch":  # dynamic tables (easyrec.dynamic) are torch-only
        dyn = [n for n, f in features.items() if getattr(f, "dynamic", None) is not None]
        if dyn:
            raise ConfigError(f"features.{dyn[0]}.dynamic", f"dynamic embedding tables exist on the torch backend "
                              f"only; use trainer.backend=torch or give {', '.join(dyn)} hash_buckets / vocab")
    from easyrec.delta_format import check_delta_config

    check_delta_config(root.trainer)  # tf / onnx with delta exports: refused before any training
    if root.trainer.mode in ("train", "stream") and not root.data.train_path:
        raise ConfigError("data.train_path", f"required for trainer.mode={root.trainer.mode}")
    from easyrec.models.specs import get_model_entry

    get_model_entry(model.name, backend=root.trainer.backend)
    model.check(None, list(labels))
    return RunSpec(root=root, features=features, labels=labels, model=model)
