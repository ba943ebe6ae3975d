"""Building blocks shared by the tf.keras model zoo (twins of ``easyrec.models.torch.layers``).

MLP, FM second-order interaction (Rendle 2010), DCN-V2 cross network (Wang et al. 2021),
DIN target attention (Zhou et al. 2018), MMoE experts and gates (Ma et al. 2018), and the
per-task output heads. Every layer is built at construction (input widths are known from
the FeatureInfos), so all variables exist before the first call: the trainer can build its
optimizers and trace its ``tf.function`` step straight away. Linear layers use torch's
default init (U(+-1/sqrt(fan_in)) for kernel and bias) and BatchNorm torch's momentum and
epsilon, so both backends start from the same distributions.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional

import tensorflow as tf


def torch_linear(input_dim: int, units: int, use_bias: bool = True, xavier: bool = False,
                 name: Optional[str] = None, dtype: Any = None) -> tf.keras.layers.Dense:
    """A built ``Dense`` initialised like ``torch.nn.Linear`` (or Xavier-uniform weights and
    zero bias with ``xavier``, as torch's CrossNetV2 does)."""
    if xavier:
        kernel = tf.keras.initializers.GlorotUniform()
        bias: Any = tf.keras.initializers.Zeros()
    else:
        bound = 1.0 / math.sqrt(max(int(input_dim), 1))
        kernel = tf.keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")
        bias = tf.keras.initializers.RandomUniform(-bound, bound)
    layer = tf.keras.layers.Dense(int(units), use_bias=use_bias, kernel_initializer=kernel,
                                  bias_initializer=bias, name=name, dtype=dtype)
    layer.build((None, int(input_dim)))
    return layer


class LayerList(tf.keras.layers.Layer):
    """A fixed sequence of layers, tracked by keras (weights) and by ``tf.train.Checkpoint``.

    A plain Python list attribute is enough for keras' own weight lists and ``save_weights``,
    but not for TF's object graph: ``tf.train.Checkpoint(model=...)`` would silently skip
    every variable inside the list. Each layer here is an attribute (``l0``, ``l1``...), so
    both see it. Iterate, index and ``len`` like a list.
    """

    def __init__(self, layers: List[tf.keras.layers.Layer], **kwargs) -> None:
        super().__init__(**kwargs)
        self._size = len(layers)
        for i, layer in enumerate(layers):
            setattr(self, f"l{i}", layer)
        self.built = True

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, i: int) -> tf.keras.layers.Layer:
        if not -self._size <= i < self._size:
            raise IndexError(i)
        return getattr(self, f"l{i % self._size}")

    def __iter__(self):
        return (getattr(self, f"l{i}") for i in range(self._size))


def make_activation(name: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """The activation for a config's ``activation`` value (a fresh layer for ``prelu``, which
    has one learned slope initialised at 0.25, like ``torch.nn.PReLU()``)."""
    table: Dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
        "relu": tf.nn.relu, "gelu": lambda x: tf.nn.gelu(x, approximate=False),
        "silu": tf.nn.silu, "tanh": tf.tanh, "sigmoid": tf.sigmoid}
    if name == "prelu":
        return PReLU()
    if name not in table:
        raise ValueError(f"unknown activation '{name}'; one of {sorted(table) + ['prelu']}")
    return table[name]


class PReLU(tf.keras.layers.Layer):
    """max(0, x) + a * min(0, x) with one learned ``a`` for the whole tensor (torch's default)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.alpha = self.add_weight(shape=(), initializer=tf.keras.initializers.Constant(0.25),
                                     name="alpha")
        self.built = True  # every variable exists already

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.nn.relu(x) - self.alpha * tf.nn.relu(-x)


class MLP(tf.keras.layers.Layer):
    """Dense -> [BatchNorm] -> activation -> [Dropout] per hidden width.

    With no hidden units it is the identity (``output_dim == input_dim``), so a model may
    always route through its MLP.
    """

    def __init__(self, input_dim: int, hidden_units: List[int], activation: str = "relu",
                 dropout: float = 0.0, batchnorm: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        linears, norms, acts = [], [], []
        width = int(input_dim)
        for units in hidden_units:
            linears.append(torch_linear(width, int(units), use_bias=not batchnorm))
            if batchnorm:
                bn = tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
                bn.build((None, int(units)))
                norms.append(bn)
            acts.append(make_activation(activation))
            width = int(units)
        self.linears = LayerList(linears, name="linears")
        self.norms = LayerList(norms, name="norms")
        # prelu slopes are layers with a variable; the other activations are functions
        self.prelus = LayerList([a for a in acts if isinstance(a, PReLU)], name="prelus")
        self._acts = tuple(self.prelus) if len(self.prelus) else tuple(acts)
        self.dropout = (tf.keras.layers.Dropout(float(dropout)) if dropout > 0 and hidden_units
                        else None)
        self.batchnorm = bool(batchnorm)
        self.output_dim = width
        self.built = True  # every variable exists already

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        for i, linear in enumerate(self.linears):
            x = linear(x)
            if self.batchnorm:
                x = self.norms[i](x, training=training)
            x = self._acts[i](x)
            if self.dropout is not None:
                x = self.dropout(x, training=training)
        return x


def fm_interaction(fields: tf.Tensor) -> tf.Tensor:
    """FM second order: sum over field pairs of <v_i, v_j>, in O(F d) via the square trick.

    Input [B, F, d]; output [B, 1].
    """
    square_of_sum = tf.square(tf.reduce_sum(fields, axis=1))
    sum_of_square = tf.reduce_sum(tf.square(fields), axis=1)
    return 0.5 * tf.reduce_sum(square_of_sum - sum_of_square, axis=1, keepdims=True)


class FMInteraction(tf.keras.layers.Layer):
    """Layer form of :func:`fm_interaction` (no variables)."""

    def call(self, fields: tf.Tensor) -> tf.Tensor:
        return fm_interaction(fields)


class CrossNetV2(tf.keras.layers.Layer):
    """DCN-V2 cross layers: x_{l+1} = x0 * (W_l x_l + b_l) + x_l.

    ``low_rank`` r > 0 factorises W_l = U_l V_l^T (d x r, r x d), cutting cost from d^2 to 2dr;
    0 means full d x d matrices. Xavier-uniform weights, zero biases (as in torch).
    """

    def __init__(self, input_dim: int, num_layers: int, low_rank: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.low_rank = int(low_rank)
        d = int(input_dim)
        if self.low_rank > 0:
            self.down = LayerList([torch_linear(d, self.low_rank, use_bias=False, xavier=True)
                                   for _ in range(num_layers)], name="down")
            self.up = LayerList([torch_linear(self.low_rank, d, xavier=True)
                                 for _ in range(num_layers)], name="up")
        else:
            self.down = LayerList([], name="down")
            self.up = LayerList([torch_linear(d, d, xavier=True) for _ in range(num_layers)],
                                name="up")
        self.output_dim = d
        self.built = True  # every variable exists already

    def call(self, x0: tf.Tensor) -> tf.Tensor:
        x = x0
        for i, up in enumerate(self.up):
            h = self.down[i](x) if self.low_rank > 0 else x
            x = x0 * up(h) + x
        return x


class TargetAttention(tf.keras.layers.Layer):
    """DIN's local activation unit: weight each history item by an MLP of
    [query, key, query - key, query * key], then sum the weighted keys.

    Padded positions (index >= length) get weight 0, so they never change the output. The
    paper leaves scores unnormalised; ``softmax`` normalises over the valid positions.
    """

    def __init__(self, dim: int, units: List[int], activation: str = "sigmoid",
                 softmax: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.mlp = MLP(4 * self.dim, units, activation)
        self.score = torch_linear(self.mlp.output_dim, 1)
        self.softmax = bool(softmax)
        self.built = True  # every variable exists already

    def call(self, query: tf.Tensor, keys: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        """query [B, d], keys [B, L, d], lengths [B] -> [B, d]."""
        length = tf.shape(keys)[1]
        q = tf.broadcast_to(query[:, None, :], tf.shape(keys))
        x = tf.reshape(tf.concat([q, keys, q - keys, q * keys], axis=2), [-1, 4 * self.dim])
        scores = tf.reshape(self.score(self.mlp(x)), [-1, length])  # [B, L]
        mask = tf.sequence_mask(lengths, maxlen=length)
        if self.softmax:
            scores = tf.nn.softmax(tf.where(mask, scores, tf.fill(tf.shape(scores), -1e9)),
                                   axis=1)
        weights = scores * tf.cast(mask, scores.dtype)
        return tf.einsum("bl,bld->bd", weights, keys)


class MMoELayer(tf.keras.layers.Layer):
    """Shared expert MLPs mixed per task by a softmax gate over the input.

    Returns one [B, expert_dim] mixture per task.
    """

    def __init__(self, input_dim: int, num_experts: int, expert_units: List[int],
                 num_tasks: int, gate_units: List[int], activation: str = "relu",
                 dropout: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.experts = LayerList([MLP(input_dim, expert_units, activation, dropout)
                                  for _ in range(num_experts)], name="experts")
        self.gate_hidden = LayerList([MLP(input_dim, gate_units, activation)
                                      for _ in range(num_tasks)], name="gate_hidden")
        self.gate_out = LayerList([torch_linear(g.output_dim, num_experts)
                                   for g in self.gate_hidden], name="gate_out")
        self.output_dim = self.experts[0].output_dim
        self.built = True  # every variable exists already

    def gate(self, task: int, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Task ``task``'s gate logits [B, E] (before the softmax)."""
        return self.gate_out[task](self.gate_hidden[task](x, training=training))

    def call(self, x: tf.Tensor, training: bool = False) -> List[tf.Tensor]:
        experts = tf.stack([e(x, training=training) for e in self.experts], axis=1)  # [B, E, H]
        out: List[tf.Tensor] = []
        for t in range(len(self.gate_out)):
            w = tf.nn.softmax(self.gate(t, x, training), axis=1)  # [B, E]
            out.append(tf.einsum("be,beh->bh", w, experts))
        return out


class TaskHeads(tf.keras.layers.Layer):
    """One Dense(input -> 1) per task (one fused Dense); returns task name -> [B]."""

    def __init__(self, input_dim: int, names: List[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.names = tuple(names)
        self.linear = torch_linear(input_dim, len(self.names))
        self.built = True  # every variable exists already

    def call(self, x: tf.Tensor) -> Dict[str, tf.Tensor]:
        logits = tf.cast(self.linear(x), tf.float32)
        if len(self.names) == 1:
            return {self.names[0]: tf.reshape(logits, [-1])}
        return dict(zip(self.names, tf.unstack(logits, axis=1)))
