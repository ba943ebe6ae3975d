"""A config file that lists every knob of one dataclass (rendered by trainer.schema.defaults).

A module of its own so that the domains can declare their files (``CONFIG_FILES`` in their
``domain.py``) without importing the renderer.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GroupFile:
    """One config file that lists every knob of a dataclass, and what the file is for."""

    path: str  # relative to configs/
    spec: str  # "module:Class" of the dataclass
    about: str  # the file's opening comment
