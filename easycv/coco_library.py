"""COCO box evaluation through the reference libraries (faster-coco-eval, else pycocotools).

Why a library when :mod:`easycv.coco_eval` has its own: the COCO numbers people compare
against come from pycocotools' ``COCOeval`` (faster-coco-eval is its C++ port, same
definition, ~10x faster), so when one is installed the metrics come from it. Our arrays are
turned into COCO dicts in memory (no temp files): image ids 1..N in collector order, category
ids ``class + 1``, boxes x y w h, ground-truth ``area`` = w * h (box area: there are no
segmentations), annotation ids from 1 (pycocotools stores the matched ground-truth id in
``dtMatches`` and treats id 0 as "no match").

The result is the library's accumulated ``precision`` [T, R, K, A] (at ``maxDets=100``) and
``recall`` [T, K, A, M] arrays (-1 where a class has no ground truth in an area range), the
layout :func:`easycv.coco_eval.summarize` reads.
"""
from __future__ import annotations

import contextlib
import importlib
import io
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

LIBRARIES = ("faster_coco_eval", "pycocotools")


@lru_cache(maxsize=None)
def library_available(name: str) -> bool:
    """Whether the evaluation library ``name`` imports (a broken binary counts as missing)."""
    try:
        _coco_classes(name)
    except (ImportError, OSError):
        return False
    return True


def preferred_library() -> str | None:
    """The first importable library of :data:`LIBRARIES`, or None (use our implementation)."""
    return next((name for name in LIBRARIES if library_available(name)), None)


def _coco_classes(name: str) -> tuple[Any, Any]:
    """(COCO, COCOeval) of library ``name``; imported lazily, only when metrics are computed."""
    if name == "faster_coco_eval":
        mod = importlib.import_module("faster_coco_eval")
        return mod.COCO, mod.COCOeval_faster
    if name == "pycocotools":
        return (importlib.import_module("pycocotools.coco").COCO,
                importlib.import_module("pycocotools.cocoeval").COCOeval)
    raise ValueError(f"unknown COCO library {name!r}; known: {', '.join(LIBRARIES)}")


def to_coco_dicts(detections: Sequence[np.ndarray], ground_truth: Sequence[np.ndarray],
                  num_classes: int) -> tuple[dict[str, list], list[dict]]:
    """(ground-truth dataset dict, detection result list) in COCO's bbox format.

    ``detections[i]``: [k, 6] (x1, y1, x2, y2, score, class); ``ground_truth[i]``: [n, 5]
    (class, x1, y1, x2, y2), as :func:`easycv.coco_eval.coco_map` takes them."""
    images = [{"id": i + 1} for i in range(len(ground_truth))]
    categories = [{"id": c + 1, "name": str(c)} for c in range(num_classes)]
    anns: list[dict] = []
    for i, gt in enumerate(ground_truth):
        for row in np.asarray(gt, np.float64).reshape(-1, 5):
            w, h = row[3] - row[1], row[4] - row[2]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(row[0]) + 1,
                         "bbox": [row[1], row[2], w, h], "area": w * h, "iscrowd": 0})
    results: list[dict] = []
    for i, det in enumerate(detections):
        for row in np.asarray(det, np.float64).reshape(-1, 6):
            results.append({"image_id": i + 1, "category_id": int(row[5]) + 1, "score": float(row[4]),
                            "bbox": [row[0], row[1], row[2] - row[0], row[3] - row[1]]})
    return {"images": images, "categories": categories, "annotations": anns}, results


def library_eval(detections: Sequence[np.ndarray], ground_truth: Sequence[np.ndarray], num_classes: int,
                 library: str) -> tuple[np.ndarray, np.ndarray]:
    """(precision [T, R, K, A] at maxDets=100, recall [T, K, A, M]) from ``library``'s COCOeval.

    Its default parameters are COCO's: IoU .50:.05:.95, 101 recall points, area ranges all /
    small / medium / large, maxDets 1 / 10 / 100. Its progress prints are swallowed."""
    coco_cls, eval_cls = _coco_classes(library)
    gt_dict, results = to_coco_dicts(detections, ground_truth, num_classes)
    with contextlib.redirect_stdout(io.StringIO()):
        if library == "faster_coco_eval":
            coco_gt = coco_cls(gt_dict)
        else:  # pycocotools' constructor only reads files
            coco_gt = coco_cls()
            coco_gt.dataset = gt_dict
            coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        evaluator = eval_cls(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
    precision = np.asarray(evaluator.eval["precision"], np.float64)
    return precision[..., -1], np.asarray(evaluator.eval["recall"], np.float64)
