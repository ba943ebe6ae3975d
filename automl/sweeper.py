"""The Lingjie Optuna sweep: an Optuna study over Hydra overrides, every trial a training process.

Every trial — with n_jobs=1 too — runs as its own process, `python -m trainer <overrides>
<sampled params> <trial_overrides> hydra.run.dir=<sweep_dir>/<trial number>`, with
$LINGJIE_OPTUNA_TRIAL naming the study and trial in the shared storage and $LINGJIE_CALLBACKS
adding automl.reporting.OptunaPruning to the train loop (per-epoch reports and pruning from
inside the process; trainer builds the callback without importing automl). One code path for
one and many workers, and a crashing or leaking trial cannot take the sweep down. n_jobs threads
here each drive one trial process at a time; they ask and tell through the same storage, so
several machines may also run the same command against one RDB URL.

The objective is read from the trial's metrics.json: final[metric] (or a top-level key such as
`parameters`). Two knobs make it less noisy, because a single run's last-epoch score carries seed
and epoch-to-epoch noise as large as the differences a sweep looks for (benchmarks/RESULTS.md):
`seeds: [a, b, ...]` trains every trial once per seed (`<seed_key>=a`, ...) and scores the mean;
`average_last_epochs: K` scores each run by the mean of its last K per-epoch evaluations.
Pruning acts on the first seed's run only (every trial's first run has the same seed, so the
pruner compares like with like); a pruned trial never starts its other seeds. The study lives in
the storage (a journal file in the sweep directory unless `storage` is an RDB URL): rerunning the
command resumes it, `n_trials` is the total.

Two sweeps of one study at once (the same command twice, or several machines on one RDB URL) join:
each asks its own trials (trial numbers are unique in the storage), every trial records its owner
process (automl.trial_owner), and a resumed sweep records as failed only RUNNING trials whose owner
is gone — never those of a live sweep. The n_trials check and `ask` are atomic only within one
process, so k sweeps started together may run up to k-1 trials beyond n_trials. The command exits
non-zero when a trial process crashed (an exit status other than 0 or 2, the trainer's config/data
error, or a signal), a trial's result could not be recorded, or the sweep itself raised.
"""
from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl.reporting import ENV
from automl.study import is_rdb_url, make_pruner, make_sampler, make_storage
from automl.trial_owner import OWNER_ATTR, is_stale, this_process
from automl.sweeper_space import distribution, override_value, split_arguments, targets
from lingjie.errors import ConfigError
from trainer.callbacks import ENV as CALLBACKS_ENV

log = logging.getLogger("lingjie.automl")
JOURNAL = "optuna_journal.log"
PRUNING_CALLBACK = {"_target_": "automl.reporting.OptunaPruning"}  # built by trainer from $LINGJIE_CALLBACKS


@dataclass
class SweepSettings:
    sweep_dir: Path
    study_name: str
    optimize_metric: list[str]
    direction: list[str]
    n_trials: int = 20
    n_jobs: int = 1
    sampler: str = "tpe"
    sampler_args: dict[str, Any] = field(default_factory=dict)
    seed: int | None = 42
    pruner: str = "median"
    pruner_args: dict[str, Any] = field(default_factory=dict)
    storage: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    trial_overrides: list[str] = field(default_factory=lambda: ["trainer.export.enabled=false",
                                                                "trainer.progress_bar=false"])
    trial_timeout_s: float | None = None
    max_epochs: int | None = None
    plots: bool = True
    tune_overrides: list[str] = field(default_factory=list)
    enqueue_default: bool = True
    default_values: dict[str, Any] = field(default_factory=dict)  # config path -> its value in the composed config
    report_every_n_steps: int | None = None
    seeds: list[int] | None = None  # train each trial once per seed; objective = the mean over seeds
    seed_key: str = "seed"  # the config path a seed from `seeds` is written to
    average_last_epochs: int = 1  # a run's objective: the mean of its last K per-epoch evaluations
    best_by: str = "mean"  # mean | lower_bound (mean over seeds minus its standard error) picks best_config

    @property
    def storage_url(self) -> str:
        return self.storage or str(self.sweep_dir / JOURNAL)


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple)) else [v]


class TrialFailed(Exception):
    """A trial's training process failed (timeout, exit status, no objective): the message is the
    error recorded on the trial; the sweep goes on. ``crashed``: the process died of a bug or a
    signal (not exit status 2, the trainer's "config or data error", nor a timeout), so the sweep
    exits non-zero once it is done."""

    def __init__(self, message: str, crashed: bool = False) -> None:
        super().__init__(message)
        self.crashed = crashed


@dataclass
class TrialRuns:
    """What a trial's training processes (one per seed) produced so far."""

    per_seed: list[list[float]] = field(default_factory=list)  # each run's objectives
    epochs: int = 0
    steps: int = 0
    pruned: bool = False

    def mean(self) -> list[float]:
        """The trial's objectives: each metric's mean over the seeds' runs."""
        return [sum(v[j] for v in self.per_seed) / len(self.per_seed) for j in range(len(self.per_seed[0]))]


def inherited_callbacks() -> list[Any]:
    """The $LINGJIE_CALLBACKS entries of the sweep's own environment (kept in every trial); a
    ConfigError when the variable is not a JSON list, so the sweep stops before any trial."""
    raw = os.environ.get(CALLBACKS_ENV)
    if not raw:
        return []
    try:
        specs = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(CALLBACKS_ENV, f"not a JSON list of {{'_target_': ...}} mappings: {exc}") from None
    if not isinstance(specs, list):
        raise ConfigError(CALLBACKS_ENV, f"must be a JSON list of {{'_target_': ...}} mappings, got {raw!r}")
    return specs


def with_pruning(specs: list[Any]) -> list[Any]:
    """``specs`` with automl's pruning callback appended (once)."""
    return specs if PRUNING_CALLBACK in specs else [*specs, PRUNING_CALLBACK]


class Sweep:
    def __init__(self, s: SweepSettings, arguments: list[str], cwd: Path, hydra_overrides: list[str] = ()) -> None:
        self.s = s
        self.cwd = cwd
        self.fixed, cli_space = split_arguments(arguments)
        # hydra.* overrides a trial needs too (hydra.searchpath, hydra.job...), not the sweep's own
        self.fixed += [o for o in hydra_overrides if not o.lstrip("+~").startswith(
            ("hydra.sweeper", "hydra.sweep.", "hydra/sweeper", "hydra.run.dir", "hydra.mode", "hydra.launcher",
             "hydra/launcher"))]
        self.space = {k: distribution(k, v) for k, v in s.params.items()}
        self.space.update(cli_space)
        self.targets = targets(s.params)
        if not self.space:
            raise ValueError("hydra.sweeper.params is empty: declare the search space (configs/hparams_search/)")
        if len(s.direction) != len(s.optimize_metric):
            raise ValueError(f"hydra.sweeper: {len(s.optimize_metric)} optimize_metric(s) but "
                             f"{len(s.direction)} direction(s)")
        self.multi = len(s.optimize_metric) > 1
        self.lock = threading.Lock()
        self.owner = this_process()  # recorded on every trial this sweep runs (automl.trial_owner)
        # what went wrong beyond a failed trial (a crashed trial process, an exception of the sweep
        # itself, a result another process made unrecordable): non-empty -> the command exits 1
        self.problems: list[str] = []
        inherited_callbacks()  # a malformed $LINGJIE_CALLBACKS stops the sweep here, not every trial
        if s.report_every_n_steps is not None and int(s.report_every_n_steps) < 1:
            raise ConfigError("hydra.sweeper.report_every_n_steps", f"must be >= 1 (report every N train steps) "
                              f"or null (report per epoch), got {s.report_every_n_steps}")
        if s.seeds is not None:
            if not isinstance(s.seeds, (list, tuple)) or not s.seeds or not all(
                    isinstance(x, int) and not isinstance(x, bool) for x in s.seeds):
                raise ConfigError("hydra.sweeper.seeds", f"must be a non-empty list of integer seeds (e.g. "
                                  f"[42,1,2]) or null (one run per trial with the config's seed), got {s.seeds}")
            if len(set(s.seeds)) != len(s.seeds):
                raise ConfigError("hydra.sweeper.seeds", f"lists a seed twice: {s.seeds}")
            s.seeds = [int(x) for x in s.seeds]
        if isinstance(s.average_last_epochs, bool) or not isinstance(s.average_last_epochs, int) \
                or s.average_last_epochs < 1:
            raise ConfigError("hydra.sweeper.average_last_epochs", f"must be an integer >= 1 (1: the last epoch's "
                              f"score), got {s.average_last_epochs}")
        if s.best_by not in ("mean", "lower_bound"):
            raise ConfigError("hydra.sweeper.best_by", f"must be mean or lower_bound, got {s.best_by!r}")
        if s.best_by == "lower_bound" and (len(s.optimize_metric) > 1 or not s.seeds or len(s.seeds) < 2):
            raise ConfigError("hydra.sweeper.best_by", "lower_bound needs one optimize_metric and at least two "
                              "seeds (hydra.sweeper.seeds=[42,1,2]): it ranks trials by their spread over seeds")
        for name, d in self.space.items():  # a searched epoch count: the largest one bounds hyperband's resource
            if "trainer.epochs" in self.targets.get(name, [name]):
                s.max_epochs = int(max(d.choices) if hasattr(d, "choices") else d.high)
        if s.report_every_n_steps:
            s.max_epochs = None  # resources are train steps then: hyperband's max_resource is "auto" or given

    @property
    def run_overrides(self) -> list[str]:
        """What every trial runs with before its sampled values: the command line + tune_overrides."""
        return [*self.fixed, *self.s.tune_overrides]

    # ----- study -----
    def open_study(self) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        s = self.s
        self.s.sweep_dir.mkdir(parents=True, exist_ok=True)
        if s.pruner != "none" and self.multi:
            log.warning("pruning needs a single objective: pruner %s ignored for %s", s.pruner, s.optimize_metric)
            s.pruner = "none"
        study = optuna.create_study(
            study_name=s.study_name, storage=make_storage(s.storage_url), load_if_exists=True,
            sampler=make_sampler(s.sampler, s.seed, s.sampler_args),
            pruner=make_pruner(s.pruner, s.pruner_args, s.max_epochs), directions=s.direction)
        existing = len(study.trials)
        if existing and s.seed is not None:
            # a resumed study: a seeded sampler must not replay the first run's samples
            study.sampler = make_sampler(s.sampler, s.seed + existing, s.sampler_args)
        known = study.user_attrs.get("fixed_overrides")
        if known is None:
            study.set_user_attr("fixed_overrides", self.run_overrides)
            study.set_user_attr("optimize_metric", s.optimize_metric)
        elif known != self.run_overrides:
            log.warning("resuming study '%s' whose trials ran with overrides %s; this run uses %s",
                        s.study_name, known, self.run_overrides)
        self._fail_stale(study)
        if not existing and s.enqueue_default:
            self._enqueue_default(study)
        return study

    def default_params(self) -> dict[str, Any]:
        """The composed config's own value of every searched parameter that its distribution holds
        (the first trial then measures the unchanged config, so the study's best is never worse on
        the objective than the default); values outside the space are left to the sampler."""
        out: dict[str, Any] = {}
        for name, dist in self.space.items():
            paths = self.targets.get(name, [name])
            values = [self.s.default_values.get(p) for p in paths]
            if values[0] is None or any(v != values[0] for v in values):
                log.info("enqueue_default: %s has no single value in the config (%s); sampled", name, values)
                continue
            value = _internal(dist, values[0])
            if value is None:
                log.warning("enqueue_default: %s=%s of the config is outside its search space; sampled",
                            name, override_value(values[0]))
                continue
            out[name] = value
        return out

    def _enqueue_default(self, study: Any) -> None:
        params = self.default_params()
        if params:
            study.enqueue_trial(params, user_attrs={"source": "default config"}, skip_if_exists=True)
            print(f"[sweep] trial 0 is the config's own values: {' '.join(self.trial_overrides(params))}",
                  flush=True)

    def _fail_stale(self, study: Any) -> None:
        """Trials left RUNNING by a sweep that is gone: recorded as failed. A trial whose owner
        process still runs (a second sweep of the same study on this host) or cannot be checked
        (another host) is left alone: this sweep joins the study beside it."""
        from optuna.trial import TrialState

        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not is_stale(t):
                log.info("trial %d is running in %s: left alone", t.number, t.user_attrs.get(OWNER_ATTR))
                continue
            study._storage.set_trial_user_attr(t._trial_id, "error", "interrupted: found running when resuming")
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            log.warning("trial %d was interrupted by a previous sweep: recorded as failed", t.number)

    # ----- trials -----
    def run(self) -> Any:
        study = self.open_study()
        done = len(study.trials)
        print(f"[sweep] study '{self.s.study_name}' in {self.s.storage_url}: {done} trial(s) so far, "
              f"n_trials={self.s.n_trials} (total), n_jobs={self.s.n_jobs}, sampler={self.s.sampler}, "
              f"pruner={self.s.pruner}", flush=True)
        workers = [threading.Thread(target=self._worker, args=(study,), name=f"sweep-worker-{i}")
                   for i in range(max(1, self.s.n_jobs))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return study

    def _worker(self, study: Any) -> None:
        """One worker thread: trials until the study has n_trials. An exception of the sweep's own
        (not of a trial process) stops the worker and makes the command exit non-zero."""
        try:
            self._work(study)
        except Exception as exc:
            log.exception("sweep worker")
            self.problems.append(f"sweep worker stopped: {type(exc).__name__}: {exc}")

    def _work(self, study: Any) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        while True:
            with self.lock:
                if len(study.get_trials(deepcopy=False)) >= self.s.n_trials:
                    return
                trial = study.ask(self.space)
                trial.set_user_attr(OWNER_ATTR, self.owner)
            try:
                self._run_trial(study, trial)
            except UpdateFinishedTrialError as exc:  # its result is lost; the sweep goes on
                self._lost(trial, exc)
            except Exception as exc:  # the sweep goes on; the trial is recorded as failed
                log.exception("trial %d", trial.number)
                self.problems.append(f"trial {trial.number}: {type(exc).__name__}: {exc}")
                self._tell_failed(study, trial, f"{type(exc).__name__}: {exc}")

    def trial_overrides(self, params: dict[str, Any]) -> list[str]:
        return [f"{path}={override_value(v)}" for k, v in params.items() for path in self.targets.get(k, [k])]

    def _run_trial(self, study: Any, trial: Any) -> None:
        """One trial: a training process per seed (one with the config's seed when `seeds` is null),
        run one after the other; the first reports to the pruner, the others only add their score."""
        s = self.s
        trial_dir = (s.sweep_dir / str(trial.number)).resolve()
        trial_dir.mkdir(parents=True, exist_ok=True)
        params = self.trial_overrides(trial.params)
        seeds: list[int | None] = list(s.seeds) if s.seeds else [None]
        trial.set_user_attr("overrides", [*self.run_overrides, *params, *self._seed_overrides(seeds[0])])
        if s.tune_overrides:
            trial.set_user_attr("final_overrides", [*self.fixed, *params])
        trial.set_user_attr("run_dir", str(trial_dir))
        print(f"[sweep] trial {trial.number} start: {' '.join(params)}"
              + (f" (seeds {', '.join(map(str, seeds))})" if s.seeds else ""), flush=True)
        t0 = time.perf_counter()
        runs = TrialRuns()
        try:
            self._run_seeds(trial, trial_dir, params, seeds, runs)
        except TrialFailed as exc:
            trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
            if exc.crashed:
                self.problems.append(f"trial {trial.number} crashed: {exc} (log: {trial_dir / 'trial.log'})")
            self._tell_failed(study, trial, str(exc))
            return
        self._tell_result(study, trial, runs, seeds, time.perf_counter() - t0)

    def _seed_overrides(self, seed: int | None) -> list[str]:
        return [f"{self.s.seed_key}={seed}"] if seed is not None else []

    def _run_seeds(self, trial: Any, trial_dir: Path, params: list[str], seeds: list[int | None],
                   runs: TrialRuns) -> None:
        """Train ``trial`` once per seed into ``runs``: the first run in ``trial_dir`` (it reports
        and may be pruned, which skips the other seeds), the others in ``trial_dir/seed_<seed>``."""
        for i, seed in enumerate(seeds):
            run_dir = trial_dir if i == 0 else trial_dir / f"seed_{seed}"
            metrics = self._train(trial, run_dir, [*params, *self._seed_overrides(seed)], seed, report=i == 0)
            runs.epochs += int(metrics.get("epochs_completed") or 0)
            runs.steps += int(metrics.get("steps") or 0)
            runs.per_seed.append(self._objectives(metrics))
            if metrics.get("pruned"):  # only the first run reports, so only it can be pruned
                runs.pruned = True
                return

    def _train(self, trial: Any, run_dir: Path, overrides: list[str], seed: int | None,
               report: bool) -> dict[str, Any]:
        """One training process of ``trial`` in ``run_dir`` (output in trial.log); its metrics.json.
        TrialFailed when it times out or exits non-zero."""
        s = self.s
        run_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "trainer", *self.run_overrides, *overrides, *s.trial_overrides,
               f"hydra.run.dir={run_dir}"]
        with open(run_dir / "trial.log", "w") as out:
            try:
                rc: int | None = subprocess.run(cmd, cwd=self.cwd, env=self.trial_env(trial, report), stdout=out,
                                                stderr=subprocess.STDOUT, timeout=s.trial_timeout_s).returncode
            except subprocess.TimeoutExpired:
                rc = None
        where = f" (seed {seed})" if seed is not None else ""
        if rc is None:
            raise TrialFailed(f"timed out after {s.trial_timeout_s}s{where}")
        if rc != 0:  # 2: the trainer rejected the config or data (a failed trial, not a crash)
            raise TrialFailed(f"exit status {rc}{where}: {_last_error(run_dir / 'trial.log')}", crashed=rc != 2)
        return json.loads((run_dir / "metrics.json").read_text())

    def _objectives(self, metrics: dict[str, Any]) -> list[float]:
        """One run's score per optimize_metric; TrialFailed naming a metric metrics.json lacks."""
        values = []
        for m in self.s.optimize_metric:
            v = run_objective(metrics, m, self.s.average_last_epochs)
            if v is None:
                available = sorted(k for k in metrics.get("final", {}) if "/" in k) + ["parameters"]
                raise TrialFailed(f"optimize_metric '{m}' not in metrics.json (available: {', '.join(available)})")
            values.append(v)
        return values

    def trial_env(self, trial: Any, report: bool = True) -> dict[str, str]:
        """The environment of a training process of ``trial``: the sweep's own, less
        LINGJIE_WORKER (a trial is a launcher, not a worker). With ``report`` (a trial's first run)
        it names the trial in $LINGJIE_OPTUNA_TRIAL and appends OptunaPruning to $LINGJIE_CALLBACKS
        (which trainer builds without importing automl); without, neither: later seeds of a trial
        neither report nor prune."""
        env = {k: v for k, v in os.environ.items() if k not in (ENV, "LINGJIE_WORKER")}
        if report:
            env[ENV] = json.dumps(self.trial_info(trial))
            env[CALLBACKS_ENV] = json.dumps(with_pruning(inherited_callbacks()))
        return env

    def trial_info(self, trial: Any) -> dict[str, Any]:
        """The $LINGJIE_OPTUNA_TRIAL object: where the trial's study lives and how it reports."""
        s = self.s
        return {"storage": str(Path(s.storage_url).resolve()) if not is_rdb_url(s.storage_url) else s.storage_url,
                "study_name": s.study_name, "trial_id": trial._trial_id, "number": trial.number,
                "metric": None if self.multi else s.optimize_metric[0], "direction": s.direction[0],
                "pruner": s.pruner, "pruner_args": s.pruner_args, "max_epochs": s.max_epochs,
                "report_every_n_steps": s.report_every_n_steps}

    def _tell_result(self, study: Any, trial: Any, runs: TrialRuns, seeds: list[int | None], seconds: float) -> None:
        """Record a trial whose runs all finished: pruned, or complete with the mean over seeds."""
        from optuna.trial import TrialState

        s = self.s
        trial.set_user_attr("seconds", round(seconds, 2))
        trial.set_user_attr("epochs", runs.epochs)
        trial.set_user_attr("steps", runs.steps)
        values = runs.mean()
        if s.seeds and not runs.pruned:
            trial.set_user_attr("seed_values", {str(x): (v if self.multi else v[0])
                                                for x, v in zip(seeds, runs.per_seed)})
        with self.lock:
            if runs.pruned:
                self._tell(study, trial, state=TrialState.PRUNED)
            else:
                self._tell(study, trial, values if self.multi else values[0])
        spread = ""
        if s.seeds and not runs.pruned and len(runs.per_seed) > 1:
            spread = " (per seed: " + ", ".join(f"{v[0]:.5f}" for v in runs.per_seed) + ")"
        print(f"[sweep] trial {trial.number} {'pruned' if runs.pruned else 'complete'} after {runs.epochs} epoch(s) "
              f"({runs.steps} steps), {seconds:.1f}s: "
              + ", ".join(f"{m}={v:.5f}" for m, v in zip(s.optimize_metric, values)) + spread, flush=True)

    def _tell_failed(self, study: Any, trial: Any, error: str) -> None:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        with self.lock:
            try:
                trial.set_user_attr("error", error[-2000:])
            except UpdateFinishedTrialError as exc:
                self._lost(trial, exc)
                return
            self._tell(study, trial, state=TrialState.FAIL)
        print(f"[sweep] trial {trial.number} failed: {error[-500:]}", flush=True)

    def _tell(self, study: Any, trial: Any, values: Any = None, state: Any = None) -> None:
        """study.tell, except that a trial another process already finished (it took the trial
        for abandoned) is a problem of this sweep, not an exception that ends its worker."""
        current = study._storage.get_trial(trial._trial_id).state
        if current.is_finished():
            self._lost(trial, f"it is already {current.name}")
            return
        study.tell(trial, values, state=state)

    def _lost(self, trial: Any, why: Any) -> None:
        """Record that ``trial``'s result could not be stored: a problem (exit 1), not a crash."""
        self.problems.append(f"trial {trial.number} was finished by another process before this sweep could "
                             f"record its result ({why})")
        log.error("trial %d: finished by another process: %s", trial.number, why)


def run_objective(metrics: dict[str, Any], metric: str, last_epochs: int = 1) -> float | None:
    """One run's score for ``metric`` from its metrics.json: the mean of the last ``last_epochs``
    per-epoch evaluations in ``history`` (fewer when the run had fewer epochs), or ``final[metric]``
    (then a top-level key such as ``parameters``) when the metric has no per-epoch values or
    ``last_epochs`` is 1. None when the metric is absent or not a finite number."""
    def number(v: Any) -> float | None:
        if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            return None
        return float(v)

    if last_epochs > 1:
        series = [number(h.get(metric)) for h in metrics.get("history", []) if isinstance(h, dict)]
        series = [v for v in series if v is not None]
        if series:
            tail = series[-last_epochs:]
            return sum(tail) / len(tail)
    return number(metrics.get("final", {}).get(metric, metrics.get(metric)))


def _internal(dist: Any, value: Any) -> Any:
    """``value`` as a value of the Optuna distribution ``dist``, or None when it holds no such value."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        for choice in dist.choices:
            if choice == value or (isinstance(choice, str) and choice == override_value(value)):
                return choice
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not dist.low <= value <= dist.high:
        return None
    step = getattr(dist, "step", None)
    if step and abs((value - dist.low) / step - round((value - dist.low) / step)) > 1e-6:
        return None
    if isinstance(dist.low, int):
        return int(value) if float(value).is_integer() else None
    return float(value)


def _last_error(path: Path) -> str:
    """The trainer's `error: ...` line, else the last lines of the trial's output."""
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    errors = [ln for ln in lines if ln.startswith("error:")] or [ln for ln in lines if "error" in ln.lower()]
    if errors:
        return errors[-1]
    return " | ".join(ln.strip() for ln in lines[-6:])
