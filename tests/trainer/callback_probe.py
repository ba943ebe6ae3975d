"""A real callback for the callback tests: records every hook it sees as JSON lines."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer.callbacks import Callback


class Recorder(Callback):
    """Appends {"hook": name, "step": global step} to ``path``; with ``stop_at_step`` it ends
    the fit there (on_train_step returns True and marks the loop stopped early)."""

    def __init__(self, path: str, stop_at_step: int | None = None) -> None:
        self.path = Path(path)
        self.stop_at_step = stop_at_step

    def _log(self, hook: str, loop: Any, **extra: Any) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"hook": hook, "step": loop.progress.global_step, **extra}) + "\n")

    def on_fit_start(self, loop: Any) -> None:
        self._log("fit_start", loop)

    def on_train_step(self, loop: Any, loss: float) -> bool:
        self._log("train_step", loop, loss=loss)
        if self.stop_at_step is not None and loop.progress.global_step >= self.stop_at_step:
            loop.progress.stopped_early = True
            return True
        return False

    def on_epoch_end(self, loop: Any, metrics: dict[str, float]) -> None:
        loop.summary["recorder_epochs"] = loop.summary.get("recorder_epochs", 0) + 1
        self._log("epoch_end", loop, epoch=metrics["epoch"])

    def on_checkpoint(self, loop: Any, path: Path) -> None:
        self._log("checkpoint", loop, name=Path(path).name)

    def on_fit_end(self, loop: Any) -> None:
        self._log("fit_end", loop)

    def on_run_end(self, loop: Any) -> None:
        self._log("run_end", loop, done=(loop.run.done_marker).exists())


class NotACallback:
    """Instantiable, but not a trainer.callbacks.Callback."""


class Raiser(Callback):
    """Raises RuntimeError at the end of epoch ``at_epoch``: a run that fails mid-fit for the
    tracking tests (fault injection kills the process; this lets the run record the failure)."""

    def __init__(self, at_epoch: int = 1) -> None:
        self.at_epoch = at_epoch

    def on_epoch_end(self, loop: Any, metrics: dict[str, float]) -> None:
        if loop.progress.epoch >= self.at_epoch:
            raise RuntimeError(f"planted failure after epoch {loop.progress.epoch}")
