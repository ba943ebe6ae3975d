"""``domain: nlp``: the text domain's seam for trainer.domains.

``validate`` imports only the schema (easynlp.validate: no torch, no tokenizers), so a typo
fails in well under a second; ``recipe`` gives the lifecycle its part (easynlp.recipe).
"""
from __future__ import annotations

from typing import Any

from easynlp.schema import NLPRunSpec
from easynlp.validate import validate

__all__ = ["recipe", "validate"]


def recipe(spec: NLPRunSpec) -> Any:
    """The lifecycle recipe of a validated nlp spec."""
    from easynlp.recipe import NLPRecipe

    return NLPRecipe(spec)
