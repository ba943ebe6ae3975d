"""NLP metrics: accuracy / macro-F1 (and AUC for two classes) of class predictions; token
accuracy and entity-level precision / recall / F1 of BIO tag sequences (CoNLL-style exact
span match, a stray I- tag opens a span as conlleval does).

Keys follow the shared convention ``<split>/<task>/<metric>`` plus the short
``<split>/<metric>`` (e.g. ``eval/accuracy``, ``eval/f1``) that early stopping and the
Optuna sweeper name.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trainer.metric_report import TaskMetrics


class ClassCollector:
    """Class probabilities [N, C] and label ids [N] over batches (bounded by ``max_rows``)."""

    def __init__(self, task: str, max_rows: int | None = None) -> None:
        self.task = task
        self.max_rows = max_rows
        self.probs: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.rows = 0

    def add(self, preds: dict[str, Any], labels: dict[str, Any], groups: Any = None) -> None:
        p = np.asarray(preds[self.task], dtype=np.float32)
        self.probs.append(p.reshape(len(p), -1))
        self.labels.append(np.asarray(labels[self.task], dtype=np.int64).reshape(-1))
        self.rows += len(p)
        if self.max_rows and self.rows > 2 * self.max_rows:
            self.probs = [np.concatenate(self.probs)[-self.max_rows:]]
            self.labels = [np.concatenate(self.labels)[-self.max_rows:]]
            self.rows = self.max_rows

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.probs:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
        return np.concatenate(self.probs), np.concatenate(self.labels)

    def state(self) -> dict:
        probs, labels = self.arrays()
        return {"probs": probs, "labels": labels}

    def load_state(self, state: dict) -> None:
        self.probs = [state["probs"]] if len(state["probs"]) else []
        self.labels = [state["labels"]] if len(state["labels"]) else []
        self.rows = len(state["labels"])


class TagCollector:
    """Predicted and gold tag-id sequences (one array per row)."""

    def __init__(self, task: str, max_rows: int | None = None) -> None:
        self.task = task
        self.max_rows = max_rows
        self.pred: list[np.ndarray] = []
        self.gold: list[np.ndarray] = []

    def add(self, preds: dict[str, Any], labels: dict[str, Any], groups: Any = None) -> None:
        for p, g in zip(preds[self.task], labels[self.task]):
            self.pred.append(np.asarray(p, dtype=np.int64))
            self.gold.append(np.asarray(g, dtype=np.int64))
        if self.max_rows and len(self.pred) > 2 * self.max_rows:
            self.pred, self.gold = self.pred[-self.max_rows:], self.gold[-self.max_rows:]

    def state(self) -> dict:
        return {"pred": list(self.pred), "gold": list(self.gold)}

    def load_state(self, state: dict) -> None:
        self.pred, self.gold = list(state["pred"]), list(state["gold"])


def accuracy(labels: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(labels == pred)) if len(labels) else float("nan")


def macro_f1(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> float:
    """Mean over classes present in labels or predictions of per-class F1."""
    scores = []
    for c in range(num_classes):
        tp = int(np.sum((pred == c) & (labels == c)))
        fp = int(np.sum((pred == c) & (labels != c)))
        fn = int(np.sum((pred != c) & (labels == c)))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else float("nan")


def spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Entity spans (type, start, end exclusive) of a BIO/IOB2 sequence."""
    out = set()
    kind, start = None, 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, label = tag.partition("-") if tag != "O" else ("O", "", "")
        opens = prefix == "B" or (prefix == "I" and label != kind) or (prefix not in ("B", "I", "O"))
        if kind is not None and (prefix == "O" or opens):
            out.add((kind, start, i))
            kind = None
        if prefix != "O" and (opens or kind is None):
            kind, start = (label or tag), i
    return out


def entity_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Micro precision / recall / F1 over exact entity spans."""
    tp = n_pred = n_gold = 0
    for g, p in zip(gold, pred):
        gs, ps = spans(g), spans(p)
        tp += len(gs & ps)
        n_pred += len(ps)
        n_gold += len(gs)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def binary_auc(labels: np.ndarray, score: np.ndarray) -> float:
    from trainer import metrics as M

    return M.auc(labels.astype(np.float32), score.astype(np.float32))


class NLPMetrics(TaskMetrics):
    """The domain's collectors and metrics (``task_types`` values: multiclass | token)."""

    def __init__(self, task_types: dict[str, str], label_names: dict[str, list[str]]) -> None:
        super().__init__(task_types)
        self.label_names = label_names
        (self.task, self.kind), = task_types.items()

    def collector(self, max_rows: int | None = None) -> Any:
        if self.kind == "token":
            return TagCollector(self.task, max_rows)
        return ClassCollector(self.task, max_rows)

    def merged(self, states: list[dict]) -> Any:
        out = self.collector()
        if self.kind == "token":
            for st in states:
                out.pred.extend(st["pred"])
                out.gold.extend(st["gold"])
        else:
            parts = [st for st in states if len(st["labels"])]
            if parts:
                out.load_state({"probs": np.concatenate([p["probs"] for p in parts]),
                                "labels": np.concatenate([p["labels"] for p in parts])})
        return out

    def compute(self, split: str, collector: Any) -> dict[str, float]:
        names = self.label_names[self.task]
        vals: dict[str, float] = {}
        if self.kind == "token":
            if not collector.gold:
                return {}
            gold = np.concatenate(collector.gold)
            pred = np.concatenate(collector.pred)
            vals["accuracy"] = accuracy(gold, pred)
            vals.update(entity_scores([[names[t] for t in g] for g in collector.gold],
                                      [[names[t] for t in p] for p in collector.pred]))
        else:
            probs, labels = collector.arrays()
            if not len(labels):
                return {}
            pred = probs.argmax(1)
            vals["accuracy"] = accuracy(labels, pred)
            vals["f1"] = macro_f1(labels, pred, len(names))
            if len(names) == 2 and len(np.unique(labels)) == 2:
                vals["auc"] = binary_auc(labels, probs[:, 1])
        out = {}
        for name, v in vals.items():
            out[f"{split}/{self.task}/{name}"] = float(v)
            out[f"{split}/{name}"] = float(v)
        return out

    def plot_inputs(self, collector: Any) -> list[Any]:
        """Sentence classifiers: the confusion matrix, and with two classes also the ROC / PR /
        calibration curves of P(second class). Token taggers: none (per-tag confusion of BIO
        tags says little next to the entity scores)."""
        from trainer.plots import BinaryCurves, Confusion

        if self.kind == "token":
            return []
        probs, labels = collector.arrays()
        if not len(labels):
            return []
        names = self.label_names[self.task]
        out: list[Any] = [Confusion(labels, probs.argmax(1), names, title=self.task)]
        if len(names) == 2 and probs.shape[1] == 2:
            out.append(BinaryCurves((labels == 1).astype(np.float32), probs[:, 1], title=self.task))
        return out
