"""Callbacks: what the train loop tells the outside world, as a list of small objects.

The loop (trainer.loop.TrainLoop) calls every callback's hooks in list order. Lingjie's own
side effects are callbacks too — metrics.json (:class:`MetricsFile`), the trackers of the
``logger`` group (TensorBoard, metrics.csv, MLflow: :mod:`trainer.tracking`), the remote mirror (trainer.remote_mirror.MirrorCallback) and Optuna
pruning (automl.reporting.OptunaPruning) — so a user's callback is a peer of them, not a hook
wired by hand. Add your own from YAML::

    trainer:
      callbacks:
        - _target_: my_package.MyCallback   # a Callback subclass; other keys are its arguments
          every: 10

A process started by a tool (e.g. the Optuna sweeper) may add callbacks through the
environment variable ``LINGJIE_CALLBACKS``: a JSON list of the same ``_target_`` mappings.
That is how trainer runs automl's pruning without importing automl.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable

from lingjie.errors import ConfigError

# Hooks receive the running trainer.loop.TrainLoop (typed Any here: the loop imports this module)
TrainLoop = Any
ENV = "LINGJIE_CALLBACKS"


class Callback:
    """Hooks of the train loop; override the ones you need. By default a callback runs on rank 0
    only (the process that writes the run directory); set ``all_ranks = True`` to run on every rank."""

    all_ranks: bool = False

    def on_fit_start(self, loop: TrainLoop) -> None:
        """Before the first step (after a resume has restored the loop's state)."""

    def on_train_step(self, loop: TrainLoop, loss: float) -> bool:
        """After every train step (``loop.progress.global_step`` already counts it). True ends
        the epoch now (e.g. a pruned trial); set ``loop.progress.stopped_early`` to end the fit."""
        return False

    def on_epoch_end(self, loop: TrainLoop, metrics: dict[str, float]) -> None:
        """After an epoch's evaluation and checkpoint; ``metrics`` is its history row."""

    def on_checkpoint(self, loop: TrainLoop, path: Path) -> None:
        """After a checkpoint (step, epoch or best) is durably written."""

    def on_fit_end(self, loop: TrainLoop) -> None:
        """When the fit ends, normally or by an exception (close files here)."""

    def on_run_end(self, loop: TrainLoop) -> None:
        """After the run's final metrics.json, export and DONE marker are written."""

    def on_run_failed(self, loop: TrainLoop, error: BaseException) -> None:
        """Instead of :meth:`on_run_end` when the run raised after the loop was built (in the fit,
        the final metrics or the export; ``error`` is a KeyboardInterrupt on Ctrl-C): e.g. mark
        a tracking run failed. The error propagates afterwards whatever this does."""


class MetricsFile(Callback):
    """Writes ``metrics.json`` after every epoch through the domain's ``body(final)`` function."""

    def __init__(self, path: Path, body: Callable[[bool], dict[str, Any]]) -> None:
        self.path = Path(path)
        self.body = body

    def write(self, final: bool) -> None:
        from dataio.atomic import atomic_write_json

        atomic_write_json(self.path, self.body(final))

    def on_epoch_end(self, loop: TrainLoop, metrics: dict[str, float]) -> None:
        self.write(False)


def epoch_metrics(row: dict[str, Any]) -> dict[str, float]:
    """The trackable numbers of an epoch's history row: ``split/name`` keys with finite values
    (``epoch`` and ``step`` are the axes, a NaN metric of an empty split is no point to plot)."""
    return {k: float(v) for k, v in row.items()
            if "/" in k and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def instantiate_callbacks(specs: list[dict[str, Any]] | None, path: str = "trainer.callbacks") -> list[Callback]:
    """Callbacks from ``_target_`` mappings (Hydra's instantiate) plus those named by
    ``$LINGJIE_CALLBACKS``; a ConfigError names the entry that cannot be built."""
    items = [(f"{path}[{i}]", s) for i, s in enumerate(specs or [])]
    raw = os.environ.get(ENV)
    if raw:
        try:
            env_specs = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(ENV, f"not a JSON list of {{'_target_': ...}} mappings: {exc}") from None
        items += [(f"${ENV}[{i}]", s) for i, s in enumerate(env_specs)]
    return [_instantiate(where, spec) for where, spec in items]


def _instantiate(where: str, spec: Any) -> Callback:
    if not isinstance(spec, dict) or "_target_" not in spec:
        raise ConfigError(where, "a callback is a mapping with _target_: the dotted path of a Callback class")
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        cb = instantiate(spec, _convert_="all")
    except InstantiationException as exc:
        raise ConfigError(f"{where}._target_", f"cannot build {spec['_target_']!r}: {exc}") from None
    if not isinstance(cb, Callback):
        raise ConfigError(f"{where}._target_", f"{spec['_target_']} is not a trainer.callbacks.Callback")
    return cb
