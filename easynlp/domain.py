"""``domain: nlp``: the text domain's seam for trainer.domains.

``validate`` imports only the schema (easynlp.validate: no torch, no tokenizers), so a typo
fails in well under a second; ``recipe`` gives the lifecycle its part (easynlp.recipe).
"""
from __future__ import annotations

from typing import Any

from easynlp.schema import NLPRunSpec
from easynlp.validate import validate
from trainer.schema.group_file import GroupFile

__all__ = ["recipe", "schema_parts", "validate"]


def recipe(spec: NLPRunSpec) -> Any:
    """The lifecycle recipe of a validated nlp spec."""
    from easynlp.recipe import NLPRecipe

    return NLPRecipe(spec)


# the data group file listing every knob of this domain (python -m trainer.schema.defaults)
CONFIG_FILES = (
    GroupFile("data/nlp_base.yaml", "easynlp.schema:NLPDataSpec",
              "Every text-data knob (domain: nlp) with its default; text datasets include this "
              "(`defaults: [nlp_base, _self_]`) and override what differs. See README: text models."),
)


def schema_parts() -> dict[str, Any]:
    """The dataclasses behind this domain's groups, for ``python -m trainer explain`` and
    ``schema`` (trainer finds them here by domain name; it imports no domain package)."""
    from easynlp.schema import MODELS, NLPDataSpec

    return {"data": NLPDataSpec, "features": {}, "models": dict(MODELS)}
