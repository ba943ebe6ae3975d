"""Box operations: pairwise IoU and class-wise non-maximum suppression.

NMS uses ``torchvision.ops.batched_nms`` when torchvision is installed, otherwise the greedy
algorithm below (same result: highest score first, drop every box of the same class whose
IoU with a kept box exceeds the threshold).
"""
from __future__ import annotations

import torch

try:  # optional: torchvision's C++ NMS
    from torchvision.ops import batched_nms as _tv_batched_nms
except ImportError:  # pragma: no cover - depends on the installation
    _tv_batched_nms = None


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
    if _tv_batched_nms is not None:
        return _tv_batched_nms(boxes.float(), scores.float(), classes, iou_thresh)
    offset = classes.to(boxes.dtype)[:, None] * (boxes.max() + 1)  # shift each class apart
    return greedy_nms(boxes + offset, scores, iou_thresh)
