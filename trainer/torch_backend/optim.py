"""Optimizers with separate sparse (embedding) and dense learning rates, and lr schedules.

Embedding tables see each row rarely, so they usually want a different (often larger) lr or
a different algorithm (adagrad) than the dense layers: two optimizers, one per parameter set.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch

from trainer.schema.spec import OptimizerPart, SchedulerSpec


def make_optimizer(params: Iterable[torch.nn.Parameter], spec: OptimizerPart,
                   sparse_grad: bool = False) -> torch.optim.Optimizer | None:
    """The optimizer of one parameter set; ``sparse_grad``: the tables get sparse gradients."""
    params = [p for p in params if p.requires_grad]
    if not params:
        return None
    if sparse_grad and spec.weight_decay:
        from lingjie.errors import ConfigError

        raise ConfigError("trainer.optimizer.sparse.weight_decay",
                          "torch optimizers take no weight decay with sparse gradients (model.sparse_grad=true): "
                          "set trainer.optimizer.sparse.weight_decay=0")
    if sparse_grad and spec.name in ("adam", "adamw"):
        return torch.optim.SparseAdam(params, lr=spec.lr, eps=spec.eps)
    if spec.name == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay, eps=spec.eps)
    if spec.name == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay, eps=spec.eps)
    if spec.name == "adagrad":
        return torch.optim.Adagrad(params, lr=spec.lr, weight_decay=spec.weight_decay, eps=spec.eps)
    if spec.name == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, weight_decay=spec.weight_decay, momentum=spec.momentum)
    raise ValueError(f"unknown optimizer {spec.name}")  # the schema rejects this earlier


def lr_factor(step: int, spec: SchedulerSpec, total_steps: int) -> float:
    """Multiplier of the base lr at ``step`` (0-based): linear warmup, then the schedule."""
    if spec.warmup_steps and step < spec.warmup_steps:
        return (step + 1) / spec.warmup_steps
    after = step - spec.warmup_steps
    if spec.name == "constant":
        return 1.0
    if spec.name == "exponential":
        return spec.gamma ** (after / spec.decay_steps)
    span = max(1, total_steps - spec.warmup_steps)
    progress = min(1.0, after / span)
    return spec.min_lr_ratio + (1 - spec.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(opt: torch.optim.Optimizer, spec: SchedulerSpec, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, spec, total_steps))
