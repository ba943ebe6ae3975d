"""Row storage tiers: device memory, host memory, a memory-mapped file.

A row is the embedding and its row-wise optimizer state side by side ([width] float32), so
moving a row between tiers moves its state too. Every tier hands out row positions from a
free list; memory tiers grow by doubling up to their capacity (an unsized table costs what
it holds), the disk tier is a sparse np.memmap file of its full capacity (pages are written
only when used). All reads and writes take a whole index tensor: no per-row Python.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import weakref

import numpy as np
import torch
from torch import Tensor

from lingjie.errors import ConfigError


class Tier:
    """Interface: ``alloc(k)`` positions, ``release``, ``read``/``write`` rows by position."""

    name = ""

    def __init__(self, capacity: int | None, width: int) -> None:
        self.capacity = capacity  # None: unbounded (memory tiers only)
        self.width = width
        self.used = 0

    @property
    def free_rows(self) -> int | None:
        return None if self.capacity is None else self.capacity - self.used

    def alloc(self, k: int) -> Tensor:
        raise NotImplementedError

    def release(self, pos: Tensor) -> None:
        raise NotImplementedError

    def read(self, pos: Tensor, device: torch.device) -> Tensor:
        raise NotImplementedError

    def write(self, pos: Tensor, rows: Tensor) -> None:
        raise NotImplementedError

    def memory_bytes(self) -> int:
        raise NotImplementedError


class MemoryTier(Tier):
    """Rows in a torch tensor on ``device`` (the model's device, or the CPU for ``host``)."""

    def __init__(self, name: str, device: torch.device, capacity: int | None, width: int) -> None:
        super().__init__(capacity, width)
        self.name = name
        self.device = torch.device(device)
        self.data = torch.zeros((0, width), dtype=torch.float32, device=self.device)
        self.free = torch.zeros(0, dtype=torch.int64, device=self.device)

    def to(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.data = self.data.to(self.device)
        self.free = self.free.to(self.device)

    def alloc(self, k: int) -> Tensor:
        if k == 0:
            return torch.zeros(0, dtype=torch.int64, device=self.device)
        if self.capacity is not None and self.used + k > self.capacity:
            raise RuntimeError(f"tier {self.name} is full ({self.used}/{self.capacity} rows)")
        if self.free.numel() < k:
            old = self.data.shape[0]
            new = max(2 * old, old + k - self.free.numel(), 1024)
            if self.capacity is not None:
                new = min(new, self.capacity)
            grown = torch.zeros((new, self.width), dtype=self.data.dtype, device=self.device)
            grown[:old] = self.data
            self.data = grown
            self.free = torch.cat([self.free, torch.arange(old, new, device=self.device)])
        pos, self.free = self.free[-k:], self.free[:-k]
        self.used += k
        return pos

    def release(self, pos: Tensor) -> None:
        self.free = torch.cat([self.free, pos.to(self.device)])
        self.used -= pos.numel()

    def read(self, pos: Tensor, device: torch.device) -> Tensor:
        return self.data[pos.to(self.device)].to(device, non_blocking=True)

    def write(self, pos: Tensor, rows: Tensor) -> None:
        self.data[pos.to(self.device)] = rows.to(self.device, self.data.dtype)

    def memory_bytes(self) -> int:
        return self.data.numel() * self.data.element_size()


class DiskTier(Tier):
    """Rows in a np.memmap file of ``capacity`` rows under ``directory`` (temp dir if None).

    The file is a cache of the table, not its checkpoint (checkpoints hold every row); it is
    removed when the tier is garbage-collected or the process exits.
    """

    name = "disk"

    def __init__(self, capacity: int, width: int, directory: str | None, label: str) -> None:
        super().__init__(capacity, width)
        owned = directory is None
        directory = directory or tempfile.mkdtemp(prefix="lingjie-dynamic-")
        try:
            os.makedirs(directory, exist_ok=True)
            self.path = os.path.join(directory, f"{label}-{uuid.uuid4().hex[:8]}.f32")
            self.mm = np.memmap(self.path, dtype=np.float32, mode="w+", shape=(capacity, width))
        except OSError as exc:
            raise ConfigError("features.*.dynamic.storage.path",
                              f"cannot create the disk tier file in {directory}: {exc}") from exc
        self.free = np.arange(capacity - 1, -1, -1, dtype=np.int64)  # pop from the end: 0, 1, ..
        cleanup = (shutil.rmtree, directory, True) if owned else (_unlink, self.path)
        self._finalizer = weakref.finalize(self, *cleanup)

    def alloc(self, k: int) -> Tensor:
        if k > self.free.size:
            raise RuntimeError(f"tier disk is full ({self.used}/{self.capacity} rows)")
        pos, self.free = self.free[self.free.size - k:], self.free[:self.free.size - k]
        self.used += k
        return torch.from_numpy(pos.copy())

    def release(self, pos: Tensor) -> None:
        self.free = np.concatenate([self.free, pos.cpu().numpy()])
        self.used -= pos.numel()

    def read(self, pos: Tensor, device: torch.device) -> Tensor:
        p = pos.cpu().numpy()
        return torch.from_numpy(np.ascontiguousarray(self.mm[p])).to(device)

    def write(self, pos: Tensor, rows: Tensor) -> None:
        self.mm[pos.cpu().numpy()] = rows.detach().cpu().numpy()

    def memory_bytes(self) -> int:
        return 0  # file-backed pages: the OS evicts them under memory pressure


def _unlink(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def make_tiers(names: list[str], capacities: list[int], width: int, device: torch.device,
               directory: str | None, label: str) -> list[Tier]:
    """The tiers of one table; ``capacities`` [] means one unsized memory tier."""
    tiers: list[Tier] = []
    for i, name in enumerate(names):
        cap = capacities[i] if capacities else None
        if name == "disk":
            tiers.append(DiskTier(int(cap), width, directory, label))
        else:
            dev = device if name == "device" else torch.device("cpu")
            tiers.append(MemoryTier(name, dev, cap, width))
    return tiers
