"""Tier rebalancing plans, computed on the training thread or in a background worker.

A rebalance ranks every row hottest-first (``storage.policy``), assigns the ranks to the
tiers in order of their capacities and moves the misplaced rows. Ranking is a sort over all
rows, which is what makes the step that triggers a synchronous rebalance slow; the plan
itself only touches the moved rows. With ``storage.background`` the training thread copies
the five index columns (a memcpy), and a :class:`Worker` thread ranks the copy, picks the
rows to move and gathers them (embedding + optimizer state) from their tiers into a staging
tensor while training goes on (torch ops release the GIL, so the two really overlap). The
training thread applies the :class:`MovePlan` at a fixed later step (see
``DynamicTable._apply_plan``): rows updated since the snapshot are re-read, rows evicted or
moved since are dropped from the plan, so no update is lost and the result is reproducible.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from easyrec.dynamic.keys import TOMBSTONE


def coldest_first(keys: Tensor, count: Tensor, last: Tensor, policy: str) -> Tensor:
    """Order (indices) of rows coldest first: by count (lfu) or last step (lru), the other
    one next, then by key (deterministic across replicas and resumes). Both columns are
    non-negative int32, so one int64 sort key carries the pair: two sorts instead of three."""
    primary, secondary = (count, last) if policy == "lfu" else (last, count)
    order = torch.sort(keys, stable=True).indices
    packed = (primary[order].to(torch.int64) << 32) | secondary[order].to(torch.int64)
    return order[torch.sort(packed, stable=True).indices]


def desired_tiers(n: int, capacities: list[int | None]) -> Tensor:
    """Tier of each rank (hottest first) when ``n`` rows fill the tiers in order."""
    desired = torch.empty(n, dtype=torch.int64)
    start = 0
    for t, cap in enumerate(capacities):
        cap = n if cap is None else cap
        desired[start:start + cap] = t
        start += cap
        if start >= n:
            break
    return desired


def misplaced(keys: Tensor, count: Tensor, last: Tensor, tier: Tensor, policy: str,
              capacities: list[int | None]) -> tuple[Tensor, Tensor]:
    """(indices of the rows to move, their destination tiers), given every row's key, count,
    last step and current tier."""
    hottest = coldest_first(keys, count, last, policy).flip(0)
    desired = desired_tiers(hottest.numel(), capacities).to(keys.device)
    move = desired != tier[hottest].to(torch.int64)
    return hottest[move], desired[move]


@dataclass
class Snapshot:
    """Copies of the index columns at the step a background rebalance starts."""

    step: int
    generation: int  # the index's: while unchanged, a key still in the index kept its slot
    keys: Tensor
    count: Tensor
    last: Tensor
    tier: Tensor
    row: Tensor


@dataclass
class MovePlan:
    """Rows to move: identified by key (index slots move when the index is rebuilt), where
    they were at the snapshot, where they go, and their rows as read by the worker."""

    step: int          # the snapshot's step: rows written at or after it are re-read
    apply_step: int    # the step whose end applies the plan
    generation: int    # the index generation of the snapshot (see Snapshot)
    slots: Tensor      # index slots at the snapshot
    keys: Tensor
    src_tier: Tensor
    src_pos: Tensor
    dest: Tensor
    data: Tensor       # [moved, width] staging copy on the table's device


class Worker:
    """One background computation in a non-daemon thread; ``result()`` joins it and
    re-raises its exception on the caller's (training) thread with ``what`` in the message."""

    def __init__(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        self.what = what
        self._out: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), name=what, daemon=False)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple) -> None:
        try:
            with torch.no_grad():
                self._out = fn(*args)
        except BaseException as exc:  # surfaced by result() on the training thread
            self._error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"{self.what} failed in its background thread: "
                               f"{type(self._error).__name__}: {self._error} (set "
                               "storage.background: false to run it on the training thread)"
                               ) from self._error
        return self._out


def live_rows(snap: Snapshot) -> Tensor:
    """Positions in the snapshot's columns of the slots that hold a row."""
    return torch.nonzero((snap.keys > TOMBSTONE) & (snap.tier >= 0)).squeeze(1)
