"""Keras optimizers with the same knobs and schedules as the torch backend."""
from __future__ import annotations

import math

import tensorflow as tf

from trainer.schema.spec import OptimizerPart, SchedulerSpec


class LingjieSchedule(tf.keras.optimizers.schedules.LearningRateSchedule):
    """base_lr * lr_factor(step): linear warmup, then constant | cosine | exponential —
    the same formula as ``trainer.torch_backend.optim.lr_factor``, in TF ops."""

    def __init__(self, base_lr: float, spec: SchedulerSpec, total_steps: int) -> None:
        self.base_lr = float(base_lr)
        self.spec = spec
        self.total_steps = int(total_steps)

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        s = self.spec
        step = tf.cast(step, tf.float32)
        warm = float(s.warmup_steps)
        if s.name == "constant":
            after = tf.constant(1.0)
        elif s.name == "exponential":
            after = tf.pow(s.gamma, tf.maximum(step - warm, 0.0) / float(s.decay_steps))
        else:
            span = float(max(1, self.total_steps - s.warmup_steps))
            progress = tf.minimum(1.0, tf.maximum(step - warm, 0.0) / span)
            after = s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + tf.cos(math.pi * progress))
        if s.warmup_steps:
            factor = tf.where(step < warm, (step + 1.0) / warm, after)
        else:
            factor = after
        return self.base_lr * factor

    def get_config(self) -> dict:
        return {"base_lr": self.base_lr, "total_steps": self.total_steps}


class FusedAdam(tf.keras.optimizers.Adam):
    """Keras' Adam, each dense variable updated by one fused ``ResourceApplyAdam`` kernel.

    Keras 3's Adam spends ~15 small ops per variable (casts, pows, two assign_adds, a
    divide, an assign_sub); TF's fused kernel computes the same formula (bias-corrected
    step ``lr * sqrt(1 - b2^t) / (1 - b1^t)``, epsilon outside the square root) in one op, on
    the same slot variables (checkpoints are unchanged). IndexedSlices gradients are summed
    into a dense one first (``densify``: Keras' Adam updates every row's moments as well);
    amsgrad and distributed (mirrored) variables take Keras' own update.
    """

    def _backend_update_step(self, grads, trainable_variables, learning_rate):  # noqa: ANN001, ANN202
        """Single process: the step's scalars (bias-correction powers, lr, betas, epsilon) are
        made once per dtype for all variables, not once per variable (~8 small ops each,
        ~0.1 ms a step on a 2-core CPU with ~10 variables per optimizer)."""
        if tf.distribute.has_strategy() or self.amsgrad:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        scalars: dict = {}
        for gradient, variable in zip(grads, trainable_variables):
            self._apply_one(gradient, variable, learning_rate, scalars)

    def update_step(self, gradient, variable, learning_rate):  # noqa: ANN001, ANN201
        return self._apply_one(gradient, variable, learning_rate, {})

    def _apply_one(self, gradient, variable, learning_rate, scalars: dict):  # noqa: ANN001, ANN202
        from easyrec.models.tf.sparse_adam import tf_variable

        var = tf_variable(variable)
        if (self.amsgrad or not isinstance(var, tf.Variable) or not hasattr(var, "handle")
                or tf.distribute.has_strategy()):
            return super().update_step(gradient, variable, learning_rate)
        if isinstance(gradient, tf.IndexedSlices):
            # Keras' Adam decays every row's moments too (m.assign(b1 * m), then a scatter of the
            # looked-up rows): the dense update on the summed rows is the same formula
            from easyrec.models.tf.sparse_adam import densify

            gradient = densify(gradient, int(var.shape[0]))
        index = self._get_variable_index(variable)
        m = tf_variable(self._momentums[index])
        v = tf_variable(self._velocities[index])
        dtype = var.dtype
        if dtype not in scalars:
            step = tf.cast(self.iterations + 1, dtype)
            beta_1 = tf.cast(self.beta_1, dtype)
            beta_2 = tf.cast(self.beta_2, dtype)
            scalars[dtype] = dict(beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
                                  lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
                                  epsilon=tf.cast(self.epsilon, dtype))
        return tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle, grad=tf.cast(gradient, dtype),
                                            use_locking=False, **scalars[dtype])


def make_optimizer(spec: OptimizerPart, schedule: SchedulerSpec, total_steps: int,
                   sparse_grad: bool = False) -> tf.keras.optimizers.Optimizer:
    """The Keras optimizer of one parameter set. ``weight_decay`` of adam / adagrad / sgd is the
    coupled L2 term torch adds to the gradient: the engine adds it (see ``coupled_l2``), so
    the same YAML means the same update on both backends; adamw's is Keras' decoupled decay,
    the same formula as torch's AdamW. ``sparse_grad`` (the tables' optimizer under
    ``model.sparse_grad=true``, as on torch): adam is
    :class:`~easyrec.models.tf.sparse_adam.SparseAdam` (lazy, row-wise Adam: only the rows a
    step looks up move, like torch's SparseAdam), any coupled L2 on those rows only
    (``coupled_l2(spec, sparse_grad=True)`` is then 0). Otherwise adam is :class:`FusedAdam`
    (Keras' Adam update, one kernel per variable)."""
    lr = LingjieSchedule(spec.lr, schedule, total_steps)
    if spec.name == "adam" and sparse_grad:
        from easyrec.models.tf.sparse_adam import SparseAdam

        return SparseAdam(learning_rate=lr, epsilon=spec.eps, l2=float(spec.weight_decay))
    if spec.name == "adam":
        return FusedAdam(learning_rate=lr, epsilon=spec.eps)
    if spec.name == "adamw":
        return tf.keras.optimizers.AdamW(learning_rate=lr, weight_decay=spec.weight_decay, epsilon=spec.eps)
    if spec.name == "adagrad":
        return tf.keras.optimizers.Adagrad(learning_rate=lr, epsilon=spec.eps, initial_accumulator_value=0.0)
    return tf.keras.optimizers.SGD(learning_rate=lr, momentum=spec.momentum)


def coupled_l2(spec: OptimizerPart, sparse_grad: bool = False) -> float:
    """The L2 coefficient the engine adds to gradients (torch's weight_decay semantics); 0 for
    adamw (decoupled, in the optimizer) and for SparseAdam (``sparse_grad`` adam applies it
    to the looked-up rows itself)."""
    if spec.name == "adamw" or (sparse_grad and spec.name == "adam"):
        return 0.0
    return float(spec.weight_decay)
