"""``type: combo`` — a cross of scalar columns, hashed to one id (e.g. user x category).

The crossed key is the columns' string forms joined by an ASCII unit separator (which does
not occur in ordinary text, so ("a|b", "c") and ("a", "b|c") stay distinct); a null part is
spelled as a record separator, so a missing value is a crossable value of its own.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from easyrec.features.base import Feature
from easyrec.features.batch import Batch, SparseValues
from easyrec.features.columns import as_string_array, get_column
from easyrec.features.config import ComboFeatureConfig
from easyrec.features.hashing import hash_to_buckets
from easyrec.features.info import FeatureInfo

_JOIN = "\x1f"
_NULL = "\x1e"


class ComboFeature(Feature):
    def __init__(self, name: str, config: ComboFeatureConfig, embedding_name: str) -> None:
        super().__init__(name, config)
        self.embedding_name = embedding_name

    def input_columns(self) -> list[str]:
        return list(self.config.columns)

    def crossed(self, batch: pa.RecordBatch | pa.Table) -> pa.Array:
        """The joined string key per row."""
        parts = [as_string_array(get_column(batch, c), c) for c in self.config.columns]
        return pc.binary_join_element_wise(
            *parts, _JOIN, null_handling="replace", null_replacement=_NULL
        )

    def transform(self, batch: pa.RecordBatch | pa.Table, out: Batch) -> None:
        ids = hash_to_buckets(self.crossed(batch), int(self.config.hash_buckets))
        out.sparse[self.name] = SparseValues(
            values=ids, offsets=np.arange(len(ids) + 1, dtype=np.int64)
        )

    def info(self) -> FeatureInfo:
        return FeatureInfo(
            name=self.name, kind="sparse", dim=self.config.embedding_dim,
            num_embeddings=int(self.config.hash_buckets), embedding_name=self.embedding_name, single=True,
        )
