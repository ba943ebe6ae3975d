"""The backend seam: what a framework must provide for the backend-neutral train loop.

The loop (trainer/loop.py) owns epochs, progress, metrics, early stopping, the checkpoint
schedule and the data position; an Engine owns the model, optimizers and the framework's
checkpoint format. Anyes cross the seam as backend-neutral numpy batch objects (a domain's own type) and
predictions come back as numpy arrays, so metrics are computed once, the same way, for both.
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable

import numpy as np

from trainer.run_dir import RunDir


class Engine(ABC):
    """One model + its optimizers on one framework."""

    backend: str = ""
    retrieval: bool = False  # two-tower models: eval reports recall@k
    # trainer.timing.StageClock set by the train loop: train_step splits sampled steps into
    # stages (h2d, embedding, dense, optimizer, host ...); None: no stage timing
    stage_clock: Any = None

    def timing_sample_every(self, configured: int | None) -> int:
        """How often a step is split into stages; ``configured`` None: every step (host
        devices: a split costs a few clock reads)."""
        return configured or 1

    def timing_sync(self) -> Callable[[], None] | None:
        """What makes the device's queued work visible to a host clock (None: nothing to do)."""
        return None

    def stager(self) -> Callable[[Any], Any] | None:
        """What the train loader may run on each batch in its background thread, ahead of
        ``train_step`` (the result arrives as ``batch.staged``): work that would otherwise sit
        on the step's critical path, e.g. turning numpy arrays into framework tensors. None:
        nothing to stage."""
        return None

    def row_stager(self, cache: Any, single: frozenset[str]) -> Callable[[np.ndarray], Any] | None:
        """``data.cache=memory``: given the cached rows (``single``: their one-id-per-row
        features), a function from a batch's row indices to its staged form, when the engine
        can gather a batch's inputs from a copy of the cache it holds itself (the loader then
        hands out batches with labels only). None: the loader takes rows and ``stager`` runs."""
        return None

    def epoch_context(self) -> contextlib.AbstractContextManager:
        """Wraps one epoch of steps (DDP: Join, so ranks with fewer batches do not hang)."""
        return contextlib.nullcontext()

    @abstractmethod
    def train_step(self, batch: Any) -> tuple[float, dict[str, np.ndarray]]:
        """One optimisation step; returns the loss and the batch's predictions per task."""

    @abstractmethod
    def eval_step(self, batch: Any, recall_k: list[int]) -> tuple[float, dict[str, np.ndarray], dict[int, float]]:
        """Loss, predictions per task, and in-batch recall@k (retrieval models) without training."""

    @abstractmethod
    def predict(self, batch: Any) -> dict[str, np.ndarray]:
        """Predictions per task (probabilities for binary tasks) of a batch without labels."""

    @abstractmethod
    def current_lr(self) -> float:
        """The dense optimizer's current learning rate (for logging)."""

    @abstractmethod
    def save(self, run: RunDir, name: str, meta: dict[str, Any]) -> Path:
        """Write checkpoint ``name`` (model, optimizers, framework RNG + ``meta``) atomically."""

    @abstractmethod
    def restore(self, path: Path) -> dict[str, Any]:
        """Load a checkpoint written by :meth:`save`; returns its ``meta``."""

    @property
    @abstractmethod
    def num_parameters(self) -> int:
        """Trainable parameter count (reported in metrics.json)."""
