"""Optuna objects of a Lingjie sweep: storage, sampler, pruner, study — shared by the sweeper
(the parent process) and the trial reporter (inside each training process)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

SAMPLERS = ("tpe", "random", "cmaes", "gp", "nsga2")
PRUNERS = ("median", "hyperband", "successive_halving", "none")
RDB_SCHEMES = ("sqlite", "postgresql", "mysql", "oracle", "mssql")


def is_rdb_url(storage: str) -> bool:
    return storage.split(":", 1)[0].split("+", 1)[0] in RDB_SCHEMES


def make_storage(storage: str) -> Any:
    """An RDB URL (sqlite:///..., postgresql://...) or else the path of a journal file
    (optuna's JournalStorage; file locks make it safe for several processes on one machine)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if is_rdb_url(storage):
        return optuna.storages.RDBStorage(storage)
    Path(storage).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(storage)))


def make_sampler(name: str, seed: int | None, args: dict[str, Any] | None = None) -> Any:
    import optuna.samplers as s

    args = dict(args or {})
    classes = {"tpe": s.TPESampler, "random": s.RandomSampler, "cmaes": s.CmaEsSampler, "gp": s.GPSampler,
               "nsga2": s.NSGAIISampler}
    if name not in classes:
        raise ValueError(f"hydra.sweeper.sampler: unknown sampler '{name}'; choose one of {', '.join(SAMPLERS)}")
    return classes[name](seed=seed, **args)


def make_pruner(name: str, args: dict[str, Any] | None = None, max_epochs: int | None = None) -> Any:
    import optuna.pruners as p

    args = dict(args or {})
    if name == "median":
        args.setdefault("n_startup_trials", 2)
        args.setdefault("n_warmup_steps", 1)
        return p.MedianPruner(**args)
    if name == "hyperband":
        args.setdefault("min_resource", 1)
        if max_epochs:
            args.setdefault("max_resource", max_epochs)
        return p.HyperbandPruner(**args)
    if name == "successive_halving":
        args.setdefault("min_resource", 1)
        return p.SuccessiveHalvingPruner(**args)
    if name in ("none", None):
        return p.NopPruner()
    raise ValueError(f"hydra.sweeper.pruner: unknown pruner '{name}'; choose one of {', '.join(PRUNERS)}")
