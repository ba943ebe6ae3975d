"""Row-wise optimizers of dynamic tables: the state lives in the row, beside the embedding.

A dynamic row can be evicted, re-admitted and moved between tiers at any step, so its
optimizer state cannot sit in a torch.optim state dict keyed by parameter: each row is
``[embedding (dim) | state (state_width)]`` and the update is elementwise over the rows a
step touched. Algorithms follow ``trainer.optimizer.sparse.name`` with torch's formulas:

  sgd      w -= lr * (g [+ momentum buffer])                        state: momentum buffer
  adagrad  s += g^2;  w -= lr * g / (sqrt(s) + eps)                  state: s
  adam(w)  per-row step t; Adam moments m, v with bias correction   state: m, v, t
           (adamw: decoupled weight decay on the touched rows)
"""
from __future__ import annotations

import torch
from torch import Tensor

BETA1, BETA2 = 0.9, 0.999


class RowOptimizer:
    """The update rule of one table; ``state_width`` columns follow the embedding in a row."""

    def __init__(self, name: str, dim: int, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0) -> None:
        self.name = name
        self.dim = dim
        self.eps = eps
        self.weight_decay = weight_decay
        self.momentum = momentum
        if name == "sgd":
            self.state_width = dim if momentum > 0 else 0
        elif name == "adagrad":
            self.state_width = dim
        elif name in ("adam", "adamw"):
            self.state_width = 2 * dim + 1
        else:
            raise ValueError(f"no row-wise optimizer {name!r}; use sgd, adagrad, adam or adamw")

    def describe(self) -> str:
        return f"{self.name}(state_width={self.state_width})"

    def update(self, rows: Tensor, grad: Tensor, lr: float) -> Tensor:
        """New rows [n, dim + state_width] after one step with gradient ``grad`` [n, dim]."""
        d = self.dim
        w = rows[:, :d]
        g = grad.to(rows.dtype)
        out = rows.clone()
        if self.weight_decay and self.name != "adamw":
            g = g + self.weight_decay * w
        if self.name == "sgd":
            if self.momentum > 0:
                buf = rows[:, d:2 * d] * self.momentum + g
                out[:, d:2 * d] = buf
                g = buf
            out[:, :d] = w - lr * g
        elif self.name == "adagrad":
            s = rows[:, d:2 * d] + g * g
            out[:, d:2 * d] = s
            out[:, :d] = w - lr * g / (s.sqrt() + self.eps)
        else:
            m = rows[:, d:2 * d] * BETA1 + (1 - BETA1) * g
            v = rows[:, 2 * d:3 * d] * BETA2 + (1 - BETA2) * g * g
            t = rows[:, 3 * d:3 * d + 1] + 1
            out[:, d:2 * d], out[:, 2 * d:3 * d], out[:, 3 * d:3 * d + 1] = m, v, t
            if self.name == "adamw" and self.weight_decay:
                w = w * (1 - lr * self.weight_decay)
            m_hat = m / (1 - BETA1 ** t)
            v_hat = v / (1 - BETA2 ** t)
            out[:, :d] = w - lr * m_hat / (v_hat.sqrt() + self.eps)
        return out
