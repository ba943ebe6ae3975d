"""`--search`: Optuna picks the top-k subset size by the trained model's eval AUC."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from dataio.progress import progress

log = logging.getLogger("lingjie.automl")


def search_top_k(order: list[str], evaluate: Callable[[list[str]], float], n_trials: int = 6, seed: int = 0,
                 low: int | None = None, show_progress: bool = True) -> tuple[int, dict[int, float]]:
    """Best k in [low, len(order)] (maximising ``evaluate(order[:k])``) and every k tried.
    ``show_progress``: a bar over the trials (each one trains a model)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tried: dict[int, float] = {}

    def objective(trial: Any) -> float:
        k = trial.suggest_int("k", low or max(2, len(order) // 4), len(order))
        if k not in tried:
            tried[k] = evaluate(order[:k])
            log.info("top-%d: eval AUC %.4f", k, tried[k])
        return tried[k]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    bar = progress(None, desc="top-k search", total=n_trials, unit="trial", enabled=show_progress)
    try:
        study.optimize(objective, n_trials=n_trials, callbacks=[lambda *_: bar.update(1)])
    finally:
        bar.close()
    return int(study.best_params["k"]), tried


def subset_evaluator(out: Path, cfg: dict[str, Any], overrides: list[str]) -> Callable[[list[str]], float]:
    from automl.selection.report import base_overrides, write_selected
    from automl.selection.training import final_metric, run_trainer

    def evaluate(subset: list[str]) -> float:
        trial_dir = out / "search" / f"k{len(subset)}"
        write_selected(trial_dir, cfg, overrides, subset, "search trial")
        run = run_trainer([*base_overrides(overrides), f"hydra.searchpath=[file://{trial_dir.resolve()}]",
                           "+automl=selected_features"])
        return final_metric(run)

    return evaluate
