"""In-batch retrieval metrics for two-tower models (``RecModel.retrieval = True``).

Without an ANN index over the whole corpus, the standard cheap proxy is to rank, for each
positive (user, item) row, all distinct items of the same batch by similarity and ask
whether the row's own item lands in the top k. Duplicated items (the same item on several
rows) are counted once, so popular items do not crowd their own copies out of the top k.
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor


@torch.no_grad()
def in_batch_hits_at_k(user_emb: Tensor, item_emb: Tensor, k: int,
                       positive: Optional[Tensor] = None) -> Tuple[int, int]:
    """(hits, positives) over a batch, for summing across batches before dividing.

    user_emb, item_emb: [B, d] (already normalised for cosine); positive: bool [B] marking
    the rows whose pair is a positive (None: all rows). A row hits when fewer than ``k``
    distinct items score strictly higher than its own item.
    """
    items, own_index = torch.unique(item_emb, dim=0, return_inverse=True)
    scores = user_emb @ items.T  # [B, M] over distinct items
    own = scores.gather(1, own_index.view(-1, 1))
    hit = (scores > own).sum(dim=1) < k
    if positive is not None:
        hit = hit[positive.bool().view(-1)]
    return int(hit.sum()), int(hit.numel())


def in_batch_recall_at_k(user_emb: Tensor, item_emb: Tensor, k: int,
                         positive: Optional[Tensor] = None) -> float:
    """Share of positive rows whose own item is in the top ``k`` of the batch's distinct
    items; NaN when the batch has no positive row."""
    hits, count = in_batch_hits_at_k(user_emb, item_emb, k, positive)
    return hits / count if count else math.nan
