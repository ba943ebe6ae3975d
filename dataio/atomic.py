"""Atomic file writes: a crash mid-write never leaves a torn file where a good one was.

Write to a temp file in the same directory, fsync, then rename over the target (rename is
atomic on POSIX file systems), then fsync the directory so the rename itself survives a
power loss. Used for checkpoints, metrics, configs and feature state.

File modes: ``tempfile.mkstemp`` makes a 0600 file and ``tempfile.mkdtemp`` a 0700 directory
whatever the umask, so a temp renamed into place would publish a private artifact that a
serving container or a teammate on a shared volume cannot read. Every artifact written here
(and every temp directory another module renames into place) gets the mode ``open()`` /
``mkdir()`` would have given it: ``0o666 & ~umask`` / ``0o777 & ~umask``.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from lingjie.faults import fault_point

_UMASK_LOCK = threading.Lock()


def _umask_by_swap() -> int:
    """The umask via ``os.umask`` (set, then restore): the portable way, but another thread
    creating a file between the two calls would get the temporary umask's bits (022 rather
    than 0, so never a world-writable file) — so it is done once, at import, under a lock,
    and only where /proc cannot tell."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _umask_from_proc() -> int | None:
    """The ``Umask:`` line of ``/proc/self/status`` (Linux >= 4.7): reads without changing it."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _import_umask() -> int:
    mask = _umask_from_proc()
    return _umask_by_swap() if mask is None else mask


_IMPORT_UMASK: int = _import_umask()


def process_umask() -> int:
    """The process umask now. Read from /proc where it can be (no race, and it follows a
    program that changes its umask after import); elsewhere the value read once at import."""
    mask = _umask_from_proc()
    return _IMPORT_UMASK if mask is None else mask


def default_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: ``0o666 & ~umask``."""
    return 0o666 & ~process_umask()


def default_dir_mode() -> int:
    """The mode a plain ``mkdir`` would give a new directory: ``0o777 & ~umask``."""
    return 0o777 & ~process_umask()


def publish_dir_mode(directory: Path | str) -> None:
    """Give a ``tempfile.mkdtemp`` directory (0700) the umask's mode before it is renamed into
    place as an artifact (a TF checkpoint, a SavedModel, a pulled run): readable by whoever
    could read a directory made with ``mkdir``."""
    os.chmod(directory, default_dir_mode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory + fsync + rename: never a torn file. The
    file gets the umask's mode (``default_file_mode``), not mkstemp's private 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), default_file_mode())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        fault_point(f"write {path.name}")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable: without it a power loss right after the
    rename can bring back the old entry (or none). File systems that cannot fsync a
    directory (EINVAL, e.g. some network mounts) are skipped: there is nothing more to do."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not openable as a directory here (e.g. Windows): rename is all we have
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (and ``root``): a directory written by
    another library (TF checkpoint files) is durable before it is renamed into place."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n").encode())


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (dataset wheels, delta exports: what was
    written is what is read)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
