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
_WINDOW = 16  # slots a probe round reads per key after the first round


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
        """Slot of each key, -1 where absent.

        Round one probes every key's home slot (most keys are there); the few keys left then
        read a window of ``_WINDOW`` slots per round, so a long probe tail costs a couple of
        rounds of tensor ops, not one round per slot."""
        out = torch.full_like(keys, -1)
        if keys.numel() == 0 or self.live == 0:
            return out
        pos = self._home(keys)
        active = torch.arange(keys.numel(), device=keys.device)
        qk = keys
        k = self.keys[pos]
        hit = k == qk
        out[active[hit]] = pos[hit]
        go = ~(hit | (k == EMPTY))
        active, qk, pos = active[go], qk[go], (pos[go] + 1) & self.mask
        step = torch.arange(_WINDOW, device=keys.device)
        for _ in range(0, self.size, _WINDOW):
            if active.numel() == 0:
                break
            win = (pos.unsqueeze(1) + step) & self.mask
            k = self.keys[win]
            hit = k == qk.unsqueeze(1)
            stop = hit | (k == EMPTY)  # a key lies before the first empty slot of its probe
            first = torch.argmax(stop.to(torch.uint8), dim=1)
            ended = stop.any(1)
            found = ended & hit.gather(1, first.unsqueeze(1)).squeeze(1)
            out[active[found]] = win[found, first[found]]
            go = ~ended
            active, qk, pos = active[go], qk[go], (pos[go] + _WINDOW) & self.mask
        return out

    def insert(self, keys: Tensor) -> Tensor:
        """Insert distinct keys known to be absent; returns their slots (grows if needed).

        Each key takes the first free (empty or tombstone) slot of its probe sequence; keys
        that pick the same slot in a round are resolved by a stable sort (the first in
        ``keys`` order wins, the others probe on: deterministic on every replica). Windowed
        after the first round, as ``find``."""
        n = keys.numel()
        if n == 0:
            return torch.zeros(0, dtype=torch.int64, device=self.device)
        if self.live + self.dead + n > MAX_LOAD * self.size:
            self.rebuild(self.live + n)
        out = torch.empty_like(keys)
        pos = self._home(keys)
        active = torch.arange(n, device=keys.device)
        width = 1
        step = torch.arange(_WINDOW, device=keys.device)
        while active.numel():
            win = (pos.unsqueeze(1) + step[:width]) & self.mask
            k = self.keys[win]
            free = (k == EMPTY) | (k == TOMBSTONE)
            first = torch.argmax(free.to(torch.uint8), dim=1)
            has = free.any(1)
            cand = active[has]
            cpos = win[has, first[has]]
            # several keys may pick the same free slot this round: the first (in a stable
            # sort by slot) takes it, the others probe on from the slot after it
            cpos_sorted, order = torch.sort(cpos, stable=True)
            first_of = torch.ones_like(cpos_sorted, dtype=torch.bool)
            first_of[1:] = cpos_sorted[1:] != cpos_sorted[:-1]
            win_keys, wpos = cand[order[first_of]], cpos_sorted[first_of]
            self.dead -= int((self.keys[wpos] == TOMBSTONE).sum())
            self.keys[wpos] = keys[win_keys]
            out[win_keys] = wpos
            placed = torch.zeros(n, dtype=torch.bool, device=keys.device)
            placed[win_keys] = True
            # next probe start: after the slot a key picked (lost it), else after the window
            nxt = pos + width
            nxt[has] = cpos + 1
            keep = ~placed[active]
            active = active[keep]
            pos = nxt[keep] & self.mask
            width = _WINDOW
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
