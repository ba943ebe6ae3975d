"""The torch train loop: steps, per-epoch evaluation, checkpoints, early stopping, resume."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trainer.errors import ConfigError
from trainer.loader import BatchLoader
from trainer.metric_report import PredictionCollector, compute_metrics
from trainer.progress import progress
from trainer.run_dir import RunDir
from trainer.schema.spec import TrainerSpec
from trainer.torch_backend.checkpoint import rng_state, save_checkpoint, set_rng_state
from trainer.torch_backend.optim import make_optimizer, make_scheduler
from trainer.torch_backend.tensors import to_inputs, to_labels

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


def evaluate(model: torch.nn.Module, loader: BatchLoader, task_types: dict[str, str], device: torch.device,
             limit_batches: int | None = None, recall_k: list[int] | None = None, desc: str = "eval",
             show_progress: bool = True, total: int | None = None) -> dict[str, float]:
    """Metrics of ``model`` over the whole ``loader`` (one pass, no shuffling)."""
    model.eval()
    collector = PredictionCollector(list(task_types))
    loss_sum, loss_n = 0.0, 0
    recall_hits: dict[int, list[float]] = {k: [] for k in (recall_k or [])}
    retrieval = bool(getattr(model, "retrieval", False))
    with torch.no_grad():
        if limit_batches is not None and total is not None:
            total = min(total, limit_batches)
        bar = progress(loader.epoch(0), desc=desc, total=total, enabled=show_progress)
        for i, (_, batch) in enumerate(bar):
            if limit_batches is not None and i >= limit_batches:
                break
            outputs = model(to_inputs(batch, device))
            labels = to_labels(batch, device)
            loss_sum += float(model.loss(outputs, labels)) * batch.size
            loss_n += batch.size
            preds = {k: v.float().cpu().numpy() for k, v in model.predict(outputs).items() if k in task_types}
            collector.add(preds, batch.labels, batch.group_ids)
            if retrieval and recall_hits:
                from easyrec.models.torch.retrieval import in_batch_recall_at_k

                first = next(iter(task_types))
                pos = labels[first] > 0.5
                if int(pos.sum()) > 1:
                    for k in recall_hits:
                        recall_hits[k].append(
                            in_batch_recall_at_k(outputs["user_emb"][pos], outputs["item_emb"][pos], k))
    model.train()
    out = compute_metrics("eval", task_types, collector)
    out["eval/loss"] = loss_sum / max(1, loss_n)
    for k, vals in recall_hits.items():
        if vals:
            out[f"eval/recall@{k}"] = float(np.mean(vals))
    out["eval/rows"] = float(loss_n)
    return out


class TorchTrainer:
    """Trains one easyrec model; rank 0 writes checkpoints and logs into the run directory."""

    def __init__(self, model: torch.nn.Module, spec: TrainerSpec, train_loader: BatchLoader,
                 eval_loader: BatchLoader | None, task_types: dict[str, str], run: RunDir,
                 device: torch.device, steps_per_epoch: int | None, extra_state: dict[str, Any],
                 writer: Any = None, recall_k: list[int] | None = None,
                 eval_steps: int | None = None) -> None:
        self.model = model
        self.spec = spec
        self.train_loader = train_loader
        self.eval_loader = eval_loader
        self.task_types = task_types
        self.run = run
        self.device = device
        self.writer = writer
        self.extra_state = extra_state  # config + feature state: makes checkpoints self-contained
        self.recall_k = recall_k
        self.steps_per_epoch = steps_per_epoch
        self.eval_steps = eval_steps
        total = spec.max_steps or (steps_per_epoch or 1000) * spec.epochs
        self.total_steps = total
        self.optimizers = [o for o in (
            make_optimizer(model.sparse_parameters(), spec.optimizer.sparse,
                           bool(getattr(getattr(model, "cfg", None), "sparse_grad", False))),
            make_optimizer(model.dense_parameters(), spec.optimizer.dense),
        ) if o is not None]
        self.schedulers = [make_scheduler(o, spec.scheduler, total) for o in self.optimizers]
        self.progress = Progress()
        self.train_collector = PredictionCollector(list(task_types), max_rows=1_000_000)
        self.on_epoch_end: Any = None  # called after each epoch's checkpoint (writes metrics.json)

    # ----- state -----
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "rng": rng_state(),
            "progress": self.progress.__dict__.copy(),
            "train_collector": self.train_collector.state(),
            **self.extra_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        for o, s in zip(self.optimizers, state["optimizers"]):
            o.load_state_dict(s)
        for sch, s in zip(self.schedulers, state["schedulers"]):
            sch.load_state_dict(s)
        set_rng_state(state["rng"])
        self.progress = Progress(**state["progress"])
        self.train_collector.load_state(state["train_collector"])

    def checkpoint(self, name: str) -> None:
        save_checkpoint(self.run, name, self.state_dict(), keep_last=self.spec.checkpoint.keep_last)

    # ----- loop -----
    def _step(self, batch) -> tuple[float, dict[str, torch.Tensor]]:
        inputs = to_inputs(batch, self.device)
        labels = to_labels(batch, self.device)
        outputs = self.model(inputs)
        loss = self.model.loss(outputs, labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss became {float(loss)} at step {self.progress.global_step}; lower trainer.optimizer.*.lr "
                "or set trainer.grad_clip_norm")
        for o in self.optimizers:
            o.zero_grad(set_to_none=True)
        loss.backward()
        if self.spec.grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.spec.grad_clip_norm)
        for o in self.optimizers:
            o.step()
        for s in self.schedulers:
            s.step()
        return loss.item(), outputs

    def fit(self) -> dict[str, float]:
        """Train until epochs / max_steps / early stopping; returns the last epoch's metrics."""
        spec, p = self.spec, self.progress
        self.model.train()
        while p.epoch < spec.epochs and not p.stopped_early and not self._max_steps_reached():
            self._train_epoch()
            metrics = self._end_epoch()
            self._log_epoch(metrics)
            if self.on_epoch_end is not None:
                self.on_epoch_end()
        return p.history[-1] if p.history else {}

    def _max_steps_reached(self) -> bool:
        return self.spec.max_steps is not None and self.progress.global_step >= self.spec.max_steps

    def _train_epoch(self) -> None:
        spec, p = self.spec, self.progress
        total = self.steps_per_epoch
        bar = progress(self.train_loader.epoch(p.epoch, skip_batches=p.batch_in_epoch),
                       desc=f"epoch {p.epoch + 1}/{spec.epochs}", total=total, initial=p.batch_in_epoch,
                       enabled=spec.progress_bar)
        t0 = time.perf_counter()
        for _, batch in bar:
            loss, outputs = self._step(batch)
            p.global_step += 1
            p.batch_in_epoch += 1
            p.epoch_loss_sum += loss * batch.size
            p.epoch_loss_count += batch.size
            p.epoch_samples += batch.size
            p.train_samples += batch.size
            with torch.no_grad():
                preds = {k: v.float().cpu().numpy() for k, v in self.model.predict(outputs).items()
                         if k in self.task_types}
            self.train_collector.add(preds, batch.labels, batch.group_ids)
            now = time.perf_counter()
            p.epoch_time += now - t0
            p.train_time += now - t0
            t0 = now
            if p.global_step % spec.log_every_n_steps == 0:
                bar.set_postfix(loss=f"{p.epoch_loss_sum / max(1, p.epoch_loss_count):.4f}")
                if self.writer is not None:
                    self.writer.add_scalar("train/loss", loss, p.global_step)
                    self.writer.add_scalar("train/lr", self.optimizers[-1].param_groups[0]["lr"], p.global_step)
            every = spec.checkpoint.every_n_steps
            if every and p.global_step % every == 0:
                self.checkpoint(f"step-{p.global_step:08d}")
            if self._max_steps_reached():
                break
        bar.close()

    def _end_epoch(self) -> dict[str, float]:
        p = self.progress
        metrics: dict[str, float] = {"epoch": float(p.epoch + 1), "step": float(p.global_step)}
        metrics["train/loss"] = p.epoch_loss_sum / max(1, p.epoch_loss_count)
        if not getattr(self.model, "retrieval", False):
            metrics.update(compute_metrics("train", self.task_types, self.train_collector))
        metrics["train/samples_per_sec"] = p.epoch_samples / p.epoch_time if p.epoch_time > 0 else 0.0
        metrics["train/epoch_seconds"] = p.epoch_time
        if self.eval_loader is not None:
            t = time.perf_counter()
            metrics.update(evaluate(self.model, self.eval_loader, self.task_types, self.device,
                                    self.spec.limit_eval_batches, self.recall_k,
                                    show_progress=self.spec.progress_bar, total=self.eval_steps))
            metrics["eval/seconds"] = time.perf_counter() - t
        p.history.append(metrics)
        improved = self._early_stopping(metrics)
        # the epoch is closed: reset per-epoch counters before checkpointing
        p.epoch += 1
        p.batch_in_epoch = 0
        p.epoch_loss_sum, p.epoch_loss_count, p.epoch_samples, p.epoch_time = 0.0, 0, 0, 0.0
        self.train_collector = PredictionCollector(list(self.task_types), max_rows=1_000_000)
        self.checkpoint(f"epoch-{p.epoch:04d}")
        if improved:
            save_checkpoint(self.run, "best", self.state_dict())
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
        better = p.best is None or (value > p.best + es.min_delta if es.mode == "max" else value < p.best - es.min_delta)
        if better:
            p.best, p.bad_epochs = value, 0
            return True
        p.bad_epochs += 1
        if p.bad_epochs >= es.patience:
            log.info("early stopping: %s did not improve for %d epoch(s) (best %.5f)", es.metric, p.bad_epochs, p.best)
            p.stopped_early = True
        return False

    def _log_epoch(self, metrics: dict[str, float]) -> None:
        hidden = ("epoch_seconds", "rows", "seconds", "eval/loss")
        shown = {k: v for k, v in metrics.items() if k.count("/") == 1 and not k.endswith(hidden)}
        log.info("epoch %d: %s", int(metrics["epoch"]),
                 "  ".join(f"{k}={v:.1f}" if k.endswith("per_sec") else f"{k}={v:.4f}" for k, v in shown.items()))
        if self.writer is not None:
            for k, v in metrics.items():
                if "/" in k and isinstance(v, float) and not math.isnan(v):
                    self.writer.add_scalar(k, v, self.progress.global_step)
            self.writer.flush()
