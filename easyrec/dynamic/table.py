"""DynamicTable: one embedding table keyed by raw 64-bit ids that grows, shrinks and tiers.

Life of an id (all steps vectorised over the unique ids of a batch):

1. ``lookup`` (forward): ids with a row read it from their tier; others (not yet admitted,
   evicted, null) read the model's learned default vector.
2. ``apply_gradients`` (after backward): the row-wise optimizer (``rowopt``) updates the
   rows that were read, in place in their tiers.
3. ``observe`` (after the update): counts and last-seen steps of the batch's ids; ids whose
   count reaches ``min_count`` are admitted (a row from the init pool, zero optimizer state,
   in the fastest tier with room); a full table first evicts its coldest rows (LFU: fewest
   sightings, LRU: least recent; ties by key, so every replica and every resume evicts the
   same rows) plus 1% slack, so a table at capacity does not sort itself every step.
4. ``end_step``: every ``evict_every_steps`` the ttl / l2 sweep; every
   ``storage.rebalance_every_steps`` the tiers are re-filled hottest-first (promotion and
   demotion as one batched move between steps, never per id). With ``storage.background``
   the ranking and the gathering of the rows to move run in a worker thread
   (``easyrec.dynamic.mover``) and the step ``apply_after_steps`` later applies the plan.

State (``state_dict``): keys, counts, last-seen steps, embeddings, optimizer state, the Bloom
filter, the init pool and the step, sorted by key so that equal tables give equal states.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from easyrec.dynamic.config import DynamicConfig
from easyrec.dynamic.index import HashIndex, mix
from easyrec.dynamic.keys import NULL_KEY
from easyrec.dynamic.mover import MovePlan, Snapshot, Worker, coldest_first, live_rows, misplaced
from easyrec.dynamic.rowopt import RowOptimizer
from easyrec.dynamic.tiers import Tier, make_tiers

STATE_FORMAT = 1
_POOL_SALT = 0x2545F4914F6CDD1D
_BLOOM_SALTS = (-7046029254386353131, 0x27D4EB2F165667C5, 0x165667B19E3779F9,
                -4658895280553007687, 0x5851F42D4C957F2D, 0x14057B7EF767814F,
                -2685821657736338717, 0x4CF5AD432745937F)
_POSITIVE = 0x7FFFFFFFFFFFFFFF
_CHUNK = 1 << 20  # rows per chunk when a sweep reads every row


class CountingBloom:
    """Saturating uint8 counters; a key's count is the minimum over its ``hashes`` counters."""

    def __init__(self, counters: int, hashes: int, device: torch.device) -> None:
        self.m = counters
        self.k = hashes
        self.counters = torch.zeros(counters, dtype=torch.uint8, device=device)

    def _slots(self, keys: Tensor) -> Tensor:
        return torch.stack([(mix(keys, s) & _POSITIVE) % self.m for s in _BLOOM_SALTS[:self.k]])

    def add(self, keys: Tensor, counts: Tensor) -> Tensor:
        """Add ``counts`` to ``keys``; returns their estimated counts afterwards."""
        slots = self._slots(keys)
        flat, inverse = torch.unique(slots.reshape(-1), return_inverse=True)
        added = torch.zeros(flat.numel(), dtype=torch.int32, device=keys.device)
        added.index_add_(0, inverse, counts.to(torch.int32).repeat(self.k))
        self.counters[flat] = (self.counters[flat].to(torch.int32) + added).clamp(max=255).to(torch.uint8)
        return self.counters[slots].to(torch.int32).min(0).values

    def memory_bytes(self) -> int:
        return self.m


class DynamicTable:
    """See the module docstring. ``device`` holds the index and the ``device`` tier."""

    def __init__(self, name: str, dim: int, cfg: DynamicConfig, device: torch.device | str = "cpu",
                 init_std: float | None = None) -> None:
        self.name = name
        self.dim = dim
        self.cfg = cfg
        self.device = torch.device(device)
        self.max_rows = cfg.max_rows
        std = init_std if init_std is not None else (
            cfg.init_std if cfg.init_std is not None else 1.0 / math.sqrt(dim))
        gen = None
        if cfg.seed is not None:
            gen = torch.Generator().manual_seed(int(cfg.seed))
        self.pool = torch.randn(cfg.init_pool_size, dim, generator=gen).mul_(std).to(self.device)
        self.optimizer: RowOptimizer | None = None
        self.step = 0
        self.stats = {"lookups": 0, "rows_hit": 0, "admitted": 0, "evicted_capacity": 0,
                      "evicted_ttl": 0, "evicted_l2": 0, "moved": 0, "move_dropped": 0,
                      "move_reread": 0, "plan_waited": 0}
        self.tier_hits = [0] * len(cfg.storage.tiers)
        # (slots, full rows, index generation) of the last lookup, until a row changes
        self._looked: tuple[Tensor, Tensor, int] | None = None
        self._worker: Worker | None = None  # the background rebalance in flight, if any
        # keys of the rows written while it is in flight: re-read when it is applied
        self._written: list[Tensor] = []
        self._plan_steps: tuple[int, int] | None = None  # its (snapshot step, apply step)
        self._reset()

    # ---- layout --------------------------------------------------------------------------

    @property
    def width(self) -> int:
        return self.dim + (self.optimizer.state_width if self.optimizer else 0)

    def _reset(self) -> None:
        self.discard_plan()
        self._looked = None
        self.index = HashIndex({"count": (torch.int32, 0), "last": (torch.int32, 0),
                                "tier": (torch.int8, -1), "row": (torch.int64, -1)}, self.device)
        self.bloom = (CountingBloom(self.cfg.bloom_counters, self.cfg.bloom_hashes, self.device)
                      if self.cfg.admission == "bloom" and self.cfg.min_count > 1 else None)
        st = self.cfg.storage
        self.tiers: list[Tier] = make_tiers(list(st.tiers), list(st.capacity), self.width,
                                            self.device, st.path, f"{self.name}-{self.dim}")
        self.num_rows = 0

    def set_optimizer(self, optimizer: RowOptimizer | None) -> None:
        """Give rows optimizer state columns (re-lays existing rows out, zero state)."""
        state = self.state_dict() if self.num_rows or self.index.live else None
        self.optimizer = optimizer
        self._reset()
        if state is not None:
            self.load_state_dict(state)

    def to(self, device: torch.device) -> None:
        """Move the index, the pool, the Bloom filter and the ``device`` tier (a background
        plan in flight is dropped: its staging copy lives on the old device)."""
        self.discard_plan()
        self._looked = None
        self.device = torch.device(device)
        self.index.to(self.device)
        self.pool = self.pool.to(self.device)
        if self.bloom is not None:
            self.bloom.counters = self.bloom.counters.to(self.device)
        for t in self.tiers:
            if t.name == "device":
                t.to(self.device)  # type: ignore[attr-defined]

    # ---- rows ----------------------------------------------------------------------------

    def _read(self, slots: Tensor) -> Tensor:
        """Full rows [n, width] of admitted slots, gathered tier by tier."""
        pos = self.index.cols["row"][slots]
        if len(self.tiers) == 1:  # no partition by tier (a nonzero and a scatter per call)
            return self.tiers[0].read(pos, self.device)
        tier = self.index.cols["tier"][slots]
        out = torch.empty((slots.numel(), self.width), dtype=torch.float32, device=self.device)
        for t, store in enumerate(self.tiers):
            sel = torch.nonzero(tier == t).squeeze(1)
            if sel.numel():
                out[sel] = store.read(pos[sel], self.device)
        return out

    def _write(self, slots: Tensor, rows: Tensor) -> None:
        self._wrote(slots)
        self._looked = None
        pos = self.index.cols["row"][slots]
        if len(self.tiers) == 1:
            self.tiers[0].write(pos, rows)
            return
        tier = self.index.cols["tier"][slots]
        for t, store in enumerate(self.tiers):
            sel = torch.nonzero(tier == t).squeeze(1)
            if sel.numel():
                store.write(pos[sel], rows[sel])

    def lookup(self, keys: Tensor, counts: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(indices into ``keys`` that have a row, their embeddings [n, dim]).

        ``counts`` (occurrences of each key in the batch) feeds the hit-rate statistics.
        """
        slots = self.index.find_cached(keys)
        tier = torch.where(slots >= 0, self.index.cols["tier"][slots.clamp(min=0)].to(torch.int64), -1)
        found = torch.nonzero(tier >= 0).squeeze(1)
        found_slots = slots[found]
        full = self._read(found_slots)
        # the update of this step reads the same rows: kept until any row changes
        self._looked = (found_slots, full, self.index.generation)
        if counts is not None:  # one host sync for every statistic
            n = len(self.tiers)
            per_tier = torch.zeros(n + 1, dtype=torch.int64, device=keys.device)
            per_tier.index_add_(0, torch.where(tier >= 0, tier, n), counts.to(torch.int64))
            hits = per_tier.tolist()
            for t in range(n):
                self.tier_hits[t] += hits[t]
            self.stats["rows_hit"] += sum(hits[:n])
            self.stats["lookups"] += sum(hits)
        return found, full[:, :self.dim]

    def apply_gradients(self, keys: Tensor, grads: Tensor, lr: float,
                        slots: Tensor | None = None) -> None:
        """One optimizer step on the rows of ``keys`` (distinct keys that have rows);
        ``slots``: their index slots when the caller knows them (saves a probe)."""
        if self.optimizer is None:
            raise RuntimeError(f"dynamic table {self.name} has no optimizer (inference only)")
        if keys.numel() == 0:
            return
        if slots is None:
            slots = self.index.find(keys)
        ok = slots >= 0
        if not bool(ok.all()):  # cannot happen between a lookup and its step; be safe anyway
            slots, grads = slots[ok], grads[ok]
        looked = self._looked
        if (looked is not None and looked[2] == self.index.generation
                and looked[0].numel() == slots.numel() and torch.equal(looked[0], slots)):
            rows = looked[1]  # this step's lookup read these very rows, unchanged since
        else:
            rows = self._read(slots)
        self._write(slots, self.optimizer.update(rows, grads.to(self.device), lr))

    # ---- admission -----------------------------------------------------------------------

    def observe(self, keys: Tensor, counts: Tensor) -> None:
        """Count a training batch's distinct ``keys`` (``counts`` occurrences) and admit."""
        valid = keys != NULL_KEY
        if not bool(valid.all()):
            keys, counts = keys[valid], counts[valid]
        counts = counts.to(torch.int32)
        if keys.numel() == 0:
            return
        cols = self.index.cols
        slots = self.index.find_cached(keys)
        present = slots >= 0
        ps = slots[present]
        cols["count"][ps] = (cols["count"][ps].to(torch.int64) + counts[present]).clamp(
            max=2 ** 31 - 1).to(torch.int32)
        cols["last"][ps] = self.step
        # slots without a row whose count reached min_count (exact admission's candidates)
        admit_slots = ps[(cols["tier"][ps] < 0) & (cols["count"][ps] >= self.cfg.min_count)]
        new_keys, new_counts = keys[~present], counts[~present]
        new_admit = torch.zeros(0, dtype=torch.int64, device=self.device)
        if new_keys.numel():
            # (an insert may rebuild the index: admit_slots and cols are re-read after it)
            if self.cfg.min_count <= 1:
                admit_keys = self.index.keys[admit_slots]
                new_admit = self._insert(new_keys, new_counts)
            elif self.bloom is not None:
                est = self.bloom.add(new_keys, new_counts)
                ok = est >= self.cfg.min_count
                admit_keys = self.index.keys[admit_slots]
                new_admit = self._insert(new_keys[ok], est[ok])
            else:
                admit_keys = self.index.keys[admit_slots]
                cand = self._insert(new_keys, new_counts)
                new_admit = cand[new_counts >= self.cfg.min_count]
            if admit_keys.numel():
                admit_slots = self.index.find(admit_keys)
        self._admit(torch.cat([admit_slots, new_admit]))

    def _insert(self, keys: Tensor, counts: Tensor) -> Tensor:
        slots = self.index.insert(keys)
        self.index.cols["count"][slots] = counts.to(torch.int32)
        self.index.cols["last"][slots] = self.step
        return slots

    def _admit(self, slots: Tensor) -> None:
        """Give rows to these slots: evict first if full; new rows fill the fastest tiers."""
        if slots.numel() == 0:
            return
        self._looked = None
        if self.max_rows is not None:
            if slots.numel() > self.max_rows:  # more new ids than the table holds: the most seen
                order = self._coldest_first(slots, "lfu")
                drop, slots = order[:slots.numel() - self.max_rows], order[slots.numel() - self.max_rows:]
                self.index.delete(drop)
            over = self.num_rows + slots.numel() - self.max_rows
            if over > 0:
                slack = max(1, self.max_rows // 100)
                self._evict_coldest(min(self.num_rows, over + slack))
        rows = torch.zeros((slots.numel(), self.width), dtype=torch.float32, device=self.device)
        keys = self.index.keys[slots]
        pick = (mix(keys, _POOL_SALT) & _POSITIVE) % self.pool.shape[0]
        rows[:, :self.dim] = self.pool[pick]
        self._place(slots, self._anywhere(slots), rows)  # the fastest tier with room
        self._wrote(slots)
        self.num_rows += slots.numel()
        self.stats["admitted"] += slots.numel()

    # ---- eviction ------------------------------------------------------------------------

    def _row_slots(self) -> Tensor:
        live = self.index.live_slots()
        return live[self.index.cols["tier"][live] >= 0]

    def _coldest_first(self, slots: Tensor, policy: str) -> Tensor:
        """``slots`` ordered coldest first: by count (lfu) or last step (lru), the other one
        next, then by key (deterministic across replicas and resumes)."""
        cols = self.index.cols
        return slots[coldest_first(self.index.keys[slots], cols["count"][slots],
                                   cols["last"][slots], policy)]

    def _evict_coldest(self, k: int) -> None:
        """Evict the k coldest rows (slots being admitted have no row yet: never victims)."""
        rows = self._row_slots()
        victims = self._coldest_first(rows, self.cfg.policy)[:k]
        self._evict(victims, "evicted_capacity")

    def _evict(self, slots: Tensor, reason: str) -> None:
        """Delete slots (rows freed in their tiers; candidates just forgotten)."""
        if slots.numel() == 0:
            return
        self._looked = None
        tier = self.index.cols["tier"][slots]
        pos = self.index.cols["row"][slots]
        for t, store in enumerate(self.tiers):
            sel = tier == t
            n = int(sel.sum())
            if n:
                store.release(pos[sel])
                self.num_rows -= n
                self.stats[reason] += n
        self.index.delete(slots)

    def end_step(self) -> None:
        """Advance the step; run the periodic eviction sweep and tier rebalance (a background
        plan due at this step is applied first)."""
        self.step += 1
        cfg = self.cfg
        if (cfg.ttl_steps or cfg.l2_threshold) and self.step % cfg.evict_every_steps == 0:
            self.sweep()
        if self._plan_steps is not None and self.step >= self._plan_steps[1]:
            self._apply_plan()
        if len(self.tiers) > 1 and self.step % cfg.storage.rebalance_every_steps == 0:
            if cfg.storage.background:
                self._start_plan()
            else:
                self.rebalance()

    def sweep(self) -> None:
        """Evict ids unseen for ttl_steps (rows and candidates) and rows with a small norm."""
        cfg = self.cfg
        if cfg.ttl_steps:
            live = self.index.live_slots()
            stale = live[(self.step - self.index.cols["last"][live].to(torch.int64)) > cfg.ttl_steps]
            self._evict(stale, "evicted_ttl")
        if cfg.l2_threshold:
            rows = self._row_slots()
            small = []
            for i in range(0, rows.numel(), _CHUNK):
                part = rows[i:i + _CHUNK]
                norm = self._read(part)[:, :self.dim].norm(dim=1)
                small.append(part[norm < cfg.l2_threshold])
            if small:
                self._evict(torch.cat(small), "evicted_l2")

    def rebalance(self) -> None:
        """Hottest rows into the fastest tiers (storage.policy); moves only misplaced rows.
        Synchronous: ranks, reads and moves on the calling thread (a plan in flight is
        applied first, so the two never disagree)."""
        if self._plan_steps is not None:
            self._apply_plan()
        rows = self._row_slots()
        if rows.numel() == 0:
            return
        cols = self.index.cols
        idx, dest = misplaced(self.index.keys[rows], cols["count"][rows], cols["last"][rows],
                              cols["tier"][rows], self.cfg.storage.policy, self._capacities())
        if idx.numel() == 0:
            return
        slots = rows[idx]
        data = self._read(slots)
        self._release(cols["tier"][slots].to(torch.int64), cols["row"][slots])
        self._place(slots, dest, data)
        self.stats["moved"] += slots.numel()

    def _capacities(self) -> list[int | None]:
        return [store.capacity for store in self.tiers]

    def _release(self, tier: Tensor, pos: Tensor) -> None:
        """Free rows (tier, position) in their tiers."""
        for t, store in enumerate(self.tiers):
            sel = tier == t
            if bool(sel.any()):
                store.release(pos[sel])

    @staticmethod
    def _anywhere(slots: Tensor) -> Tensor:
        """A ``dest`` for :meth:`_place` with no tier chosen: fill the tiers fastest first."""
        return torch.full((slots.numel(),), -1, dtype=torch.int64, device=slots.device)

    def _place(self, slots: Tensor, dest: Tensor, data: Tensor) -> None:
        """Give ``slots`` new rows in tiers ``dest`` holding ``data``. A tier without room for
        all of its rows (a background plan's admissions since the snapshot can fill it) takes
        what fits, in order; the rest, and every slot whose ``dest`` is -1 (admission, restore),
        go to the fastest tiers with room, in order."""
        cols = self.index.cols
        self._looked = None
        dest = dest.to(slots.device).clone()
        for t, store in enumerate(self.tiers):
            sel = torch.nonzero(dest == t).squeeze(1)
            free = store.free_rows
            if free is not None and sel.numel() > free:
                dest[sel[free:]] = -1
        for t, store in enumerate(self.tiers):
            want = torch.nonzero(dest == -1).squeeze(1)
            free = store.free_rows
            room = want.numel() if free is None else free - int((dest == t).sum())
            if want.numel() and room > 0:
                dest[want[:room]] = t
        if bool((dest < 0).any()):  # pragma: no cover - capacity is enforced by the callers
            raise RuntimeError(f"dynamic table {self.name}: no tier has room for {int((dest < 0).sum())} rows")
        for t, store in enumerate(self.tiers):
            sel = torch.nonzero(dest == t).squeeze(1)
            if sel.numel():
                new = store.alloc(sel.numel())
                cols["tier"][slots[sel]] = t
                cols["row"][slots[sel]] = new.to(self.device)
                store.write(new, data[sel])

    # ---- background rebalance (storage.background) ---------------------------------------

    def _wrote(self, slots: Tensor) -> None:
        """Note the keys of rows written while a background plan is in flight (by key, not
        slot: an index rebuild moves slots; a list, not a column: no memory per slot)."""
        if self._plan_steps is not None and slots.numel():
            self._written.append(self.index.keys[slots])

    def _start_plan(self) -> None:
        """Copy the index columns (the only work on the training thread) and hand them to a
        worker that ranks them and gathers the rows to move."""
        cols = self.index.cols
        snap = Snapshot(self.step, self.index.generation, self.index.keys.clone(), cols["count"].clone(),
                        cols["last"].clone(), cols["tier"].clone(), cols["row"].clone())
        lag = min(self.cfg.storage.apply_after_steps, self.cfg.storage.rebalance_every_steps)
        self._plan_steps = (self.step, self.step + lag)
        self._written = []
        self._worker = Worker(f"dynamic table {self.name}: tier rebalance of step {self.step}",
                              self._make_plan, snap, self.step + lag)

    def _make_plan(self, snap: Snapshot, apply_step: int) -> MovePlan:
        """(Worker thread.) Rank the snapshot, pick the misplaced rows and read them. Reads
        only: the tiers' free lists and the index are the training thread's alone. A row
        written meanwhile may be read half-updated; it is re-read when the plan is applied."""
        rows = live_rows(snap)
        idx, dest = misplaced(snap.keys[rows], snap.count[rows], snap.last[rows],
                              snap.tier[rows], self.cfg.storage.policy, self._capacities())
        slots = rows[idx]
        src_tier, src_pos = snap.tier[slots].to(torch.int64), snap.row[slots]
        data = torch.empty((slots.numel(), self.width), dtype=torch.float32, device=self.device)
        for t, store in enumerate(self.tiers):
            sel = torch.nonzero(src_tier == t).squeeze(1)
            if sel.numel():
                data[sel] = store.read(src_pos[sel], self.device)
        return MovePlan(snap.step, apply_step, snap.generation, slots, snap.keys[slots], src_tier,
                        src_pos, dest, data)

    def _apply_plan(self) -> None:
        """(Training thread, at the plan's step.) Wait for the worker if needed, drop the
        rows evicted or moved since the snapshot, re-read the rows written since, move."""
        worker, self._worker = self._worker, None
        written, self._written = self._written, []
        self._plan_steps = None
        if not worker.done:  # type: ignore[union-attr]
            self.stats["plan_waited"] += 1  # apply_after_steps too short for this table
        plan: MovePlan = worker.result()  # type: ignore[union-attr]
        if plan.keys.numel() == 0:
            return
        cols = self.index.cols
        if plan.generation == self.index.generation:  # no rebuild: a gather, not a probe
            slots = torch.where(self.index.keys[plan.slots] == plan.keys, plan.slots, -1)
        else:
            slots = self.index.find(plan.keys)
        ok = slots >= 0
        at = slots.clamp(min=0)
        tier = cols["tier"][at].to(torch.int64)
        pos = cols["row"][at]
        keep = ok & (tier == plan.src_tier) & (pos == plan.src_pos)
        data, dest = plan.data, plan.dest
        if not bool(keep.all()):  # evicted (or re-admitted elsewhere) since the snapshot
            valid = torch.nonzero(keep).squeeze(1)
            self.stats["move_dropped"] += plan.keys.numel() - valid.numel()
            if valid.numel() == 0:
                return
            slots, tier, pos, dest, data = slots[valid], tier[valid], pos[valid], dest[valid], data[valid]
        fresh = torch.zeros(0, dtype=torch.int64, device=slots.device)
        if written:
            fresh = torch.nonzero(torch.isin(self.index.keys[slots], torch.cat(written))).squeeze(1)
        if fresh.numel():  # updated (or evicted and re-admitted in place) after the snapshot
            data[fresh] = self._read(slots[fresh])
            self.stats["move_reread"] += fresh.numel()
        self._release(tier, pos)
        self._place(slots, dest, data)
        self.stats["moved"] += slots.numel()

    def wait(self) -> None:
        """Wait for a background plan in flight (it stays due at its step); re-raises its
        error. Saves call this, so no worker outlives the job's last checkpoint."""
        if self._worker is not None:
            self._worker.result()

    def discard_plan(self) -> None:
        """Wait for and drop a background plan in flight (a reload or a device move makes it
        stale). Its error, if any, is still raised: a failing worker never goes unnoticed."""
        worker = getattr(self, "_worker", None)
        self._worker, self._plan_steps, self._written = None, None, []
        if worker is not None:
            worker.result()

    # ---- state ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Every slot (rows and candidates) sorted by key, rows split into values + state.

        Exact with a background plan in flight: the tiers stay the only copy of the rows
        until the training thread applies the plan (the worker only reads). The worker is
        waited for (``wait``) so that its error surfaces here and no thread outlives the
        last save; the plan itself stays due at its step, as in a run without the save."""
        self.wait()
        live = self.index.live_slots()
        keys = self.index.keys[live]
        order = torch.sort(keys).indices
        live, keys = live[order], keys[order]
        cols = self.index.cols
        tier = cols["tier"][live]
        has_row = tier >= 0
        rows = torch.zeros((live.numel(), self.width), dtype=torch.float32, device=self.device)
        for i in range(0, live.numel(), _CHUNK):
            part = live[i:i + _CHUNK]
            sel = torch.nonzero(has_row[i:i + _CHUNK]).squeeze(1)
            if sel.numel():
                rows[i + sel] = self._read(part[sel])
        return {
            "format": STATE_FORMAT, "dim": self.dim, "step": self.step,
            "optimizer": self.optimizer.name if self.optimizer else None,
            "keys": keys.cpu(), "count": cols["count"][live].cpu(), "last": cols["last"][live].cpu(),
            "has_row": has_row.cpu(), "values": rows[:, :self.dim].cpu(),
            "opt_state": rows[:, self.dim:].cpu(), "pool": self.pool.cpu(),
            "bloom": None if self.bloom is None else self.bloom.counters.cpu(),
            "stats": dict(self.stats), "tier_hits": list(self.tier_hits),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict``; rows are re-placed hottest-first into this table's tiers."""
        if state.get("format") != STATE_FORMAT or int(state["dim"]) != self.dim:
            raise ValueError(f"dynamic table {self.name}: checkpoint state has format "
                             f"{state.get('format')} / dim {state.get('dim')}, expected "
                             f"{STATE_FORMAT} / {self.dim}")
        self._reset()
        dev = self.device
        self.step = int(state["step"])
        self.pool = state["pool"].to(dev)
        if self.bloom is not None and state.get("bloom") is not None:
            self.bloom.counters = state["bloom"].to(dev)
        self.stats.update(state.get("stats", {}))
        hits = state.get("tier_hits", [])
        self.tier_hits = [int(hits[i]) if i < len(hits) else 0 for i in range(len(self.tiers))]
        keys = state["keys"].to(dev)
        slots = self.index.insert(keys)
        cols = self.index.cols
        cols["count"][slots] = state["count"].to(dev)
        cols["last"][slots] = state["last"].to(dev)
        has_row = state["has_row"].to(dev)
        rows = torch.zeros((keys.numel(), self.width), dtype=torch.float32, device=dev)
        rows[:, :self.dim] = state["values"].to(dev)
        saved_opt = state["optimizer"]
        if self.optimizer is not None and saved_opt == self.optimizer.name:
            rows[:, self.dim:] = state["opt_state"].to(dev)
        row_slots = slots[has_row]
        row_data = rows[has_row]
        if self.max_rows is not None and row_slots.numel() > self.max_rows:  # a smaller table now
            keep = self._coldest_first(row_slots, self.cfg.policy)
            self.index.delete(keep[:row_slots.numel() - self.max_rows])
            keep_set = keep[row_slots.numel() - self.max_rows:]
            mask = torch.isin(row_slots, keep_set)
            row_slots, row_data = row_slots[mask], row_data[mask]
        hottest = self._coldest_first(row_slots, self.cfg.storage.policy).flip(0)
        where = torch.sort(row_slots).indices  # hottest slots -> their row data
        sorted_slots = row_slots[where]
        data = row_data[where][torch.searchsorted(sorted_slots, hottest)]
        self._place(hottest, self._anywhere(hottest), data)  # hottest first into the fastest tiers
        self.num_rows = hottest.numel()

    # ---- export and inspection -----------------------------------------------------------

    def export(self, min_count: int = 1) -> tuple[Tensor, Tensor]:
        """(sorted keys, embeddings) of rows seen at least ``min_count`` times (CPU tensors)."""
        state = self.state_dict()
        keep = state["has_row"] & (state["count"] >= min_count)
        return state["keys"][keep], state["values"][keep]

    def memory_bytes(self) -> dict[str, int]:
        """Bytes held in memory: the index, the Bloom filter and each memory tier."""
        out = {"index": self.index.memory_bytes(),
               "bloom": self.bloom.memory_bytes() if self.bloom is not None else 0}
        for store in self.tiers:
            out[f"tier_{store.name}"] = store.memory_bytes()
        return out

    def tier_rows(self) -> list[int]:
        return [store.used for store in self.tiers]

    def hit_rate(self) -> float:
        """Share of looked-up ids with a row that were served by the fastest tier."""
        return self.tier_hits[0] / self.stats["rows_hit"] if self.stats["rows_hit"] else 0.0
