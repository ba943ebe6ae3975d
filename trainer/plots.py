"""Pictures of the final evaluation: ROC, precision-recall and calibration curves of binary
tasks, a confusion matrix of classifiers, as PNG files in ``<run_dir>/plots/``.

Why: a single AUC hides where a model is good (the low-FPR end a ranking needs), whether its
probabilities mean what they say (calibration: what logloss punishes) and which classes it
confuses. A domain's :class:`trainer.metric_report.TaskMetrics` turns its collected eval
predictions into :class:`BinaryCurves` / :class:`Confusion` inputs; this module draws them.

Cheap by design: the curves are computed in numpy over at most ``MAX_POINTS`` rows (a seeded
subsample), drawn with matplotlib's Agg canvas on plain ``Figure`` objects (no pyplot state,
imported only here, only when drawing) and written atomically. matplotlib is optional: when it
is missing the run logs one warning line and writes no plots (``trainer.plots=false`` turns
them off).
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dataio.atomic import atomic_write_bytes
from lingjie.extras import installed

log = logging.getLogger("lingjie")

MAX_POINTS = 100_000  # rows drawn at most (a seeded subsample beyond)
CURVE_POINTS = 2_000  # vertices of a drawn curve at most (more are invisible at this size, and slow)
CALIBRATION_BINS = 10
MAX_TICK_LABELS = 30  # a confusion matrix with more classes gets no per-class tick labels
DPI = 80


@dataclass
class BinaryCurves:
    """Labels (0/1) and scores (probabilities) of one binary task; ``prefix`` starts the file
    names (e.g. ``ctr_`` for ``ctr_roc.png`` of a multi-task model; empty for one task)."""

    labels: np.ndarray
    scores: np.ndarray
    prefix: str = ""
    title: str = ""


@dataclass
class Confusion:
    """True and predicted class ids of one classifier (``class_names``: tick labels, optional)."""

    labels: np.ndarray
    predicted: np.ndarray
    class_names: Sequence[str] = field(default_factory=list)
    prefix: str = ""
    title: str = ""


def subsample(n: int, limit: int = MAX_POINTS, seed: int = 0) -> np.ndarray | None:
    """Sorted row indices of a seeded subsample when ``n > limit`` (None: use every row)."""
    if n <= limit:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct score threshold."""
    tps, fps = _cumulative_counts(labels, scores)
    pos, neg = tps[-1] if len(tps) else 0, fps[-1] if len(fps) else 0
    tpr = np.concatenate([[0.0], tps / pos if pos else np.zeros_like(tps)])
    fpr = np.concatenate([[0.0], fps / neg if neg else np.zeros_like(fps)])
    return fpr, tpr


def pr_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at every distinct score threshold, highest threshold first."""
    tps, fps = _cumulative_counts(labels, scores)
    pos = tps[-1] if len(tps) else 0
    precision = tps / np.maximum(tps + fps, 1)
    recall = tps / pos if pos else np.zeros_like(tps)
    return np.concatenate([[0.0], recall]), np.concatenate([[1.0], precision])


def _cumulative_counts(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True / false positives above each distinct threshold (scores sorted descending)."""
    order = np.argsort(-scores, kind="stable")
    y, s = labels[order] > 0.5, scores[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.zeros(0, np.int64)
    tps = np.cumsum(y, dtype=np.float64)[last]
    fps = (last + 1) - tps
    return tps, fps.astype(np.float64)


def calibration_points(labels: np.ndarray, scores: np.ndarray,
                       bins: int = CALIBRATION_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean predicted probability, observed positive rate, rows) of each non-empty equal-width bin."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(np.clip(scores, 0.0, 1.0), edges[1:-1]), 0, bins - 1)
    counts = np.bincount(idx, minlength=bins).astype(np.float64)
    pred = np.bincount(idx, weights=scores, minlength=bins)
    obs = np.bincount(idx, weights=(labels > 0.5).astype(np.float64), minlength=bins)
    keep = counts > 0
    return pred[keep] / counts[keep], obs[keep] / counts[keep], counts[keep]


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """``[classes, classes]`` counts: row = true class, column = predicted class."""
    flat = labels.astype(np.int64) * classes + predicted.astype(np.int64)
    return np.bincount(flat, minlength=classes * classes).reshape(classes, classes)


def thin(x: np.ndarray, y: np.ndarray, points: int = CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``points`` evenly spaced vertices of a curve, its first and last kept."""
    if len(x) <= points:
        return x, y
    idx = np.unique(np.linspace(0, len(x) - 1, points).round().astype(np.int64))
    return x[idx], y[idx]


def _figure(title: str) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4.0), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10)
    return fig, ax


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _binary_figures(c: BinaryCurves) -> dict[str, bytes]:
    """roc / pr / calibration PNG bytes of one binary task."""
    y, s = np.asarray(c.labels, np.float64).reshape(-1), np.asarray(c.scores, np.float64).reshape(-1)
    pick = subsample(len(y))
    if pick is not None:
        y, s = y[pick], s[pick]
    name = f"{c.title} " if c.title else ""
    out = {}
    fpr, tpr = roc_points(y, s)
    auc = float(np.trapezoid(tpr, fpr))
    fig, ax = _figure(f"{name}ROC (AUC {auc:.4f})")
    ax.plot(*thin(fpr, tpr), lw=1.5)
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
    out["roc"] = _png(fig)
    recall, precision = pr_points(y, s)
    fig, ax = _figure(f"{name}precision-recall (base rate {y.mean() if len(y) else 0:.3f})")
    ax.plot(*thin(recall, precision), lw=1.5)
    ax.axhline(y.mean() if len(y) else 0, ls="--", lw=0.8, color="grey")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01))
    out["pr"] = _png(fig)
    mean_pred, observed, counts = calibration_points(y, s)
    fig, ax = _figure(f"{name}calibration ({CALIBRATION_BINS} bins)")
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    ax.plot(mean_pred, observed, marker="o", lw=1.5)
    ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", xlim=(0, 1), ylim=(0, 1.01))
    out["calibration"] = _png(fig)
    return out


def _confusion_figure(c: Confusion) -> bytes:
    y, p = np.asarray(c.labels).reshape(-1), np.asarray(c.predicted).reshape(-1)
    pick = subsample(len(y))
    if pick is not None:
        y, p = y[pick], p[pick]
    classes = max(len(c.class_names), int(y.max(initial=-1)) + 1, int(p.max(initial=-1)) + 1, 1)
    matrix = confusion_matrix(y, p, classes)
    accuracy = float(np.trace(matrix) / max(1, matrix.sum()))
    fig, ax = _figure(f"{c.title + ' ' if c.title else ''}confusion (accuracy {accuracy:.4f})")
    image = ax.imshow(matrix, cmap="Blues", interpolation="nearest", vmin=0)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set(xlabel="predicted", ylabel="true")
    if classes <= MAX_TICK_LABELS:
        names = [str(n) for n in c.class_names] if len(c.class_names) == classes else [str(i) for i in range(classes)]
        ax.set_xticks(range(classes), names, rotation=90, fontsize=7)
        ax.set_yticks(range(classes), names, fontsize=7)
        if classes <= 10:  # counts in the cells stay readable
            for (i, j), v in np.ndenumerate(matrix):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                        color="white" if v > matrix.max() / 2 else "black")
    return _png(fig)


def write_plots(directory: Path, inputs: Sequence[BinaryCurves | Confusion]) -> list[Path]:
    """Draw ``inputs`` into ``directory`` (``<prefix>roc.png``, ``<prefix>pr.png``,
    ``<prefix>calibration.png``, ``<prefix>confusion.png``); returns the files written.
    Without matplotlib: one warning, nothing written. An input without rows is skipped."""
    inputs = [i for i in inputs if len(i.labels)]
    if not inputs:
        return []
    if not installed("matplotlib"):
        log.warning("plots skipped: matplotlib is not installed (pip install matplotlib, "
                    "or set trainer.plots=false)")
        return []
    written = []
    for item in inputs:
        pngs = _binary_figures(item) if isinstance(item, BinaryCurves) else {"confusion": _confusion_figure(item)}
        for kind, data in pngs.items():
            path = Path(directory) / f"{item.prefix}{kind}.png"
            atomic_write_bytes(path, data)
            written.append(path)
    return written
