"""The augmentation pipeline declared in YAML, applied per image on torch tensors.

A :class:`Sample` is one image (float32 ``[C, H, W]`` in 0..1, normalised at the end) with
its class label or boxes, and the affine map from original pixels to current pixels
(``x' = x * sx + tx``, ``y' = y * sy + ty``) so predictions can be mapped back to the
original image. Every random draw comes from the ``numpy.random.Generator`` passed in,
which the loader seeds from (seed, epoch, rank, batch): augmentation is reproducible and a
resumed run sees the same images it would have seen.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from easycv.schema import ColorJitterT, FlipT, MosaicT, NormalizeT, RandomCropT, ResizeT


@dataclass
class Sample:
    image: torch.Tensor  # float32 [C, H, W]
    label: int = -1
    boxes: np.ndarray | None = None  # float32 [n, 4] x1 y1 x2 y2 in current pixels
    classes: np.ndarray | None = None  # int64 [n]
    affine: tuple[float, float, float, float] = (1.0, 1.0, 0.0, 0.0)  # sx, sy, tx, ty
    orig_size: tuple[int, int] = (0, 0)  # (h, w) of the decoded image

    def then(self, sx: float, sy: float, tx: float, ty: float) -> None:
        """Compose the current map with the new step ``x -> x * s + t``."""
        a = self.affine
        self.affine = (a[0] * sx, a[1] * sy, a[2] * sx + tx, a[3] * sy + ty)
        if self.boxes is not None and len(self.boxes):
            self.boxes = self.boxes * np.array([sx, sy, sx, sy], np.float32) + np.array([tx, ty, tx, ty], np.float32)


def _resize(img: torch.Tensor, h: int, w: int) -> torch.Tensor:
    if img.shape[1] == h and img.shape[2] == w:
        return img
    down = h < img.shape[1] or w < img.shape[2]
    return F.interpolate(img[None], size=(h, w), mode="bilinear", align_corners=False, antialias=down)[0]


def _keep_boxes(s: Sample, before: np.ndarray, min_visible: float, w: int, h: int) -> None:
    """Clip boxes to the image; drop those with less than ``min_visible`` of their area left."""
    if s.boxes is None or not len(s.boxes):
        return
    area0 = np.prod(np.clip(before[:, 2:] - before[:, :2], 0, None), axis=1)
    clipped = s.boxes.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, w)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, h)
    wh = clipped[:, 2:] - clipped[:, :2]
    keep = (wh > 1).all(1) & (np.prod(wh.clip(0, None), axis=1) >= min_visible * area0 - 1e-6)
    s.boxes, s.classes = clipped[keep], s.classes[keep]


def resize(s: Sample, t: ResizeT, rng: np.random.Generator) -> Sample:
    _, h, w = s.image.shape
    if not t.keep_ratio:
        s.image = _resize(s.image, t.size, t.size)
        s.then(t.size / w, t.size / h, 0.0, 0.0)
        return s
    r = t.size / max(h, w)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    out = torch.full((s.image.shape[0], t.size, t.size), t.pad_value, dtype=s.image.dtype)
    out[:, :nh, :nw] = _resize(s.image, nh, nw)
    s.image = out
    s.then(nw / w, nh / h, 0.0, 0.0)
    return s


def random_crop(s: Sample, t: RandomCropT, rng: np.random.Generator) -> Sample:
    img = s.image
    if t.padding:
        p = t.padding
        img = F.pad(img, (p, p, p, p), value=t.pad_value)
        s.then(1.0, 1.0, float(p), float(p))
    _, h, w = img.shape
    if h < t.size or w < t.size:  # pad up to the crop size
        img = F.pad(img, (0, max(0, t.size - w), 0, max(0, t.size - h)), value=t.pad_value)
        _, h, w = img.shape
    y0 = int(rng.integers(0, h - t.size + 1))
    x0 = int(rng.integers(0, w - t.size + 1))
    s.image = img[:, y0:y0 + t.size, x0:x0 + t.size]
    before = None if s.boxes is None else s.boxes - np.array([x0, y0, x0, y0], np.float32)
    s.then(1.0, 1.0, -float(x0), -float(y0))
    if before is not None:
        _keep_boxes(s, before, t.min_visible, t.size, t.size)
    return s


def flip(s: Sample, t: FlipT, rng: np.random.Generator) -> Sample:
    if rng.random() >= t.p:
        return s
    _, h, w = s.image.shape
    if t.name == "hflip":
        s.image = s.image.flip(2)
        s.then(-1.0, 1.0, float(w), 0.0)
        if s.boxes is not None and len(s.boxes):
            s.boxes = s.boxes[:, [2, 1, 0, 3]]  # x1 <-> x2 after mirroring
    else:
        s.image = s.image.flip(1)
        s.then(1.0, -1.0, 0.0, float(h))
        if s.boxes is not None and len(s.boxes):
            s.boxes = s.boxes[:, [0, 3, 2, 1]]
    return s


def color_jitter(s: Sample, t: ColorJitterT, rng: np.random.Generator) -> Sample:
    if rng.random() >= t.p:
        return s
    img = s.image
    factors = rng.uniform(-1, 1, 3) * np.array([t.brightness, t.contrast, t.saturation]) + 1
    for k in rng.permutation(3):  # torchvision's ColorJitter applies them in random order
        f = float(max(0.0, factors[k]))
        if k == 0 and t.brightness:
            img = img * f
        elif k == 1 and t.contrast:
            grey = img.mean(0, keepdim=True) if img.shape[0] == 1 else _grey(img)
            img = (img - grey.mean()) * f + grey.mean()
        elif k == 2 and t.saturation and img.shape[0] == 3:
            grey = _grey(img)
            img = (img - grey) * f + grey
    s.image = img.clamp(0, 1)
    return s


def _grey(img: torch.Tensor) -> torch.Tensor:
    return (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2])[None]


def normalize(s: Sample, t: NormalizeT, rng: np.random.Generator) -> Sample:
    c = s.image.shape[0]
    mean = torch.tensor(t.mean * (c if len(t.mean) == 1 else 1), dtype=s.image.dtype).view(-1, 1, 1)
    std = torch.tensor(t.std * (c if len(t.std) == 1 else 1), dtype=s.image.dtype).view(-1, 1, 1)
    s.image = (s.image - mean) / std
    return s


def mosaic(s: Sample, t: MosaicT, rng: np.random.Generator, others: list[Sample]) -> Sample:
    """YOLOX mosaic: 4 images (each resized so its longer side is ``size``) meet at a random
    centre of a 2*size canvas; the canvas is scaled and a ``size`` window cut out of it."""
    size = t.size
    c = s.image.shape[0]
    canvas = torch.zeros((c, 2 * size, 2 * size), dtype=s.image.dtype)
    xc, yc = (int(v) for v in rng.uniform(0.5 * size, 1.5 * size, 2))
    boxes, classes = [], []
    for k, part in enumerate([s, *others[:3]]):
        _, h, w = part.image.shape
        r = size / max(h, w)
        nh, nw = max(1, round(h * r)), max(1, round(w * r))
        img = _resize(part.image, nh, nw)
        # quadrant k: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right of the centre
        x1 = xc - nw if k in (0, 2) else xc
        y1 = yc - nh if k in (0, 1) else yc
        cx1, cy1 = max(x1, 0), max(y1, 0)
        cx2, cy2 = min(x1 + nw, 2 * size), min(y1 + nh, 2 * size)
        canvas[:, cy1:cy2, cx1:cx2] = img[:, cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1]
        if part.boxes is not None and len(part.boxes):
            b = part.boxes * np.float32(r) + np.array([x1, y1, x1, y1], np.float32)
            before = b.copy()
            b[:, [0, 2]] = b[:, [0, 2]].clip(cx1, cx2)
            b[:, [1, 3]] = b[:, [1, 3]].clip(cy1, cy2)
            area0 = np.prod(before[:, 2:] - before[:, :2], axis=1)
            wh = (b[:, 2:] - b[:, :2]).clip(0, None)
            keep = (wh > 1).all(1) & (np.prod(wh, axis=1) >= t.min_visible * area0 - 1e-6)
            boxes.append(b[keep])
            classes.append(part.classes[keep])
    f = float(rng.uniform(t.scale[0], t.scale[1]))
    side = max(size, round(2 * size * f))
    canvas = _resize(canvas, side, side)
    x0 = int(rng.integers(0, side - size + 1))
    y0 = int(rng.integers(0, side - size + 1))
    out = Sample(canvas[:, y0:y0 + size, x0:x0 + size].contiguous(), orig_size=s.orig_size)
    sc = side / (2 * size)
    b = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32)
    out.boxes = b * np.float32(sc) - np.array([x0, y0, x0, y0], np.float32)
    out.classes = np.concatenate(classes) if classes else np.zeros(0, np.int64)
    _keep_boxes(out, out.boxes.copy(), t.min_visible, size, size)
    out.affine = (float("nan"),) * 4  # a mosaic has no single map back to one source image
    return out


_APPLY: dict[str, Callable[..., Sample]] = {"resize": resize, "random_crop": random_crop, "hflip": flip,
                                            "vflip": flip, "color_jitter": color_jitter, "normalize": normalize}


class Pipeline:
    """The transforms of one split; ``__call__(sample, rng, draw)`` runs them in order.

    ``draw(n)`` returns ``n`` more decoded samples of the same split (for mosaic)."""

    def __init__(self, transforms: list[Any]) -> None:
        self.transforms = list(transforms)

    @property
    def normalize(self) -> NormalizeT | None:
        found = [t for t in self.transforms if t.name == "normalize"]
        return found[-1] if found else None

    def __call__(self, s: Sample, rng: np.random.Generator,
                 draw: Callable[[int], list[Sample]] | None = None) -> Sample:
        for t in self.transforms:
            if t.name == "mosaic":
                if draw is not None and rng.random() < t.p:
                    s = mosaic(s, t, rng, draw(3))
                continue
            s = _APPLY[t.name](s, t, rng)
        return s
