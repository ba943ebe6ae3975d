"""Reports from inside a training process to its Optuna trial (pruning).

The sweeper runs every trial as `python -m trainer ...` with LINGJIE_OPTUNA_TRIAL set to a JSON
object {storage, study_name, trial_id, number, metric, direction, pruner, pruner_args,
max_epochs, report_every_n_steps}. `attach_trial_reporter(loop)` (called by trainer/job.py) then
reports the metric to the trial through the shared storage (a journal file or an RDB, so it works
from any process) and, when the study's pruner says so, stops training cleanly: the run ends
normally with "pruned": true in metrics.json. Without the variable it does nothing (and imports
nothing).

Two report schedules (hydra.sweeper.report_every_n_steps):
  null: after every epoch, at Optuna step = epoch number (1, 2, ...);
  N:    every N train steps, the loop's eval set is scored mid-epoch and reported at Optuna step =
        global train step (and once more at each epoch end), so a bad trial can stop inside its
        first epoch. Steps are batches: keep data.batch_size fixed within a study, or the pruner
        compares trials at unequal amounts of data.
The last report of a run never prunes: stopping there saves nothing, and the trial completes.
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
        self.every = int(info.get("report_every_n_steps") or 0)
        self.pruned = False
        self.last_step: int | None = None
        study = optuna.load_study(study_name=info["study_name"], storage=make_storage(info["storage"]),
                                  sampler=optuna.samplers.RandomSampler(),  # parameters were sampled by the sweeper
                                  pruner=make_pruner(info.get("pruner", "none"), info.get("pruner_args"),
                                                     info.get("max_epochs")))
        self.trial = optuna.trial.Trial(study, int(info["trial_id"]))

    def report_value(self, value: float, step: int, may_prune: bool = True) -> bool:
        """Report ``value`` at ``step``; True when the trial should stop (pruned)."""
        if math.isnan(value) or step == self.last_step:
            return self.pruned
        self.trial.report(value, step)
        self.last_step = step
        if may_prune and self.trial.should_prune():
            log.info("optuna trial %s pruned at step %d (%s=%.5f)", self.info.get("number"), step, self.metric, value)
            self.pruned = True
        return self.pruned

    def report(self, history: list[dict[str, float]], last_epoch: int | None = None) -> bool:
        """Report the last epoch of ``history`` (step = epoch, or the global step when reporting
        every N steps); True when the trial should stop."""
        if not self.metric or not history or self.metric not in history[-1]:
            return False
        epoch = int(history[-1].get("epoch", len(history)))
        step = int(history[-1].get("step", 0)) if self.every else epoch
        return self.report_value(float(history[-1][self.metric]), step,
                                 may_prune=last_epoch is None or epoch < last_epoch)


def attach_trial_reporter(loop: Any) -> TrialReporter | None:
    """Report to the Optuna trial named by $LINGJIE_OPTUNA_TRIAL: wraps ``loop.on_epoch_end`` and,
    with report_every_n_steps, sets ``loop.on_step_end`` (a mid-epoch evaluation every N steps)."""
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
    if reporter.every and reporter.metric and loop.eval_loader is not None:
        if loop.dist.distributed:
            log.warning("report_every_n_steps: per-step reports need a single process; reporting per epoch")
        else:
            loop.on_step_end = _step_reporter(loop, reporter)
    return reporter


def _step_reporter(loop: Any, reporter: TrialReporter) -> Any:
    from trainer.loop import evaluate

    last_step = None
    if loop.steps_per_epoch:
        last_step = loop.steps_per_epoch * loop.spec.epochs
    if loop.spec.max_steps is not None:
        last_step = min(last_step or loop.spec.max_steps, loop.spec.max_steps)

    def on_step_end() -> bool:
        p = loop.progress
        if p.global_step % reporter.every or (last_step is not None and p.global_step >= last_step):
            return False  # the run's last step is reported (never pruned) at its epoch end
        if loop.steps_per_epoch and p.batch_in_epoch >= loop.steps_per_epoch:
            return False  # the epoch ends here: its end-of-epoch evaluation reports this step
        metrics = evaluate(loop.engine, loop.eval_loader, loop.task_types, loop.spec.limit_eval_batches,
                           loop.recall_k, show_progress=False, total=loop.eval_steps, dist=loop.dist)
        if reporter.metric not in metrics:
            return False
        if reporter.report_value(float(metrics[reporter.metric]), p.global_step):
            p.stopped_early = True  # the epoch ends now; fit() closes it and stops
            return True
        return False

    return on_step_end
