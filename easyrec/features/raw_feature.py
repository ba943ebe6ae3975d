"""``type: raw`` — a numeric column, as a normalised dense float or a bucketised id.

Order of operations (the same at train and predict time): null/NaN -> ``fill_null`` (default:
the fitted mean); then either bucketise the filled value on ``boundaries`` (given, or fitted
quantiles; edges are in the column's own units) -> one sparse id, or apply ``normalizer``
-> float32 [B, 1]. log1p is sign-preserving (sign(x)*log(1+|x|)) so negative inputs stay
finite. A zero std / zero range normalises to 0 rather than dividing by zero.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from easyrec.features.base import Feature
from easyrec.features.batch import Batch, SparseValues
from easyrec.features.columns import as_float64, get_column
from easyrec.features.config import RawFeatureConfig
from easyrec.features.info import FeatureInfo
from easyrec.features.stats import BottomKSample, RunningMoments, quantile_boundaries

SAMPLE_SIZE = 100_000  # values kept to fit quantile edges


class RawFeature(Feature):
    def __init__(self, name: str, config: RawFeatureConfig, embedding_name: str) -> None:
        super().__init__(name, config)
        self.embedding_name = embedding_name
        self._moments: RunningMoments | None = None
        self._sample: BottomKSample | None = None
        self.mean = 0.0
        self.std = 1.0
        self.min = 0.0
        self.max = 1.0
        self.count = 0
        self.boundaries: list[float] | None = (
            list(map(float, config.boundaries)) if config.boundaries is not None else None
        )

    def _values(self, batch: pa.RecordBatch | pa.Table) -> np.ndarray:
        return as_float64(get_column(batch, self.column), self.column)

    def fit_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        if self._moments is None:
            self._moments = RunningMoments()
            if self.config.num_quantiles is not None:
                self._sample = BottomKSample(SAMPLE_SIZE)
        x = self._values(batch)
        self._moments.update(x)
        if self._sample is not None:
            self._sample.update(x)

    def finish_fit(self) -> None:
        m = self._moments or RunningMoments()
        self.count = m.count
        if m.count:  # an all-null column keeps the neutral defaults
            self.mean, self.std, self.min, self.max = m.mean, m.std, m.min, m.max
        if self._sample is not None:
            self.boundaries = quantile_boundaries(self._sample.values, self.config.num_quantiles)
        elif self.config.num_quantiles is not None:
            self.boundaries = []
        self._moments, self._sample = None, None

    @property
    def fill_value(self) -> float:
        return float(self.config.fill_null) if self.config.fill_null is not None else self.mean

    @property
    def num_buckets(self) -> int:
        return len(self.boundaries or []) + 1

    def transform(self, batch: pa.RecordBatch | pa.Table, out: Batch) -> None:
        x = self._values(batch)
        x = np.where(np.isnan(x), self.fill_value, x)
        if self.config.bucketised:
            edges = np.asarray(self.boundaries or [], dtype=np.float64)
            ids = np.searchsorted(edges, x, side="right").astype(np.int64)
            out.sparse[self.name] = SparseValues(
                values=ids, offsets=np.arange(len(ids) + 1, dtype=np.int64)
            )
            return
        out.dense[self.name] = self.normalise(x).astype(np.float32).reshape(-1, 1)

    def normalise(self, x: np.ndarray) -> np.ndarray:
        norm = self.config.normalizer
        if norm == "log1p":
            return np.sign(x) * np.log1p(np.abs(x))
        if norm == "zscore":
            return (x - self.mean) / self.std if self.std > 0 else np.zeros_like(x)
        if norm == "minmax":
            span = self.max - self.min
            return (x - self.min) / span if span > 0 else np.zeros_like(x)
        return x

    def info(self) -> FeatureInfo:
        if self.config.bucketised:
            return FeatureInfo(
                name=self.name, kind="sparse", dim=self.config.embedding_dim,
                num_embeddings=self.num_buckets, embedding_name=self.embedding_name,
                single=True,
            )
        return FeatureInfo(name=self.name, kind="dense", dim=1)

    def state(self) -> dict[str, Any]:
        return {
            "count": self.count, "mean": self.mean, "std": self.std,
            "min": self.min, "max": self.max, "boundaries": self.boundaries,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        self.mean, self.std = float(state["mean"]), float(state["std"])
        self.min, self.max = float(state["min"]), float(state["max"])
        b = state.get("boundaries")
        self.boundaries = None if b is None else [float(v) for v in b]
        for v in (self.mean, self.std, self.min, self.max):
            if not math.isfinite(v):
                raise ValueError(f"feature '{self.name}': non-finite fitted statistic {v}")
