"""COCO box mAP, written here and checked against hand-computed cases (tests/easycv/test_metrics.py).

Follows pycocotools' ``COCOeval`` for bounding boxes with area range "all" and
``maxDets=100``: per image and class, detections sorted by score (stable) and cut to
``max_dets``; at each IoU threshold 0.50:0.05:0.95 every detection, best score first, takes
the unmatched ground truth it overlaps most (IoU >= threshold); per class, all images'
detections are ranked by score, precision is made monotone (the maximum to its right) and
read at 101 recall points 0, 0.01, ..., 1 (0 past the highest recall reached). AP averages
those 101 values; mAP averages over classes that have ground truth (and IoU thresholds).
Crowd boxes are not modelled (the data readers drop them).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a`` [N, 4] with ``b`` [M, 4] (x1 y1 x2 y2)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def _match(det: np.ndarray, gt: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """[T, D] bool: detection d (sorted by score) is a true positive at threshold t."""
    ious = iou_matrix(det, gt)
    tp = np.zeros((len(thresholds), len(det)), bool)
    for t, thr in enumerate(thresholds):
        taken = np.zeros(len(gt), bool)
        for d in range(len(det)):  # greedy, best score first
            best, best_iou = -1, min(thr, 1 - 1e-10)
            for g in range(len(gt)):
                if taken[g] or ious[d, g] < best_iou:
                    continue
                best, best_iou = g, ious[d, g]
            if best >= 0:
                taken[best] = True
                tp[t, d] = True
    return tp


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """101-point interpolated AP of ranked detections (``tp``: one threshold's matches)."""
    if num_gt == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    tp = tp[order]
    tps = np.cumsum(tp)
    fps = np.cumsum(~tp)
    recall = tps / num_gt
    precision = tps / np.maximum(tps + fps, np.finfo(np.float64).eps)
    precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    q = np.zeros(len(RECALL_POINTS))
    valid = idx < len(precision)
    q[valid] = precision[idx[valid]]
    return float(q.mean())


def coco_map(detections: Sequence[np.ndarray], ground_truth: Sequence[np.ndarray], num_classes: int,
             max_dets: int = 100) -> dict[str, float]:
    """mAP over images.

    ``detections[i]``: [k, 6] (x1, y1, x2, y2, score, class) of image i;
    ``ground_truth[i]``: [n, 5] (class, x1, y1, x2, y2). Returns ``map`` (IoU .50:.95),
    ``map50``, ``map75`` and ``ap_per_class`` (IoU .50:.95, NaN for classes without ground truth).
    """
    per_class_scores: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    per_class_tp: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    num_gt = np.zeros(num_classes, np.int64)
    for det, gt in zip(detections, ground_truth):
        det = np.asarray(det, np.float64).reshape(-1, 6)
        gt = np.asarray(gt, np.float64).reshape(-1, 5)
        for c in range(num_classes):
            g = gt[gt[:, 0] == c, 1:]
            num_gt[c] += len(g)
            d = det[det[:, 5] == c]
            if not len(d):
                continue
            d = d[np.argsort(-d[:, 4], kind="mergesort")][:max_dets]
            per_class_scores[c].append(d[:, 4])
            per_class_tp[c].append(_match(d[:, :4], g, IOU_THRESHOLDS))
    ap = np.full((len(IOU_THRESHOLDS), num_classes), np.nan)
    for c in range(num_classes):
        if num_gt[c] == 0:
            continue
        if not per_class_scores[c]:
            ap[:, c] = 0.0
            continue
        scores = np.concatenate(per_class_scores[c])
        tp = np.concatenate(per_class_tp[c], axis=1)
        for t in range(len(IOU_THRESHOLDS)):
            ap[t, c] = average_precision(scores, tp[t], int(num_gt[c]))
    has_gt = num_gt > 0
    if not has_gt.any():
        return {"map": float("nan"), "map50": float("nan"), "map75": float("nan"), "ap_per_class": []}
    return {"map": float(np.mean(ap[:, has_gt])), "map50": float(np.mean(ap[0, has_gt])),
            "map75": float(np.mean(ap[5, has_gt])), "ap_per_class": [float(v) for v in np.mean(ap, 0)]}
