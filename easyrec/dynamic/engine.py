"""The engine's hook for dynamic tables: apply row gradients, count, admit, evict, rebalance.

Called by ``easyrec.torch_engine.RecTorchEngine.after_optimizers`` right after the optimizers
stepped (so a row sees the learning rate of its step, from the same schedule as the other
embedding tables: the lr of the optimizer that owns the tables' default vectors).

Distributed (DDP) -- replicated mode: every rank holds the whole table. Each step the ranks
all-gather their batches' (key, count) pairs and (key, gradient) rows, merge them (counts
summed, gradients summed and divided by the world size, as DDP averages dense gradients)
and apply the identical update, so the replicas stay equal (admission, eviction and tier
moves are deterministic functions of that merged input). A rank whose data ran out takes
part through the ``Join`` hook, contributing nothing but applying the others' updates.
Replication bounds a table by one machine's tiers (the disk tier helps); sharding rows by
key hash across ranks (all-to-all) is not implemented.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributed.algorithms.join import Join, Joinable, JoinHook

from easyrec.dynamic.module import DynamicEmbedding, Pending, dynamic_modules
from easyrec.dynamic.rowopt import RowOptimizer


class DynamicTables(Joinable):
    """Every DynamicEmbedding of a model plus the row-wise optimizer spec and the lr source."""

    def __init__(self, modules: list[DynamicEmbedding], spec: Any, optimizers: list[Any],
                 world_size: int = 1) -> None:
        super().__init__()
        self.modules = modules
        self.world_size = world_size
        for m in modules:
            m.table.set_optimizer(RowOptimizer(spec.name, m.dim, spec.eps, spec.weight_decay,
                                               spec.momentum))
        owner = {id(m.default) for m in modules}
        self.lr_source = next((o for o in optimizers for g in o.param_groups
                               for p in g["params"] if id(p) in owner), None)
        self.base_lr = float(spec.lr)

    @classmethod
    def attach(cls, model: torch.nn.Module, spec: Any, optimizers: list[Any],
               world_size: int = 1) -> "DynamicTables | None":
        """The hook for ``model``, or None when it has no dynamic table (nothing to do)."""
        modules = dynamic_modules(model)
        if not modules or spec is None:
            return None
        return cls(modules, spec, optimizers, world_size)

    @property
    def lr(self) -> float:
        return float(self.lr_source.param_groups[0]["lr"]) if self.lr_source else self.base_lr

    def step(self) -> None:
        """After backward + optimizer.step(): one update of every dynamic table."""
        distributed = self.world_size > 1
        if distributed:
            Join.notify_join_context(self)
        lr = self.lr
        for m in self.modules:
            p = m.pop_pending()
            if p is None:
                if not distributed:
                    continue
                p = _empty_pending(m)
            grads = p.rows.grad if p.rows.grad is not None else torch.zeros_like(p.rows)
            if not distributed and p.found is not None:  # slots known from the forward's probe
                slots = m.table.index.find_cached(p.keys)[p.found]
                m.table.apply_gradients(p.found_keys, grads, lr, slots=slots)
                m.table.observe(p.keys, p.counts)
                m.table.end_step()
                continue
            self._apply(m, p.keys, p.counts, p.found_keys, grads, lr, active=True)

    def _apply(self, m: DynamicEmbedding, keys: Tensor, counts: Tensor, found: Tensor,
               grads: Tensor, lr: float, active: bool) -> None:
        if self.world_size > 1:
            keys, counts, found, grads, lr = _merge(keys, counts, found, grads, lr, active,
                                                    self.world_size)
        m.table.apply_gradients(found, grads, lr)
        m.table.observe(keys, counts)
        m.table.end_step()

    # ---- Join: a rank out of data applies the others' updates ----------------------------

    def join_hook(self, **kwargs: Any) -> JoinHook:
        return _ShadowStep(self)

    @property
    def join_device(self) -> torch.device:
        return _comm_device()

    @property
    def join_process_group(self) -> Any:
        return dist.group.WORLD


class _ShadowStep(JoinHook):
    def __init__(self, tables: DynamicTables) -> None:
        self.tables = tables

    def main_hook(self) -> None:
        for m in self.tables.modules:
            p = _empty_pending(m)
            self.tables._apply(m, p.keys, p.counts, p.found_keys, p.rows, 0.0, active=False)


def _empty_pending(m: DynamicEmbedding) -> Pending:
    dev = m.table.device
    empty = torch.zeros(0, dtype=torch.int64, device=dev)
    return Pending(empty, empty.clone(), empty.clone(), torch.zeros((0, m.dim), device=dev))


def _comm_device() -> torch.device:
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _gather(t: Tensor, world: int) -> Tensor:
    """Concatenation over ranks of ``t`` [n_rank, ...] (sizes may differ per rank)."""
    dev = _comm_device()
    t = t.to(dev)
    n = torch.tensor([t.shape[0]], dtype=torch.int64, device=dev)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes_l = [int(s) for s in sizes]
    top = max(sizes_l)
    padded = torch.zeros((top, *t.shape[1:]), dtype=t.dtype, device=dev)
    padded[:t.shape[0]] = t
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:s] for p, s in zip(parts, sizes_l)])


def _merge(keys: Tensor, counts: Tensor, found: Tensor, grads: Tensor, lr: float, active: bool,
           world: int) -> tuple[Tensor, Tensor, Tensor, Tensor, float]:
    """All ranks' step input merged: summed counts, gradients averaged like DDP's, the lr of
    the ranks still training (a joined rank passes ``active=False``)."""
    device = keys.device
    lrs = _gather(torch.tensor([[lr, 1.0 if active else 0.0]], dtype=torch.float64), world)
    lr = float(lrs[lrs[:, 1] > 0, 0].max()) if bool((lrs[:, 1] > 0).any()) else lr
    kc = _gather(torch.stack([keys, counts.to(torch.int64)], 1), world).to(device)
    keys, inv = torch.unique(kc[:, 0], return_inverse=True)
    counts = torch.zeros_like(keys).index_add_(0, inv, kc[:, 1])
    fk = _gather(found.unsqueeze(1), world).to(device).squeeze(1)
    g = _gather(grads.detach().to(torch.float32), world).to(device)
    found, inv = torch.unique(fk, return_inverse=True)
    merged = torch.zeros((found.numel(), g.shape[1]), dtype=g.dtype, device=device)
    merged.index_add_(0, inv, g)
    return keys, counts, found, merged / world, lr
