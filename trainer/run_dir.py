"""The run directory: one place per run holding everything needed to inspect or resume it.

Layout (rank 0 writes it):
  config.yaml          the resolved config
  metrics.json         train/eval metrics per epoch and the final ones
  metrics.csv          one row per epoch (logger.csv)
  mlflow_run_id        the MLflow run this run logs to (logger.mlflow; a resume continues it)
  feature_state.json   the fitted feature pipeline
  checkpoints/         step-N / epoch-N / best (.pt for torch, .tfckpt dirs for TF), written
                       atomically; the file `latest` names the newest
  tensorboard/         TensorBoard event files
  export/              the exported model + feature state (self-contained for serving)
  published.json       trainer.export.repository: the version the export was published as (trainer.publish)
  DONE                 written when training finished (resume skips finished runs)
  FAILED               the error line of a run that ended with an error (trainer.resume=true
                       skips it; an explicit trainer.resume=<dir> continues it and removes it)
  LOCK                 flock-ed by the live process owning the run (trainer.run_lock); holds its pid
"""
from __future__ import annotations

import logging
from pathlib import Path

from lingjie.errors import ConfigError
from trainer.run_lock import held_by_other

log = logging.getLogger("lingjie")


class RunDir:
    """Paths inside one run directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    config = property(lambda self: self.root / "config.yaml")
    metrics = property(lambda self: self.root / "metrics.json")
    feature_state = property(lambda self: self.root / "feature_state.json")
    checkpoints = property(lambda self: self.root / "checkpoints")
    tensorboard = property(lambda self: self.root / "tensorboard")
    export = property(lambda self: self.root / "export")
    done_marker = property(lambda self: self.root / "DONE")
    failed_marker = property(lambda self: self.root / "FAILED")
    run_info = property(lambda self: self.root / "run_info.json")  # written by trainer.run_info

    def create(self) -> None:
        for p in (self.root, self.checkpoints):
            p.mkdir(parents=True, exist_ok=True)

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint (the `latest` pointer, else the newest by step)."""
        pointer = self.checkpoints / "latest"
        if pointer.exists():
            name = checkpoint_pointer_name(pointer.read_text(errors="replace"))
            if name is not None and (self.checkpoints / name).exists():  # never a path out of the dir
                return self.checkpoints / name
            if name is None:
                log.warning("ignoring %s: it must name a checkpoint file in that directory", pointer)
        if not self.checkpoints.is_dir():
            return None
        found = sorted((p for p in self.checkpoints.iterdir()
                        if p.suffix in (".pt", ".tfckpt") and not p.name.startswith(("best", "."))),
                       key=lambda p: p.stat().st_mtime)
        return found[-1] if found else None

    def is_done(self) -> bool:
        return self.done_marker.exists()

    def is_failed(self) -> bool:
        return self.failed_marker.exists()


def checkpoint_pointer_name(text: str) -> str | None:
    """The checkpoint a ``latest`` pointer names, or None when its text is not a bare file
    name ending in .pt / .tfckpt (no ``/``, no ``..``, no leading ``.``): a pointer is joined
    to the checkpoints directory, so a value like ``../x`` would reach outside the run."""
    name = text.strip()
    if (not name or any(c in name for c in "/\\\0") or ".." in name or name.startswith(".")
            or not name.endswith((".pt", ".tfckpt"))):
        return None
    return name


def find_runs(output_root: str | Path, experiment_name: str) -> list[RunDir]:
    """Runs of an experiment, oldest first (run dir names sort by start time)."""
    base = Path(output_root) / experiment_name
    if not base.is_dir():
        return []
    return [RunDir(p) for p in sorted(base.iterdir()) if p.is_dir() and (p / "config.yaml").exists()]


def resolve_resume_dir(resume: bool | str, output_root: str, experiment_name: str, current: Path) -> Path | None:
    """Which run to continue for ``trainer.resume``: a given dir, or the newest unfinished one.

    The auto-pick (``true``) skips runs a live process holds (their ``LOCK``) and runs that
    ended with an error (``FAILED``: resuming would most likely fail the same way); a given
    dir (or this invocation's own ``hydra.run.dir``) is the user's choice: a FAILED one is
    continued, a locked one refused."""
    if resume is False or resume in ("false", "False", ""):
        return None
    if isinstance(resume, str) and resume not in ("true", "True"):
        path = Path(resume)
        if not (path / "config.yaml").exists():
            raise ConfigError("trainer.resume", f"'{resume}' is not a Lingjie run directory (no config.yaml)")
        refuse_if_in_use(path)
        return path
    if (current / "config.yaml").exists() and RunDir(current).latest_checkpoint():
        refuse_if_in_use(current)
        return current
    for run in reversed(find_runs(output_root, experiment_name)):
        if run.root.resolve() == current.resolve() or run.is_done() or not run.latest_checkpoint():
            continue
        if run.is_failed():
            log.info("trainer.resume: skipping %s: it failed (%s)", run.root, _first_line(run.failed_marker))
            continue
        pid = held_by_other(run.root)
        if pid is not None:
            log.info("trainer.resume: skipping %s: in use by a live process (pid %s)", run.root, pid)
            continue
        return run.root
    return None


def refuse_if_in_use(path: Path, key: str = "trainer.resume") -> None:
    """A ConfigError (at config path ``key``) when a live process (not this one or its
    launcher) holds the run ``path``."""
    pid = held_by_other(path)
    if pid is not None:
        raise ConfigError(key, f"run {path} is in use by a live process (pid {pid or '?'}); "
                          "wait for it or pick another run")


def _first_line(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip().splitlines()[0]
    except (OSError, IndexError):
        return "no message"


def resolve_checkpoint(ref: str | None, output_root: str, experiment_name: str) -> Path:
    """A checkpoint file from a file path, a run dir, or (None) the newest run of the experiment."""
    if ref:
        p = Path(ref)
        if p.is_file() or p.suffix == ".tfckpt":
            return p
        if p.is_dir():
            ck = RunDir(p).latest_checkpoint()
            if ck:
                return ck
        raise ConfigError("checkpoint", f"no checkpoint found at '{ref}' (give a .pt file or a run directory)")
    for run in reversed(find_runs(output_root, experiment_name)):
        ck = run.latest_checkpoint()
        if ck:
            return ck
    raise ConfigError(
        "checkpoint",
        f"no run of experiment '{experiment_name}' with a checkpoint under {output_root}; "
        "train first or pass trainer.<mode>.checkpoint=PATH",
    )
