"""`hydra/sweeper: lingjie_optuna`: the Hydra side of the Optuna sweep (config schema + plugin).

Hydra imports every module under hydra_plugins at start-up, so this one imports nothing heavy:
optuna is loaded only when a sweep starts. (No `from __future__ import annotations`: Hydra executes
plugin modules outside sys.modules, where dataclasses cannot resolve string annotations.)
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from lingjie.extras import require


@dataclass
class LingjieOptunaSweeperConf:
    _target_: str = "hydra_plugins.lingjie_optuna_sweeper.lingjie_optuna_sweeper.LingjieOptunaSweeper"
    optimize_metric: Any = "eval/auc"  # a key of metrics.json's final (or top level: parameters); a list: multi-objective
    direction: Any = "maximize"  # maximize | minimize, or one per metric
    study_name: Optional[str] = None  # default: experiment_name
    storage: Optional[str] = None  # default: a journal file in the sweep dir; or an RDB URL (sqlite:///..., postgresql://...)
    n_trials: int = 20  # the total over every run of the command (rerunning resumes the study)
    n_jobs: int = 1  # trials running at once, each its own process
    sampler: str = "tpe"  # tpe | random | cmaes | gp | nsga2
    sampler_args: Dict[str, Any] = field(default_factory=dict)  # extra keyword arguments of the sampler
    seed: Optional[int] = 42
    pruner: str = "median"  # median | hyperband | successive_halving | none (fed per epoch by the trainer)
    pruner_args: Dict[str, Any] = field(default_factory=dict)  # e.g. {n_startup_trials: 2, n_warmup_steps: 1}
    # null: report after every epoch (Optuna step = epoch); N: evaluate and report every N train steps
    # (Optuna step = global step), so the pruner can stop a trial inside an epoch
    report_every_n_steps: Optional[int] = None
    # trial 0 runs the composed config's own values of the searched parameters (the study's best is
    # then never worse than the default on the objective)
    enqueue_default: bool = True
    # overrides only the trials get, e.g. [data=movielens_100k_valid] to tune on a validation split;
    # best_config.yaml's final_command leaves them out (retrain on train, score on the test split)
    tune_overrides: List[str] = field(default_factory=list)
    # a less noisy objective: train every trial once per seed (seed_key=<seed>) and score the mean;
    # pruning watches the first seed's run, a pruned trial skips the others. null: one run, config's seed
    seeds: Optional[List[int]] = None
    seed_key: str = "seed"
    # a run's score: the mean of its last K per-epoch evaluations of the metric (1: the last epoch's)
    average_last_epochs: int = 1
    # which trial best_config.yaml holds: mean (the study's best value) or lower_bound (the best mean
    # over seeds minus its standard error: a consistent win over a lucky one; needs >= 2 seeds)
    best_by: str = "mean"
    params: Dict[str, Any] = field(default_factory=dict)  # the search space: config path -> distribution
    trial_overrides: List[str] = field(default_factory=lambda: ["trainer.export.enabled=false",
                                                                "trainer.progress_bar=false"])
    trial_timeout_s: Optional[float] = None  # per training run (with `seeds`: per seed)
    plots: bool = True


ConfigStore.instance().store(group="hydra/sweeper", name="lingjie_optuna", node=LingjieOptunaSweeperConf,
                             provider="lingjie")


class LingjieOptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        settings.pop("_target_", None)
        self.settings = settings
        self.config: Optional[DictConfig] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.config = config

    def sweep(self, arguments: List[str]) -> Any:
        # optuna is the 'automl' extra: one line naming it, not a traceback from automl.study
        require("optuna", "automl", "hparams_search (the Optuna sweeper)", "hparams_search")
        from automl.sweeper import Sweep, SweepSettings
        from automl.sweeper_outputs import write_outputs
        from automl.sweeper_space import split_arguments, targets

        assert self.config is not None
        cfg = self.config
        st = {k: (OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v)
              for k, v in self.settings.items()}
        sweep_dir = Path(str(cfg.hydra.sweep.dir))
        trainer_cfg = cfg.get("trainer") or {}
        settings = SweepSettings(
            sweep_dir=sweep_dir.resolve(), study_name=st.get("study_name") or str(cfg.get("experiment_name", "study")),
            optimize_metric=[str(m) for m in _as_list(st["optimize_metric"])],
            direction=[str(d) for d in _as_list(st["direction"])],
            n_trials=int(st["n_trials"]), n_jobs=int(st["n_jobs"]), sampler=st["sampler"],
            sampler_args=st.get("sampler_args") or {}, seed=st.get("seed"), pruner=str(st["pruner"]),
            pruner_args=st.get("pruner_args") or {}, storage=st.get("storage"), params=st.get("params") or {},
            trial_overrides=list(st.get("trial_overrides") or []), trial_timeout_s=st.get("trial_timeout_s"),
            max_epochs=trainer_cfg.get("epochs"), plots=bool(st["plots"]),
            report_every_n_steps=st.get("report_every_n_steps"), enqueue_default=bool(st["enqueue_default"]),
            tune_overrides=[str(o) for o in st.get("tune_overrides") or []],
            seeds=st.get("seeds"), seed_key=str(st["seed_key"]),
            average_last_epochs=st["average_last_epochs"], best_by=str(st["best_by"]))
        searched = {p for ps in targets(settings.params).values() for p in ps} | set(split_arguments(list(arguments))[1])
        settings.default_values = {p: _value(cfg, p) for p in searched}
        if len(settings.direction) == 1 and len(settings.optimize_metric) > 1:
            settings.direction = settings.direction * len(settings.optimize_metric)
        hydra_overrides = [str(o) for o in cfg.hydra.overrides.get("hydra", [])]
        from lingjie.errors import LingjieError

        try:  # a wrong sweeper knob or search space: one line naming it, as the trainer CLI does
            sweep = Sweep(settings, list(arguments), Path.cwd(), hydra_overrides)
            study = sweep.run()
        except (LingjieError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)
        write_outputs(study, sweep)
        if sweep.problems:  # a crashed trial or a sweep error is never an exit status 0
            more = f" (and {len(sweep.problems) - 1} more, logged above)" if len(sweep.problems) > 1 else ""
            print(f"error: sweep '{settings.study_name}': {sweep.problems[0]}{more}", file=sys.stderr, flush=True)
            sys.exit(1)
        return study


def _value(cfg: DictConfig, path: str) -> Any:
    """The composed config's value at ``path`` (None when absent or unresolvable)."""
    try:
        v = OmegaConf.select(cfg, path, default=None)
    except Exception:  # an interpolation that only resolves inside a job
        return None
    return OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v


def _as_list(v: Any) -> List[Any]:
    return list(v) if isinstance(v, (list, tuple)) else [v]
