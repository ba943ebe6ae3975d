"""Image data sets as records: which files, which labels, which boxes — read through fsspec.

Three layouts, chosen by ``data.format`` (auto: ``.json`` -> coco, a directory -> folder,
anything else -> list):

- list file: one ``<path> <label>`` per line (label: class index or class name; ``#`` starts a
  comment); paths relative to ``data.image_root`` or the list file's directory. Class names
  come from ``data.classes``, else ``classes.txt`` beside the list file, else the sorted labels.
- image folder: ``<root>/<class>/<image>``; classes are the sorted sub-folder names.
- COCO JSON (detection): ``images``, ``annotations`` (``bbox`` = [x, y, w, h]) and
  ``categories``; category ids map to class indices in id order.

Listing and parsing happen once, at start-up, so a wrong path or a bad line fails before any
training with the file (and line) in the message.
"""
from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dataio.filesystems import filesystem_for
from lingjie.errors import ConfigError, DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


@dataclass
class Records:
    """The images of one split: URLs, class labels (classification) or boxes (detection)."""

    files: list[str]
    classes: list[str]
    labels: np.ndarray | None = None  # int64 [N] class index; -1: unknown (predict input)
    boxes: list[np.ndarray] | None = None  # per image float32 [n, 4] x1 y1 x2 y2 (pixels)
    box_classes: list[np.ndarray] | None = None  # per image int64 [n]
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.files)

    def head(self, n: int | None) -> "Records":
        """The first ``n`` records (all when n is None)."""
        if n is None or n >= len(self):
            return self
        cut = lambda v: None if v is None else v[:n]  # noqa: E731
        return Records(self.files[:n], self.classes, cut(self.labels), cut(self.boxes), cut(self.box_classes),
                       self.storage_options)


def detect_format(path: str, storage_options: dict[str, Any]) -> str:
    """list | folder | coco for ``path`` (auto-detection)."""
    if path.lower().endswith(".json"):
        return "coco"
    fs, inner = filesystem_for(path, storage_options)
    if fs.isdir(inner):
        return "folder"
    if posixpath.splitext(path.lower())[1] in IMAGE_EXTENSIONS:
        return "image"
    return "list"


def _join(base: str, rel: str) -> str:
    if "://" in rel or rel.startswith("/"):
        return rel
    return posixpath.join(base, rel) if base else rel


def _parent(url: str) -> str:
    return url.rsplit("/", 1)[0] if "/" in url else ""


def _read_text(url: str, storage_options: dict[str, Any], what: str) -> str:
    fs, inner = filesystem_for(url, storage_options)
    try:
        with fs.open(inner, "rb") as fh:
            return fh.read().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(what, f"file not found: {url}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"not a UTF-8 text file ({exc})", file=url) from None


def _class_index(classes: list[str] | None) -> dict[str, int]:
    return {c: i for i, c in enumerate(classes or [])}


def read_list(url: str, image_root: str | None, classes: list[str] | None, storage_options: dict[str, Any],
              what: str, labelled: bool = True) -> Records:
    """A list file of ``<path> <label>`` lines."""
    text = _read_text(url, storage_options, what)
    base = image_root if image_root is not None else _parent(url)
    if classes is None:  # classes.txt beside the list file names the classes in index order
        fs, inner = filesystem_for(_join(_parent(url), "classes.txt"), storage_options)
        if fs.exists(inner):
            with fs.open(inner, "rb") as fh:
                classes = [c.strip() for c in fh.read().decode("utf-8").splitlines() if c.strip()]
    files, raw_labels = [], []
    for lineno, line in enumerate(text.splitlines()):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) == 1:
            if labelled:
                raise DataError(f"line {lineno + 1}: expected '<path> <label>', got {line!r}", file=url)
            parts = [parts[0], ""]
        files.append(_join(base, parts[0]))
        raw_labels.append(parts[1])
    if not files:
        raise DataError("the list file names no images", file=url)
    if classes is None:  # no names given: the labels themselves, sorted (numerically when they are numbers)
        found = sorted({lab for lab in raw_labels if lab}, key=lambda s: (not s.isdigit(), int(s) if s.isdigit()
                                                                         else 0, s))
        classes = found
    index = _class_index(classes)
    labels = np.full(len(files), -1, np.int64)
    for i, lab in enumerate(raw_labels):
        if not lab:
            continue
        if lab in index:
            labels[i] = index[lab]
        elif lab.lstrip("-").isdigit() and 0 <= int(lab) < len(classes):
            labels[i] = int(lab)
        else:
            raise DataError(f"label {lab!r} of {files[i]} is neither a class name nor an index below "
                            f"{len(classes)} (classes: {', '.join(classes[:20])})", file=url)
    return Records(files, list(classes), labels=labels, storage_options=storage_options)


def read_folder(url: str, classes: list[str] | None, storage_options: dict[str, Any], what: str,
                labelled: bool = True) -> Records:
    """``<root>/<class>/<image>`` (or, unlabelled, every image under ``url``)."""
    fs, inner = filesystem_for(url, storage_options)
    if not fs.isdir(inner):
        raise ConfigError(what, f"not a directory: {url}")
    found = sorted(p for p in fs.find(inner) if posixpath.splitext(p.lower())[1] in IMAGE_EXTENSIONS
                   and not any(part.startswith(".") for part in posixpath.relpath(p, inner).split("/")))
    if not found:
        raise DataError("no image files (" + ", ".join(IMAGE_EXTENSIONS) + ") under the folder", file=url)
    rels = [posixpath.relpath(p, inner) for p in found]
    files = [_join(url.rstrip("/"), r) for r in rels]
    if not labelled:
        return Records(files, list(classes or []), labels=np.full(len(files), -1, np.int64),
                       storage_options=storage_options)
    folders = [r.split("/")[0] if "/" in r else "" for r in rels]
    if "" in folders:
        bad = files[folders.index("")]
        raise DataError(f"image {bad} is not inside a class folder (layout: <root>/<class>/<image>)", file=url)
    if classes is None:
        classes = sorted(set(folders))
    index = _class_index(classes)
    unknown = sorted(set(folders) - set(index))
    if unknown:
        raise DataError(f"class folders {unknown[:5]} are not in data.classes", file=url)
    return Records(files, list(classes), labels=np.array([index[f] for f in folders], np.int64),
                   storage_options=storage_options)


def read_coco(url: str, image_root: str | None, classes: list[str] | None, storage_options: dict[str, Any],
              what: str) -> Records:
    """COCO instances JSON: images with their boxes (crowd boxes are dropped)."""
    try:
        coco = json.loads(_read_text(url, storage_options, what))
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc})", file=url) from None
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise DataError(f"not a COCO instances file: no '{key}'", file=url)
    cats = sorted(coco["categories"], key=lambda c: c["id"])
    names = [str(c["name"]) for c in cats]
    if classes is not None and list(classes) != names:
        raise ConfigError("data.classes", f"the COCO categories of {url} are {names}, not {list(classes)}")
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    base = image_root if image_root is not None else _parent(url)
    order = {img["id"]: i for i, img in enumerate(coco["images"])}
    boxes: list[list[list[float]]] = [[] for _ in coco["images"]]
    labels: list[list[int]] = [[] for _ in coco["images"]]
    for ann in coco["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        if ann["image_id"] not in order or ann["category_id"] not in cat_index:
            raise DataError(f"annotation {ann.get('id')} names an unknown image or category", file=url)
        x, y, w, h = (float(v) for v in ann["bbox"])
        if w <= 0 or h <= 0:
            continue
        i = order[ann["image_id"]]
        boxes[i].append([x, y, x + w, y + h])
        labels[i].append(cat_index[ann["category_id"]])
    return Records(
        files=[_join(base, img["file_name"]) for img in coco["images"]], classes=names,
        boxes=[np.asarray(b, np.float32).reshape(-1, 4) for b in boxes],
        box_classes=[np.asarray(c, np.int64) for c in labels], storage_options=storage_options)


def read_records(path: str, fmt: str, image_root: str | None, classes: list[str] | None,
                 storage_options: dict[str, Any], what: str, detection: bool, labelled: bool = True) -> Records:
    """The records of ``path`` in layout ``fmt`` (auto-detected when ``auto``)."""
    options = dict(storage_options or {})
    if fmt == "auto":
        fmt = detect_format(path, options)
    if fmt == "image":  # one image file: prediction input
        return Records([path], list(classes or []), labels=np.full(1, -1, np.int64), storage_options=options)
    if detection and fmt != "coco" and labelled:
        raise ConfigError(what, f"a detector needs COCO JSON with boxes; {path} reads as format {fmt}")
    if fmt == "coco":
        return read_coco(path, image_root, classes, options, what)
    if fmt == "folder":
        return read_folder(path, classes, options, what, labelled)
    return read_list(path, image_root, classes, options, what, labelled)
