"""The ``dynamic:`` block of id, tag and sequence features (stdlib only: validated before torch).

A dynamic feature has no bucket count: its table is keyed by the raw 64-bit id and grows as
ids prove frequent (admission), shrinks as they go stale (eviction), and spreads its rows
over storage tiers (device memory, host memory, a memory-mapped file). See
``easyrec/dynamic/__init__.py`` for the whole design and README "Dynamic embeddings".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lingjie.errors import ConfigError
from lingjie.schema import F

TIER_ORDER = ("device", "host", "disk")
BLOOM_MAX_COUNT = 255  # the counting Bloom filter's counters are saturating uint8


@dataclass
class StorageConfig:
    """Where the rows live: the hottest ``capacity[0]`` rows in ``tiers[0]``, and so on down."""

    tiers: list[Literal["device", "host", "disk"]] = F(
        ["device"], "storage tiers, fastest first: device (the model's device), host (CPU RAM), "
        "disk (a memory-mapped file)")
    capacity: list[int] = F(
        [], "rows per tier, same order as tiers; [] = one memory tier without a fixed size")
    policy: Literal["lfu", "lru"] = F(
        "lfu", "what makes a row hot for placement: lfu (most seen) | lru (most recently seen)")
    rebalance_every_steps: int = F(
        50, "promote/demote rows between tiers every N training steps (batched, between steps)",
        ge=1)
    background: bool = F(
        True, "with more than one tier, rank the rows and gather the ones to move in a "
        "background thread while training goes on; the training thread applies the plan "
        "apply_after_steps later (O(moved rows)); false: the whole rebalance runs on the step "
        "that triggers it (the synchronous path, for debugging)")
    apply_after_steps: int = F(
        5, "a background plan started at step s is applied at step s + this (capped at "
        "rebalance_every_steps), waiting for the worker if it is not done: runs stay "
        "reproducible", ge=1)
    path: str | None = F(
        None, "directory of the disk tier's memory-mapped file; default: a temporary directory")

    def check(self, path: str) -> None:
        """Tiers in fastest-first order without repeats; one capacity per tier."""
        if not self.tiers:
            raise ConfigError(f"{path}.tiers", "list at least one tier: device, host or disk")
        ranks = [TIER_ORDER.index(t) for t in self.tiers]
        if ranks != sorted(set(ranks)):
            raise ConfigError(f"{path}.tiers", f"list tiers once each, fastest first "
                              f"(device, host, disk); got {self.tiers}")
        if self.capacity and len(self.capacity) != len(self.tiers):
            raise ConfigError(f"{path}.capacity", f"give one capacity per tier ({len(self.tiers)} "
                              f"tiers: {self.tiers}), got {self.capacity}")
        if not self.capacity and (len(self.tiers) > 1 or self.tiers[0] == "disk"):
            raise ConfigError(f"{path}.capacity", f"tiers {self.tiers} need a row capacity each, "
                              "e.g. capacity: [100000, 1000000, 10000000]")
        if any(c < 1 for c in self.capacity):
            raise ConfigError(f"{path}.capacity", f"capacities must be >= 1, got {self.capacity}")


@dataclass
class DynamicConfig:
    """Admission, eviction, initialisation and storage of one dynamic embedding table."""

    min_count: int = F(1, "admit an id (give it a row) once it was seen this many times; "
                        "before that it reads the table's learned default vector", ge=1)
    admission: Literal["exact", "bloom"] = F(
        "exact", "how ids are counted before admission: exact (a counter per id) | bloom "
        "(a counting Bloom filter of fixed size: no per-id memory, may admit early)")
    bloom_counters: int = F(1 << 22, "counters (bytes) of the counting Bloom filter", ge=64)
    bloom_hashes: int = F(3, "hash functions of the counting Bloom filter", ge=1, le=8)
    ttl_steps: int | None = F(None, "evict ids not seen for this many training steps", ge=1)
    l2_threshold: float | None = F(
        None, "evict rows whose embedding L2 norm fell below this (checked every "
        "evict_every_steps)", gt=0)
    capacity: int | None = F(
        None, "at most this many rows; when full, the policy evicts; default: the sum of the "
        "storage capacities (unbounded for one unsized memory tier)", ge=1)
    policy: Literal["lfu", "lru"] = F(
        "lfu", "which rows a full table evicts: lfu (least seen) | lru (least recently seen)")
    evict_every_steps: int = F(100, "run the ttl / l2 eviction sweep every N training steps",
                                ge=1)
    init_pool_size: int = F(
        8192, "new rows copy a row of a fixed pool of random vectors (drawn once, seeded), "
        "picked by the id's hash", ge=1)
    init_std: float | None = F(0.01, "std of the init pool (0.01 beat 1/sqrt(dim) by 0.04 AUC on long-tailed "
                                "Criteo ids: every rare id keeps its own row); null: 1/sqrt(embedding_dim)", ge=0)
    seed: int | None = F(None, "seed of the init pool; default: drawn from the run's seed")
    export_min_count: int = F(1, "export only rows seen at least this many times (prunes "
                               "the serving table); others read the default vector", ge=1)
    storage: StorageConfig = F(StorageConfig(), "storage tiers (see StorageConfig)")

    def check(self, path: str = "") -> None:
        """Cross-field rules: tier layout, Bloom counter range, capacity within the tiers."""
        self.storage.check(f"{path}.storage")
        if self.admission == "bloom" and self.min_count > BLOOM_MAX_COUNT:
            raise ConfigError(f"{path}.min_count", f"bloom admission counts up to "
                              f"{BLOOM_MAX_COUNT}; lower min_count or use admission: exact")
        caps = self.storage.capacity
        if self.capacity is not None and caps and self.capacity > sum(caps):
            raise ConfigError(f"{path}.capacity", f"{self.capacity} rows do not fit the storage "
                              f"tiers ({sum(caps)} rows in {self.storage.tiers}); raise "
                              "storage.capacity or lower capacity")

    @property
    def max_rows(self) -> int | None:
        """The row limit the table enforces (None: unbounded)."""
        if self.capacity is not None:
            return self.capacity
        return sum(self.storage.capacity) if self.storage.capacity else None

