"""COCO box metrics: through faster-coco-eval / pycocotools when installed, else our own code.

:func:`coco_map` picks the evaluator by itself (no knob: the numbers are the same definition
either way, see tests/easycv/test_coco_agreement.py) and says which one ran in its result
(``evaluator``). Every path yields COCOeval's accumulated arrays — ``precision`` [T, R, K, A]
at 100 detections per image and ``recall`` [T, K, A, M], -1 where class k has no ground truth
in area range a — and :func:`summarize` turns them into COCO's 12 summary numbers.

Our implementation (:func:`own_eval`) follows pycocotools' ``COCOeval`` for bounding boxes
step by step, so it agrees with the libraries to rounding: per image and class, detections
sorted by score (stable) and cut to 100; per area range (all, small < 32², medium 32²..96²,
large > 96², box areas, bounds inclusive) ground truth outside the range is "ignored"; at each
IoU threshold 0.50:0.05:0.95 every detection, best score first, takes the unmatched
non-ignored ground truth it overlaps most (IoU >= threshold, ties to the later box), failing
that an ignored one (and is then ignored itself); unmatched detections outside the range are
ignored too. Per class, all images' detections are ranked by score, precision is made monotone
(the maximum to its right) and read at 101 recall points 0, 0.01, ..., 1 (0 past the highest
recall reached); recall at 1 / 10 / 100 detections per image cuts each image's ranked list.
Means run over the classes with ground truth in the range. Crowd boxes are not modelled (the
data readers drop them). Areas are in the pixels the boxes are given in (for easycv's eval
loop: the network's input after the eval transforms).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from easycv.coco_library import library_eval, preferred_library

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e10), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10)}
MAX_DETS = (1, 10, 100)
OWN = "lingjie"  # the evaluator name of our implementation
# summary keys (torchmetrics' names), COCOeval.summarize's order
SUMMARY_KEYS = ("map", "map50", "map75", "map_small", "map_medium", "map_large",
                "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large")


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a`` [N, 4] with ``b`` [M, 4] (x1 y1 x2 y2)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = box_area(a)
    area_b = box_area(b)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of boxes [N, 4] (x1 y1 x2 y2); degenerate boxes have area 0."""
    return np.prod(np.clip(boxes[:, 2:4] - boxes[:, :2], 0, None), axis=1)


def match(ious: np.ndarray, gt_ignore: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.evaluateImg's greedy matching of score-sorted detections to ground truth.

    ``ious`` [D, G]; ``gt_ignore`` [G] (outside the area range). Returns ``matched`` [T, D] and
    ``ignored`` [T, D] (matched to an ignored box). Vectorised over thresholds; the loop over
    detections is the greedy order itself."""
    n_t, (n_d, n_g) = len(thresholds), ious.shape
    matched = np.zeros((n_t, n_d), bool)
    ignored = np.zeros((n_t, n_d), bool)
    if n_g == 0:
        return matched, ignored
    taken = np.zeros((n_t, n_g), bool)
    thr = np.minimum(thresholds, 1 - 1e-10)[:, None]
    for d in range(n_d):
        ok = ~taken & (ious[d][None, :] >= thr)
        for group, to_ignored in ((~gt_ignore, False), (gt_ignore, True)):  # COCO: ignored boxes last, tried only
            # when no other box matches
            cand = ok & group[None, :] & ~matched[:, d:d + 1]
            hit = cand.any(1)
            best = n_g - 1 - np.argmax(np.where(cand, ious[d][None, :], -1.0)[:, ::-1], axis=1)  # ties: later box
            taken[hit, best[hit]] = True
            matched[hit, d] = True
            ignored[hit, d] = to_ignored
    return matched, ignored


def interpolated_precision(tps: np.ndarray, fps: np.ndarray, num_gt: int) -> np.ndarray:
    """Precision at the 101 recall points from cumulative TP / FP counts of ranked detections."""
    q = np.zeros(len(RECALL_POINTS))
    if len(tps) == 0:
        return q
    recall = tps / num_gt
    precision = tps / (tps + fps + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    valid = idx < len(precision)
    q[valid] = precision[idx[valid]]
    return q


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """101-point interpolated AP of ranked detections (``tp``: one threshold's matches)."""
    if num_gt == 0:
        return float("nan")
    tp = np.asarray(tp, bool)[np.argsort(-scores, kind="mergesort")]
    return float(interpolated_precision(np.cumsum(tp).astype(float), np.cumsum(~tp).astype(float), num_gt).mean())


def accumulate(entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]], num_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.accumulate for one class and area range: (precision [T, R], recall [T, M]).

    ``entries``: per image, (scores, matched [T, D], ignored [T, D]) of its score-sorted
    detections. Ignored detections count neither as TP nor FP."""
    n_t = len(IOU_THRESHOLDS)
    precision = np.zeros((n_t, len(RECALL_POINTS)))
    recall = np.zeros((n_t, len(MAX_DETS)))
    for m, max_det in enumerate(MAX_DETS):
        if not entries:
            break
        scores = np.concatenate([s[:max_det] for s, _, _ in entries])
        order = np.argsort(-scores, kind="mergesort")
        hit = np.concatenate([x[:, :max_det] for _, x, _ in entries], axis=1)[:, order]
        skip = np.concatenate([x[:, :max_det] for _, _, x in entries], axis=1)[:, order]
        tps = np.cumsum(hit & ~skip, axis=1).astype(float)
        fps = np.cumsum(~hit & ~skip, axis=1).astype(float)
        if len(scores):
            recall[:, m] = tps[:, -1] / num_gt
        if max_det == MAX_DETS[-1]:
            precision = np.stack([interpolated_precision(tps[t], fps[t], num_gt) for t in range(n_t)])
    return precision, recall


def own_eval(detections: Sequence[np.ndarray], ground_truth: Sequence[np.ndarray],
             num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Our COCOeval: (precision [T, R, K, A] at 100 detections, recall [T, K, A, M])."""
    n_a = len(AREA_RANGES)
    entries: list[list[list]] = [[[] for _ in range(n_a)] for _ in range(num_classes)]
    num_gt = np.zeros((num_classes, n_a), np.int64)
    for det, gt in zip(detections, ground_truth):
        det = np.asarray(det, np.float64).reshape(-1, 6)
        gt = np.asarray(gt, np.float64).reshape(-1, 5)
        for c in np.unique(np.concatenate([det[:, 5], gt[:, 0]])).astype(int):
            if not 0 <= c < num_classes:
                continue
            g = gt[gt[:, 0] == c, 1:]
            d = det[det[:, 5] == c]
            d = d[np.argsort(-d[:, 4], kind="mergesort")][:MAX_DETS[-1]]
            ious = iou_matrix(d[:, :4], g)
            g_area, d_area = box_area(g), box_area(d[:, :4])
            for a, (lo, hi) in enumerate(AREA_RANGES.values()):
                g_ignore = (g_area < lo) | (g_area > hi)
                num_gt[c, a] += int((~g_ignore).sum())
                matched, ignored = match(ious, g_ignore, IOU_THRESHOLDS)
                ignored |= ~matched & ((d_area < lo) | (d_area > hi))[None, :]
                entries[c][a].append((d[:, 4], matched, ignored))
    precision = -np.ones((len(IOU_THRESHOLDS), len(RECALL_POINTS), num_classes, n_a))
    recall = -np.ones((len(IOU_THRESHOLDS), num_classes, n_a, len(MAX_DETS)))
    for c in range(num_classes):
        for a in range(n_a):
            if num_gt[c, a]:
                precision[:, :, c, a], recall[:, c, a, :] = accumulate(entries[c][a], int(num_gt[c, a]))
    return precision, recall


def _defined_mean(x: np.ndarray) -> float:
    """COCOeval.summarize's mean over entries > -1; NaN (COCO prints -1) when none is defined."""
    v = x[x > -1]
    return float(v.mean()) if v.size else float("nan")


def summarize(precision: np.ndarray, recall: np.ndarray) -> dict[str, Any]:
    """COCO's 12 summary numbers (:data:`SUMMARY_KEYS`) and ``ap_per_class`` (IoU .50:.95, all
    areas; NaN for classes without ground truth) from precision [T, R, K, A] / recall [T, K, A, M]."""
    t50, t75 = (int(np.argmin(np.abs(IOU_THRESHOLDS - v))) for v in (0.5, 0.75))
    out = {"map": _defined_mean(precision[..., 0]), "map50": _defined_mean(precision[t50, ..., 0]),
           "map75": _defined_mean(precision[t75, ..., 0])}
    sizes = list(AREA_RANGES)[1:]
    out.update({f"map_{s}": _defined_mean(precision[..., a]) for a, s in enumerate(sizes, 1)})
    out.update({f"mar_{m}": _defined_mean(recall[:, :, 0, i]) for i, m in enumerate(MAX_DETS)})
    out.update({f"mar_{s}": _defined_mean(recall[:, :, a, -1]) for a, s in enumerate(sizes, 1)})
    out["ap_per_class"] = [_defined_mean(precision[:, :, k, 0]) for k in range(precision.shape[2])]
    return out


def coco_map(detections: Sequence[np.ndarray], ground_truth: Sequence[np.ndarray], num_classes: int,
             evaluator: str | None = None) -> dict[str, Any]:
    """COCO box metrics over images.

    ``detections[i]``: [k, 6] (x1, y1, x2, y2, score, class) of image i;
    ``ground_truth[i]``: [n, 5] (class, x1, y1, x2, y2). Returns :data:`SUMMARY_KEYS` (``map`` is
    mAP@[.5:.95]; NaN where no ground truth falls in a size range), ``ap_per_class`` and
    ``evaluator``: ``faster_coco_eval`` / ``pycocotools`` / ``lingjie`` (our code). ``evaluator``
    None picks the first installed library, else ours; tests name one to compare them."""
    name = evaluator or preferred_library() or OWN
    no_dets = not any(np.asarray(d).size for d in detections)
    no_gt = not any(np.asarray(g).size for g in ground_truth)
    if no_gt or (no_dets and name == "pycocotools"):  # pycocotools' loadRes fails on an empty list
        name = OWN  # nothing to rank: every path gives the same zeros / NaN
    if name == OWN:
        precision, recall = own_eval(detections, ground_truth, num_classes)
    else:
        precision, recall = library_eval(detections, ground_truth, num_classes, name)
    return {**summarize(precision, recall), "evaluator": name}
