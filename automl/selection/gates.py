"""Per-feature variational dropout gates (hard concrete, Louizos et al. 2018, "Learning Sparse
Neural Networks through L0 Regularization"), trained jointly with a model of the zoo.

Nothing in easyrec is edited: :func:`attach_gates` wraps a built torch ``RecModel`` with
forward hooks — a pre-hook on the model scales each dense input by its gate, and a hook on
every ``EmbeddingCollection`` (the deep tables and the wide/first-order tables) scales each
sparse/sequence feature's embedding output — so one gate per feature multiplies everything
that feature contributes. Each row draws its own gate z = clamp(stretched concrete(log_alpha));
the loss adds ``penalty * sum_f P(z_f != 0)`` (the expected number of open gates), so a
feature stays open only when the model's loss needs it. The ranking is P(z_f != 0).
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch
from torch import Tensor, nn

from dataio.progress import progress

log = logging.getLogger("lingjie.automl")


class HardConcreteGates(nn.Module):
    def __init__(self, names: list[str], init_open: float = 0.9, beta: float = 2 / 3,
                 gamma: float = -0.1, zeta: float = 1.1) -> None:
        super().__init__()
        self.names = list(names)
        self.beta, self.gamma, self.zeta = beta, gamma, zeta
        self.log_alpha = nn.Parameter(torch.full((len(names),), math.log(init_open / (1 - init_open))))

    def sample(self, batch: int) -> Tensor:
        """[batch, F] gates: noisy in training, deterministic (the median) in eval."""
        if self.training:
            u = torch.rand(batch, len(self.names)).clamp(1e-6, 1 - 1e-6)
            s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + self.log_alpha) / self.beta)
        else:
            s = torch.sigmoid(self.log_alpha).expand(batch, -1)
        return (s * (self.zeta - self.gamma) + self.gamma).clamp(0.0, 1.0)

    def open_probability(self) -> Tensor:
        return torch.sigmoid(self.log_alpha - self.beta * math.log(-self.gamma / self.zeta))


def _batch_size(inputs: dict[str, Tensor]) -> int:
    for k, v in inputs.items():
        if k.endswith(".offsets"):
            return int(v.numel()) - 1
        if k.endswith(".lengths"):
            return int(v.shape[0])
    return int(next(iter(inputs.values())).shape[0])


def attach_gates(model: nn.Module, names: list[str]) -> tuple[HardConcreteGates, list[Any]]:
    """Gate features ``names`` of ``model`` through hooks; returns the gates and hook handles."""
    from easyrec.models.torch.embedding import EmbeddingCollection

    gates = HardConcreteGates(names)
    index = {n: i for i, n in enumerate(names)}
    dense = [n for n in names if model.features[n].kind == "dense"]
    state: dict[str, Tensor] = {}

    def pre_hook(_module: nn.Module, args: tuple) -> tuple:
        inputs = args[0]
        z = gates.sample(_batch_size(inputs))
        state["z"] = z
        if not dense:
            return args
        gated = dict(inputs)
        for n in dense:
            gated[n] = inputs[n] * z[:, index[n]:index[n] + 1]
        return (gated, *args[1:])

    def emb_hook(_module: nn.Module, _args: tuple, out: dict[str, Tensor]) -> dict[str, Tensor]:
        z = state["z"]
        res = dict(out)
        for n, v in out.items():
            if n in index:
                g = z[:, index[n]]
                res[n] = v * g.view(-1, *([1] * (v.dim() - 1)))
        return res

    handles = [model.register_forward_pre_hook(pre_hook)]
    for m in model.modules():
        if isinstance(m, EmbeddingCollection):
            handles.append(m.register_forward_hook(emb_hook))
    return gates, handles


def train_gates(model: nn.Module, loader: Any, names: list[str], epochs: int = 1, penalty: float = 0.01,
                dense_lr: float = 1e-3, sparse_lr: float = 1e-2, gate_lr: float = 0.05,
                max_steps: int | None = None, show_progress: bool = True) -> dict[str, float]:
    """Train ``model`` and its feature gates jointly; returns feature -> P(gate open).
    ``show_progress``: a bar over each epoch's batches (``trainer.progress_bar``)."""
    from trainer.torch_backend.tensors import to_inputs, to_labels

    gates, handles = attach_gates(model, names)
    device = torch.device("cpu")
    opts = [torch.optim.Adam(model.dense_parameters(), lr=dense_lr),
            torch.optim.Adam(model.sparse_parameters(), lr=sparse_lr),
            torch.optim.Adam(gates.parameters(), lr=gate_lr)]
    model.train()
    gates.train()
    t0, steps = time.perf_counter(), 0
    try:
        for epoch in range(epochs):
            for _, batch in progress(loader.epoch(epoch), desc=f"gates epoch {epoch + 1}/{epochs}",
                                     enabled=show_progress):
                out = model(to_inputs(batch, device))
                loss = model.loss(out, to_labels(batch, device)) + penalty * gates.open_probability().sum()
                for o in opts:
                    o.zero_grad(set_to_none=True)
                loss.backward()
                for o in opts:
                    o.step()
                steps += 1
                if max_steps and steps >= max_steps:
                    break
    finally:
        for h in handles:
            h.remove()
    probs = gates.open_probability().detach().numpy()
    log.info("gates: %d steps in %.1fs", steps, time.perf_counter() - t0)
    return {n: float(p) for n, p in zip(names, probs)}
