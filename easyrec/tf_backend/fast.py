"""Fast-path switches of the TF engine (the twins of ``trainer.torch_backend.fast``).

* ``trainer.dedup_ids``: each fused lookup gathers every distinct row once (``tf.unique`` +
  inverse), so the table's gradient carries one slice per distinct id.
* ``trainer.compile``: XLA (``tf.function(jit_compile=True)``) of the dense part only — every
  MLP layer's ``call`` — inside the (non-XLA) compiled train step: lookups have data-dependent
  shapes (id counts change every batch) and would recompile at every step under whole-step XLA.
"""
from __future__ import annotations

import logging
from typing import Any

import tensorflow as tf

log = logging.getLogger("lingjie.tf")


def apply_fast_paths(model: Any, dedup_ids: bool = False, compile_dense: bool = False) -> None:
    """Switch the model's fast paths on; call before the first step is traced."""
    from easyrec.models.tf.embedding import FusedEmbeddingBag
    from easyrec.models.tf.layers import MLP

    layers = list(model._flatten_layers(include_self=False, recursive=True))
    if dedup_ids:
        for layer in layers:
            if isinstance(layer, FusedEmbeddingBag):
                layer.dedup_ids = True
    if compile_dense:
        mlps = [layer for layer in layers if isinstance(layer, MLP)]
        for layer in mlps:
            layer.call = tf.function(layer.call, jit_compile=True, reduce_retracing=True)
        log.info("trainer.compile: XLA for %d MLP layer(s)", len(mlps))
