"""Domains: which package validates and runs an experiment (rec = easyrec, cv, nlp).

trainer imports no domain: it finds one by name here, so ``domain: rec`` dispatches to easyrec
exactly as ``cv`` does to easycv. A domain module provides

    validate(cfg: dict) -> spec      # spec.root: the shared groups (trainer, hardware, logger,
                                     # paths, data) + experiment_name, seed, domain
    recipe(spec) -> trainer.lifecycle.Recipe   # train | evaluate | predict | export
    EXTRA_MODES: dict[str, Callable[[spec, RunDir, str], Path]]   # optional (rec: stream)
    schema_parts() -> {data: class, features: {type: class}, models: {name: class}}
                                     # for `lingjie explain` / `lingjie schema`

A config selects its domain with the top-level key ``domain`` (default ``rec``). A new domain
is a package with such a module and a line here.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from lingjie.errors import ConfigError
from lingjie.extras import require

DOMAINS: dict[str, str] = {
    "rec": "easyrec.domain",
    "cv": "easycv.domain",
    "nlp": "easynlp.domain",
}

# What each domain and backend imports that is an extra, as (module, extras_require key).
# A domain's own needs come first: a cv user without torch is told to install 'cv' (which
# brings torch), not 'torch'. safetensors (nlp) is needed only to load pretrained weights.
DOMAIN_NEEDS: dict[str, list[tuple[str, str]]] = {
    "rec": [],
    "cv": [("torch", "cv"), ("PIL", "cv")],
    "nlp": [("tokenizers", "nlp")],
}
BACKEND_NEEDS: dict[str, list[tuple[str, str]]] = {
    "torch": [("torch", "torch")],
    "tf": [("tensorflow", "tf")],
}
# trainer.export.format values that need an extra: onnx + onnxscript export, onnxruntime loads it back
EXPORT_NEEDS: dict[str, list[tuple[str, str]]] = {
    "onnx": [("onnx", "onnx"), ("onnxscript", "onnx"), ("onnxruntime", "onnx")],
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


def serving_adapter(name: str) -> type:
    """The ``Adapter`` class of domain ``name``'s ``serving_adapter`` module (``lingjie serve``):
    the sibling of its domain module, imported by name so trainer stays below the domains."""
    package = domain_module(name).__name__.rpartition(".")[0]
    for module, extra in DOMAIN_NEEDS.get(name, []):
        require(module, extra, f"serving a {name} model", "domain")
    return importlib.import_module(f"{package}.serving_adapter").Adapter


def require_frameworks(domain: str, backend: str, export_format: str | None = None) -> None:
    """Refuse, in one line naming the pip extra, a job whose domain or backend needs a package
    this installation lacks. Called before the domain's recipe imports torch / tensorflow, so
    the user reads ``pip install 'lingjie[tf]'`` instead of an ImportError traceback.

    ``export_format``: the ``trainer.export.format`` of a job that will export (None when it
    will not), checked before training so a missing ONNX exporter does not surface only after
    the last epoch."""
    for module, extra in DOMAIN_NEEDS.get(domain, []):
        require(module, extra, f"domain={domain}", "domain")
    for module, extra in BACKEND_NEEDS.get(backend, []):
        require(module, extra, f"trainer.backend={backend}", "trainer.backend")
    for module, extra in EXPORT_NEEDS.get(export_format or "", []):
        require(module, extra, f"trainer.export.format={export_format}", "trainer.export.format")
