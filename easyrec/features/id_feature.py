"""``type: id`` — one categorical value per row -> one embedding row (a bag of size 1)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from easyrec.features.base import Feature
from easyrec.features.batch import Batch, SparseValues
from easyrec.features.columns import get_column, is_list
from easyrec.features.config import IdFeatureConfig
from easyrec.features.id_mapping import IdMapping
from easyrec.features.info import FeatureInfo
from lingjie.errors import DataError


class IdFeature(Feature):
    def __init__(self, name: str, config: IdFeatureConfig, mapping: IdMapping,
                 embedding_name: str) -> None:
        super().__init__(name, config)
        self.mapping = mapping
        self.embedding_name = embedding_name

    def _values(self, batch: pa.RecordBatch | pa.Table) -> pa.Array:
        col = get_column(batch, self.column)
        if is_list(col):
            raise DataError(
                f"feature '{self.name}': column '{self.column}' holds lists ({col.type}); "
                "use type: tag (pooled) or type: sequence for multi-value columns"
            )
        return col

    def fit_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        self.mapping.update(self._values(batch))

    def transform(self, batch: pa.RecordBatch | pa.Table, out: Batch) -> None:
        ids = self.mapping.lookup(self._values(batch), self.column)
        out.sparse[self.name] = SparseValues(
            values=ids, offsets=np.arange(len(ids) + 1, dtype=np.int64)
        )

    def info(self) -> FeatureInfo:
        return FeatureInfo(
            name=self.name, kind="sparse", dim=self.config.embedding_dim,
            num_embeddings=self.mapping.num_embeddings, embedding_name=self.embedding_name, single=True,
        )
