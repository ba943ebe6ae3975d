"""The TF engine's own copy of ``data.cache=memory``'s encoded rows, gathered inside the step.

Why: with the rows in RAM, cutting a shuffled batch in numpy (a take of ~20 arrays, packing
them, converting to tensors) cost ~0.5 ms of a ~3.5 ms MovieLens step on a 2-core CPU, cache-cold
behind the step. Held as tensors, a batch travels as its row indices and the compiled step
gathers its inputs itself (a few ops, no Python). The layout is ``Batch.take``'s, so the step
sees exactly what the numpy path would hand it.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
import tensorflow as tf

from easyrec.features.batch import Batch

SINGLE = "#single"  # the one-id-per-row features' ids side by side: [N, S]


class CachedRows:
    """Tensors of the cached rows for the keys of an engine's input signature and labels."""

    def __init__(self, cache: Batch, single: frozenset, input_keys: List[str], labels: List[str]) -> None:
        flat = cache.to_flat()
        self.input_keys = list(input_keys)
        self.labels = list(labels)
        self.single = frozenset(single)
        # one-id features: one gather of ~S*4 bytes per row (int32 where the ids fit), not S
        # gathers of scattered 8-byte ids (~35 us each per 1024 rows here)
        self.single_cols = sorted(n for n in self.single if f"{n}.values" in flat and f"{n}.offsets" in flat)
        skip = {f"{n}.{p}" for n in self.single_cols for p in ("values", "offsets")}
        bag_offsets = {k for k in self.input_keys if k.endswith(".offsets") and k not in skip}
        self.tensors: Dict[str, tf.Tensor] = {k: tf.convert_to_tensor(flat[k]) for k in self.input_keys
                                              if k not in skip and k not in bag_offsets}
        for k in bag_offsets:  # each row's (first id, id count): one gather per batch
            self.tensors[k] = tf.convert_to_tensor(np.stack([flat[k][:-1], np.diff(flat[k])], axis=1))
        if self.single_cols:
            ids = np.stack([flat[f"{n}.values"] for n in self.single_cols], axis=1)
            small = ids.size == 0 or (ids.min() >= 0 and ids.max() < 2**31)
            self.tensors[SINGLE] = tf.convert_to_tensor(ids.astype(np.int32) if small else ids)
        self.tensors.update({f"label:{k}": tf.convert_to_tensor(cache.labels[k].astype(np.float32, copy=False))
                             for k in self.labels})

    def gather(self, rows: tf.Tensor) -> Tuple[Dict[str, tf.Tensor], Dict[str, tf.Tensor]]:
        """(inputs, labels) of the batch of ``rows``, traced inside the step."""
        c, inputs = self.tensors, {}
        keys = set(self.input_keys)
        size = tf.size(rows, out_type=tf.int64)
        ones = tf.range(size + 1, dtype=tf.int64)  # the offsets of one-id-per-row features
        if self.single_cols:
            ids = tf.cast(tf.gather(c[SINGLE], rows), tf.int64)  # [B, S]
            inputs.update((f"{name}.values", col) for name, col in zip(self.single_cols, tf.unstack(ids, axis=1)))
        bags: Dict[str, Tuple[tf.Tensor, tf.Tensor]] = {}
        for key in self.input_keys:
            if key in inputs:
                continue
            name, _, part = key.rpartition(".")
            if f"{name}.offsets" not in keys:  # dense columns, sequences: one row each
                inputs[key] = tf.gather(c[key], rows)
            elif name in self.single:
                inputs[key] = ones if part == "offsets" else tf.gather(c[key], rows)
            else:  # a multi-value bag: a ragged gather of each row's ids (and weights)
                if name not in bags:
                    starts, lengths = tf.unstack(tf.gather(c[f"{name}.offsets"], rows), axis=1)
                    bags[name] = (tf.concat([tf.zeros([1], tf.int64), tf.cumsum(lengths)], axis=0),
                                  tf.ragged.range(starts, starts + lengths).flat_values)
                offsets, picked = bags[name]
                inputs[key] = offsets if part == "offsets" else tf.gather(c[key], picked)
        labels = {k: tf.gather(c[f"label:{k}"], rows) for k in self.labels}
        return {k: inputs[k] for k in self.input_keys}, labels
