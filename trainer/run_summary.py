"""The end-of-run table: each headline metric's best epoch and its last value.

Why: the last epoch's line ("final: ...") hides whether the model peaked earlier (over-fitting,
a too-high learning rate) and which epoch the ``best.*`` checkpoint holds. The table answers
both from ``Progress.history`` (the per-epoch metrics metrics.json already keeps):

    metric          best (epoch)      last
    eval/auc        0.7712 (2)      0.7650
    eval/logloss    0.5120 (2)      0.5301

With ``trainer.early_stopping.metric`` set, "best" is the epoch that metric selected (by its
``mode`` and ``min_delta``, as the loop picked the best checkpoint) and every row shows that
epoch's value; otherwise each metric's best is found by its own natural direction.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger("lingjie")

# metrics where smaller is better (by their last name part); everything else is maximised
MIN_METRICS = ("loss", "logloss", "mse", "mae", "rmse")
HIDDEN = ("epoch_seconds", "rows", "seconds", "samples_per_sec")


@dataclass
class SummaryRow:
    """One metric's best value, the 1-based epoch it came from, and its last value."""

    metric: str
    best: float
    best_epoch: int
    last: float


def metric_mode(name: str) -> Literal["max", "min"]:
    """The natural direction of a metric key (``eval/auc``: max; ``eval/logloss``: min)."""
    last = name.rsplit("/", 1)[-1]
    return "min" if last in MIN_METRICS or last.endswith("loss") else "max"


def headline_metrics(history: list[dict[str, Any]]) -> list[str]:
    """The keys worth a row, in first-seen order: ``<split>/<metric>`` and the per-task
    ``<split>/<task>/<metric>`` of tasks other than the first (the first task's are the short
    keys again, same values); timings and row counts left out."""
    keys: dict[str, None] = {}
    for epoch in history:
        for k, v in epoch.items():
            if not isinstance(v, (int, float)) or k.endswith(HIDDEN) or k.count("/") not in (1, 2):
                continue
            if k.count("/") == 2:
                split, _, name = k.split("/")
                if epoch.get(f"{split}/{name}") == v:  # the first task's duplicate of a short key
                    continue
            keys[k] = None
    return list(keys)


def selected_epoch(history: list[dict[str, Any]], metric: str, mode: str, min_delta: float = 0.0) -> int | None:
    """0-based index of the epoch the early-stopping rule picked as best (the TrainLoop's rule:
    strictly better by more than ``min_delta``; NaN never counts); None when it never appears."""
    best: float | None = None
    index = None
    for i, epoch in enumerate(history):
        value = epoch.get(metric)
        if value is None or math.isnan(value):
            continue
        better = best is None or (value > best + min_delta if mode == "max" else value < best - min_delta)
        if better:
            best, index = value, i
    return index


def best_last_rows(history: list[dict[str, Any]], selection_metric: str | None = None, mode: str = "max",
                   min_delta: float = 0.0) -> list[SummaryRow]:
    """A :class:`SummaryRow` per headline metric of ``history`` (see the module docstring)."""
    if not history:
        return []
    chosen = selected_epoch(history, selection_metric, mode, min_delta) if selection_metric else None
    rows = []
    for key in headline_metrics(history):
        seen = [(i, float(e[key])) for i, e in enumerate(history) if key in e and not math.isnan(float(e[key]))]
        if not seen:
            continue
        if chosen is not None and key in history[chosen]:
            i, best = chosen, float(history[chosen][key])
        else:
            pick = max if metric_mode(key) == "max" else min
            i, best = pick(seen, key=lambda t: t[1])  # first epoch among equals: max/min keep the first
        last = history[-1].get(key, float("nan"))
        rows.append(SummaryRow(key, best, int(history[i].get("epoch", i + 1)), float(last)))
    return rows


def format_table(rows: list[SummaryRow], selection_metric: str | None = None) -> str:
    """The rows as an aligned text table (one string, lines joined by newlines)."""
    if not rows:
        return ""
    head = f"best (epoch{', by ' + selection_metric if selection_metric else ''})"
    cells = [(r.metric, f"{r.best:.4f} ({r.best_epoch})", f"{r.last:.4f}") for r in rows]
    w0 = max(len("metric"), *(len(c[0]) for c in cells))
    w1 = max(len(head), *(len(c[1]) for c in cells))
    w2 = max(len("last"), *(len(c[2]) for c in cells))
    lines = [f"{'metric':<{w0}}  {head:>{w1}}  {'last':>{w2}}"]
    lines += [f"{a:<{w0}}  {b:>{w1}}  {c:>{w2}}" for a, b, c in cells]
    return "\n".join(lines)


def summary_table(history: list[dict[str, Any]], early_stopping: Any = None) -> str:
    """The table of a run's ``history`` under its ``trainer.early_stopping`` settings."""
    metric = getattr(early_stopping, "metric", None)
    rows = best_last_rows(history, metric, getattr(early_stopping, "mode", "max"),
                          getattr(early_stopping, "min_delta", 0.0))
    return format_table(rows, metric)


def write_run_plots(loop: Any, task_metrics: Any, directory: Path) -> list[Path]:
    """The plots of the run's last evaluation (``loop.last_eval``) into ``directory``; nothing
    when ``trainer.plots`` is off, nothing was evaluated (no eval split, a resumed run that had
    no epoch left) or the domain draws nothing. A failure to draw is logged, never fatal: the
    model is trained and exported by then."""
    from trainer.plots import write_plots

    if not getattr(loop.spec, "plots", False) or getattr(loop, "last_eval", None) is None:
        return []
    try:
        written = write_plots(directory, task_metrics.plot_inputs(loop.last_eval))
    except Exception as exc:  # noqa: BLE001 - pictures are a by-product; keep the run
        log.warning("plots skipped: %s: %s", type(exc).__name__, exc)
        return []
    if written:
        log.info("plots: %s", ", ".join(str(p.relative_to(directory.parent)) for p in written))
    return written


def log_summary(history: list[dict[str, Any]], early_stopping: Any = None) -> str:
    """Log (INFO, the console and the run's log) and return the best/last table of ``history``."""
    table = summary_table(history, early_stopping)
    if table:
        log.info("best and last epoch:\n%s", table)
    return table
