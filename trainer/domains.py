"""Domains: which package validates and runs an experiment (rec = easyrec, cv, nlp).

The shared machinery — config groups trainer/hardware/logger/paths, the launchers (torchrun,
tf_multiworker, k8s), the backend-neutral TrainLoop, the torch Engine, the run directory, the
Optuna sweeper — is the same for every domain. What differs is the data, the model zoo and
the metrics, so a domain module provides just two functions:

    validate(cfg: dict) -> spec      # spec.root has .trainer .hardware .logger .paths .data
                                     # (.data.storage_options) .experiment_name .seed .domain
    run(spec, run: RunDir, config_yaml: str, resumed: bool) -> Path
        # trainer.mode train|evaluate|predict|export; for train, ``run`` is already the run
        # directory to continue when ``resumed`` (trainer.resume or an elastic restart)

A config selects its domain with the top-level key ``domain`` (default ``rec``).
"""
from __future__ import annotations

import importlib
from types import ModuleType

from lingjie.errors import ConfigError

DOMAINS: dict[str, str] = {
    "rec": "",  # easyrec: handled by trainer.job / trainer.schema.validate themselves
    "cv": "easycv.domain",
    "nlp": "easynlp.domain",
}


def domain_module(name: str) -> ModuleType | None:
    """The module implementing domain ``name`` (None for rec, the built-in one)."""
    if name not in DOMAINS:
        raise ConfigError("domain", f"unknown domain {name!r}; valid: {', '.join(DOMAINS)}")
    target = DOMAINS[name]
    if not target:
        return None
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as e:
        if e.name and target.startswith(e.name):
            raise ConfigError("domain", f"domain {name!r} is not available in this installation ({target})") from e
        raise
