"""``type: sequence`` — an ordered id list per row (newest first) -> padded [B, max_len].

Keeps the first ``max_len`` items (the newest), 0 in padded slots, plus the true lengths.
Row 0 is also the OOV row of a vocabulary; models mask padding by ``lengths``, so the two
never mix. With ``share: item_id`` the sequence uses item_id's mapping object and table, so
``hist_item_id`` rows line up with ``item_id`` rows (DIN's attention needs exactly that).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from easyrec.features.base import Feature
from easyrec.features.batch import Batch, SequenceValues
from easyrec.features.columns import ListParts, get_column, list_parts
from easyrec.features.config import SequenceFeatureConfig
from easyrec.features.id_mapping import IdMapping
from easyrec.features.info import FeatureInfo


class SequenceFeature(Feature):
    def __init__(self, name: str, config: SequenceFeatureConfig, mapping: IdMapping,
                 embedding_name: str, embedding_dim: int) -> None:
        super().__init__(name, config)
        self.mapping = mapping
        self.embedding_name = embedding_name
        self.embedding_dim = embedding_dim  # the shared feature's dim under ``share``

    def _parts(self, batch: pa.RecordBatch | pa.Table) -> ListParts:
        return list_parts(get_column(batch, self.column), self.config.separator, self.column)

    def fit_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        self.mapping.update(self._parts(batch).values)

    def transform(self, batch: pa.RecordBatch | pa.Table, out: Batch) -> None:
        parts = self._parts(batch)
        max_len = self.config.max_len
        n = parts.num_rows
        offsets = parts.offsets()
        pos = np.arange(len(parts.row_ids), dtype=np.int64) - offsets[parts.row_ids]
        keep = pos < max_len
        values = parts.values.filter(pa.array(keep)) if not keep.all() else parts.values
        ids = self.mapping.lookup(values, self.column)
        padded = np.zeros((n, max_len), dtype=np.int64)
        padded[parts.row_ids[keep], pos[keep]] = ids
        lengths = np.minimum(np.diff(offsets), max_len).astype(np.int64)
        out.sequence[self.name] = SequenceValues(values=padded, lengths=lengths)

    def info(self) -> FeatureInfo:
        return FeatureInfo(
            name=self.name, kind="sequence", dim=self.embedding_dim,
            num_embeddings=self.mapping.num_embeddings, embedding_name=self.embedding_name,
            max_len=self.config.max_len,
        )
