"""``type: tag`` — several categorical values per row, pooled into one vector by the model.

Output is a TorchRec-style bag: flat ids + offsets. Models always do a *weighted sum*;
``pooling: mean`` is realised here by weights that sum to 1 per row (so EmbeddingBag's
``per_sample_weights``, which only exists for sum mode, covers both). Explicit weights
("a:0.5|b:2") are parsed from each item with ``weight_separator`` (the last occurrence, so
values may contain it; an item without one weighs 1.0) and are normalised too under mean.
"""
from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from easyrec.features.base import Feature
from easyrec.features.batch import Batch, SparseValues
from easyrec.features.columns import ListParts, get_column, list_parts
from easyrec.features.config import TagFeatureConfig
from easyrec.features.id_mapping import IdMapping
from easyrec.features.info import FeatureInfo
from lingjie.errors import DataError


class TagFeature(Feature):
    def __init__(self, name: str, config: TagFeatureConfig, mapping: IdMapping,
                 embedding_name: str) -> None:
        super().__init__(name, config)
        self.mapping = mapping
        self.embedding_name = embedding_name

    @property
    def weighted(self) -> bool:
        return self.config.pooling == "mean" or self.config.weight_separator is not None

    def _parts(self, batch: pa.RecordBatch | pa.Table) -> tuple[ListParts, np.ndarray | None]:
        """Flat items (weight suffix removed) and their raw weights (None: all 1.0)."""
        parts = list_parts(get_column(batch, self.column), self.config.separator, self.column)
        sep = self.config.weight_separator
        if sep is None or not (pa.types.is_string(parts.values.type)
                               or pa.types.is_large_string(parts.values.type)):
            return parts, None
        pattern = f"^(?P<key>.*){re.escape(sep)}(?P<weight>[^{re.escape(sep)}]*)$" \
            if len(sep) == 1 else f"^(?P<key>.*){re.escape(sep)}(?P<weight>.*?)$"
        m = pc.extract_regex(parts.values, pattern)
        has = pc.is_valid(m)
        keys = pc.if_else(has, m.field("key"), parts.values)
        wtext = pc.if_else(has, m.field("weight"), pa.scalar("1"))
        try:
            weights = pc.cast(pc.utf8_trim_whitespace(wtext), pa.float32())
        except pa.ArrowInvalid as exc:
            raise DataError(
                f"feature '{self.name}': column '{self.column}' has an item weight that is not "
                f"a number (expected items like 'value{sep}0.5'): {exc}"
            ) from exc
        w = weights.to_numpy(zero_copy_only=False).astype(np.float32)
        return ListParts(keys, parts.row_ids, parts.num_rows), w

    def fit_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        parts, _ = self._parts(batch)
        self.mapping.update(parts.values)

    def transform(self, batch: pa.RecordBatch | pa.Table, out: Batch) -> None:
        parts, w = self._parts(batch)
        ids = self.mapping.lookup(parts.values, self.column)
        weights = None
        if self.weighted:
            weights = np.ones(len(ids), dtype=np.float32) if w is None else w
            if self.config.pooling == "mean":
                totals = np.bincount(parts.row_ids, weights=weights, minlength=parts.num_rows)
                denom = totals[parts.row_ids]
                weights = np.divide(weights, denom, out=np.zeros_like(weights),
                                    where=denom != 0).astype(np.float32)
        out.sparse[self.name] = SparseValues(values=ids, offsets=parts.offsets(), weights=weights)

    def info(self) -> FeatureInfo:
        # pooling is "sum" because the weights already carry the mean (see module docstring)
        return FeatureInfo(
            name=self.name, kind="sparse", dim=self.config.embedding_dim,
            num_embeddings=self.mapping.num_embeddings, embedding_name=self.embedding_name,
            weighted=self.weighted, pooling="sum",
        )
