"""``domain: rec`` (the default): the recommendation domain's seam for trainer.domains.

``validate`` imports only the schema (easyrec.schema), so a typo fails in well under a second;
``recipe`` gives the lifecycle its part (easyrec.recipe); ``stream`` is rec's extra mode
(online training from Kafka, easyrec.stream).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from easyrec.schema import RunSpec, validate
from trainer.run_dir import RunDir
from trainer.schema.group_file import GroupFile

__all__ = ["CONFIG_FILES", "EXTRA_MODES", "recipe", "schema_parts", "validate"]


def recipe(spec: RunSpec) -> Any:
    """The lifecycle recipe of a validated rec spec."""
    from easyrec.recipe import RecRecipe

    return RecRecipe(spec)


def _stream(spec: RunSpec, run: RunDir, config_yaml: str) -> Path:
    from easyrec.stream import run_stream

    return run_stream(spec, run, config_yaml)


EXTRA_MODES = {"stream": _stream}


# the data group file listing every knob of this domain (python -m trainer.schema.defaults)
CONFIG_FILES = (
    GroupFile("data/base.yaml", "easyrec.data_spec:DataSpec",
              "Every recommendation data knob (domain: rec) with its default; dataset files include this "
              "(`defaults: [base, _self_]`) and override what differs."),
)


def schema_parts() -> dict[str, Any]:
    """The dataclasses behind this domain's groups, for ``python -m trainer explain`` and
    ``schema`` (trainer finds them here by domain name; it imports no domain package)."""
    from easyrec.data_spec import DataSpec
    from easyrec.features.config import FEATURE_TYPES
    from easyrec.models.specs import MODEL_REGISTRY

    return {"data": DataSpec, "features": dict(FEATURE_TYPES),
            "models": {name: entry.config_cls for name, entry in MODEL_REGISTRY.items()}}
