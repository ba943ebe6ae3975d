"""A feature group (``model.feature_groups.<name>``) turned into tensors a model can use.

The tf twin of ``easyrec.models.torch.group``: a parameter-free view (a plain object, not a
layer) over the model inputs and the embedding dict of one shared EmbeddingCollection.
``__call__`` concatenates dense inputs, pooled sparse embeddings and pooled sequence
embeddings in the group's order into [B, output_dim]; ``embedding_fields`` gives the pooled
embeddings alone (the FM's fields), ``field_block`` the same stacked as [B, F, d].

After :meth:`FeatureGroup.bind` with the collection's ``layout``, a run of consecutive
sparse features that sit side by side in one fused block is taken from the block by one
reshape (and a slice when the run is not the whole block) instead of one slice per feature
and a concatenation: for the usual "every sparse feature of one width" group, the embedding
part of the MLP input is the lookup's own output, with no copy. Unbound groups give the
same values the slow way.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import tensorflow as tf

from easyrec.features.info import FeatureInfo
from easyrec.models.tf.embedding import pool_sequence

# one piece of a group's output: ("feature", name index) or ("block", key, start, stop, dim)
Piece = Tuple


class FeatureGroup:
    """Selects and arranges one group's inputs; owns no variables."""

    def __init__(self, features: Dict[str, FeatureInfo], names: List[str]) -> None:
        self.names = list(names)
        self.kinds = [features[n].kind for n in names]
        self.mean = [features[n].pooling == "mean" for n in names]
        self.dims = [int(features[n].dim) for n in names]
        self.output_dim = sum(self.dims)
        self.embedded = [n for n in names if features[n].kind != "dense"]
        self._pieces: List[Piece] = [("feature", i) for i in range(len(self.names))]
        self._fields: Optional[Piece] = None

    def bind(self, layout: Dict[str, Tuple[str, int]]) -> "FeatureGroup":
        """Plan the group over an EmbeddingCollection's ``layout`` (see module docstring)."""
        pieces: List[Piece] = []
        for i, name in enumerate(self.names):
            where = layout.get(name) if self.kinds[i] == "sparse" else None
            if where is None:
                pieces.append(("feature", i))
                continue
            key, index = where
            last = pieces[-1] if pieces else None
            if last is not None and last[0] == "block" and last[1] == key and last[3] == index:
                pieces[-1] = ("block", key, last[2], index + 1, last[4])
            else:
                pieces.append(("block", key, index, index + 1, self.dims[i]))
        self._pieces = pieces
        fields = [p for p in pieces if not (p[0] == "feature" and self.kinds[p[1]] == "dense")]
        self._fields = fields[0] if len(fields) == 1 and fields[0][0] == "block" else None
        return self

    def __call__(self, inputs: Dict[str, tf.Tensor], embs: Dict[str, tf.Tensor]) -> tf.Tensor:
        parts = []
        for piece in self._pieces:
            if piece[0] == "feature":
                parts.append(self._one(piece[1], inputs, embs))
            else:
                _, key, start, stop, dim = piece
                block = self._block(embs[key], start, stop)
                parts.append(tf.reshape(block, [-1, (stop - start) * dim]))
        return parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)

    def embedding_fields(self, inputs: Dict[str, tf.Tensor], embs: Dict[str, tf.Tensor]
                         ) -> List[tf.Tensor]:
        """Pooled [B, d] embedding of every sparse/sequence feature, in group order."""
        return [self._one(i, inputs, embs) for i in range(len(self.names))
                if self.kinds[i] != "dense"]

    def field_block(self, inputs: Dict[str, tf.Tensor], embs: Dict[str, tf.Tensor]
                    ) -> tf.Tensor:
        """The embedding fields stacked: [B, F, d] (all fields must share one width)."""
        if self._fields is not None:
            _, key, start, stop, _ = self._fields
            return self._block(embs[key], start, stop)
        return tf.stack(self.embedding_fields(inputs, embs), axis=1)

    @staticmethod
    def _block(block: tf.Tensor, start: int, stop: int) -> tf.Tensor:
        if start == 0 and block.shape[1] == stop:
            return block
        return block[:, start:stop, :]

    def _one(self, i: int, inputs: Dict[str, tf.Tensor], embs: Dict[str, tf.Tensor]
             ) -> tf.Tensor:
        name, kind = self.names[i], self.kinds[i]
        if kind == "dense":
            return tf.cast(inputs[name], tf.float32)
        if kind == "sparse":
            return embs[name]
        return pool_sequence(embs[name], inputs[name + ".lengths"], self.mean[i])
