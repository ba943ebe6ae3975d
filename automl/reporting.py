"""Reports from inside a training process to its Optuna trial (pruning).

The sweeper runs every trial as `python -m trainer ...` with LINGJIE_OPTUNA_TRIAL set to a JSON
object {storage, study_name, trial_id, number, metric, direction, pruner, pruner_args,
max_epochs, report_every_n_steps} and LINGJIE_CALLBACKS listing
``{"_target_": "automl.reporting.OptunaPruning"}``: the train loop builds that callback from the
environment (trainer.callbacks), so trainer runs pruning without importing automl. The callback
reports the metric to the trial through the shared storage (a journal file or an RDB, so it works
from any process) and, when the study's pruner says so, stops training cleanly: the run ends
normally with "pruned": true in metrics.json ("pruned": false when it was not pruned).

Two report schedules (hydra.sweeper.report_every_n_steps):
  null: after every epoch, at Optuna step = epoch number (1, 2, ...);
  N:    every N train steps, the loop's eval set is scored mid-epoch and reported at Optuna step =
        global train step (and once more at each epoch end), so a bad trial can stop inside its
        first epoch. Steps are batches: keep data.batch_size fixed within a study, or the pruner
        compares trials at unequal amounts of data. A distributed run reports per epoch only (a
        mid-epoch evaluation would have to stop every rank at the same step).
The last report of a run never prunes: stopping there saves nothing, and the trial completes.
"""
from __future__ import annotations

import json
import logging
import math
import os
from typing import TYPE_CHECKING, Any

from lingjie.errors import ConfigError
from trainer.callbacks import Callback

if TYPE_CHECKING:  # pragma: no cover - types only
    from trainer.loop import TrainLoop

ENV = "LINGJIE_OPTUNA_TRIAL"
log = logging.getLogger("lingjie.automl")


class TrialReporter:
    """The Optuna trial named by a LINGJIE_OPTUNA_TRIAL object, loaded from the shared storage;
    reports values to it and remembers whether the pruner stopped it."""

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


def trial_info() -> dict[str, Any]:
    """The trial object of $LINGJIE_OPTUNA_TRIAL; a ConfigError when it is missing or not JSON
    (OptunaPruning only makes sense inside a sweep trial)."""
    raw = os.environ.get(ENV)
    if not raw:
        raise ConfigError(ENV, "not set: automl.reporting.OptunaPruning reports to an Optuna trial and runs "
                               "only inside a trial of the Lingjie Optuna sweeper (hydra/sweeper=lingjie_optuna)")
    try:
        info = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(ENV, f"not a JSON object: {exc}") from None
    if not isinstance(info, dict) or not {"storage", "study_name", "trial_id"} <= info.keys():
        raise ConfigError(ENV, "must be a JSON object with study_name, trial_id and storage")
    return info


class OptunaPruning(Callback):
    """Reports the sweep's metric to the Optuna trial of $LINGJIE_OPTUNA_TRIAL and ends a pruned
    run early but normally (``loop.progress.stopped_early``; ``loop.summary["pruned"]``).

    Runs on every rank so that all ranks stop together: rank 0 alone talks to the study, and in
    a distributed run the other ranks learn its decision at each epoch end.
    """

    all_ranks = True

    def __init__(self) -> None:
        self.info = trial_info()
        self.every = int(self.info.get("report_every_n_steps") or 0)
        self.reporter: TrialReporter | None = None
        self.step_reports = False  # a mid-epoch evaluation every report_every_n_steps steps
        self.last_step: int | None = None  # the run's last train step, when it is known

    def on_fit_start(self, loop: "TrainLoop") -> None:
        loop.summary["pruned"] = False
        if loop.dist.is_main:
            self.reporter = TrialReporter(self.info)
        self.step_reports = bool(self.every and self.info.get("metric") and loop.eval_loader is not None)
        if self.step_reports and loop.dist.distributed:
            log.warning("report_every_n_steps: per-step reports need a single process; reporting per epoch")
            self.step_reports = False
        self.last_step = last_train_step(loop)

    def on_train_step(self, loop: "TrainLoop", loss: float) -> bool:
        if not self.step_reports or self.reporter is None or not self.reports_at(loop):
            return False
        metrics = _evaluate(loop)
        if self.reporter.metric not in metrics:
            return False
        if self.reporter.report_value(float(metrics[self.reporter.metric]), loop.progress.global_step):
            self._stop(loop)  # the epoch ends now; fit() closes it and stops
            return True
        return False

    def reports_at(self, loop: "TrainLoop") -> bool:
        """Whether this train step gets a mid-epoch report: every N steps, except the run's last
        step and an epoch's last step (their epoch-end evaluation reports them)."""
        p = loop.progress
        if not self.every or p.global_step % self.every:
            return False
        if self.last_step is not None and p.global_step >= self.last_step:
            return False
        return not (loop.steps_per_epoch and p.batch_in_epoch >= loop.steps_per_epoch)

    def on_epoch_end(self, loop: "TrainLoop", metrics: dict[str, float]) -> None:
        pruned = self.reporter.report(loop.progress.history, loop.spec.epochs) if self.reporter else False
        if loop.dist.distributed:  # rank 0 decided; every rank must stop after the same epoch
            pruned = any(loop.dist.all_gather_object(pruned))
        if pruned:
            self._stop(loop)  # fit() ends after this epoch; the run finishes normally

    @staticmethod
    def _stop(loop: "TrainLoop") -> None:
        loop.progress.stopped_early = True
        loop.summary["pruned"] = True


def last_train_step(loop: "TrainLoop") -> int | None:
    """The global step the run ends at (epochs x steps per epoch, capped by max_steps); None when
    neither is known."""
    last = loop.steps_per_epoch * loop.spec.epochs if loop.steps_per_epoch else None
    if loop.spec.max_steps is not None:
        last = min(last or loop.spec.max_steps, loop.spec.max_steps)
    return last


def _evaluate(loop: "TrainLoop") -> dict[str, float]:
    """The loop's eval set scored now, as its epoch-end evaluation scores it (quietly)."""
    from trainer.loop import evaluate

    return evaluate(loop.engine, loop.eval_loader, loop.task_types, loop.spec.limit_eval_batches, loop.recall_k,
                    show_progress=False, total=loop.eval_steps, dist=loop.dist, metrics=loop.metrics)
