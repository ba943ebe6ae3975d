"""Secrets at rest: what of a run's config may be written down, and how workers still get them.

Everything a run writes (``config.yaml``, and through it the remote mirror; the checkpoint
metadata; the Kubernetes ConfigMap; the log files) holds the config as
:func:`dataio.credentials.redact_config` leaves it: a credential that came from the
environment as ``${oc.env:NAME}``, any other credential as ``***``. Why the interpolation:
the processes that run from the written config (torchrun / TF workers read the run's
``config.yaml``, Kubernetes pods the ConfigMap, both through ``trainer.worker``) resolve it
again from their own environment, so nothing is lost by not writing the value.

A secret typed as a literal (``data.storage_options.secret=abc``) has no such name:

- local workers (torchrun, tf_multiworker) get it through the environment, never a file:
  this process sets ``LINGJIE_SECRET_<PATH>`` and the config names ``${oc.env:...}`` of it;
  the workers inherit the variable and nothing is left on disk;
- Kubernetes pods cannot inherit this process's environment: the run is refused in one line
  that says to use ``${oc.env:VAR}`` with ``hardware.env.VAR: {secretKeyRef: ...}``;
- a run in this process writes ``***`` (it keeps the real value in memory).
"""
from __future__ import annotations

import os
import re
from typing import Any

from dataio.credentials import redact_config, redact_log_handlers, remember_secret
from lingjie.errors import ConfigError

SECRET_ENV_PREFIX = "LINGJIE_SECRET_"


def config_at_rest(cfg: dict[str, Any]) -> str:
    """The YAML of the resolved config ``cfg`` that may be written down (see the module doc).

    Side effects, on purpose: the secrets found are remembered so that log records (the
    console and Hydra's log file in the run dir) show ``***``; for local workers the literal
    secrets are put into this process's environment, which the workers inherit."""
    from omegaconf import OmegaConf

    red = redact_config(cfg)
    for value in [*red.from_env.values(), *red.literals.values()]:
        remember_secret(str(value))
    redact_log_handlers()
    tree = red.tree
    if red.literals:
        target = ships_to(cfg)
        if target == "k8s":
            path = next(iter(red.literals))
            raise ConfigError(path, literal_for_pods_message(path))
        if target == "workers":
            tree = _through_environment(tree, red.literals)
    return OmegaConf.to_yaml(OmegaConf.create(tree))


def meta_at_rest(meta: dict[str, Any]) -> dict[str, Any]:
    """Checkpoint metadata with its ``config`` redacted like config.yaml (nothing reads the
    secrets back from a checkpoint: resume and evaluate take them from the command line)."""
    if not isinstance(meta, dict) or "config" not in meta:
        return meta
    return {**meta, "config": redact_config(meta["config"]).tree}


def ships_to(cfg: dict[str, Any]) -> str | None:
    """Where this job sends its written config to be run: "k8s" (pods), "workers" (local
    torchrun / TF processes), or None (it runs here). ``cfg`` is not validated yet."""
    if os.environ.get("LINGJIE_WORKER") == "1":
        return None
    trainer = cfg.get("trainer") if isinstance(cfg.get("trainer"), dict) else {}
    hardware = cfg.get("hardware") if isinstance(cfg.get("hardware"), dict) else {}
    if trainer.get("mode", "train") != "train":
        return None
    launcher = hardware.get("launcher", "local")
    if launcher == "k8s":
        return "k8s"
    return "workers" if launcher in ("torchrun", "tf_multiworker") else None


def literal_for_pods_message(path: str) -> str:
    """The one-line fix for a secret that would have to travel to Kubernetes pods in clear."""
    if path.startswith("hardware.env."):
        name = path[len("hardware.env."):]
        return (f"a plain value for the credential variable {name} would sit in clear in the rendered job; "
                f"reference a Kubernetes Secret instead: hardware.env.{name}="
                "{secretKeyRef: {name: SECRET, key: KEY}} (or hardware.env_from=[{secretRef: {name: SECRET}}])")
    return ("a secret given as a literal cannot reach the pods (the ConfigMap never holds one): write it "
            "as ${oc.env:VAR} and give the pods VAR with hardware.env.VAR={secretKeyRef: {name: SECRET, key: KEY}} "
            "or hardware.env_from=[{secretRef: {name: SECRET}}]")


def secret_env_name(path: str) -> str:
    """The environment variable that carries the literal at config ``path`` to local workers."""
    return SECRET_ENV_PREFIX + re.sub(r"[^A-Z0-9]+", "_", path.upper()).strip("_")


def _through_environment(tree: Any, literals: dict[str, Any]) -> Any:
    """``tree`` with each literal secret replaced by ``${oc.env:LINGJIE_SECRET_<PATH>}``, and
    that variable set here (the workers this process starts inherit it)."""
    for path, value in literals.items():
        name = secret_env_name(path)
        os.environ[name] = str(value)
        tree = _set_path(tree, _split_path(path), "${oc.env:" + name + "}")
    return tree


def _split_path(path: str) -> list[str | int]:
    out: list[str | int] = []
    for part in path.split("."):
        name, *indices = re.split(r"\[(\d+)\]", part)
        if name:
            out.append(name)
        out += [int(i) for i in indices if i != ""]
    return out


def _set_path(tree: Any, keys: list[str | int], value: Any) -> Any:
    node = tree
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return tree
