"""An anchor-free YOLOX-style detector (Ge et al. 2021), small enough to train on a CPU.

- Neck: FPN-lite — 1x1 laterals on the backbone levels named by ``out_strides``, top-down
  nearest upsampling + add, a 3x3 conv per level.
- Head: decoupled, per level — a 1x1 stem, then a classification branch (class logits) and a
  regression branch (box ``dx, dy, log w, log h`` in units of the stride + objectness logit).
  A point's box is centred at ``(cell + 0.5 + dx) * stride`` with size ``exp(log w) * stride``.
- Label assignment (``model.assigner``):
  * ``simota`` (default, YOLOX's SimOTA without the OT solver): candidates are points inside a
    ground-truth box or within ``center_radius`` strides of its centre; the cost of assigning a
    candidate to a box is ``BCE(sqrt(cls * obj), one-hot) + 3 * -log IoU(pred, gt)`` plus a large
    constant unless the point is both inside the box and near its centre. Each box takes its
    ``k`` cheapest candidates, ``k = max(1, floor(sum of its top-``candidate_topk`` IoUs))``
    (dynamic k); a point claimed by several boxes goes to the cheapest.
  * ``center``: every point inside a box and within ``center_radius`` strides of its centre is
    positive (smallest box wins); a box with no such point takes the point nearest its centre.
- Losses (per positive, normalised by the number of positives): ``box_weight * (1 - IoU^2)``,
  BCE of the class logits against ``one-hot * IoU``, BCE of objectness over all points.
- Inference: score = objectness * best class probability, threshold, class-wise NMS.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from easycv.models.backbones import Backbone, ConvBNAct
from easycv.models.ops import aligned_iou, box_iou, select_detections

PRIOR = 0.01  # initial probability of objectness and classes (focal-loss style bias init)


class DecoupledHead(nn.Module):
    def __init__(self, cin: int, width: int, convs: int, num_classes: int) -> None:
        super().__init__()
        self.stem = ConvBNAct(cin, width, 1)
        self.cls_convs = nn.Sequential(*[ConvBNAct(width, width, 3) for _ in range(convs)])
        self.reg_convs = nn.Sequential(*[ConvBNAct(width, width, 3) for _ in range(convs)])
        self.cls_pred = nn.Conv2d(width, num_classes, 1)
        self.reg_pred = nn.Conv2d(width, 4, 1)
        self.obj_pred = nn.Conv2d(width, 1, 1)
        bias = -torch.log(torch.tensor((1 - PRIOR) / PRIOR)).item()
        nn.init.constant_(self.cls_pred.bias, bias)
        nn.init.constant_(self.obj_pred.bias, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        c = self.cls_convs(x)
        r = self.reg_convs(x)
        return torch.cat([self.reg_pred(r), self.obj_pred(r), self.cls_pred(c)], 1)


class YOLOX(nn.Module):
    """``forward(images) -> {"raw", "points", "strides"}``; ``loss``; ``predict`` (eval: NMS'd boxes)."""

    def __init__(self, backbone: Backbone, num_classes: int, spec: Any) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.strides = list(spec.out_strides)
        self.levels = [backbone.reductions.index(s) for s in self.strides]
        c = spec.neck_channels
        self.lateral = nn.ModuleList(ConvBNAct(backbone.channels[i], c, 1) for i in self.levels)
        self.smooth = nn.ModuleList(ConvBNAct(c, c, 3) for _ in self.levels)
        self.heads = nn.ModuleList(DecoupledHead(c, spec.head_channels, spec.head_convs, num_classes)
                                   for _ in self.levels)
        self.assigner = spec.assigner
        self.center_radius = spec.center_radius
        self.candidate_topk = spec.candidate_topk
        self.box_weight = spec.box_weight
        self.score_thresh = spec.score_thresh
        self.nms_iou = spec.nms_iou
        self.max_detections = spec.max_detections

    # ----- network -----
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.backbone(images)
        xs = [lat(feats[i]) for lat, i in zip(self.lateral, self.levels)]
        for i in range(len(xs) - 2, -1, -1):  # top-down pathway
            xs[i] = xs[i] + F.interpolate(xs[i + 1], size=xs[i].shape[-2:], mode="nearest")
        raws, points, strides = [], [], []
        for head, smooth, x, s in zip(self.heads, self.smooth, xs, self.strides):
            out = head(smooth(x))
            b, _, h, w = out.shape
            raws.append(out.flatten(2))
            gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device),
                                    indexing="ij")
            points.append((torch.stack([gx, gy], -1).reshape(-1, 2).float() + 0.5) * s)
            strides.append(torch.full((h * w,), float(s), device=x.device))
        return {"raw": torch.cat(raws, 2).permute(0, 2, 1), "points": torch.cat(points), "strides": torch.cat(strides)}

    @staticmethod
    def decode(outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Boxes [B, A, 4] (x1 y1 x2 y2, input pixels) of every point."""
        raw, pts, st = outputs["raw"], outputs["points"], outputs["strides"][:, None]
        ctr = pts + raw[..., :2] * st
        wh = raw[..., 2:4].clamp(max=10.0).exp() * st
        return torch.cat([ctr - wh / 2, ctr + wh / 2], -1)

    # ----- training -----
    def loss(self, outputs: dict[str, torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
        raw = outputs["raw"]
        boxes = self.decode(outputs)
        obj_t = torch.zeros(raw.shape[:2], device=raw.device)
        fg_b, fg_a, cls_t, box_t = [], [], [], []
        for b, gt in enumerate(targets):
            if gt.numel() == 0:
                continue
            # fp32, outside autocast: the cost uses binary_cross_entropy, which CUDA autocast refuses
            with torch.no_grad(), torch.autocast(raw.device.type, enabled=False):
                idx, gt_i, ious = self.assign(outputs, boxes[b].detach().float(), raw[b].detach().float(),
                                              gt.float())
            obj_t[b, idx] = 1.0
            fg_b.append(torch.full_like(idx, b))
            fg_a.append(idx)
            cls_t.append(F.one_hot(gt[gt_i, 0].long(), self.num_classes).float() * ious[:, None])
            box_t.append(gt[gt_i, 1:])
        loss_obj = F.binary_cross_entropy_with_logits(raw[..., 4], obj_t, reduction="sum")
        if not fg_a:
            return loss_obj / max(1, raw.shape[0])
        fb, fa = torch.cat(fg_b), torch.cat(fg_a)
        n = max(1, fa.numel())
        iou = aligned_iou(boxes[fb, fa], torch.cat(box_t))
        loss_box = (1 - iou.pow(2)).sum()
        loss_cls = F.binary_cross_entropy_with_logits(raw[fb, fa, 5:], torch.cat(cls_t), reduction="sum")
        return (self.box_weight * loss_box + loss_obj + loss_cls) / n

    def assign(self, outputs: dict[str, torch.Tensor], pred: torch.Tensor, raw: torch.Tensor,
               gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(positive point indices, their ground-truth index, IoU of their prediction with it)."""
        pts, st = outputs["points"], outputs["strides"]
        g = gt[:, 1:]
        cx, cy = pts[:, 0][None], pts[:, 1][None]
        in_box = (cx > g[:, 0:1]) & (cx < g[:, 2:3]) & (cy > g[:, 1:2]) & (cy < g[:, 3:4])
        gcx, gcy = ((g[:, 0] + g[:, 2]) / 2)[:, None], ((g[:, 1] + g[:, 3]) / 2)[:, None]
        r = self.center_radius * st[None]
        in_ctr = ((cx - gcx).abs() < r) & ((cy - gcy).abs() < r)
        if self.assigner == "center":
            return self._assign_center(pred, g, in_box & in_ctr, (cx - gcx) ** 2 + (cy - gcy) ** 2)
        cand = (in_box | in_ctr).any(0).nonzero().squeeze(1)
        if cand.numel() == 0:
            return self._assign_center(pred, g, in_box & in_ctr, (cx - gcx) ** 2 + (cy - gcy) ** 2)
        ious = box_iou(g, pred[cand])  # [G, Ac]
        onehot = F.one_hot(gt[:, 0].long(), self.num_classes).float()
        score = (raw[cand, 5:].float().sigmoid() * raw[cand, 4:5].float().sigmoid()).sqrt()  # [Ac, C]
        cls_cost = F.binary_cross_entropy(score[None].expand(len(g), -1, -1).clamp(1e-6, 1 - 1e-6),
                                          onehot[:, None].expand(-1, len(cand), -1), reduction="none").sum(-1)
        cost = cls_cost + 3.0 * -torch.log(ious + 1e-8) + 1e5 * (~(in_box & in_ctr)[:, cand]).float()
        k = ious.topk(min(self.candidate_topk, len(cand)), dim=1).values.sum(1).int().clamp(min=1)
        match = torch.zeros_like(cost, dtype=torch.bool)
        for j in range(len(g)):  # dynamic k: each box takes its k cheapest candidates
            match[j, cost[j].topk(int(min(k[j], len(cand))), largest=False).indices] = True
        multi = match.sum(0) > 1
        if multi.any():  # a point claimed by several boxes goes to the cheapest
            best = cost[:, multi].argmin(0)
            match[:, multi] = False
            match[best, multi.nonzero().squeeze(1)] = True
        fg = match.any(0)
        gt_i = match[:, fg].float().argmax(0)
        return cand[fg], gt_i, ious[gt_i, fg.nonzero().squeeze(1)]

    def _assign_center(self, pred: torch.Tensor, g: torch.Tensor, pos: torch.Tensor,
                       dist2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        area = ((g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1]))[:, None].expand_as(dist2)
        pos = pos.clone()
        for j in range(len(g)):  # a box too small for any point: the point nearest its centre
            if not pos[j].any():
                pos[j, dist2[j].argmin()] = True
        cost = torch.where(pos, area, torch.full_like(area, float("inf")))
        gt_i = cost.argmin(0)
        fg = pos.any(0)
        idx = fg.nonzero().squeeze(1)
        gt_i = gt_i[idx]
        return idx, gt_i, aligned_iou(pred[idx], g[gt_i]).clamp(min=0.0)

    # ----- inference -----
    def predict(self, outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Eval mode: per image a [k, 6] tensor (x1, y1, x2, y2, score, class). Training steps
        return nothing (detection has no train-time metrics; NMS there would only cost time)."""
        if self.training:
            return {}
        boxes = self.decode(outputs)
        raw = outputs["raw"].float()
        scores = raw[..., 4:5].sigmoid() * raw[..., 5:].sigmoid()
        return {"boxes": [self.postprocess(boxes[b], scores[b]) for b in range(raw.shape[0])]}

    def postprocess(self, boxes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Threshold, keep the 1000 best, class-wise NMS, keep ``max_detections``."""
        return select_detections(boxes, scores, self.score_thresh, self.nms_iou, self.max_detections)

    def serve(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The exported computation: every point's box and class scores (NMS is applied after)."""
        out = self.forward(images)
        raw = out["raw"]
        return {"boxes": self.decode(out), "scores": raw[..., 4:5].sigmoid() * raw[..., 5:].sigmoid()}
