"""Per-task metrics from collected predictions, named the same way for every backend.

Keys: ``<split>/<task>/<metric>`` for every task, and for the first task also the short
``<split>/<metric>`` (so ``eval/auc`` names the main objective for early stopping and AutoML).
Binary tasks: auc, gauc (when group ids exist), logloss. Regression: mse, mae.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from trainer import metrics as M


class PredictionCollector:
    """Accumulates labels, predictions and group ids over batches (bounded by ``max_rows``)."""

    def __init__(self, task_names: Sequence[str], max_rows: int | None = None) -> None:
        self.task_names = list(task_names)
        self.max_rows = max_rows
        self.preds: dict[str, list[np.ndarray]] = {t: [] for t in self.task_names}
        self.labels: dict[str, list[np.ndarray]] = {t: [] for t in self.task_names}
        self.groups: list[np.ndarray] = []
        self.rows = 0

    def add(self, preds: dict[str, np.ndarray], labels: dict[str, np.ndarray], groups: np.ndarray | None) -> None:
        for t in self.task_names:
            self.preds[t].append(np.asarray(preds[t], dtype=np.float32).reshape(-1))
            self.labels[t].append(np.asarray(labels[t], dtype=np.float32).reshape(-1))
        if groups is not None:
            self.groups.append(np.asarray(groups))
        self.rows += len(next(iter(preds.values()))) if preds else 0
        if self.max_rows and self.rows > 2 * self.max_rows:
            self._trim()

    def _trim(self) -> None:
        """Keep the most recent ``max_rows`` rows (train metrics of a long epoch)."""
        def cut(parts: list[np.ndarray]) -> list[np.ndarray]:
            return [np.concatenate(parts)[-self.max_rows:]] if parts else parts
        for t in self.task_names:
            self.preds[t] = cut(self.preds[t])
            self.labels[t] = cut(self.labels[t])
        self.groups = cut(self.groups)
        self.rows = self.max_rows

    def arrays(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray | None]:
        cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.float32)  # noqa: E731
        preds = {t: cat(self.preds[t]) for t in self.task_names}
        labels = {t: cat(self.labels[t]) for t in self.task_names}
        groups = np.concatenate(self.groups) if self.groups else None
        return preds, labels, groups

    def state(self) -> dict:
        preds, labels, groups = self.arrays()
        return {"preds": preds, "labels": labels, "groups": groups}

    @classmethod
    def merged(cls, task_names: Sequence[str], states: list[dict]) -> "PredictionCollector":
        """One collector holding the rows of every state (e.g. gathered from all ranks)."""
        out = cls(task_names)
        for st in states:
            if st["preds"] and len(next(iter(st["preds"].values()))):
                out.add(st["preds"], st["labels"], st["groups"])
        return out

    def load_state(self, state: dict) -> None:
        self.preds = {t: [state["preds"][t]] for t in self.task_names}
        self.labels = {t: [state["labels"][t]] for t in self.task_names}
        self.groups = [state["groups"]] if state["groups"] is not None else []
        self.rows = len(next(iter(state["preds"].values()))) if state["preds"] else 0


def compute_metrics(split: str, task_types: dict[str, str], collector: PredictionCollector) -> dict[str, float]:
    """Metrics of every task; the first task's also under the short names."""
    preds, labels, groups = collector.arrays()
    out: dict[str, float] = {}
    for i, (task, kind) in enumerate(task_types.items()):
        y, p = labels[task], preds[task]
        if len(y) == 0:
            continue
        vals: dict[str, float] = {}
        if kind == "binary":
            vals["auc"] = M.auc(y, p)
            if groups is not None and len(groups) == len(y):
                vals["gauc"] = M.gauc(y, p, groups)
            vals["logloss"] = M.logloss(y, p)
        else:
            vals["mse"] = M.mse(y, p)
            vals["mae"] = M.mae(y, p)
        for name, v in vals.items():
            out[f"{split}/{task}/{name}"] = v
            if i == 0:
                out[f"{split}/{name}"] = v
    return out


class TaskMetrics:
    """How a domain collects predictions and turns them into metrics.

    The TrainLoop and :func:`trainer.loop.evaluate` only talk to this object, so a domain with
    other predictions (class scores, boxes, token tags) plugs in its own subclass. A collector
    needs ``add(preds, labels, groups)``, ``state()`` and ``load_state(state)``; this default
    one is the recommendation collector (binary: auc/gauc/logloss; regression: mse/mae).
    """

    train_metrics: bool = True  # False: skip metrics over the training predictions

    def __init__(self, task_types: dict[str, str]) -> None:
        self.task_types = dict(task_types)

    def collector(self, max_rows: int | None = None) -> PredictionCollector:
        return PredictionCollector(list(self.task_types), max_rows=max_rows)

    def merged(self, states: list[dict]) -> PredictionCollector:
        """One collector over the states of every rank."""
        return PredictionCollector.merged(list(self.task_types), states)

    def compute(self, split: str, collector: PredictionCollector) -> dict[str, float]:
        return compute_metrics(split, self.task_types, collector)

    def plot_inputs(self, collector: Any) -> list[Any]:
        """What :func:`trainer.plots.write_plots` draws of ``collector`` (the final evaluation):
        ROC / PR / calibration curves of every binary task, file names prefixed by the task's
        name when the model has several (``ctr_roc.png``). Regression tasks get none; a
        domain with other predictions overrides this (or returns [])."""
        from trainer.plots import BinaryCurves

        if not isinstance(collector, PredictionCollector):
            return []
        preds, labels, _ = collector.arrays()
        binary = [t for t, kind in self.task_types.items() if kind == "binary"]
        return [BinaryCurves(labels[t], preds[t], prefix=f"{t}_" if len(binary) > 1 else "", title=t)
                for t in binary]
