"""Per-row behaviour history ("items this user rated before now"), computed without row loops.

Used to prepare sequence features (DIN-style ``hist_item_id``). Leak-free by construction:
a row's history ends before the first row of its own (user, timestamp) run, so items rated
in the same second as the target are excluded.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa


def history_before(user: np.ndarray, timestamp: np.ndarray, item: np.ndarray,
                   max_len: int = 50) -> tuple[pa.ListArray, np.ndarray]:
    """For each row: the user's items with a strictly earlier timestamp, newest first.

    Returns ``(hist, lengths)`` aligned with the input rows: ``hist`` is a list<int64>
    array of at most ``max_len`` items, ``lengths`` the int64 list lengths. Ties among
    earlier items with the same timestamp are ordered by item id, descending.
    """
    n = len(user)
    order = np.lexsort((item, timestamp, user))  # by user, then time, then item
    u, t, it = user[order], timestamp[order], np.asarray(item[order], dtype=np.int64)
    pos = np.arange(n)
    new_user = np.ones(n, dtype=bool)
    new_user[1:] = u[1:] != u[:-1]
    new_run = new_user.copy()
    new_run[1:] |= t[1:] != t[:-1]
    user_start = np.maximum.accumulate(np.where(new_user, pos, 0))
    run_start = np.maximum.accumulate(np.where(new_run, pos, 0))
    lengths = np.minimum(run_start - user_start, max_len).astype(np.int64)

    steps = np.arange(max_len)
    index = run_start[:, None] - 1 - steps[None, :]  # [n, max_len], newest first
    valid = steps[None, :] < lengths[:, None]
    values = it[np.clip(index, 0, None)][valid]  # row-major: row by row, newest first
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    hist_sorted = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.int64()))

    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = pos
    return hist_sorted.take(pa.array(inverse)), lengths[inverse]
