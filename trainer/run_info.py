"""``run_info.json``: how a run was made — the command, the versions, the machine, the outcome.

Why: a run directory outlives the shell that started it. config.yaml says *what* ran; this
file says *how*: the command line and Hydra overrides (secrets redacted, like every file a run
writes: :mod:`trainer.redaction`), Lingjie's version and git commit (when run from a clone),
Python's and the key packages' versions, host, pid, start / end time and the exit status.

``status`` is ``running`` from the start, then ``finished`` or ``failed`` (with ``error``, the
error line). A killed process cannot write anything: its run keeps ``running``. A resumed run
keeps the original record and appends one entry per resume to ``resumes`` (each noting what
it found). Only the process owning the run writes it (rank 0, or the launcher of torchrun /
TF workers); it is written atomically, and never fails the run.
"""
from __future__ import annotations

import logging
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from dataio.atomic import atomic_write_json
from dataio.credentials import REDACTED, looks_secret_key, redact
from trainer.run_dir import RunDir

log = logging.getLogger("lingjie")

RUN_INFO = "run_info.json"
# distribution names whose versions are recorded when installed (read from metadata: importing
# tensorflow only to ask its version would cost seconds and memory)
PACKAGES = ("torch", "tensorflow", "tensorflow-cpu", "keras", "numpy", "pyarrow", "hydra-core", "omegaconf",
            "optuna")
GIT_TIMEOUT_S = 5.0

# run root -> (monotonic start, index into "resumes" or None for the original record)
_started: dict[Path, tuple[float, int | None]] = {}


def owns_run() -> bool:
    """Whether this process writes run_info.json: not a launched worker (its launcher does),
    and rank 0 of a group started by hand."""
    from trainer.distributed import DistContext

    return os.environ.get("LINGJIE_WORKER") != "1" and DistContext.from_env().is_main


def start(run: RunDir, mode: str, argv: list[str] | None = None, overrides: list[str] | None = None) -> None:
    """Record that ``run`` starts now (status ``running``); on a resumed run, append to ``resumes``."""
    if not owns_run():
        return
    try:
        argv = sys.argv if argv is None else argv
        entry = _attempt(mode, argv, hydra_overrides() if overrides is None else overrides)
        path = run.run_info
        previous = _read(path)
        if previous is None:
            info: dict[str, Any] = {"mode": entry.pop("mode"), **entry, "lingjie": lingjie_version(),
                                    **git_state(), "python": platform.python_version(),
                                    "packages": package_versions()}
            index = None
        else:
            info = previous
            last = (info.get("resumes") or [info])[-1]
            entry["found"] = last.get("status", "unknown")
            if entry["found"] == "running":
                entry["note"] = "the previous process ended without recording it (killed or lost)"
            info.setdefault("resumes", []).append(entry)
            index = len(info["resumes"]) - 1
        run.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, info)
        _started[run.root.resolve()] = (time.monotonic(), index)
    except OSError as exc:  # never fail a run for its record
        log.warning("could not write %s into %s: %s", RUN_INFO, run.root, exc)


def finish(run: RunDir, status: str, error: str | None = None) -> None:
    """Record how the attempt :func:`start` recorded ended: ``finished`` or ``failed`` (+ error line)."""
    began = _started.pop(run.root.resolve(), None)
    if began is None or not owns_run():
        return
    t0, index = began
    path = run.run_info
    try:
        info = _read(path)
        if info is None or (index is not None and len(info.get("resumes") or []) <= index):
            return
        entry = info if index is None else info["resumes"][index]
        entry.update(status=status, ended_at=_now(), duration_s=round(time.monotonic() - t0, 3))
        if error is not None:
            entry["error"] = redact(error.strip())
        atomic_write_json(path, info)
    except OSError as exc:
        log.warning("could not write %s into %s: %s", RUN_INFO, run.root, exc)


def _attempt(mode: str, argv: list[str], overrides: list[str]) -> dict[str, Any]:
    """What one process starting the run records about itself."""
    return {"mode": mode, "status": "running", "executable": sys.executable,
            "command": redact_command(argv), "overrides": redact_command(overrides), "cwd": os.getcwd(),
            "host": socket.gethostname(), "pid": os.getpid(), "started_at": _now()}


def redact_command(args: list[str]) -> list[str]:
    """``args`` fit to write down: the value of an override whose key names a credential
    (``+data.storage_options.secret=...``) becomes ``***``; every secret this process knows of
    (config literals, credential variables: :func:`dataio.credentials.redact`) and URL
    passwords are removed from the rest."""
    out = []
    for arg in args:
        key, sep, _ = str(arg).partition("=")
        name = key.lstrip("+~").rsplit(".", 1)[-1]
        out.append(f"{key}={REDACTED}" if sep and not key.startswith("-") and looks_secret_key(name)
                   else redact(arg))
    return out


def hydra_overrides() -> list[str]:
    """The task overrides Hydra composed this job from (empty when not run through Hydra)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except (ImportError, ValueError):
        return []


def lingjie_version() -> str:
    import lingjie

    return lingjie.__version__


def package_versions() -> dict[str, str]:
    """Installed versions of :data:`PACKAGES` (those not installed are left out)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_state(source: Path | None = None) -> dict[str, Any]:
    """``{"git_commit", "git_dirty"}`` of the Lingjie clone this code runs from; empty when it
    is not a clone (an installed wheel), git is missing or slow. Dirty means a tracked file
    differs from the commit (untracked files, e.g. outputs/, do not count)."""
    root = source or Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():  # the package's parent is the repository itself, not a folder in one
        return {}
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S)
        if head.returncode != 0:
            return {}
        status = subprocess.run(["git", "--no-optional-locks", "-C", str(root), "status", "--porcelain",
                                 "--untracked-files=no"],
                                capture_output=True, text=True, timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return {}
    out: dict[str, Any] = {"git_commit": head.stdout.strip()}
    if status.returncode == 0:
        out["git_dirty"] = bool(status.stdout.strip())
    return out


def _read(path: Path) -> dict[str, Any] | None:
    """The record already in the run dir (a resume), or None; an unreadable one is replaced."""
    import json

    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")
