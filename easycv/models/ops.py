"""Box operations: pairwise IoU and class-wise non-maximum suppression.

NMS uses ``torchvision.ops.batched_nms`` when a working torchvision is installed, otherwise
the greedy algorithm below (same result: highest score first, drop every box of the same class
whose IoU with a kept box exceeds the threshold). "Working" matters: a torchvision wheel built
for another torch imports with ``RuntimeError: operator torchvision::nms does not exist`` (its
C++ ops did not load), not ImportError, and an op can also be missing only for a device at call
time; both fall back to the greedy NMS instead of failing a training run.
"""
from __future__ import annotations

import logging
from typing import Callable

import torch

log = logging.getLogger("lingjie.easycv")


def load_torchvision_nms() -> Callable | None:
    """torchvision's ``batched_nms``, or None when torchvision is missing or broken."""
    try:
        from torchvision.ops import batched_nms as tv_batched_nms
    except (ImportError, RuntimeError, OSError) as e:  # missing / built for another torch / bad .so
        if not isinstance(e, ImportError):
            log.warning("torchvision is installed but unusable (%s); using easycv's own NMS", e)
        return None
    return tv_batched_nms


TORCHVISION_NMS = load_torchvision_nms()


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box in ``a`` [N, 4] with every box in ``b`` [M, 4] (x1 y1 x2 y2) -> [N, M]."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def aligned_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of ``a[i]`` with ``b[i]`` ([N, 4] each) -> [N]."""
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter).clamp(min=1e-9)


def greedy_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_thresh: float) -> torch.Tensor:
    """Indices of the kept boxes, highest score first (single class)."""
    order = scores.argsort(descending=True)
    if order.numel() == 0:
        return order
    import numpy as np

    iou = box_iou(boxes[order], boxes[order]).cpu().numpy()
    suppressed = np.zeros(len(order), bool)
    later = np.arange(len(order))
    keep = []
    for i in range(len(order)):  # one step per box, in score order
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= (iou[i] > iou_thresh) & (later > i)
    return order[torch.as_tensor(keep, dtype=torch.long, device=order.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou_thresh: float) -> torch.Tensor:
    """Class-wise NMS: boxes of different classes never suppress each other."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    global TORCHVISION_NMS
    if TORCHVISION_NMS is not None:
        try:
            return TORCHVISION_NMS(boxes.float(), scores.float(), classes, iou_thresh)
        except (RuntimeError, NotImplementedError) as e:  # e.g. no kernel for this device / build
            log.warning("torchvision NMS failed (%s); using easycv's own NMS from now on", e)
            TORCHVISION_NMS = None
    offset = classes.to(boxes.dtype)[:, None] * (boxes.max() + 1)  # shift each class apart
    return greedy_nms(boxes + offset, scores, iou_thresh)


def select_detections(boxes: torch.Tensor, scores: torch.Tensor, score_thresh: float, nms_iou: float,
                      max_detections: int) -> torch.Tensor:
    """One image's detections [k, 6] (x1, y1, x2, y2, score, class) from every point's box [P, 4]
    and class scores [P, C]: threshold, keep the 1000 best, class-wise NMS, keep ``max_detections``.
    The model's predict (training, predict mode) and the serving adapter (an exported program,
    settings from its meta.json) both call this, so served boxes are the boxes predict writes."""
    best, cls = scores.max(1)
    keep = (best > score_thresh).nonzero().squeeze(1)
    if keep.numel() > 1000:
        keep = keep[best[keep].topk(1000).indices]
    b, s, c = boxes[keep], best[keep], cls[keep]
    kept = batched_nms(b, s, c, nms_iou)[:max_detections]
    return torch.cat([b[kept], s[kept, None], c[kept, None].float()], 1)
