"""Unique, time-sortable run directory names: ``YYYY-mm-dd_HH-MM-SS_ffffff-xxxx``.

Why: Hydra's ``${now:%Y-%m-%d_%H-%M-%S}`` has one-second resolution, so two runs started
together shared one directory (the config of one, the checkpoints of the other). The
microseconds keep names sorting by start time (``find_runs`` relies on it); four random hex
digits make a collision of two processes started in the same microsecond all but impossible.
The id is drawn once per process: every place that resolves ``hydra.run.dir`` sees the same.
"""
from __future__ import annotations

import secrets
from datetime import datetime

from omegaconf import OmegaConf

RESOLVER = "lingjie.run_id"
_RUN_ID: list[str] = []


def run_id() -> str:
    """This process's run id (drawn on first use)."""
    if not _RUN_ID:
        _RUN_ID.append(f"{datetime.now():%Y-%m-%d_%H-%M-%S_%f}-{secrets.token_hex(2)}")
    return _RUN_ID[0]


def register_resolvers() -> None:
    """Register ``${lingjie.run_id:}`` with OmegaConf (idempotent)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, run_id, use_cache=True)
