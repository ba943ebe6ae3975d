"""Images -> augmented batches for the shared TrainLoop, prepared by a background thread.

The loader speaks the TrainLoop's protocol: ``epoch(epoch, skip_batches)`` yields
``(indices, ImageBatch)`` pairs, ``source.stats`` counts unreadable images (``bad_rows``).
Order and augmentation are functions of (seed, epoch, rank, batch index) only, so a resumed
run continues with exactly the batches it would have seen. Each rank of a distributed job
reads every ``world_size``-th image of the (shuffled) order: its own shard.
"""
from __future__ import annotations

import io
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch

from dataio.filesystems import filesystem_for
from easycv.data.records import Records
from easycv.data.transforms import Pipeline, Sample
from lingjie.errors import DataError

log = logging.getLogger("lingjie.easycv")
_END = object()


class ImageTooLarge(ValueError):
    """An image whose width or height exceeds the caller's limit (checked before decoding pixels)."""


def decode_image(data: bytes, channels: int, max_side: int | None = None) -> np.ndarray:
    """uint8 [H, W, C] of encoded image bytes (PNG, JPEG, ...), converted to ``channels`` (1: L,
    else RGB) exactly as training reads its files; serving decodes request images through this
    too, so a served image sees the pixels training saw. ``max_side`` refuses an oversized image
    from its header alone (ImageTooLarge), before its pixels take memory."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if max_side is not None and max(im.size) > max_side:
            raise ImageTooLarge(f"{im.size[0]}x{im.size[1]} pixels is larger than {max_side}x{max_side}")
        im.load()
        arr = np.asarray(im.convert("L" if channels == 1 else "RGB"))
    return arr[:, :, None] if arr.ndim == 2 else arr


def image_sample(arr: np.ndarray) -> Sample:
    """A :class:`Sample` (float32 [C, H, W] in 0..1) of a decoded uint8 [H, W, C] image; a copy,
    so a cached array stays intact."""
    img = torch.tensor(arr).permute(2, 0, 1).float().div_(255.0)
    return Sample(img, orig_size=(arr.shape[0], arr.shape[1]))


class ImageSource:
    """Reads and decodes the images of ``records`` (fsspec), with an optional in-memory cache.

    An unreadable image raises a DataError naming the file (``on_error=raise``) or is skipped and
    counted in ``stats['bad_rows']`` (``on_error=skip``; each bad file counted once)."""

    def __init__(self, records: Records, channels: int, on_error: str = "raise", cache: bool = True) -> None:
        self.records = records
        self.channels = channels
        self.on_error = on_error
        self.cache: dict[int, np.ndarray] | None = {} if cache else None
        self.bad: set[int] = set()
        self.stats: dict[str, Any] = {"bad_rows": 0, "bad_files": []}
        self._lock = threading.Lock()
        self._fs: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.records)

    def _open(self, url: str) -> bytes:
        fs, inner = filesystem_for(url, self.records.storage_options)
        with fs.open(inner, "rb") as fh:
            return fh.read()

    def decode(self, i: int) -> np.ndarray | None:
        """uint8 [H, W, C] of image ``i``; None when it is unreadable and on_error=skip."""
        if self.cache is not None and i in self.cache:
            return self.cache[i]
        if i in self.bad:
            return None
        url = self.records.files[i]
        try:
            arr = decode_image(self._open(url), self.channels)
        except FileNotFoundError:
            return self._bad(i, url, "file not found")
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for corrupt data
            return self._bad(i, url, f"cannot decode image ({type(exc).__name__}: {exc})")
        if self.cache is not None:
            self.cache[i] = arr
        return arr

    def _bad(self, i: int, url: str, why: str) -> None:
        if self.on_error == "raise":
            raise DataError(f"{why}; fix or remove it, or set data.on_error=skip to skip unreadable images",
                            file=url)
        with self._lock:
            if i not in self.bad:
                self.bad.add(i)
                self.stats["bad_rows"] = len(self.bad)
                if len(self.stats["bad_files"]) < 20:
                    self.stats["bad_files"].append(url)
                log.warning("skipping unreadable image %s: %s", url, why)
        return None

    def sample(self, i: int) -> Sample | None:
        arr = self.decode(i)
        if arr is None:
            return None
        r = self.records
        s = image_sample(arr)
        if r.labels is not None:
            s.label = int(r.labels[i])
        if r.boxes is not None:
            s.boxes, s.classes = r.boxes[i].copy(), r.box_classes[i].copy()
        return s


@dataclass
class ImageBatch:
    """One batch: normalised images and their targets, plus what predict needs to map back."""

    images: np.ndarray  # float32 [B, C, H, W]
    labels: dict[str, Any]  # {"label": int64 [B]} or {"boxes": [float32 [n, 5] (class, x1, y1, x2, y2)]}
    files: list[str] = field(default_factory=list)
    affines: np.ndarray | None = None  # float32 [B, 4]: sx, sy, tx, ty (original -> input pixels)
    orig_sizes: np.ndarray | None = None  # int64 [B, 2]: h, w

    @property
    def size(self) -> int:
        return int(self.images.shape[0])

    def to_torch(self, device: torch.device) -> torch.Tensor:
        return torch.from_numpy(self.images).to(device, non_blocking=True)

    def labels_to_torch(self, device: torch.device) -> Any:
        if "label" in self.labels:
            return torch.from_numpy(self.labels["label"]).to(device)
        return [torch.from_numpy(b).to(device) for b in self.labels["boxes"]]


def collate(samples: list[Sample], files: list[str], detection: bool, image_size: int) -> ImageBatch:
    """Stack samples into a batch; every image must have the configured input size."""
    for s, f in zip(samples, files):
        if tuple(s.image.shape[1:]) != (image_size, image_size):
            raise DataError(f"the transforms produced a {s.image.shape[2]}x{s.image.shape[1]} image, not "
                            f"data.image_size={image_size}: end the pipeline with a resize (keep_ratio "
                            "for detection) or random_crop of that size", file=f)
    images = torch.stack([s.image for s in samples]).numpy() if samples else np.zeros((0, 1, image_size,
                                                                                       image_size), np.float32)
    if detection:
        labels = {"boxes": [np.concatenate([s.classes[:, None].astype(np.float32), s.boxes], 1)
                            if s.boxes is not None and len(s.boxes) else np.zeros((0, 5), np.float32)
                            for s in samples]}
    else:
        labels = {"label": np.array([s.label for s in samples], np.int64)}
    return ImageBatch(images=np.ascontiguousarray(images, np.float32), labels=labels, files=files,
                      affines=np.array([s.affine for s in samples], np.float32).reshape(-1, 4),
                      orig_sizes=np.array([s.orig_size for s in samples], np.int64).reshape(-1, 2))


class ImageLoader:
    """Batches of one split for one rank (see module doc)."""

    def __init__(self, source: ImageSource, pipeline: Pipeline, batch_size: int, image_size: int, detection: bool,
                 *, shuffle: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1,
                 prefetch: int = 4, augment: bool = False) -> None:
        self.source = source
        self.pipeline = pipeline
        self.batch_size = batch_size
        self.image_size = image_size
        self.detection = detection
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.prefetch = prefetch
        self.augment = augment

    def order(self, epoch: int) -> np.ndarray:
        """This rank's image indices for ``epoch``: the seeded permutation's every world_size-th."""
        n = len(self.source)
        idx = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
        return idx[self.rank::self.world_size]

    def num_batches(self) -> int:
        return -(-len(self.order(0)) // self.batch_size)

    def _batch(self, epoch: int, b: int, indices: np.ndarray) -> ImageBatch:
        rng = np.random.default_rng([self.seed, epoch, self.rank, b])
        n = len(self.source)

        def draw(k: int) -> list[Sample]:  # mosaic partners: any readable images of the split
            out: list[Sample] = []
            for _ in range(20 * k):
                s = self.source.sample(int(rng.integers(n)))
                if s is not None:
                    out.append(s)
                    if len(out) == k:
                        break
            return out

        samples, files = [], []
        for i in indices:
            s = self.source.sample(int(i))
            if s is None:  # unreadable, on_error=skip: counted by the source
                continue
            samples.append(self.pipeline(s, rng, draw if self.augment else None))
            files.append(self.source.records.files[int(i)])
        return collate(samples, files, self.detection, self.image_size)

    def epoch(self, epoch: int, skip_batches: int = 0) -> Iterator[tuple[np.ndarray, ImageBatch]]:
        """Yield ``(indices, batch)`` from batch ``skip_batches`` on; a thread prepares ahead."""
        order = self.order(epoch)
        starts = list(range(skip_batches * self.batch_size, len(order), self.batch_size))
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def produce() -> None:
            try:
                for k, start in enumerate(starts):
                    idx = order[start:start + self.batch_size]
                    item = (idx, self._batch(epoch, skip_batches + k, idx))
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                q.put(_END)
            except BaseException as exc:  # surfaced in the consumer
                q.put(exc)

        thread = threading.Thread(target=produce, name="easycv-loader", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                if item[1].size:
                    yield item
        finally:
            stop.set()
            thread.join(timeout=5)
