"""Domains: which package validates and runs an experiment (rec = easyrec, cv, nlp).

trainer imports no domain: it finds one by name here, so ``domain: rec`` dispatches to easyrec
exactly as ``cv`` does to easycv. A domain module provides

    validate(cfg: dict) -> spec      # spec.root: the shared groups (trainer, hardware, logger,
                                     # paths, data) + experiment_name, seed, domain
    recipe(spec) -> trainer.lifecycle.Recipe   # train | evaluate | predict | export
    EXTRA_MODES: dict[str, Callable[[spec, RunDir, str], Path]]   # optional (rec: stream)

A config selects its domain with the top-level key ``domain`` (default ``rec``). A new domain
is a package with such a module and a line here.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from lingjie.errors import ConfigError

DOMAINS: dict[str, str] = {
    "rec": "easyrec.domain",
    "cv": "easycv.domain",
    "nlp": "easynlp.domain",
}


def domain_module(name: str) -> ModuleType:
    """The module implementing domain ``name``."""
    if name not in DOMAINS:
        raise ConfigError("domain", f"unknown domain {name!r}; valid: {', '.join(DOMAINS)}")
    target = DOMAINS[name]
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as e:
        if e.name and target.startswith(e.name):
            raise ConfigError("domain", f"domain {name!r} is not available in this installation ({target})") from e
        raise
