"""Field-interaction layers of the second-wave ranking models; tf twins of
``easyrec.models.torch.interactions`` (same names, same maths, same initialisation).

xDeepFM's compressed interaction network (Lian et al. 2018), AutoInt's interacting layer
(Song et al. 2019), DLRM's pairwise dot interaction (Naumov et al. 2019) and MaskNet's
MaskBlock (Wang et al. 2021). Fields arrive as [B, F, d] (``FeatureGroup.field_block``).
Every variable is created in the constructor; under a mixed policy the layers compute in
the policy's dtype (keras casts their inputs), like the MLPs.
"""
from __future__ import annotations

from typing import List

import numpy as np
import tensorflow as tf

from easyrec.models.tf.layers import LayerList, make_activation, torch_linear


def _layer_norm(width: int) -> tf.keras.layers.LayerNormalization:
    """A built LayerNormalization with torch's epsilon."""
    norm = tf.keras.layers.LayerNormalization(epsilon=1e-5)
    norm.build((None, int(width)))
    return norm


class CIN(tf.keras.layers.Layer):
    """Compressed interaction network: a 1x1 convolution over the outer products of the
    previous maps and the fields, per embedding dimension; each layer's maps are sum-pooled.

    Input [B, F, d]; output [B, output_dim]. With ``split_half`` every layer but the last
    passes half its maps on and outputs the other half.
    """

    def __init__(self, num_fields: int, layer_sizes: List[int], split_half: bool = True,
                 activation: str = "relu", **kwargs) -> None:
        super().__init__(**kwargs)
        convs, next_sizes = [], []
        prev, out_dim = int(num_fields), 0
        for k, size in enumerate(layer_sizes):
            convs.append(torch_linear(prev * int(num_fields), int(size)))
            last = k == len(layer_sizes) - 1
            keep = int(size) // 2 if split_half and not last else int(size)
            next_sizes.append(keep)
            out_dim += int(size) - keep if split_half and not last else int(size)
            prev = keep
        self.convs = LayerList(convs, name="convs")
        self.next_sizes = tuple(next_sizes)
        self._act = (lambda x: x) if activation == "identity" else make_activation(activation)
        self.num_fields = int(num_fields)
        self.split_half = bool(split_half)
        self.output_dim = out_dim
        self.built = True  # every variable exists already

    def call(self, fields: tf.Tensor) -> tf.Tensor:
        x0 = tf.transpose(fields, [0, 2, 1])  # [B, d, F]
        dim = tf.shape(x0)[1]
        x, width = x0, self.num_fields
        pooled = []
        for k, conv in enumerate(self.convs):
            z = tf.reshape(x[:, :, :, None] * x0[:, :, None, :], [-1, dim, width * self.num_fields])
            h = self._act(conv(z))  # [B, d, H_k]
            if self.split_half and k < len(self.convs) - 1:
                keep = self.next_sizes[k]
                x, width = h[:, :, :keep], keep
                pooled.append(tf.reduce_sum(h[:, :, keep:], axis=1))
            else:
                x, width = h, self.next_sizes[k]
                pooled.append(tf.reduce_sum(h, axis=1))
        return tf.concat(pooled, axis=1)


class InteractingLayer(tf.keras.layers.Layer):
    """AutoInt's multi-head self-attention over fields (see the torch twin).

    Input [B, F, input_dim]; output [B, F, heads * head_dim].
    """

    def __init__(self, input_dim: int, heads: int, head_dim: int, residual: bool = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        width = int(heads) * int(head_dim)
        self.query = torch_linear(input_dim, width, use_bias=False)
        self.key = torch_linear(input_dim, width, use_bias=False)
        self.value = torch_linear(input_dim, width, use_bias=False)
        self.residual = bool(residual)
        self.res = torch_linear(input_dim, width, use_bias=False) if residual else None
        self.heads, self.head_dim, self.output_dim = int(heads), int(head_dim), width
        self.built = True  # every variable exists already

    def _split(self, x: tf.Tensor, num_fields: int) -> tf.Tensor:
        return tf.transpose(tf.reshape(x, [-1, num_fields, self.heads, self.head_dim]),
                            [0, 2, 1, 3])

    def call(self, x: tf.Tensor) -> tf.Tensor:
        f = x.shape[1]
        q, k, v = (self._split(self.query(x), f), self._split(self.key(x), f),
                   self._split(self.value(x), f))  # [B, H, F, a]
        weights = tf.nn.softmax(tf.matmul(q, k, transpose_b=True), axis=3)
        out = tf.reshape(tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3]),
                         [-1, f, self.output_dim])
        if self.res is not None:
            out = out + self.res(x)
        return tf.nn.relu(out)


class DotInteraction(tf.keras.layers.Layer):
    """DLRM's interaction: dot products of every pair of rows of [B, n, d] (strict lower
    triangle, plus the diagonal with ``itself``), flattened to [B, output_dim]."""

    def __init__(self, num_rows: int, itself: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        rows, cols = np.tril_indices(int(num_rows), k=0 if itself else -1)
        self.flat_index = tuple(int(i) for i in rows * int(num_rows) + cols)
        self.num_rows = int(num_rows)
        self.output_dim = len(self.flat_index)
        self.built = True

    def call(self, x: tf.Tensor) -> tf.Tensor:
        dots = tf.reshape(tf.matmul(x, x, transpose_b=True), [-1, self.num_rows ** 2])
        return tf.gather(dots, list(self.flat_index), axis=1)


class MaskBlock(tf.keras.layers.Layer):
    """MaskNet's block: ReLU(LN(W (mask(v_emb) * h))), mask = Linear-ReLU-Linear of v_emb,
    h layer-normalised first with ``norm_input``."""

    def __init__(self, input_dim: int, mask_input_dim: int, output_dim: int,
                 reduction_ratio: float, norm_input: bool, **kwargs) -> None:
        super().__init__(**kwargs)
        hidden = max(1, int(round(mask_input_dim * reduction_ratio)))
        self.mask_in = torch_linear(mask_input_dim, hidden)
        self.mask_out = torch_linear(hidden, input_dim)
        self.input_norm = _layer_norm(input_dim) if norm_input else None
        self.linear = torch_linear(input_dim, output_dim, use_bias=False)
        self.output_norm = _layer_norm(output_dim)
        self.output_dim = int(output_dim)
        self.built = True  # every variable exists already

    def call(self, hidden: tf.Tensor, v_emb: tf.Tensor) -> tf.Tensor:
        mask = self.mask_out(tf.nn.relu(self.mask_in(v_emb)))
        h = self.input_norm(hidden) if self.input_norm is not None else hidden
        return tf.nn.relu(self.output_norm(self.linear(mask * h)))


class MaskNetBlocks(tf.keras.layers.Layer):
    """``num_blocks`` MaskBlocks over v [B, D]: ``serial`` chains them (the first normalises
    v), ``parallel`` runs each on v and concatenates their outputs."""

    def __init__(self, input_dim: int, num_blocks: int, block_dim: int,
                 reduction_ratio: float, parallel: bool, **kwargs) -> None:
        super().__init__(**kwargs)
        blocks = []
        for i in range(num_blocks):
            first_or_parallel = parallel or i == 0
            blocks.append(MaskBlock(input_dim if first_or_parallel else block_dim, input_dim,
                                    block_dim, reduction_ratio, first_or_parallel))
        self.blocks = LayerList(blocks, name="blocks")
        self.parallel = bool(parallel)
        self.output_dim = block_dim * num_blocks if parallel else block_dim
        self.built = True  # every variable exists already

    def call(self, v: tf.Tensor) -> tf.Tensor:
        if self.parallel:
            return tf.concat([block(v, v) for block in self.blocks], axis=1)
        h = v
        for block in self.blocks:
            h = block(h, v)
        return h
