"""Candidate cross (combo) features: pairs of categorical columns, scored on the training label.

A pair is a candidate when both columns feed scalar id-like features of the experiment
(``id`` features, or bucketised ``raw`` features over an integer column) and the cross is not
hopelessly sparse (fewer distinct values than ``max_cardinality_ratio`` x rows). Each is scored
by the information gain of its smoothed label rate beyond the better of its two columns
(vectorised pandas group-bys); the best ``max_crosses`` with a positive gain are proposed.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class Cross:
    name: str
    columns: list[str]
    cardinality: int
    gain: float

    def config(self, embedding_dim: int) -> dict[str, Any]:
        buckets = 1 << int(np.ceil(np.log2(max(16, 4 * self.cardinality))))
        return {"type": "combo", "columns": list(self.columns), "hash_buckets": int(buckets),
                "embedding_dim": int(embedding_dim)}


def categorical_columns(features: dict[str, dict[str, Any]], frame: pd.DataFrame) -> list[str]:
    cols: list[str] = []
    for name, f in features.items():
        col = f.get("column") or name
        if col not in frame.columns or col in cols:
            continue
        scalar_id = f.get("type") == "id"
        int_bucket = (f.get("type") == "raw" and (f.get("boundaries") or f.get("num_quantiles"))
                      and pd.api.types.is_integer_dtype(frame[col]))
        if scalar_id or int_bucket:
            cols.append(col)
    return cols


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def _gain(keys: pd.Series | pd.DataFrame, y: np.ndarray, prior: float, m: float = 20.0) -> float:
    stats = pd.DataFrame({"y": y}).groupby([keys[c] for c in keys.columns] if isinstance(keys, pd.DataFrame)
                                           else keys, observed=True)["y"].agg(["sum", "count"])
    rate = (stats["sum"].to_numpy() + m * prior) / (stats["count"].to_numpy() + m)  # smoothed
    w = stats["count"].to_numpy() / len(y)
    return float(_entropy(np.array([prior]))[0] - (w * _entropy(rate)).sum())


def propose_crosses(frame: pd.DataFrame, label: np.ndarray, columns: list[str], max_crosses: int = 4,
                    max_cardinality_ratio: float = 0.05) -> list[Cross]:
    y = np.asarray(label, dtype=np.float64)
    prior = float(y.mean())
    single = {c: _gain(frame[c].reset_index(drop=True), y, prior) for c in columns}
    out: list[Cross] = []
    for a, b in combinations(columns, 2):
        card = int(frame[[a, b]].drop_duplicates().shape[0])
        if card > max_cardinality_ratio * len(frame):
            continue
        gain = _gain(frame[[a, b]].reset_index(drop=True), y, prior) - max(single[a], single[b])
        if gain > 0:
            out.append(Cross(f"cross_{a}_x_{b}", [a, b], card, gain))
    out.sort(key=lambda c: -c.gain)
    return out[:max_crosses]
