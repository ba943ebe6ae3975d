"""One image's prediction as JSON, shared by predict mode and the serving adapter.

Both write the same dict for the same network output, so a client sees the same fields (and
the same rounding) from ``trainer.mode=predict`` and from ``lingjie serve``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def classification_result(probs: Any, classes: Sequence[str]) -> dict[str, Any]:
    """``label`` / ``score`` of the best class and the ``top5`` classes with their scores."""
    p = np.asarray(probs, np.float64)
    top = np.argsort(-p, kind="stable")[:5]
    return {"label": classes[int(top[0])], "score": round(float(p[top[0]]), 6),
            "top5": [{"label": classes[int(k)], "score": round(float(p[k]), 6)} for k in top]}


def detection_result(det: Any, affine: Sequence[float], orig_size: Sequence[int],
                     classes: Sequence[str]) -> dict[str, Any]:
    """Boxes [k, 6] (x1, y1, x2, y2, score, class in network-input pixels) mapped back through the
    preprocessing's ``affine`` (sx, sy, tx, ty) to the original image's pixels, clipped to its
    ``orig_size`` (h, w)."""
    det = np.asarray(det, np.float64).reshape(-1, 6)
    sx, sy, tx, ty = (float(v) for v in affine)
    h, w = (int(v) for v in orig_size)
    boxes = det[:, :4].copy()
    boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - tx) / sx).clip(0, w)
    boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - ty) / sy).clip(0, h)
    return {"boxes": np.round(boxes, 2).tolist(), "scores": np.round(det[:, 4], 5).tolist(),
            "labels": [classes[int(c)] for c in det[:, 5]]}
