"""In-batch retrieval metrics for two-tower models (``RecModel.retrieval = True``); the tf
twin of ``easyrec.models.torch.retrieval`` with the same definition.

For each positive (user, item) row, rank all distinct items of the same batch by
similarity and ask whether the row's own item lands in the top k. Duplicated items (the
same item on several rows) are counted once. A metric, computed eagerly: inputs may be tf
tensors or numpy arrays.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np


def _numpy(x: Any) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def in_batch_hits_at_k(user_emb: Any, item_emb: Any, k: int, positive: Optional[Any] = None
                       ) -> Tuple[int, int]:
    """(hits, positives) over a batch, for summing across batches before dividing.

    user_emb, item_emb: [B, d] (already normalised for cosine); positive: bool [B] marking
    the rows whose pair is a positive (None: all rows). A row hits when fewer than ``k``
    distinct items score strictly higher than its own item.
    """
    user, item = _numpy(user_emb), _numpy(item_emb)
    items, own_index = np.unique(item, axis=0, return_inverse=True)
    own_index = own_index.reshape(-1)
    scores = user @ items.T  # [B, M] over distinct items
    own = np.take_along_axis(scores, own_index[:, None], axis=1)
    hit = (scores > own).sum(axis=1) < k
    if positive is not None:
        hit = hit[_numpy(positive).astype(bool).reshape(-1)]
    return int(hit.sum()), int(hit.size)


def in_batch_recall_at_k(user_emb: Any, item_emb: Any, k: int, positive: Optional[Any] = None
                         ) -> float:
    """Share of positive rows whose own item is in the top ``k`` of the batch's distinct
    items; NaN when the batch has no positive row."""
    hits, count = in_batch_hits_at_k(user_emb, item_emb, k, positive)
    return hits / count if count else math.nan
