"""The backend-neutral train loop: epochs, evaluation, checkpoints, early stopping, resume.

Everything here is framework-free; the Engine (torch or tf) does the steps. Checkpoints hold
the loop's state (``meta``: data position, history, RNG of numpy/python, running train
predictions, config and feature state) next to the engine's own state.
"""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dataio.progress import progress
from lingjie.errors import ConfigError
from lingjie.faults import fault_point
from trainer.callbacks import Callback
from trainer.distributed import DistContext
from trainer.engine import Engine
from trainer.metric_report import TaskMetrics
from trainer.run_dir import RunDir
from trainer.schema.spec import TrainerSpec
from trainer.timing import StageClock, critical_path, format_report

log = logging.getLogger("lingjie.train")


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0  # 0-based epoch being trained
    batch_in_epoch: int = 0  # batches of that epoch already trained
    global_step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best: float | None = None
    bad_epochs: int = 0
    train_time: float = 0.0
    train_samples: int = 0
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0
    epoch_samples: int = 0
    epoch_time: float = 0.0
    stopped_early: bool = False


def evaluate(engine: Engine, loader: Any, task_types: dict[str, str], limit_batches: int | None = None,
             recall_k: list[int] | None = None, desc: str = "eval", show_progress: bool = True,
             total: int | None = None, dist: DistContext | None = None,
             metrics: TaskMetrics | None = None) -> dict[str, float]:
    """Metrics of the engine's model over the whole ``loader`` (one pass, no shuffling).

    Distributed: each rank scores its shard and the predictions are gathered, so the metrics
    are those of the whole eval set — the same numbers as a single-process evaluation.
    """
    return evaluate_predictions(engine, loader, task_types, limit_batches, recall_k, desc, show_progress,
                                total, dist, metrics)[0]


def evaluate_predictions(engine: Engine, loader: Any, task_types: dict[str, str], limit_batches: int | None = None,
                         recall_k: list[int] | None = None, desc: str = "eval", show_progress: bool = True,
                         total: int | None = None, dist: DistContext | None = None,
                         metrics: TaskMetrics | None = None) -> tuple[dict[str, float], Any]:
    """:func:`evaluate`'s metrics and the collector of the predictions they came from (every
    rank's rows when distributed): the end of a run draws its plots from the last one."""
    dist = dist or DistContext()
    metrics = metrics or TaskMetrics(task_types)
    collector = metrics.collector()
    loss_sum, loss_n = 0.0, 0
    recall: dict[int, list[float]] = {k: [] for k in (recall_k or [])} if engine.retrieval else {}
    if limit_batches is not None and total is not None:
        total = min(total, limit_batches)
    bar = progress(loader.epoch(0), desc=desc, total=total, enabled=show_progress)
    for i, (_, batch) in enumerate(bar):
        if limit_batches is not None and i >= limit_batches:
            break
        loss, preds, hits = engine.eval_step(batch, list(recall))
        fault_point("eval_step")
        loss_sum += loss * batch.size
        loss_n += batch.size
        collector.add({k: v for k, v in preds.items() if k in task_types}, batch.labels,
                      getattr(batch, "group_ids", None))
        for k, v in hits.items():
            if not math.isnan(v):
                recall[k].append(v)
    bar.close()
    if dist.distributed:
        gathered = dist.all_gather_object((collector.state(), loss_sum, loss_n, recall))
        collector = metrics.merged([g[0] for g in gathered])
        loss_sum, loss_n = sum(g[1] for g in gathered), sum(g[2] for g in gathered)
        recall = {k: [v for g in gathered for v in g[3].get(k, [])] for k in recall}
    out = metrics.compute("eval", collector)
    out["eval/loss"] = loss_sum / max(1, loss_n)
    for k, vals in recall.items():
        if vals:
            out[f"eval/recall@{k}"] = float(np.mean(vals))
    out["eval/rows"] = float(loss_n)
    return out, collector


class TrainLoop:
    """Trains one engine; rank 0 writes checkpoints and logs into the run directory."""

    def __init__(self, engine: Engine, spec: TrainerSpec, train_loader: Any,
                 eval_loader: Any, task_types: dict[str, str], run: RunDir,
                 steps_per_epoch: int | None, extra_meta: dict[str, Any], callbacks: list[Callback] | None = None,
                 recall_k: list[int] | None = None, eval_steps: int | None = None,
                 dist: DistContext | None = None, metrics: TaskMetrics | None = None) -> None:
        self.engine = engine
        self.metrics = metrics or TaskMetrics(task_types)  # the domain's collectors + metrics
        self.dist = dist or DistContext()
        self.spec = spec
        self.train_loader = train_loader
        self.eval_loader = eval_loader
        self.task_types = task_types
        self.run = run
        # rank 0 runs every callback; other ranks those marked all_ranks (trainer.callbacks)
        self.callbacks = [cb for cb in callbacks or [] if self.dist.is_main or cb.all_ranks]
        self.summary: dict[str, Any] = {}  # keys callbacks add to metrics.json (e.g. "pruned")
        self.extra_meta = extra_meta  # config + feature state: makes checkpoints self-contained
        self.recall_k = recall_k
        self.steps_per_epoch = steps_per_epoch
        self.eval_steps = eval_steps
        self.progress = Progress()
        self.train_collector = self._new_collector()
        self.last_eval: Any = None  # the last evaluation's predictions (trainer.plots), rank 0
        # stage timing of this process's steps (trainer.timing): the critical-path report
        self.clock: StageClock | None = None
        self._steps = 0
        self._wall_s = 0.0
        self._step_s = 0.0
        self._samples = 0
        self._wait_at_start = 0.0
        self.critical_path: dict[str, Any] | None = None
        self.first_step_s: float | None = None  # tracing / compilation: kept out of the stages

    def _new_collector(self) -> Any:
        return self.metrics.collector(max_rows=1_000_000)

    # ----- state -----
    def meta(self) -> dict[str, Any]:
        return {
            "progress": self.progress.__dict__.copy(),
            "train_collector": self.train_collector.state(),
            # numpy's dict form (the key array goes through trainer.checkpoint_io.to_safe); python's
            # tuple may come back as lists (meta.json of TF checkpoints): load_meta rebuilds it
            "rng": {"numpy": np.random.get_state(legacy=False), "python": random.getstate()},
            **self.extra_meta,
        }

    def load_meta(self, meta: dict[str, Any]) -> None:
        self.progress = Progress(**meta["progress"])
        self.train_collector.load_state(meta["train_collector"])
        np.random.set_state(meta["rng"]["numpy"])
        version, internal, gauss_next = meta["rng"]["python"]
        random.setstate((version, tuple(internal), gauss_next))

    def checkpoint(self, name: str) -> Path | None:
        """Rank 0 writes; other ranks hold the same state (DDP keeps replicas equal)."""
        if not self.dist.is_main:
            return None
        path = self.engine.save(self.run, name, self.meta())
        if name.startswith("step-"):
            prune_step_checkpoints(self.run, self.spec.checkpoint.keep_last)
        self._notify("on_checkpoint", path)
        return path

    def notify_run_end(self) -> None:
        """Tell the callbacks the run is complete (its export and DONE marker are written)."""
        self._notify("on_run_end")

    def notify_run_failed(self, error: BaseException) -> None:
        """Tell the callbacks the run raised ``error``; a callback's own error is logged, not
        raised, so that ``error`` is what the run reports."""
        for cb in self.callbacks:
            try:
                cb.on_run_failed(self, error)
            except Exception as exc:
                log.warning("callback %s failed in on_run_failed: %s", type(cb).__name__, exc)

    def _notify(self, hook: str, *args: Any) -> bool:
        """Call ``hook`` of every callback in order; True when any asked to end the epoch."""
        stop = False
        for cb in self.callbacks:
            stop = bool(getattr(cb, hook)(self, *args)) or stop
        return stop

    def resume_from(self, path: Path) -> None:
        self.load_meta(self.engine.restore(path))

    # ----- loop -----
    def fit(self) -> dict[str, float]:
        """Train until epochs / max_steps / early stopping; returns the last epoch's metrics."""
        p = self.progress
        self._start_timing()
        self._notify("on_fit_start")
        try:
            while p.epoch < self.spec.epochs and not p.stopped_early and not self._max_steps_reached():
                self._train_epoch()
                self.critical_path = self.timing_report()
                metrics = self._end_epoch()
                self._log_epoch(metrics)
                self._notify("on_epoch_end", metrics)
        finally:
            self._notify("on_fit_end")
        if self.critical_path is not None and self.dist.is_main:
            log.info("%s", format_report(self.critical_path))
        return p.history[-1] if p.history else {}

    def _start_timing(self) -> None:
        timing = getattr(self.spec, "timing", None)
        if timing is None or not timing.enabled:
            self.engine.stage_clock = None
            return
        self.clock = StageClock(self.engine.timing_sample_every(timing.sample_every), self.engine.timing_sync())
        self.engine.stage_clock = self.clock
        stats = self._loader_stats()
        self._wait_at_start = stats.wait_s if stats is not None else 0.0

    def _loader_stats(self) -> Any:
        """The train loader's timing counters (e.g. easyrec.loader's LoaderStats), if it keeps them;
        a domain's loader may keep other counters under ``stats`` (e.g. token counts)."""
        stats = getattr(self.train_loader, "stats", None)
        return stats if hasattr(stats, "wait_s") and hasattr(stats, "as_dict") else None

    def timing_report(self) -> dict[str, Any] | None:
        """The critical-path report of this process's steps so far (None: timing is off)."""
        if self.clock is None or not self._steps:
            return None
        stats = self._loader_stats()
        loader = stats.as_dict() if stats is not None else None
        wait = (stats.wait_s - self._wait_at_start) if stats is not None else 0.0
        report = critical_path(steps=self._steps, wall_s=self._wall_s, step_s=self._step_s, wait_s=wait,
                               clock=self.clock, loader_stats=loader)
        if self._wall_s > 0:
            report["samples_per_sec"] = round(self._samples / self._wall_s, 1)
        report["first_step_s"] = None if self.first_step_s is None else round(self.first_step_s, 4)
        return report

    def _max_steps_reached(self) -> bool:
        return self.spec.max_steps is not None and self.progress.global_step >= self.spec.max_steps

    def _train_epoch(self) -> None:
        spec, p = self.spec, self.progress
        bar = progress(self.train_loader.epoch(p.epoch, skip_batches=p.batch_in_epoch),
                       desc=f"epoch {p.epoch + 1}/{spec.epochs}", total=self.steps_per_epoch,
                       initial=p.batch_in_epoch, enabled=spec.progress_bar)
        t0 = time.perf_counter()
        with self.engine.epoch_context():
            self._run_batches(bar, t0)
        bar.close()

    def _run_batches(self, bar: Any, t0: float) -> None:
        spec, p = self.spec, self.progress
        for _, batch in bar:
            t_step = time.perf_counter()
            first = self.clock is not None and self.first_step_s is None
            if first:  # the run's first step traces / compiles: reported apart, not in the stages
                self.engine.stage_clock = None
            loss, preds = self.engine.train_step(batch)
            if first:
                self.engine.stage_clock = self.clock
                self.first_step_s = time.perf_counter() - t_step
                stats = self._loader_stats()
                self._wait_at_start = stats.wait_s if stats is not None else 0.0
            else:
                self._step_s += time.perf_counter() - t_step
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss} at step {p.global_step}; lower trainer.optimizer.*.lr "
                    "or set trainer.grad_clip_norm")
            p.global_step += 1
            p.batch_in_epoch += 1
            p.epoch_loss_sum += loss * batch.size
            p.epoch_loss_count += batch.size
            p.epoch_samples += batch.size
            p.train_samples += batch.size
            self.train_collector.add({k: v for k, v in preds.items() if k in self.task_types}, batch.labels,
                                     getattr(batch, "group_ids", None))
            now = time.perf_counter()
            p.epoch_time += now - t0
            p.train_time += now - t0
            if not first:
                self._wall_s += now - t0
                self._steps += 1
                self._samples += batch.size
            t0 = now
            if p.global_step % spec.log_every_n_steps == 0:
                bar.set_postfix(loss=f"{p.epoch_loss_sum / max(1, p.epoch_loss_count):.4f}")
            every = spec.checkpoint.every_n_steps
            if every and p.global_step % every == 0:
                self.checkpoint(f"step-{p.global_step:08d}")
            fault_point("train_step")
            if self._notify("on_train_step", loss) or self._max_steps_reached():
                break

    def _end_epoch(self) -> dict[str, float]:
        p = self.progress
        metrics: dict[str, float] = {"epoch": float(p.epoch + 1), "step": float(p.global_step)}
        loss_sum, loss_count, samples = p.epoch_loss_sum, p.epoch_loss_count, p.epoch_samples
        collector = self.train_collector
        if self.dist.distributed:  # metrics over every rank's rows; all ranks compute the same numbers
            gathered = self.dist.all_gather_object((collector.state(), loss_sum, loss_count, samples))
            collector = self.metrics.merged([g[0] for g in gathered])
            loss_sum = sum(g[1] for g in gathered)
            loss_count = sum(g[2] for g in gathered)
            samples = sum(g[3] for g in gathered)
        metrics["train/loss"] = loss_sum / max(1, loss_count)
        if not self.engine.retrieval and self.metrics.train_metrics:
            metrics.update(self.metrics.compute("train", collector))
        metrics["train/samples_per_sec"] = samples / p.epoch_time if p.epoch_time > 0 else 0.0
        metrics["train/epoch_seconds"] = p.epoch_time
        if self.eval_loader is not None:
            t = time.perf_counter()
            evaluated, collector = evaluate_predictions(
                self.engine, self.eval_loader, self.task_types, self.spec.limit_eval_batches, self.recall_k,
                show_progress=self.spec.progress_bar and self.dist.is_main, total=self.eval_steps, dist=self.dist,
                metrics=self.metrics)
            metrics.update(evaluated)
            # the plots of the run's end (trainer.plots) draw the last evaluation's predictions
            keep = getattr(self.spec, "plots", False) and self.dist.is_main and not self.engine.retrieval
            self.last_eval = collector if keep else None
            metrics["eval/seconds"] = time.perf_counter() - t
        p.history.append(metrics)
        improved = self._early_stopping(metrics)
        # the epoch is closed: reset per-epoch counters before checkpointing
        p.epoch += 1
        p.batch_in_epoch = 0
        p.epoch_loss_sum, p.epoch_loss_count, p.epoch_samples, p.epoch_time = 0.0, 0, 0, 0.0
        self.train_collector = self._new_collector()
        self.checkpoint(f"epoch-{p.epoch:04d}")
        if improved and self.dist.is_main:
            self._notify("on_checkpoint", self.engine.save(self.run, "best", self.meta()))
        return metrics

    def _early_stopping(self, metrics: dict[str, float]) -> bool:
        es, p = self.spec.early_stopping, self.progress
        if not es.metric:
            return False
        if es.metric not in metrics:
            available = sorted(k for k in metrics if "/" in k)
            raise ConfigError("trainer.early_stopping.metric", f"'{es.metric}' is not a computed metric; "
                              f"available: {', '.join(available)}")
        value = metrics[es.metric]
        if math.isnan(value):
            return False
        if es.mode == "max":
            better = p.best is None or value > p.best + es.min_delta
        else:
            better = p.best is None or value < p.best - es.min_delta
        if better:
            p.best, p.bad_epochs = value, 0
            return True
        p.bad_epochs += 1
        if p.bad_epochs >= es.patience:
            log.info("early stopping: %s did not improve for %d epoch(s) (best %.5f)", es.metric, p.bad_epochs, p.best)
            p.stopped_early = True
        return False

    def _log_epoch(self, metrics: dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        log.info("epoch %d: %s", int(metrics["epoch"]), format_metrics(metrics))


def format_metrics(metrics: dict[str, Any]) -> str:
    """The headline metrics of an epoch on one line (per-task duplicates and timings hidden)."""
    hidden = ("epoch_seconds", "rows", "seconds", "eval/loss")
    return "  ".join(f"{k}={v:.1f}" if k.endswith("per_sec") else f"{k}={v:.4f}" for k, v in metrics.items()
                     if isinstance(v, float) and k.count("/") == 1 and not k.endswith(hidden))


def prune_step_checkpoints(run: RunDir, keep_last: int) -> None:
    """Keep the newest ``keep_last`` step checkpoints (names sort by step)."""
    steps = sorted(p for p in run.checkpoints.iterdir() if p.name.startswith("step-"))
    for old in steps[:-keep_last]:
        _remove(old)


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
