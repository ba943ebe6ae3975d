"""Validate a composed config into its domain's typed spec before anything heavy is imported.

The domain (``domain: rec | cv | nlp``) validates its own groups (see :mod:`trainer.domains`);
its validation imports only schema modules, so `python -m trainer` with a typo fails in well
under a second with one clear message naming the path and the fix.
"""
from __future__ import annotations

from typing import Any

from trainer.domains import domain_module


def validate(cfg: dict[str, Any]) -> Any:
    """Check a plain (resolved) config dict; raise ConfigError naming the path and the fix."""
    return domain_module(str(cfg.get("domain", "rec"))).validate(cfg)
