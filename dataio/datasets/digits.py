"""Prepare scikit-learn's digits as image files: PNGs in one folder per class + list files.

1,797 grey 8x8 images of handwritten digits (values 0..16, UCI optdigits' test set) taken from
``sklearn/datasets/data/digits.csv.gz`` in the scikit-learn wheel (never imported). A
stratified 80/20 split (seed 42) keeps every class's share in both halves. The layout serves
both of easycv's classification formats on the same files:

    train/<class>/<index>.png   test/<class>/<index>.png    (format: folder)
    train.txt  test.txt         "<relative path> <class index>" per line (format: list)
    classes.txt                 class names, one per line, in index order
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from dataio.datasets.adult import stratified_split

MEMBERS = {"digits": "sklearn/datasets/data/digits.csv.gz"}
SPLIT_SEED = 42
TRAIN_FRACTION = 0.8
CLASSES = [str(d) for d in range(10)]
FILES = ("train.txt", "test.txt", "classes.txt")


def read_digits(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 8, 8] scaled from 0..16 to 0..255, labels int64 [N])."""
    with gzip.open(path, "rt") as fh:
        raw = np.loadtxt(fh, delimiter=",", dtype=np.float64)
    pixels, labels = raw[:, :-1], raw[:, -1].astype(np.int64)
    images = np.round(pixels * (255.0 / 16.0)).clip(0, 255).astype(np.uint8).reshape(-1, 8, 8)
    return images, labels


def write_split(images: np.ndarray, labels: np.ndarray, rows: np.ndarray, split: str, out: Path) -> None:
    """PNG files of ``rows`` under ``out/split/<class>/`` and the list file ``out/split.txt``."""
    from PIL import Image

    lines = []
    for row in rows:  # one small PNG per image: the point is to exercise real image files
        rel = f"{split}/{labels[row]}/{row:04d}.png"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[row]).save(out / rel)
        lines.append(f"{rel} {labels[row]}")
    (out / f"{split}.txt").write_text("\n".join(lines) + "\n")


def prepare(inputs: dict[str, Path], out: Path) -> dict:
    """Write the PNGs, ``train.txt``/``test.txt`` and ``classes.txt``; return facts for meta.json."""
    images, labels = read_digits(inputs["digits"])
    train, test = stratified_split(labels, TRAIN_FRACTION, SPLIT_SEED)
    write_split(images, labels, train, "train", out)
    write_split(images, labels, test, "test", out)
    (out / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return {
        "rows": {"train": int(len(train)), "test": int(len(test))},
        "split": f"stratified on the digit, {TRAIN_FRACTION:.0%} train, seed {SPLIT_SEED}",
        "image": "8x8 grey PNG, 0..16 scaled to 0..255",
        "formats": {"list": "train.txt / test.txt: '<path> <class index>'", "folder": "train/<class>/*.png"},
    }
