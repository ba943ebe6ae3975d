"""The lock a live run holds on its directory, and the clean-up its owner may then do.

Why: two processes writing one run directory (a second ``trainer.resume`` of a run still
training, or of a run whose torchrun launcher is alive) interleave checkpoints and metrics.
The owner takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``<run>/LOCK`` and keeps the descriptor
open for the life of the process: the kernel drops the lock when the process dies, even by
SIGKILL, so a stale file never blocks anyone. The holder's pid is written into the file for
the "in use" message. Launched workers (torchrun, TF multi-worker) are children of the
launcher, which holds the lock for them: a lock held by an ancestor counts as our own.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger("lingjie")

LOCK_NAME = "LOCK"
_HELD: dict[str, int] = {}  # resolved run dir -> open, locked descriptor (kept for the process's life)


def _key(root: Path) -> str:
    return str(Path(root).resolve())


def try_lock_run(root: Path) -> bool:
    """Lock ``root`` for this process (True), or False when another process holds it.

    ``root`` must exist. Locking a dir this process already holds is a no-op (True)."""
    if _key(root) in _HELD:
        return True
    fd = os.open(Path(root) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[_key(root)] = fd
    return True


def release_run_lock(root: Path) -> None:
    """Drop this process's lock on ``root`` (before removing the directory)."""
    fd = _HELD.pop(_key(root), None)
    if fd is not None:
        os.close(fd)


def lock_holder(root: Path) -> int | None:
    """The pid of another live process holding ``root``'s lock (0 when unreadable); None when
    the run is free or held by this process."""
    path = Path(root) / LOCK_NAME
    if _key(root) in _HELD or not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        return None
    finally:
        os.close(fd)


def is_ancestor(pid: int) -> bool:
    """Whether ``pid`` is this process's parent, grandparent, ... (Linux /proc; else the parent)."""
    current = os.getpid()
    for _ in range(64):
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            current = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return pid == os.getppid()
        if current == pid:
            return True
        if current <= 1:
            return False
    return False


def held_by_other(root: Path) -> int | None:
    """The pid of a live process other than this one and its ancestors holding ``root``."""
    pid = lock_holder(root)
    if pid is None or (pid and is_ancestor(pid)):
        return None
    return pid


def remove_stale_temp(root: Path) -> list[Path]:
    """Remove leftovers of writes a dead process never finished: ``.<name>.*.tmp`` files of
    atomic writes anywhere in the run, and ``.<name>.*`` temp directories of TF checkpoints and
    SavedModels in ``checkpoints/`` and ``export/``. Call only while holding the run's lock (nothing else writes there)."""
    root = Path(root)
    stale = [p for p in root.rglob(".*.tmp") if p.is_file()]
    for sub in (root / "checkpoints", root / "export"):
        if sub.is_dir():
            stale += [p for p in sub.iterdir() if p.name.startswith(".") and p.is_dir()]
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    if stale:
        log.info("removed %d unfinished temp file(s) of an earlier process in %s", len(stale), root)
    return stale


def held_runs() -> list[Path]:
    """The run directories this process holds (to mark FAILED when it ends with an error)."""
    return [Path(k) for k in _HELD]
