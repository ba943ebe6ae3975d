"""Value -> embedding-row mappings shared by id, tag and sequence features.

Three ways to turn a categorical value into a row index (one per config option):
  hash      ``hash_buckets: N``  stable hash of the string form mod N; rows [0, N); null -> 0
  vocab     ``vocab: {...}``     fitted on train; row 0 = OOV/null, then by frequency
  identity  ``num_buckets: N``   the value already is an id in [0, N); anything else -> row N
One mapping object serves every feature that shares an embedding table (e.g. ``item_id``
and ``hist_item_id``), so their rows agree; a vocabulary is fitted on all their columns.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from easyrec.features.columns import as_string_array, dictionary_codes
from easyrec.features.hashing import hash_to_buckets
from easyrec.features.vocab import VocabCounter
from lingjie.errors import DataError


class IdMapping:
    """Base: fit by ``update`` over batches then ``finish``; apply with ``lookup``."""

    kind = ""

    @property
    def num_embeddings(self) -> int:
        raise NotImplementedError

    def update(self, values: pa.Array) -> None:
        """Observe training values (no-op unless the mapping is fitted)."""

    def finish(self) -> None:
        """End of the fitting pass."""

    def lookup(self, values: pa.Array, column: str = "") -> np.ndarray:
        """int64 row index in [0, num_embeddings) for each value (nulls included)."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what ``state`` returned."""


class HashMapping(IdMapping):
    kind = "hash"

    def __init__(self, num_buckets: int) -> None:
        self.num_buckets = num_buckets

    @property
    def num_embeddings(self) -> int:
        return self.num_buckets

    def lookup(self, values: pa.Array, column: str = "") -> np.ndarray:
        return hash_to_buckets(values, self.num_buckets)


class IdentityMapping(IdMapping):
    kind = "identity"

    def __init__(self, num_buckets: int) -> None:
        self.num_buckets = num_buckets

    @property
    def num_embeddings(self) -> int:
        return self.num_buckets + 1  # + the out-of-range/null row

    def lookup(self, values: pa.Array, column: str = "") -> np.ndarray:
        n = self.num_buckets
        t = values.type
        if pa.types.is_dictionary(t):
            values, t = values.dictionary_decode(), values.type.value_type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            ok = pc.fill_null(pc.match_substring_regex(values, r"^\s*\+?\d{1,18}\s*$"), False)
            values = pc.cast(pc.utf8_trim_whitespace(
                pc.if_else(ok, values, pa.scalar(None, t))), pa.int64())
            t = pa.int64()
        if pa.types.is_boolean(t):
            values, t = pc.cast(values, pa.int64()), pa.int64()
        if pa.types.is_null(t):
            return np.full(len(values), n, dtype=np.int64)
        if pa.types.is_integer(t):
            v = pc.fill_null(pc.cast(values, pa.int64(), safe=False), -1).to_numpy(
                zero_copy_only=False)
            if pa.types.is_uint64(t):  # huge uint64 wrap to negatives: out of range anyway
                v = v.astype(np.int64)
            return np.where((v >= 0) & (v < n), v, n).astype(np.int64)
        if pa.types.is_floating(t):
            f = values.to_numpy(zero_copy_only=False).astype(np.float64)  # null -> NaN
            ok = np.isfinite(f) & (f >= 0) & (f < n) & (np.floor(f) == f)
            return np.where(ok, np.nan_to_num(f), n).astype(np.int64)
        raise DataError(
            f"column '{column}' holds {t}; num_buckets (identity ids) needs integer values"
        )


DIRECT_LOOKUP_VOCAB = 65536  # vocabularies up to this size use Arrow's index_in (see lookup)


class VocabMapping(IdMapping):
    kind = "vocab"

    def __init__(self, min_count: int = 1, max_size: int | None = None) -> None:
        self.min_count = min_count
        self.max_size = max_size
        self._counter: VocabCounter | None = VocabCounter()
        self._vocab: list[str] | None = None
        self._index: pd.Index | None = None

    @property
    def vocabulary(self) -> list[str]:
        if self._vocab is None:
            raise RuntimeError("vocabulary not fitted yet: call FeaturePipeline.fit first")
        return self._vocab

    @property
    def num_embeddings(self) -> int:
        return len(self.vocabulary) + 1  # row 0 = OOV/null

    def update(self, values: pa.Array) -> None:
        if self._counter is None:  # refitting a loaded/fitted mapping starts afresh
            self._counter = VocabCounter()
        self._counter.update(values)

    def finish(self) -> None:
        counter = self._counter or VocabCounter()
        self._set_vocab(counter.vocabulary(self.min_count, self.max_size))
        self._counter = None  # free the counts

    def _set_vocab(self, vocab: list[str]) -> None:
        self._vocab = vocab
        # a pandas Index keeps its hash table between calls: lookups cost O(distinct in batch)
        self._index = pd.Index(np.array(vocab, dtype=object), dtype=object)
        self._arrow_vocab = pa.array(vocab, type=pa.string())

    def lookup(self, values: pa.Array, column: str = "") -> np.ndarray:
        if self._index is None:
            raise RuntimeError("vocabulary not fitted yet: call FeaturePipeline.fit first")
        if len(self._arrow_vocab) <= max(DIRECT_LOOKUP_VOCAB, 2 * len(values)):
            # Arrow's set lookup in C++ (no Python string objects; releases the GIL): ~5x faster
            # than the pandas path, but it rebuilds its hash set per call, so only for a vocabulary
            # small next to the batch
            idx = pc.index_in(as_string_array(values, column), value_set=self._arrow_vocab)
            return pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int64) + 1
        codes, uniques = dictionary_codes(values)
        rows = self._index.get_indexer(uniques).astype(np.int64) + 1  # -1 (unknown) -> 0
        rows = np.append(rows, 0)  # code -1 (null) -> OOV row 0
        return rows[codes]

    def state(self) -> dict[str, Any]:
        return {"vocabulary": list(self.vocabulary)}

    def load_state(self, state: dict[str, Any]) -> None:
        self._set_vocab([str(v) for v in state["vocabulary"]])
        self._counter = None


def make_mapping(spec: tuple) -> IdMapping:
    """The mapping for a ``config.mapping_spec`` tuple."""
    kind = spec[0]
    if kind == "dynamic":  # raw 64-bit keys for a dynamic table (easyrec.dynamic)
        from easyrec.dynamic.keys import DynamicMapping

        return DynamicMapping(spec[1])  # type: ignore[return-value]
    if kind == "hash":
        return HashMapping(spec[1])
    if kind == "identity":
        return IdentityMapping(spec[1])
    if kind == "vocab":
        return VocabMapping(spec[1], spec[2])
    raise ValueError(f"unknown id mapping {spec!r}")
