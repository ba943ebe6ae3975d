"""An open-addressing hash index in torch tensors: 64-bit key -> slot, vectorised.

Why not a Python dict: a batch brings ~10^5 ids and a dict costs a Python call per id. Why
not one sorted array + ``torch.searchsorted``: every admission would re-sort the whole key
array. Here ``find`` and ``insert`` run linear probing for all queried keys at once, one
tensor round per probe distance (at most a handful at load <= 0.6), and cost O(queried
keys), not O(table). Deleting marks a slot ``TOMBSTONE`` (probes walk past it; inserts reuse
it); when live + dead slots pass 60% of the table it is rebuilt at twice the live count.

Per-slot metadata columns (count, last step, tier, row, ...) live in ``cols`` aligned with
``keys``, so a rebuild permutes them together with the keys.
"""
from __future__ import annotations

import torch
from torch import Tensor

from easyrec.dynamic.keys import EMPTY, TOMBSTONE

_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64: Fibonacci hashing
MAX_LOAD = 0.6


def mix(keys: Tensor, salt: int = _GOLDEN) -> Tensor:
    """A 64-bit multiplicative mix of the keys (int64 arithmetic wraps modulo 2^64)."""
    x = keys ^ (keys >> 31)
    return x * salt


class HashIndex:
    """``keys`` [T] (T a power of two, EMPTY / TOMBSTONE in free slots) + aligned ``cols``."""

    def __init__(self, columns: dict[str, tuple[torch.dtype, int]], device: torch.device,
                 capacity: int = 1024) -> None:
        self.device = torch.device(device)
        self.col_specs = dict(columns)  # name -> (dtype, fill value of a free slot)
        self.live = 0
        self.dead = 0
        self.version = 0  # bumped by every change of the key -> slot map (see find_cached)
        self.generation = 0  # bumped when slots are re-laid out (a rebuild): a key found at
        # a slot stays there until deleted while the generation is unchanged
        self._memo: tuple | None = None
        self._alloc(_pow2(max(16, capacity)))

    def _alloc(self, size: int) -> None:
        self.version += 1
        self.generation += 1
        self.size = size
        self.bits = size.bit_length() - 1
        self.mask = size - 1
        self.keys = torch.full((size,), EMPTY, dtype=torch.int64, device=self.device)
        self.cols = {n: torch.full((size,), fill, dtype=dt, device=self.device)
                     for n, (dt, fill) in self.col_specs.items()}

    def to(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.keys = self.keys.to(self.device)
        self.cols = {n: c.to(self.device) for n, c in self.cols.items()}

    def _home(self, keys: Tensor) -> Tensor:
        return (mix(keys) >> (64 - self.bits)) & self.mask

    def find_cached(self, keys: Tensor) -> Tensor:
        """``find``, answered from memory when asked about the very same tensor again with the
        map unchanged (a step asks about its batch's keys in the forward and in the update)."""
        memo = self._memo
        if memo is not None and memo[0] is keys and memo[1] == self.version:
            return memo[2]
        slots = self.find(keys)
        self._memo = (keys, self.version, slots)
        return slots

    def find(self, keys: Tensor) -> Tensor:
        """Slot of each key, -1 where absent."""
        out = torch.full_like(keys, -1)
        if keys.numel() == 0 or self.live == 0:
            return out
        pos = self._home(keys)
        active = torch.arange(keys.numel(), device=keys.device)
        qk = keys
        for _ in range(self.size):
            k = self.keys[pos]
            hit = k == qk
            out[active[hit]] = pos[hit]
            go = ~(hit | (k == EMPTY))
            if not bool(go.any()):
                break
            active, qk = active[go], qk[go]
            pos = (pos[go] + 1) & self.mask
        return out

    def insert(self, keys: Tensor) -> Tensor:
        """Insert distinct keys known to be absent; returns their slots (grows if needed)."""
        n = keys.numel()
        if n == 0:
            return torch.zeros(0, dtype=torch.int64, device=self.device)
        if self.live + self.dead + n > MAX_LOAD * self.size:
            self.rebuild(self.live + n)
        out = torch.empty_like(keys)
        pos = self._home(keys)
        active = torch.arange(n, device=keys.device)
        while active.numel():
            k = self.keys[pos]
            free = (k == EMPTY) | (k == TOMBSTONE)
            reused = int((k[free] == TOMBSTONE).sum())
            cand, cpos = active[free], pos[free]
            # several keys may probe the same free slot this round: the first (in a stable
            # sort by slot) takes it, the others probe on
            cpos_sorted, order = torch.sort(cpos, stable=True)
            first = torch.ones_like(cpos_sorted, dtype=torch.bool)
            first[1:] = cpos_sorted[1:] != cpos_sorted[:-1]
            win, wpos = cand[order[first]], cpos_sorted[first]
            if reused:
                self.dead -= int((self.keys[wpos] == TOMBSTONE).sum())
            self.keys[wpos] = keys[win]
            out[win] = wpos
            placed = torch.zeros(n, dtype=torch.bool, device=keys.device)
            placed[win] = True
            keep = ~placed[active]
            active = active[keep]
            pos = (pos[keep] + 1) & self.mask
        self.live += n
        self.version += 1
        return out

    def delete(self, slots: Tensor) -> None:
        """Free these (live) slots and reset their metadata."""
        if slots.numel() == 0:
            return
        self.keys[slots] = TOMBSTONE
        for name, (_, fill) in self.col_specs.items():
            self.cols[name][slots] = fill
        self.live -= slots.numel()
        self.dead += slots.numel()
        self.version += 1

    def live_slots(self) -> Tensor:
        return torch.nonzero(self.keys > TOMBSTONE).squeeze(1)

    def rebuild(self, expected: int) -> None:
        """Re-insert every live key into a table sized for ``expected`` keys at load <= 1/2."""
        slots = self.live_slots()
        keys = self.keys[slots]
        cols = {n: c[slots] for n, c in self.cols.items()}
        self._alloc(_pow2(max(16, 2 * expected)))
        self.live = self.dead = 0
        new = self.insert(keys)
        for n, c in cols.items():
            self.cols[n][new] = c

    def memory_bytes(self) -> int:
        return self.keys.numel() * 8 + sum(c.numel() * c.element_size() for c in self.cols.values())


def _pow2(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())
