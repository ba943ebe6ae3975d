"""easycv's metrics for the shared TrainLoop: top-1/top-5 accuracy and COCO box mAP.

Both plug into :class:`trainer.metric_report.TaskMetrics`: collectors hold what the metric
needs (top-k class indices; per-image detections and ground truth), their states gather
across ranks, and keys are ``<split>/<metric>`` (``eval/top1``, ``eval/top5``, ``eval/map``,
``eval/map50``, ``eval/map75``, ``eval/map_small`` ... ``eval/mar_100``: see
:data:`easycv.coco_eval.SUMMARY_KEYS`), so ``trainer.early_stopping.metric`` and the sweeper's
``optimize_metric`` name them directly. The COCO evaluator that ran (faster-coco-eval,
pycocotools or ours) is logged once per process, when it is first used or changes.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from easycv.coco_eval import SUMMARY_KEYS, coco_map
from trainer.metric_report import TaskMetrics

TOPK = 5
log = logging.getLogger("lingjie.easycv")


class TopKCollector:
    """The top-5 predicted classes and the label of every row."""

    def __init__(self, max_rows: int | None = None) -> None:
        self.max_rows = max_rows
        self.topk: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []

    def add(self, preds: dict[str, Any], labels: dict[str, Any], groups: Any = None) -> None:
        if "label" not in preds:
            return
        probs = np.asarray(preds["label"], np.float32)
        k = min(TOPK, probs.shape[1])
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        self.topk.append(top.astype(np.int64))
        self.labels.append(np.asarray(labels["label"], np.int64).reshape(-1))
        if self.max_rows and sum(len(t) for t in self.topk) > 2 * self.max_rows:
            self.topk = [np.concatenate(self.topk)[-self.max_rows:]]
            self.labels = [np.concatenate(self.labels)[-self.max_rows:]]

    def state(self) -> dict[str, Any]:
        if not self.topk:
            return {"topk": np.zeros((0, 1), np.int64), "labels": np.zeros(0, np.int64)}
        return {"topk": np.concatenate(self.topk), "labels": np.concatenate(self.labels)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.topk = [state["topk"]] if len(state["labels"]) else []
        self.labels = [state["labels"]] if len(state["labels"]) else []


class ClassificationMetrics(TaskMetrics):
    """top1 / top5 accuracy (top5 is top-k with k = min(5, classes))."""

    def __init__(self, task_types: dict[str, str], class_names: list[str] | None = None) -> None:
        super().__init__(task_types)
        self.class_names = list(class_names or [])

    def plot_inputs(self, collector: TopKCollector) -> list[Any]:
        """The confusion matrix of the top-1 class (trainer.plots)."""
        from trainer.plots import Confusion

        st = collector.state()
        if not len(st["labels"]):
            return []
        return [Confusion(st["labels"], st["topk"][:, 0], self.class_names)]

    def collector(self, max_rows: int | None = None) -> TopKCollector:
        return TopKCollector(max_rows)

    def merged(self, states: list[dict]) -> TopKCollector:
        out = TopKCollector()
        for st in states:
            if len(st["labels"]):
                out.topk.append(st["topk"])
                out.labels.append(st["labels"])
        return out

    def compute(self, split: str, collector: TopKCollector) -> dict[str, float]:
        st = collector.state()
        if not len(st["labels"]):
            return {}
        hit = st["topk"] == st["labels"][:, None]
        return {f"{split}/top1": float(hit[:, 0].mean()), f"{split}/top5": float(hit.any(1).mean())}


class DetectionCollector:
    """Per-image detections [k, 6] and ground truth [n, 5]."""

    def __init__(self, max_rows: int | None = None) -> None:
        self.dets: list[np.ndarray] = []
        self.gts: list[np.ndarray] = []

    def add(self, preds: dict[str, Any], labels: dict[str, Any], groups: Any = None) -> None:
        if "boxes" not in preds:  # training steps: no detections (see YOLOX.predict)
            return
        self.dets.extend(np.asarray(d, np.float32).reshape(-1, 6) for d in preds["boxes"])
        self.gts.extend(np.asarray(g, np.float32).reshape(-1, 5) for g in labels["boxes"])

    def state(self) -> dict[str, Any]:
        return {"dets": list(self.dets), "gts": list(self.gts)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.dets, self.gts = list(state["dets"]), list(state["gts"])


class DetectionMetrics(TaskMetrics):
    """COCO box metrics: mAP@[.5:.95] (``map``), mAP@.5 (``map50``), mAP@.75 (``map75``), AP
    per size (``map_small`` / ``_medium`` / ``_large``) and AR (``mar_1`` / ``_10`` / ``_100``,
    ``mar_small`` / ...). A size key is left out while no ground truth has that size (COCO
    prints -1 there; a missing key cannot be mistaken for a score)."""

    train_metrics = False

    def __init__(self, task_types: dict[str, str], num_classes: int) -> None:
        super().__init__(task_types)
        self.num_classes = num_classes
        self.evaluator = ""  # the last COCO evaluator logged

    def collector(self, max_rows: int | None = None) -> DetectionCollector:
        return DetectionCollector(max_rows)

    def merged(self, states: list[dict]) -> DetectionCollector:
        out = DetectionCollector()
        for st in states:
            out.dets.extend(st["dets"])
            out.gts.extend(st["gts"])
        return out

    def compute(self, split: str, collector: DetectionCollector) -> dict[str, float]:
        if not collector.gts:
            return {}
        m = coco_map(collector.dets, collector.gts, self.num_classes)
        if m["evaluator"] != self.evaluator:
            log.info("COCO box metrics computed by %s", m["evaluator"])
            self.evaluator = m["evaluator"]
        return {f"{split}/{k}": m[k] for k in SUMMARY_KEYS if not math.isnan(m[k])}
