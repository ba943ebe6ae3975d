"""Fused embedding lookups for tf.keras: one gather and one segment sum per embedding width.

The tf twin of ``easyrec.models.torch.embedding``. Every table of one width lives in one
``tf.Variable`` (tables stacked row-wise, each at a fixed ``base`` row, in the same order
as torch; tables shared through ``embedding_name`` are stored once). All sparse features of
that width are looked up together, with a number of ops that does not grow with the number
of features:

* ids: the features' ``values`` concatenated (feature-major), each shifted by its table's
  base; each id's segment is ``feature_index * B + row``, from the features' ``offsets``
  stacked [F, B+1] and shifted by the ids before them (a scatter of "a bag ends here" marks
  and a cumsum: no per-feature ops, no Python loop over rows);
* one ``tf.gather`` from the variable (its gradient is a ``tf.IndexedSlices`` over the
  looked-up rows, never a table-sized tensor), times ``weights`` when any feature of the
  width is weighted, then one segment sum into [F * B, dim]; ``mean`` pooling divides by
  the bag sizes (an empty bag stays 0).

The segment ids are sorted along the concatenated ids, so the sum is the sorted
``tf.math.segment_sum`` (padded to F * B rows for trailing empty bags) rather than
``unsorted_segment_sum``: measured here on CPU, ~100 us instead of ~800 us for 26 features
x 1024 rows x 16, and its gradient is a plain gather (the unsorted one adds a select over
every id). The result is transposed once into a [B, F, dim] block, so a group that reads
all of a width's features gets its MLP input by a reshape (see ``group.py``).

Single-id features (``FeatureInfo.single``: id, bucketised raw and combo features, one id
per row) skip the bag machinery: one gather of their [B, Fs] ids (shifted by their tables'
bases) gives their part of the block directly, with no segments, no transpose, the offsets
unread. Only the multi-value features of the width go through the gather + segment sum, and
the block is put back in feature order by one split per part and one concat (MovieLens: 7
single-id features and ``genres``; the op profile of the train step lost the transposes,
the cumsums and the bag weights over all ids, ~2 ms of thread time per batch of 1024).

Sequence features gather from the same variable, so a DIN history shares its candidate's
table. ``WideLinear`` is the same machinery with width-``out_dim`` (usually 1) zero tables:
the first-order term of LR, Wide & Deep and DeepFM. Every shape that depends on the batch
(B, nnz) is read from tensors, so one traced ``tf.function`` serves every batch. Tables
and pooling stay float32 under a mixed-precision policy.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from easyrec.features.info import FeatureInfo
from easyrec.models.tf.layers import LayerList, torch_linear
from easyrec.models.table_layout import plan_tables, table_of  # noqa: F401 - table_of re-exported


def pool_sequence(emb: tf.Tensor, lengths: tf.Tensor, mean: bool) -> tf.Tensor:
    """Sum (or mean) of the first ``lengths`` positions of ``emb`` [B, L, d] -> [B, d]."""
    mask = tf.sequence_mask(lengths, maxlen=tf.shape(emb)[1], dtype=emb.dtype)
    pooled = tf.reduce_sum(emb * mask[:, :, None], axis=1)
    if mean:
        count = tf.maximum(tf.cast(lengths, emb.dtype), 1.0)
        pooled = pooled / count[:, None]
    return pooled


BLOCK_PREFIX = "#fused/"


def block_key(dim: int) -> str:
    """Key of a fused width's [B, F, dim] block in an EmbeddingCollection's output."""
    return f"{BLOCK_PREFIX}{int(dim)}"


class FusedEmbeddingBag(tf.keras.layers.Layer):
    """All tables of one width in one variable; all its sparse features in one lookup.

    call returns ``block_key(dim) -> [B, F, dim]`` (the F sparse features' pooled
    embeddings side by side, in ``sparse_names`` order: reshaped to [B, F * dim] it is their
    concatenation, with no copy), ``name -> [B, dim]`` for each sparse feature (a slice of
    the block; unused slices cost nothing inside a tf.function) and ``name -> [B, L, dim]``
    for sequence features (not pooled; models decide how).
    """

    def __init__(self, dim: int, tables: List[Tuple[str, int]], sparse: List[FeatureInfo],
                 sequence: List[FeatureInfo], init_std: float, **kwargs) -> None:
        kwargs.setdefault("dtype", "float32")  # tables and pooling in f32 under any policy
        super().__init__(**kwargs)
        bases: Dict[str, int] = {}
        total = 0
        for name, rows in tables:
            bases[name] = total
            total += rows
        self.dim = int(dim)
        self.num_rows = total
        self._table_bases = dict(bases)
        initializer = (tf.keras.initializers.RandomNormal(0.0, float(init_std)) if init_std > 0
                       else tf.keras.initializers.Zeros())
        self.weight = self.add_weight(shape=(total, self.dim), initializer=initializer,
                                      name=f"embedding_{self.dim}", trainable=True)
        self.sparse_names = tuple(f.name for f in sparse)
        self.sparse_weighted = tuple(bool(f.weighted) for f in sparse)
        self.sparse_mean = tuple(f.pooling == "mean" for f in sparse)
        self.sparse_single = tuple(bool(getattr(f, "single", False)) for f in sparse)
        self.any_weighted = any(self.sparse_weighted)
        self.any_mean = any(self.sparse_mean)
        self._sparse_bases = [bases[table_of(f)] for f in sparse]
        # single-id features (exactly one id per row) are gathered straight into [B, Fs, dim]
        # (no segments, offsets or transpose); the bag features of the width (multi-value)
        # go through one gather + one segment sum, and the block is reassembled in
        # ``sparse_names`` order from runs of the two parts (a concat: its gradient is slices).
        # MovieLens (7 single + 1 bag): the bag machinery then runs over the bag's ids only.
        self._single_idx = [i for i in range(len(sparse)) if self.sparse_single[i]]
        self._bag_idx = [i for i in range(len(sparse)) if not self.sparse_single[i]]
        self._runs = self._assembly_runs()
        self._single_bases = np.array([self._sparse_bases[i] for i in self._single_idx],
                                      dtype=np.int64)
        self._bag_plan = self._plan(list(range(len(sparse))))
        self._bag_only = self._plan(self._bag_idx)
        self.seq_names = tuple(f.name for f in sequence)
        self._seq_bases = tuple(bases[table_of(f)] for f in sequence)
        self.dedup_ids = False  # trainer.dedup_ids: gather each distinct row once (tf.unique)
        self.built = True  # every variable exists already

    @property
    def table_bases(self) -> Dict[str, int]:
        """Table name -> its first row in the fused variable (for inspection and tests)."""
        return dict(self._table_bases)

    def table(self) -> tf.Variable:
        """The fused ``tf.Variable`` itself (the keras variable's backing variable)."""
        return getattr(self.weight, "value", self.weight)

    def _gather(self, rows: tf.Tensor) -> tf.Tensor:
        """Rows of the fused table for ``rows`` (any shape) -> rows.shape + [dim]. With
        ``dedup_ids`` each distinct row is gathered once (its gradient has one slice per
        distinct id instead of one per id), then expanded by the inverse index."""
        if not self.dedup_ids:
            return tf.gather(self.table(), rows)
        uniq, inverse = tf.unique(tf.reshape(rows, [-1]))
        out = tf.gather(tf.gather(self.table(), uniq), inverse)
        return tf.reshape(out, tf.concat([tf.shape(rows), [self.dim]], axis=0))

    def _plan(self, idx: List[int]) -> Tuple:
        """Constants of the bag path over the sparse features ``idx`` (in that order)."""
        sparse_bases = [self._sparse_bases[i] for i in idx]
        return (tuple(self.sparse_names[i] for i in idx),
                tuple(self.sparse_weighted[i] for i in idx),
                np.diff(np.array(sparse_bases, dtype=np.int64)),  # [F-1]
                int(sparse_bases[0]) if idx else 0,
                np.array([self.sparse_mean[i] for i in idx], dtype=bool))

    def pooled(self, inputs: Dict[str, tf.Tensor]) -> tf.Tensor:
        """The sparse features' pooled embeddings, feature-major: [F, B, dim] (every
        feature through the bag path; :meth:`block` is the faster [B, F, dim] form)."""
        return self._pooled(inputs, self._bag_plan)

    def _pooled(self, inputs: Dict[str, tf.Tensor], plan: Tuple) -> tf.Tensor:
        """Pooled embeddings of the features of ``plan``, feature-major: [F, B, dim].

        One gather and one (sorted) segment sum whatever F is. The concatenated ids are in
        feature-major order, so segment ``f * B + row`` is non-decreasing along them and
        the sorted ``segment_sum`` applies (cheaper on CPU than the unsorted one, and its
        gradient is a plain gather). Segment ids and per-id table bases come from one
        scatter of "a bag ends here" / "a feature starts here" marks and a cumsum each.
        """
        names, weighted, base_steps, first_base, mean_mask = plan
        num = len(names)
        offsets = tf.cast(tf.stack([inputs[n + ".offsets"] for n in names]),
                          tf.int32)  # [F, B+1]
        batch = tf.shape(offsets)[1] - 1
        ids = (tf.cast(inputs[names[0] + ".values"], tf.int64) if num == 1 else
               tf.concat([tf.cast(inputs[n + ".values"], tf.int64) for n in names],
                         axis=0))
        nnz = tf.shape(ids, out_type=tf.int32)[0]
        starts = tf.cumsum(offsets[:, -1], exclusive=True)  # first id of each feature
        ends = tf.reshape(offsets[:, 1:] + starts[:, None], [-1])  # [F*B] bag ends
        # segment of id j = number of bags that end at or before j
        marks = tf.math.unsorted_segment_sum(tf.ones_like(ends), ends, nnz + 1)
        segments = tf.cumsum(marks[:-1])
        if num == 1:
            rows = ids + first_base
        else:  # table base of id j: cumsum of the base steps placed at each feature's start
            steps = tf.math.unsorted_segment_sum(tf.constant(base_steps), starts[1:],
                                                 nnz + 1)
            rows = ids + (tf.cumsum(steps[:-1]) + first_base)
        gathered = self._gather(rows)  # [nnz, dim]; gradient: IndexedSlices
        if any(weighted):
            weights = tf.concat([
                tf.cast(inputs[n + ".weights"], gathered.dtype) if w
                else tf.ones(tf.shape(inputs[n + ".values"]), gathered.dtype)
                for n, w in zip(names, weighted)], axis=0)
            gathered = gathered * weights[:, None]
        summed = tf.math.segment_sum(gathered, segments)  # [last non-empty bag + 1, dim]
        total = num * batch
        summed = tf.pad(summed, [[0, total - tf.shape(summed)[0]], [0, 0]])
        pooled = tf.reshape(summed, [num, batch, self.dim])
        if mean_mask.any():
            counts = tf.maximum(offsets[:, 1:] - offsets[:, :-1], 1)
            counts = tf.where(tf.constant(mean_mask)[:, None], counts,
                              tf.ones_like(counts))
            pooled = pooled / tf.cast(counts, pooled.dtype)[:, :, None]
        return pooled

    def _single_block(self, inputs: Dict[str, tf.Tensor]) -> tf.Tensor:
        """[B, Fs, dim] of the single-id features: one gather, no segments (a bag of one id
        is that id's row: sum and mean pooling agree)."""
        names = [self.sparse_names[i] for i in self._single_idx]
        ids = tf.stack([tf.cast(inputs[n + ".values"], tf.int64) for n in names], axis=1)
        rows = ids + tf.constant(self._single_bases)[None, :]  # [B, Fs]
        out = self._gather(rows)  # [B, Fs, dim]; gradient: IndexedSlices
        if any(self.sparse_weighted[i] for i in self._single_idx):
            weights = tf.stack([
                tf.cast(inputs[n + ".weights"], out.dtype) if self.sparse_weighted[i]
                else tf.ones(tf.shape(inputs[n + ".values"]), out.dtype)
                for n, i in zip(names, self._single_idx)], axis=1)
            out = out * weights[:, :, None]
        return out

    def _assembly_runs(self) -> List[Tuple[str, int, int]]:
        """(part, start, stop) runs that rebuild ``sparse_names`` order from the single part
        and the bag part: consecutive features from the same part are one slice."""
        where = {i: ("single", k) for k, i in enumerate(self._single_idx)}
        where.update({i: ("bag", k) for k, i in enumerate(self._bag_idx)})
        runs: List[Tuple[str, int, int]] = []
        for i in range(len(self.sparse_names)):
            part, k = where[i]
            if runs and runs[-1][0] == part and runs[-1][2] == k:
                runs[-1] = (part, runs[-1][1], k + 1)
            else:
                runs.append((part, k, k + 1))
        return runs

    def _bag_block(self, inputs: Dict[str, tf.Tensor]) -> tf.Tensor:
        """[B, Fb, dim] of the bag features (feature-major pooled, moved to batch-major)."""
        pooled = self._pooled(inputs, self._bag_only)  # [Fb, B, dim]
        if len(self._bag_idx) == 1:
            return tf.reshape(pooled, [-1, 1, self.dim])
        return tf.transpose(pooled, [1, 0, 2])

    def block(self, inputs: Dict[str, tf.Tensor]) -> tf.Tensor:
        """The sparse features' pooled embeddings side by side: [B, F, dim], in
        ``sparse_names`` order (single-id features: one direct gather; bags: the bag path)."""
        if not self._bag_idx:
            return self._single_block(inputs)
        if not self._single_idx:
            return self._bag_block(inputs)
        # each part is cut into its runs by one split (whose gradient is a concat: a strided
        # slice's gradient would write a zero-filled copy of the whole part per run)
        parts = {"single": self._single_block(inputs), "bag": self._bag_block(inputs)}
        cuts = {p: iter(tf.split(parts[p], [b - a for q, a, b in self._runs if q == p], axis=1))
                for p in parts}
        return tf.concat([next(cuts[p]) for p, _, _ in self._runs], axis=1)

    def block_sum(self, inputs: Dict[str, tf.Tensor]) -> tf.Tensor:
        """Sum over the sparse features of their pooled embeddings: [B, dim]."""
        total = None
        if self._single_idx:
            total = tf.reduce_sum(self._single_block(inputs), axis=1)
        if self._bag_idx:
            bags = tf.reduce_sum(self._pooled(inputs, self._bag_only), axis=0)
            total = bags if total is None else total + bags
        return total

    def sequences(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """``name -> [B, L, dim]`` for the sequence features (padding slots included)."""
        table = self.table()
        return {name: tf.gather(table, tf.cast(inputs[name + ".values"], tf.int64) + base)
                for name, base in zip(self.seq_names, self._seq_bases)}

    def call(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        out: Dict[str, tf.Tensor] = {}
        if self.sparse_names:
            block = self.block(inputs)  # [B, F, dim]
            out[block_key(self.dim)] = block
            for i, name in enumerate(self.sparse_names):
                out[name] = block[:, i, :]
        out.update(self.sequences(inputs))
        return out


class EmbeddingCollection(tf.keras.layers.Layer):
    """Embeddings of the given sparse/sequence features, one fused lookup per width.

    ``dim`` > 0 overrides every table's width (the wide/first-order tables); ``init_std``
    None means N(0, 1/sqrt(dim)), 0 means zeros. Output: see :class:`FusedEmbeddingBag`.
    """

    def __init__(self, features: Dict[str, FeatureInfo], names: List[str], dim: int = 0,
                 init_std: Optional[float] = None, **kwargs) -> None:
        kwargs.setdefault("dtype", "float32")  # tables and pooling in f32 under any policy
        super().__init__(**kwargs)
        fused = []
        width_of: Dict[str, int] = {}
        layout: Dict[str, Tuple[str, int]] = {}
        for g in plan_tables(features, names, dim):
            width, sparse, sequence = g.width, g.sparse, g.sequence
            std = init_std if init_std is not None else 1.0 / math.sqrt(width)
            fused.append(FusedEmbeddingBag(width, g.tables, sparse, sequence, std, name=f"fused_{width}"))
            for f in sparse + sequence:
                width_of[f.name] = width
            for i, f in enumerate(sparse):
                layout[f.name] = (block_key(width), i)
        self.fused = LayerList(fused, name="fused")
        self._width_of = width_of
        self._layout = layout
        self.built = True  # every variable exists already

    @property
    def width_of(self) -> Dict[str, int]:
        """Feature name -> width of the fused table it reads."""
        return dict(self._width_of)

    @property
    def layout(self) -> Dict[str, Tuple[str, int]]:
        """Sparse feature name -> (block key, index in the block) of the call's output."""
        return dict(self._layout)

    def call(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        out: Dict[str, tf.Tensor] = {}
        for m in self.fused:
            out.update(m(inputs))
        return out


class WideLinear(tf.keras.layers.Layer):
    """First-order (linear) term over a group: per-id weights + a Dense over dense inputs.

    Returns [B, out_dim]; ``out_dim`` = number of tasks so multi-task models get one linear
    term per task from the same single fused lookup. The id tables and the bias start at
    zero and the Dense (no bias) has torch's default init, exactly like the torch twin.
    """

    def __init__(self, features: Dict[str, FeatureInfo], names: List[str], out_dim: int = 1,
                 **kwargs) -> None:
        kwargs.setdefault("dtype", "float32")  # tables and pooling in f32 under any policy
        super().__init__(**kwargs)
        embedded = [n for n in names if features[n].kind != "dense"]
        self.sparse_names = tuple(n for n in embedded if features[n].kind == "sparse")
        self.seq_names = tuple(n for n in embedded if features[n].kind == "sequence")
        self.seq_mean = tuple(features[n].pooling == "mean" for n in self.seq_names)
        self.dense_names = tuple(n for n in names if features[n].kind == "dense")
        self.out_dim = int(out_dim)
        self.emb = EmbeddingCollection(features, embedded, dim=out_dim, init_std=0.0,
                                       name="wide_emb") if embedded else None
        dense_dim = sum(int(features[n].dim) for n in self.dense_names)
        self.dense = (torch_linear(dense_dim, out_dim, use_bias=False, name="wide_dense",
                                   dtype="float32")
                      if self.dense_names else None)
        self.bias = self.add_weight(shape=(out_dim,), initializer="zeros", name="bias")
        self.built = True  # every variable exists already

    def call(self, inputs: Dict[str, tf.Tensor]) -> tf.Tensor:
        parts: List[tf.Tensor] = []
        if self.emb is not None:
            (bag,) = self.emb.fused  # every table has width out_dim
            if bag.sparse_names:  # sum over features of the pooled weights: [B, out_dim]
                parts.append(bag.block_sum(inputs))
            seqs = bag.sequences(inputs)
            for name, mean in zip(self.seq_names, self.seq_mean):
                parts.append(pool_sequence(seqs[name], inputs[name + ".lengths"], mean))
        if self.dense is not None:
            x = (inputs[self.dense_names[0]] if len(self.dense_names) == 1
                 else tf.concat([inputs[n] for n in self.dense_names], axis=1))
            parts.append(self.dense(x))
        total = parts[0] if len(parts) == 1 else tf.add_n(parts)
        return total + self.bias
