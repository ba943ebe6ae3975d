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


def make_optimizer(spec: OptimizerPart, schedule: SchedulerSpec, total_steps: int) -> tf.keras.optimizers.Optimizer:
    """The Keras optimizer of one parameter set. ``weight_decay`` of adam / adagrad / sgd is the
    coupled L2 term torch adds to the gradient: the engine adds it (see ``coupled_l2``), so
    the same YAML means the same update on both backends; adamw's is Keras' decoupled decay,
    the same formula as torch's AdamW."""
    lr = LingjieSchedule(spec.lr, schedule, total_steps)
    if spec.name == "adam":
        return tf.keras.optimizers.Adam(learning_rate=lr, epsilon=spec.eps)
    if spec.name == "adamw":
        return tf.keras.optimizers.AdamW(learning_rate=lr, weight_decay=spec.weight_decay, epsilon=spec.eps)
    if spec.name == "adagrad":
        return tf.keras.optimizers.Adagrad(learning_rate=lr, epsilon=spec.eps, initial_accumulator_value=0.0)
    return tf.keras.optimizers.SGD(learning_rate=lr, momentum=spec.momentum)


def coupled_l2(spec: OptimizerPart) -> float:
    """The L2 coefficient the engine adds to gradients (torch's weight_decay semantics)."""
    return 0.0 if spec.name == "adamw" else float(spec.weight_decay)
