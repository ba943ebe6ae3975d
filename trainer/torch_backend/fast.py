"""Fast-path switches of the torch engine and the probe that times the embedding stage.

* ``trainer.dedup_ids``: every fused lookup first deduplicates its ids (``torch.unique`` +
  inverse) and gathers each distinct row once; the bag then sums rows of that small table.
  Wins when a batch repeats ids a lot (low-cardinality fields, popular items): the backward
  scatters one gradient row per distinct id instead of one per id.
* ``trainer.compile``: ``torch.compile`` (in place, ``nn.Module.compile``: parameter names and
  checkpoints unchanged) of the model's dense sub-modules only, the modules that hold no
  embedding table: lookups have data-dependent shapes and gain nothing from compilation.

:class:`EmbeddingProbe` charges the embedding modules' forward (module hooks) and their part of
the backward graph (autograd node hooks on every node between the module's outputs and its
tables) to the ``embedding`` stage of a sampled step; hooks exist only during that step, so
unsampled steps, TorchScript export and DDP see the plain model.
"""
from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

log = logging.getLogger("lingjie.torch")


def embedding_modules(model: nn.Module) -> list[nn.Module]:
    """The model's embedding tables' modules, as the model lists them (``embedding_modules()``;
    none for models without tables, e.g. vision and text)."""
    listed = getattr(model, "embedding_modules", None)
    return list(listed()) if callable(listed) else []


def _holds_table(module: nn.Module, tables: set[int]) -> bool:
    return any(id(p) in tables for p in module.parameters())


def dense_modules(model: nn.Module) -> list[nn.Module]:
    """Top-level children of ``model`` that hold parameters but no embedding table."""
    tables = {id(p) for m in embedding_modules(model) for p in m.parameters()}
    return [m for m in model.children() if any(True for _ in m.parameters()) and not _holds_table(m, tables)]


def apply_fast_paths(model: nn.Module, dedup_ids: bool = False, compile_dense: bool = False) -> None:
    """Switch the model's fast paths on (see the module docstring)."""
    if dedup_ids:
        for m in model.modules():
            if hasattr(m, "dedup_ids"):
                m.dedup_ids = True
    if compile_dense:
        parts = dense_modules(model)
        for m in parts:
            m.compile(dynamic=False)
        log.info("trainer.compile: torch.compile of %s", ", ".join(type(m).__name__ for m in parts) or "nothing")


class EmbeddingProbe:
    """Times the embedding modules' forward and backward during one sampled step."""

    def __init__(self, modules: list[nn.Module], laps: Any) -> None:
        self.laps = laps
        self.seconds = 0.0
        self._t = 0.0
        self._tb = 0.0
        self._handles: list[Any] = []
        self._nodes: dict[int, Any] = {}  # keeps the hooked nodes alive and unique
        for m in modules:
            self._handles.append(m.register_forward_pre_hook(self._pre))
            self._handles.append(m.register_forward_hook(self._post))

    def _pre(self, module: nn.Module, args: Any) -> None:
        self._t = self.laps.now()

    def _post(self, module: nn.Module, args: Any, out: Any) -> None:
        self.seconds += self.laps.now() - self._t
        values = out.values() if isinstance(out, dict) else (out if isinstance(out, (list, tuple)) else [out])
        stack = [v.grad_fn for v in values if isinstance(v, torch.Tensor) and v.grad_fn is not None]
        while stack:  # the module's backward graph: outputs' grad_fns down to the tables
            node = stack.pop()
            if node is None or id(node) in self._nodes:
                continue
            self._nodes[id(node)] = node
            try:
                self._handles.append(node.register_prehook(self._bpre))
                self._handles.append(node.register_hook(self._bpost))
            except (RuntimeError, AttributeError):  # a node kind without hooks: not timed
                pass
            stack.extend(n for n, _ in node.next_functions)

    def _bpre(self, grad_outputs: Any) -> None:
        self._tb = self.laps.now()

    def _bpost(self, grad_inputs: Any, grad_outputs: Any) -> None:
        self.seconds += self.laps.now() - self._tb

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._nodes.clear()
