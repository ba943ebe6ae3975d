"""Raw 64-bit keys of dynamic features (numpy / pyarrow only: the feature pipeline uses it).

A dynamic table is keyed by the id itself, not by a bucket: an integer id (an integer column,
or a string of decimal digits such as "00042" read from CSV) is its own key, any other value
is keyed by the 64-bit SipHash of its string form (``easyrec.features.hashing``; n distinct
strings collide with probability about n^2 / 2^65). No modulo, so two ids share a row only
if their 64-bit keys are equal. The three smallest int64 values are reserved: ``EMPTY`` and
``TOMBSTONE`` mark free slots of the hash index, ``NULL_KEY`` is a null value (it is never
admitted and always reads the default vector); an id equal to one of them becomes ``NULL_KEY``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from easyrec.features.columns import dictionary_codes
from easyrec.features.hashing import hash_strings

EMPTY = -(2 ** 63)
TOMBSTONE = -(2 ** 63) + 1
NULL_KEY = -(2 ** 63) + 2
_INT_PATTERN = r"^\s*[+-]?\d{1,18}\s*$"  # fits int64 without overflow


def raw_keys(values: pa.Array) -> np.ndarray:
    """int64 key of every value (see module docstring); nulls -> ``NULL_KEY``.

    Vectorised, and each distinct value is parsed or hashed once (dictionary encoding).
    """
    t = values.type
    if pa.types.is_dictionary(t):
        values, t = values.dictionary_decode(), t.value_type
    if pa.types.is_integer(t):
        keys = pc.fill_null(pc.cast(values, pa.int64(), safe=False), NULL_KEY)
        return _sanitise(keys.to_numpy(zero_copy_only=False).astype(np.int64, copy=False),
                         nulls=np.asarray(pc.is_null(values)))
    codes, uniques = dictionary_codes(values)  # floats holding integers print as "5"
    table = np.empty(len(uniques) + 1, dtype=np.int64)
    table[-1] = NULL_KEY  # code -1: null
    if len(uniques):
        text = pa.array(uniques, pa.string())
        is_int = pc.fill_null(pc.match_substring_regex(text, _INT_PATTERN), False)
        is_int_np = np.asarray(is_int)
        if is_int_np.any():
            table[:-1][is_int_np] = pc.cast(pc.utf8_trim_whitespace(text.filter(is_int)),
                                            pa.int64()).to_numpy(zero_copy_only=False)
        if not is_int_np.all():
            table[:-1][~is_int_np] = hash_strings(uniques[~is_int_np]).view(np.int64)
        table[:-1] = _sanitise(table[:-1])
    return table[codes]


def _sanitise(keys: np.ndarray, nulls: np.ndarray | None = None) -> np.ndarray:
    """Reserved values -> ``NULL_KEY`` (see module docstring)."""
    bad = keys <= NULL_KEY
    if nulls is not None:
        bad |= nulls
    if bad.any():
        keys = keys.copy()
        keys[bad] = NULL_KEY
    return keys


class DynamicMapping:
    """The id mapping of a dynamic table: value -> raw 64-bit key; nothing to fit.

    It has the interface of ``easyrec.features.id_mapping.IdMapping``; ``num_embeddings`` is
    0 because the table has no fixed row count (the model sizes it at run time).
    """

    kind = "dynamic"

    def __init__(self, config: Any) -> None:
        self.config = config  # easyrec.dynamic.config.DynamicConfig

    @property
    def num_embeddings(self) -> int:
        return 0

    def update(self, values: pa.Array) -> None:
        """Nothing to fit: admission happens while training."""

    def finish(self) -> None:
        """Nothing to fit."""

    def lookup(self, values: pa.Array, column: str = "") -> np.ndarray:
        return raw_keys(values)

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Stateless (the table's rows live in the model checkpoint)."""
