"""Experiment tracking: the ``logger`` config group's callbacks (TensorBoard, metrics.csv, MLflow).

Each tracker is a :class:`trainer.callbacks.Callback`, so it sees the loop exactly as a user's
callback does, on rank 0 only, and any number of them can run at once (``logger=all``).
:func:`tracking_callbacks` builds the ones the config turns on; :func:`require_trackers`
refuses a config whose tracker's package is missing before anything is written.

What a tracker may write down is the config as :func:`dataio.credentials.redact_config`
leaves it (:func:`tracked_config`): like config.yaml, a tracking store must never hold a secret.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from dataio.atomic import atomic_write_bytes
from lingjie.extras import installed, require
from trainer.callbacks import Callback, TrainLoop, epoch_metrics
from trainer.run_dir import RunDir

# config keys shown as TensorBoard hparams (those present in the run's config): the knobs a
# sweep usually varies, so the HParams dashboard can compare runs by them
HPARAM_KEYS = ("experiment_name", "domain", "seed", "model.name", "trainer.backend", "trainer.epochs",
               "trainer.max_steps", "trainer.optimizer.dense.name", "trainer.optimizer.dense.lr",
               "trainer.optimizer.sparse.lr", "trainer.scheduler.name", "data.batch_size", "hardware.precision")


def tracked_config(root: Any) -> dict[str, Any]:
    """The run's config as a plain tree with every secret redacted (what trackers may log)."""
    from dataio.credentials import redact_config
    from lingjie.schema import to_plain

    plain = json.loads(json.dumps(to_plain(root), default=str))
    tree = redact_config(plain).tree
    return tree if isinstance(tree, dict) else {}


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and scalars are leaves (trackers take flat keys)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def final_metrics(loop: TrainLoop) -> dict[str, float]:
    """The last epoch's trackable metrics (empty before the first epoch ended)."""
    history = loop.progress.history
    return epoch_metrics(history[-1]) if history else {}


def open_summary_writer(log_dir: Path) -> Any:
    """A SummaryWriter through a public API: tensorboardX when installed (it imports no
    framework of its own, so a TF run gets it too), else torch.utils.tensorboard (the torch
    extras ship torch and tensorboard). Why not TensorBoard's own writer: it is private API."""
    log_dir.mkdir(parents=True, exist_ok=True)
    if installed("tensorboardX"):
        from tensorboardX import SummaryWriter
    else:
        from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(str(log_dir))


class TensorBoard(Callback):
    """Train loss and learning rate every ``trainer.log_every_n_steps``; every epoch's metrics;
    at the run's end the hparams (:data:`HPARAM_KEYS` of the config) with the final metrics,
    in ``<log_dir>/hparams`` (TensorBoard's HParams dashboard compares runs by them)."""

    def __init__(self, log_dir: Path, hparams: dict[str, Any] | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.hparams = hparams or {}
        self.writer: Any = None

    def on_fit_start(self, loop: TrainLoop) -> None:
        self.writer = open_summary_writer(self.log_dir)

    def on_train_step(self, loop: TrainLoop, loss: float) -> bool:
        step = loop.progress.global_step
        if self.writer is not None and step % loop.spec.log_every_n_steps == 0:
            self.writer.add_scalar("train/loss", loss, step)
            self.writer.add_scalar("train/lr", loop.engine.current_lr(), step)
        return False

    def on_epoch_end(self, loop: TrainLoop, metrics: dict[str, float]) -> None:
        if self.writer is None:
            return
        for k, v in epoch_metrics(metrics).items():
            self.writer.add_scalar(k, v, loop.progress.global_step)
        self.writer.flush()  # a killed run keeps its epochs

    def on_fit_end(self, loop: TrainLoop) -> None:
        if self.writer is not None:  # the writer stays open for the hparams at the run's end
            self.writer.flush()

    def on_run_end(self, loop: TrainLoop) -> None:
        final = final_metrics(loop)
        if self.writer is not None and self.hparams and final:
            self.writer.add_hparams(self.hparams, final, name="hparams", global_step=loop.progress.global_step)
        self._close()

    def on_run_failed(self, loop: TrainLoop, error: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def hparams_of(config: dict[str, Any]) -> dict[str, Any]:
    """The :data:`HPARAM_KEYS` of a flat config, as values TensorBoard's hparams accept."""
    return {k: (v if isinstance(v, (bool, int, float, str)) else json.dumps(v))
            for k, v in config.items() if k in HPARAM_KEYS}


class MetricsCsv(Callback):
    """``metrics.csv``: one row per epoch (epoch, step, then every metric in order of first
    appearance). The whole file is rewritten atomically from the loop's history each epoch:
    a killed run keeps every finished epoch, a resumed one its earlier rows (the history is
    part of the checkpoint), and a metric that first appears late still gets its column."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_epoch_end(self, loop: TrainLoop, metrics: dict[str, float]) -> None:
        atomic_write_bytes(self.path, history_csv(loop.progress.history).encode())


def history_csv(history: list[dict[str, Any]]) -> str:
    """The CSV text of the loop's history rows (epoch and step as integers, empty cells for
    metrics an epoch lacks)."""
    columns = ["epoch", "step"]
    for row in history:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: int(v) if k in ("epoch", "step") else v for k, v in row.items()})
    return buf.getvalue()


def require_trackers(root: Any) -> None:
    """Refuse (one line naming the pip command) a logger whose package is missing, before the
    run starts. TensorBoard needs tensorboardX, or torch (torch.utils.tensorboard)."""
    if root.logger.mlflow.enabled:
        require("mlflow", "mlflow", "logger.mlflow", "logger.mlflow.enabled")
    if root.logger.tensorboard and not installed("torch"):
        require("tensorboardX", root.trainer.backend, "logger.tensorboard", "logger.tensorboard")


def tracking_callbacks(root: Any, run: RunDir) -> list[Callback]:
    """The trackers ``root.logger`` turns on, in a fixed order: TensorBoard, CSV, MLflow."""
    callbacks: list[Callback] = []
    logger = root.logger
    config = flatten(tracked_config(root)) if (logger.tensorboard or logger.mlflow.enabled) else {}
    if logger.tensorboard:
        callbacks.append(TensorBoard(run.tensorboard, hparams_of(config)))
    if logger.csv:
        callbacks.append(MetricsCsv(run.root / "metrics.csv"))
    if logger.mlflow.enabled:
        from trainer.tracking_mlflow import MlflowTracker

        callbacks.append(MlflowTracker.from_config(root, run, config))
    return callbacks
