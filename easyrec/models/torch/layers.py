"""Building blocks shared by the model zoo; each is TorchScript- and torch.export-friendly.

MLP, FM second-order interaction (Rendle 2010), DCN-V2 cross network (Wang et al. 2021),
DIN target attention (Zhou et al. 2018), MMoE experts and gates (Ma et al. 2018), and the
per-task output heads.
"""
from typing import Dict, List

import torch
from torch import Tensor, nn


def make_activation(name: str) -> nn.Module:
    """The activation module for a config's ``activation`` value."""
    table = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh,
             "sigmoid": nn.Sigmoid, "prelu": nn.PReLU}
    if name not in table:
        raise ValueError(f"unknown activation '{name}'; one of {sorted(table)}")
    return table[name]()


class MLP(nn.Module):
    """Linear -> [BatchNorm] -> activation -> [Dropout] per hidden width.

    With no hidden units it is the identity (``output_dim == input_dim``), so a model may
    always route through its MLP.
    """

    def __init__(self, input_dim: int, hidden_units: List[int], activation: str = "relu",
                 dropout: float = 0.0, batchnorm: bool = False) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        width = input_dim
        for units in hidden_units:
            layers.append(nn.Linear(width, int(units), bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm1d(int(units)))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(units)
        self.net = nn.Sequential(*layers)
        self.output_dim = width

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class FMInteraction(nn.Module):
    """FM second order: sum over field pairs of <v_i, v_j>, in O(F d) via the square trick.

    Input [B, F, d]; output [B, 1].
    """

    def forward(self, fields: Tensor) -> Tensor:
        square_of_sum = fields.sum(dim=1).pow(2)
        sum_of_square = fields.pow(2).sum(dim=1)
        return 0.5 * (square_of_sum - sum_of_square).sum(dim=1, keepdim=True)


class CrossNetV2(nn.Module):
    """DCN-V2 cross layers: x_{l+1} = x0 * (W_l x_l + b_l) + x_l.

    ``low_rank`` r > 0 factorises W_l = U_l V_l^T (d x r, r x d), cutting cost from d^2 to 2dr
    (the paper's DCN-Mix without the mixture); 0 means full d x d matrices.
    """

    def __init__(self, input_dim: int, num_layers: int, low_rank: int = 0) -> None:
        super().__init__()
        self.low_rank = low_rank
        if low_rank > 0:
            self.down = nn.ModuleList(
                [nn.Linear(input_dim, low_rank, bias=False) for _ in range(num_layers)])
            self.up = nn.ModuleList([nn.Linear(low_rank, input_dim) for _ in range(num_layers)])
        else:
            self.down = nn.ModuleList()
            self.up = nn.ModuleList([nn.Linear(input_dim, input_dim) for _ in range(num_layers)])
        for lin in list(self.down) + list(self.up):
            nn.init.xavier_uniform_(lin.weight)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)
        self.output_dim = input_dim

    def forward(self, x0: Tensor) -> Tensor:
        x = x0
        if self.low_rank > 0:
            for down, up in zip(self.down, self.up):
                x = x0 * up(down(x)) + x
        else:
            for up in self.up:
                x = x0 * up(x) + x
        return x


class TargetAttention(nn.Module):
    """DIN's local activation unit: weight each history item by an MLP of
    [query, key, query - key, query * key], then sum the weighted keys.

    Padded positions (index >= length) get weight 0, so they never change the output. The
    paper leaves scores unnormalised (keeps intensity of interest); ``softmax`` normalises.
    """

    def __init__(self, dim: int, units: List[int], activation: str = "sigmoid",
                 softmax: bool = False) -> None:
        super().__init__()
        self.mlp = MLP(4 * dim, units, activation)
        self.score = nn.Linear(self.mlp.output_dim, 1)
        self.softmax = softmax

    def forward(self, query: Tensor, keys: Tensor, lengths: Tensor) -> Tensor:
        """query [B, d], keys [B, L, d], lengths [B] -> [B, d]."""
        q = query.unsqueeze(1).expand_as(keys)
        scores = self.score(self.mlp(torch.cat([q, keys, q - keys, q * keys], dim=2))).squeeze(2)
        positions = torch.arange(keys.size(1), device=keys.device).unsqueeze(0)
        mask = positions < lengths.unsqueeze(1)
        if self.softmax:
            scores = torch.softmax(scores.masked_fill(~mask, -1e9), dim=1)
        weights = scores * mask.to(scores.dtype)
        return torch.bmm(weights.unsqueeze(1), keys).squeeze(1)


class MMoELayer(nn.Module):
    """Shared expert MLPs mixed per task by a softmax gate over the input.

    Returns one [B, expert_dim] mixture per task.
    """

    def __init__(self, input_dim: int, num_experts: int, expert_units: List[int],
                 num_tasks: int, gate_units: List[int], activation: str = "relu",
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.experts = nn.ModuleList(
            [MLP(input_dim, expert_units, activation, dropout) for _ in range(num_experts)])
        gates: List[nn.Module] = []
        for _ in range(num_tasks):
            hidden = MLP(input_dim, gate_units, activation)
            gates.append(nn.Sequential(hidden, nn.Linear(hidden.output_dim, num_experts)))
        self.gates = nn.ModuleList(gates)
        self.output_dim = self.experts[0].output_dim

    def forward(self, x: Tensor) -> List[Tensor]:
        experts = torch.stack([e(x) for e in self.experts], dim=1)  # [B, E, H]
        out: List[Tensor] = []
        for gate in self.gates:
            w = torch.softmax(gate(x), dim=1).unsqueeze(1)  # [B, 1, E]
            out.append(torch.bmm(w, experts).squeeze(1))
        return out


class TaskHeads(nn.Module):
    """One Linear(input -> 1) per task; returns task name -> [B]."""

    names: List[str]

    def __init__(self, input_dim: int, names: List[str]) -> None:
        super().__init__()
        self.names = list(names)
        self.linear = nn.Linear(input_dim, len(names))

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        logits = self.linear(x)
        out: Dict[str, Tensor] = {}
        for i, name in enumerate(self.names):
            out[name] = logits[:, i]
        return out
