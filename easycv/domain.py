"""``domain: cv``: the image domain's seam for trainer.domains.

``validate`` imports only the schema (easycv.schema: stdlib only), so a typo fails in well
under a second; ``recipe`` gives the shared lifecycle (trainer.lifecycle) easycv's part —
image loader, model zoo, metrics, export (easycv.recipe).
"""
from __future__ import annotations

from typing import Any

from easycv.schema import CVRunSpec, validate_root
from trainer.schema.group_file import GroupFile

__all__ = ["recipe", "schema_parts", "validate"]


def validate(cfg: dict[str, Any]) -> CVRunSpec:
    """Typed spec of a ``domain: cv`` config; ConfigError (path + fix) on any mistake."""
    return validate_root(cfg)


def recipe(spec: CVRunSpec) -> Any:
    """The lifecycle recipe of a validated cv spec."""
    from easycv.recipe import CVRecipe

    return CVRecipe(spec)


# the data group file listing every knob of this domain (python -m trainer.schema.defaults)
CONFIG_FILES = (
    GroupFile("data/cv_base.yaml", "easycv.schema:CVDataSpec",
              "Every easycv data knob (domain: cv) with its default; image data sets include this "
              "(`defaults: [cv_base, _self_]`) and override what differs. See README: easycv."),
)


def schema_parts() -> dict[str, Any]:
    """The dataclasses behind this domain's groups, for ``python -m trainer explain`` and
    ``schema`` (trainer finds them here by domain name; it imports no domain package)."""
    from easycv.schema import MODELS, CVDataSpec

    return {"data": CVDataSpec, "features": {}, "models": dict(MODELS)}
