"""Metrics on numpy arrays shared by every domain (backend-neutral, vectorised).

AUC is the rank statistic (Mann-Whitney U) with ties given half credit, the same value as
sklearn's roc_auc_score. GAUC (per-group AUC weighted by group size, groups with a single
class skipped) is what CTR papers report to remove the user bias AUC hides.
"""
from __future__ import annotations

import numpy as np


def _average_ranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks with ties averaged, vectorised."""
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    n = len(scores)
    # run boundaries of equal scores
    change = np.empty(n, dtype=bool)
    change[0] = True
    change[1:] = sorted_scores[1:] != sorted_scores[:-1]
    run_id = np.cumsum(change) - 1
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], n)
    avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1..end
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = avg[run_id]
    return ranks


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    labels = np.asarray(labels).astype(np.float64) > 0.5
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Group AUC: sum_g n_g * AUC_g / sum_g n_g over groups holding both classes.

    Vectorised: ranks are computed within groups by sorting on (group, score).
    """
    labels = np.asarray(labels).astype(np.float64) > 0.5
    scores = np.asarray(scores, dtype=np.float64)
    groups = np.asarray(groups)
    if len(labels) == 0:
        return float("nan")
    order = np.lexsort((scores, groups))
    g, s, y = groups[order], scores[order], labels[order]
    n = len(g)
    # ranks within group, ties (same group and score) averaged
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    new_group[1:] = g[1:] != g[:-1]
    new_tie = new_group.copy()
    new_tie[1:] |= s[1:] != s[:-1]
    group_start = np.flatnonzero(new_group)
    group_id = np.cumsum(new_group) - 1
    tie_start = np.flatnonzero(new_tie)
    tie_end = np.append(tie_start[1:], n)
    tie_id = np.cumsum(new_tie) - 1
    pos_in_group_start = tie_start - group_start[group_id[tie_start]]
    pos_in_group_end = tie_end - group_start[group_id[tie_start]]
    avg_rank = (pos_in_group_start + pos_in_group_end + 1) / 2.0
    ranks = avg_rank[tie_id]
    n_groups = len(group_start)
    n_pos = np.bincount(group_id, weights=y, minlength=n_groups)
    size = np.bincount(group_id, minlength=n_groups).astype(np.float64)
    n_neg = size - n_pos
    rank_sum_pos = np.bincount(group_id, weights=ranks * y, minlength=n_groups)
    valid = (n_pos > 0) & (n_neg > 0)
    if not valid.any():
        return float("nan")
    g_auc = (rank_sum_pos[valid] - n_pos[valid] * (n_pos[valid] + 1) / 2.0) / (n_pos[valid] * n_neg[valid])
    return float((g_auc * size[valid]).sum() / size[valid].sum())


def logloss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def mse(labels: np.ndarray, preds: np.ndarray) -> float:
    """Mean squared error."""
    d = np.asarray(labels, dtype=np.float64) - np.asarray(preds, dtype=np.float64)
    return float((d * d).mean())


def mae(labels: np.ndarray, preds: np.ndarray) -> float:
    """Mean absolute error."""
    return float(np.abs(np.asarray(labels, dtype=np.float64) - np.asarray(preds, dtype=np.float64)).mean())
