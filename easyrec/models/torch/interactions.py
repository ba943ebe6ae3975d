"""Field-interaction layers of the second-wave ranking models; TorchScript- and
torch.export-friendly (no shape-dependent Python branches, batch dims kept as -1).

xDeepFM's compressed interaction network (Lian et al. 2018), AutoInt's interacting layer
(Song et al. 2019), DLRM's pairwise dot interaction (Naumov et al. 2019) and MaskNet's
MaskBlock (Wang et al. 2021). Fields arrive as [B, F, d] (``FeatureGroup.embedding_fields``
stacked). The tf twins live in ``easyrec.models.tf.interactions`` under the same names.
"""
from typing import List

import torch
from torch import Tensor, nn

from easyrec.models.torch.layers import make_activation


class CIN(nn.Module):
    """Compressed interaction network: X^k_h = sum_{i,j} W^k_{h,i,j} (X^{k-1}_i * X^0_j),
    a 1x1 convolution over the outer products of the previous maps and the fields, taken per
    embedding dimension; each layer's maps are sum-pooled over the dimension.

    Input [B, F, d]; output [B, output_dim] (the pooled maps of every layer, concatenated).
    With ``split_half`` every layer but the last passes half its maps on and outputs half.
    """

    next_sizes: List[int]

    def __init__(self, num_fields: int, layer_sizes: List[int], split_half: bool = True,
                 activation: str = "relu") -> None:
        super().__init__()
        convs: List[nn.Module] = []
        acts: List[nn.Module] = []
        self.next_sizes: List[int] = []
        prev, out_dim = num_fields, 0
        for k, size in enumerate(layer_sizes):
            convs.append(nn.Linear(prev * num_fields, int(size)))
            acts.append(nn.Identity() if activation == "identity" else make_activation(activation))
            last = k == len(layer_sizes) - 1
            keep = int(size) // 2 if split_half and not last else int(size)
            self.next_sizes.append(keep)
            out_dim += int(size) - keep if split_half and not last else int(size)
            prev = keep
        self.convs = nn.ModuleList(convs)
        self.acts = nn.ModuleList(acts)
        self.num_fields = num_fields
        self.split_half = split_half
        self.output_dim = out_dim

    def forward(self, fields: Tensor) -> Tensor:
        x0 = fields.transpose(1, 2)  # [B, d, F]: the 1x1 conv is a Linear over the last axis
        dim = x0.size(1)
        x = x0
        pooled: List[Tensor] = []
        n = len(self.next_sizes)
        for k, (conv, act) in enumerate(zip(self.convs, self.acts)):
            z = (x.unsqueeze(3) * x0.unsqueeze(2)).reshape(-1, dim, x.size(2) * self.num_fields)
            h = act(conv(z))  # [B, d, H_k]
            if self.split_half and k < n - 1:
                keep = self.next_sizes[k]
                x = h[:, :, :keep]
                pooled.append(h[:, :, keep:].sum(dim=1))
            else:
                x = h
                pooled.append(h.sum(dim=1))
        return torch.cat(pooled, dim=1)


class InteractingLayer(nn.Module):
    """AutoInt's multi-head self-attention over fields: per head, softmax(Q K^T) V with
    Q, K, V linear maps of the fields, heads concatenated, plus a projected residual, ReLU.

    Input [B, F, input_dim]; output [B, F, heads * head_dim].
    """

    def __init__(self, input_dim: int, heads: int, head_dim: int, residual: bool = True
                 ) -> None:
        super().__init__()
        width = heads * head_dim
        self.query = nn.Linear(input_dim, width, bias=False)
        self.key = nn.Linear(input_dim, width, bias=False)
        self.value = nn.Linear(input_dim, width, bias=False)
        self.residual = residual
        self.res = nn.Linear(input_dim, width, bias=False) if residual else nn.Identity()
        self.heads = heads
        self.head_dim = head_dim
        self.output_dim = width

    def _split(self, x: Tensor, num_fields: int) -> Tensor:
        return x.reshape(-1, num_fields, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        f = x.size(1)
        q, k, v = (self._split(self.query(x), f), self._split(self.key(x), f),
                   self._split(self.value(x), f))  # [B, H, F, a]
        weights = torch.softmax(torch.matmul(q, k.transpose(2, 3)), dim=3)
        out = torch.matmul(weights, v).transpose(1, 2).reshape(-1, f, self.output_dim)
        if self.residual:
            out = out + self.res(x)
        return torch.relu(out)


class DotInteraction(nn.Module):
    """DLRM's interaction: the dot product of every pair of rows of [B, n, d] (the strict
    lower triangle, plus the diagonal with ``itself``), flattened to [B, output_dim]."""

    def __init__(self, num_rows: int, itself: bool = False) -> None:
        super().__init__()
        offset = 0 if itself else -1
        rows, cols = torch.tril_indices(num_rows, num_rows, offset=offset)
        self.register_buffer("flat_index", rows * num_rows + cols, persistent=False)
        self.num_rows = num_rows
        self.output_dim = int(rows.numel())

    def forward(self, x: Tensor) -> Tensor:
        dots = torch.bmm(x, x.transpose(1, 2)).reshape(-1, self.num_rows * self.num_rows)
        return dots.index_select(1, self.flat_index)


class MaskBlock(nn.Module):
    """MaskNet's block: ReLU(LN(W (mask(v_emb) * h))), where mask is Linear-ReLU-Linear of the
    whole input v_emb and h the hidden input (layer-normalised first with ``norm_input``,
    as for a block fed by the embeddings)."""

    def __init__(self, input_dim: int, mask_input_dim: int, output_dim: int,
                 reduction_ratio: float, norm_input: bool) -> None:
        super().__init__()
        hidden = max(1, int(round(mask_input_dim * reduction_ratio)))
        self.mask = nn.Sequential(nn.Linear(mask_input_dim, hidden), nn.ReLU(),
                                  nn.Linear(hidden, input_dim))
        self.norm_input = norm_input
        self.input_norm = nn.LayerNorm(input_dim) if norm_input else nn.Identity()
        self.linear = nn.Linear(input_dim, output_dim, bias=False)
        self.output_norm = nn.LayerNorm(output_dim)
        self.output_dim = output_dim

    def forward(self, hidden: Tensor, v_emb: Tensor) -> Tensor:
        masked = self.mask(v_emb) * self.input_norm(hidden)
        return torch.relu(self.output_norm(self.linear(masked)))


class MaskNetBlocks(nn.Module):
    """``num_blocks`` MaskBlocks over the input v [B, D]: ``serial`` chains them (the first
    normalises v), ``parallel`` runs each on v and concatenates their outputs."""

    def __init__(self, input_dim: int, num_blocks: int, block_dim: int, reduction_ratio: float,
                 parallel: bool) -> None:
        super().__init__()
        blocks: List[nn.Module] = []
        for i in range(num_blocks):
            first_or_parallel = parallel or i == 0
            blocks.append(MaskBlock(input_dim if first_or_parallel else block_dim, input_dim,
                                    block_dim, reduction_ratio, first_or_parallel))
        self.blocks = nn.ModuleList(blocks)
        self.parallel = parallel
        self.output_dim = block_dim * num_blocks if parallel else block_dim

    def forward(self, v: Tensor) -> Tensor:
        if self.parallel:
            return torch.cat([block(v, v) for block in self.blocks], dim=1)
        h = v
        for block in self.blocks:
            h = block(h, v)
        return h

