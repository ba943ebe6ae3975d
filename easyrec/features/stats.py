"""Bounded-memory statistics of a numeric stream: moments, range and a uniform sample.

Raw features need the training mean/std/min/max (normalisation, null filling) and quantile
edges (bucketisation) without holding the column in memory. Moments are merged per batch
with Chan et al.'s parallel update (numerically stable, unlike sum of squares); quantiles
come from a bottom-k sample: every value gets a random key and the k smallest keys are kept,
which is a uniform sample without replacement of the whole stream, merged per batch with
one ``argpartition``. Seeded, so a refit on the same data gives the same edges.
"""
from __future__ import annotations

import math

import numpy as np


class RunningMoments:
    """count, mean, variance, min and max of the finite values seen."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf

    def update(self, x: np.ndarray) -> None:
        x = x[np.isfinite(x)]
        n = len(x)
        if n == 0:
            return
        bmean = float(x.mean())
        bm2 = float(((x - bmean) ** 2).sum())
        total = self.count + n
        delta = bmean - self.mean
        self.mean += delta * n / total
        self.m2 += bm2 + delta * delta * self.count * n / total
        self.count = total
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))

    @property
    def std(self) -> float:
        """Population standard deviation (0 when fewer than 2 values)."""
        return math.sqrt(self.m2 / self.count) if self.count > 1 else 0.0


class BottomKSample:
    """A uniform random sample of at most ``k`` finite values of the stream."""

    def __init__(self, k: int = 100_000, seed: int = 0) -> None:
        self.k = k
        self._rng = np.random.default_rng(seed)
        self._values = np.zeros(0, dtype=np.float64)
        self._keys = np.zeros(0, dtype=np.float64)

    def update(self, x: np.ndarray) -> None:
        x = x[np.isfinite(x)]
        if len(x) == 0:
            return
        values = np.concatenate([self._values, x])
        keys = np.concatenate([self._keys, self._rng.random(len(x))])
        if len(values) > self.k:
            keep = np.argpartition(keys, self.k - 1)[: self.k]
            values, keys = values[keep], keys[keep]
        self._values, self._keys = values, keys

    @property
    def values(self) -> np.ndarray:
        return self._values


def quantile_boundaries(sample: np.ndarray, num_quantiles: int) -> list[float]:
    """Interior edges of ``num_quantiles`` equal-frequency buckets; duplicates dropped (a
    heavy value makes fewer, not empty, buckets)."""
    if len(sample) == 0:
        return []
    qs = np.arange(1, num_quantiles) / num_quantiles
    edges = np.unique(np.quantile(sample, qs))
    return [float(e) for e in edges]
