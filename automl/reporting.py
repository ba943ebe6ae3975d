"""Per-epoch reports from inside a training process to its Optuna trial (pruning).

The sweeper runs every trial as `python -m trainer ...` with LINGJIE_OPTUNA_TRIAL set to a JSON
object {storage, study_name, trial_id, number, metric, direction, pruner, pruner_args,
max_epochs}. `attach_trial_reporter(loop)` (called by trainer/job.py) then wraps the loop's
on_epoch_end: it reports history[-1][metric] at step=epoch to the trial through the shared
storage (a journal file or an RDB, so it works from any process) and, when the study's pruner
says so, stops training cleanly: the run ends normally with "pruned": true in metrics.json.
Without the variable it does nothing (and imports nothing).
"""
from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

ENV = "LINGJIE_OPTUNA_TRIAL"
log = logging.getLogger("lingjie.automl")


class TrialReporter:
    def __init__(self, info: dict[str, Any]) -> None:
        import optuna

        from automl.study import make_pruner, make_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.info = info
        self.metric = info.get("metric")
        self.pruned = False
        study = optuna.load_study(study_name=info["study_name"], storage=make_storage(info["storage"]),
                                  sampler=optuna.samplers.RandomSampler(),  # parameters were sampled by the sweeper
                                  pruner=make_pruner(info.get("pruner", "none"), info.get("pruner_args"),
                                                     info.get("max_epochs")))
        self.trial = optuna.trial.Trial(study, int(info["trial_id"]))

    def report(self, history: list[dict[str, float]], last_epoch: int | None = None) -> bool:
        """Report the last epoch; True when the trial should stop (pruned). The final epoch is
        only reported: stopping there saves nothing, and the trial then completes."""
        if not self.metric or not history or self.metric not in history[-1]:
            return False
        value = float(history[-1][self.metric])
        if math.isnan(value):
            return False
        step = int(history[-1].get("epoch", len(history)))
        self.trial.report(value, step)
        if (last_epoch is None or step < last_epoch) and self.trial.should_prune():
            log.info("optuna trial %s pruned at epoch %d (%s=%.5f)", self.info.get("number"), step, self.metric, value)
            self.pruned = True
        return self.pruned


def attach_trial_reporter(loop: Any) -> TrialReporter | None:
    """Wrap ``loop.on_epoch_end`` to report to the Optuna trial named by $LINGJIE_OPTUNA_TRIAL."""
    raw = os.environ.get(ENV)
    if not raw:
        return None
    reporter = TrialReporter(json.loads(raw))
    inner = loop.on_epoch_end

    def on_epoch_end() -> None:
        if inner is not None:
            inner()
        if reporter.report(loop.progress.history, loop.spec.epochs):
            loop.progress.stopped_early = True  # fit() ends after this epoch; the run finishes normally

    loop.on_epoch_end = on_epoch_end
    return reporter
