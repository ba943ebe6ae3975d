"""Mirror a run directory to an object store or HDFS (``paths.remote_dir``), and pull it back.

Training writes locally (fast, atomic renames), and rank 0 publishes every durable piece to
``<remote_dir>/<experiment>/<run>/``: each checkpoint as it is written (a TF checkpoint's
files first, its ``meta.json`` last), then the ``latest`` pointer, the metrics, the feature
state and the export. Every object is published whole (one PUT or a multipart upload on OSS,
temp file + rename on HDFS; dataio.remote_atomic), so a reader never sees a torn file, and a
machine lost mid-run leaves a remote copy to resume from: ``trainer.resume=<remote run URL>``
pulls it into the local run directory first.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dataio.atomic import fsync_dir, fsync_tree, publish_dir_mode
from dataio.remote_atomic import atomic_upload
from lingjie.errors import DataError
from trainer.callbacks import Callback
from trainer.checkpoint_io import META_FILE
from trainer.run_dir import RunDir, checkpoint_pointer_name

log = logging.getLogger("lingjie.remote")


class RemoteMirror:
    """Publishes files of one local run directory under ``<remote_root>/<experiment>/<run>``."""

    def __init__(self, remote_root: str, run: RunDir, storage_options: dict | None = None) -> None:
        self.run = run
        self.base = f"{remote_root.rstrip('/')}/{run.root.parent.name}/{run.root.name}"
        self.storage_options = storage_options or None

    def url_of(self, local: Path) -> str:
        return f"{self.base}/{local.relative_to(self.run.root).as_posix()}"

    def push(self, local: Path) -> None:
        """One file, or a directory tree (``meta.json`` last: it marks a TF checkpoint complete)."""
        if local.is_dir():
            files = sorted((p for p in local.rglob("*") if p.is_file()), key=lambda p: (p.name == META_FILE, str(p)))
            for f in files:
                atomic_upload(f, self.url_of(f), self.storage_options)
        elif local.exists():
            atomic_upload(local, self.url_of(local), self.storage_options)

    def push_checkpoint(self, path: Path) -> None:
        self.push(path)
        self.push(self.run.checkpoints / "latest")

    def push_run_files(self) -> None:
        for f in (self.run.config, self.run.metrics, self.run.feature_state, self.run.run_info):
            self.push(f)


class MirrorCallback(Callback):
    """paths.remote_dir: the run's files, every checkpoint and metrics.json after each epoch,
    and at the end the export and the DONE marker, mirrored as they are written (rank 0)."""

    def __init__(self, remote_root: str, run: RunDir, storage_options: dict | None = None) -> None:
        self.mirror = RemoteMirror(remote_root, run, storage_options)

    def on_fit_start(self, loop: Any) -> None:
        self.mirror.push_run_files()
        log.info("mirroring the run to %s", self.mirror.base)

    def on_checkpoint(self, loop: Any, path: Path) -> None:
        self.mirror.push_checkpoint(path)

    def on_epoch_end(self, loop: Any, metrics: dict[str, float]) -> None:
        self.mirror.push(self.mirror.run.metrics)

    def on_run_end(self, loop: Any) -> None:
        run = self.mirror.run
        # run_info.json as of the run's end (its final status is written after the callbacks)
        for path in (run.metrics, run.run_info, run.export, run.done_marker):
            self.mirror.push(path)


RUN_FILES = ("metrics.json", "feature_state.json", "config.yaml")  # config last: see _download
PULL_PREFIX = ".pull-"  # <parent>/.<run name>.pull-XXXX: a pull in progress (or killed mid-way)


def pull_run(remote_run: str, local: RunDir, storage_options: dict | None = None) -> None:
    """Copy a mirrored run (config, metrics, feature state, the latest checkpoint) into ``local``.

    The remote is not trusted: its ``checkpoints/latest`` must name a bare checkpoint file
    (``trainer.run_dir.checkpoint_pointer_name``), else one DataError line naming the URL and
    nothing is written. The copy is made in a temp dir beside ``local`` and renamed into place,
    so a killed pull never looks like a complete run; its leftover temp dir is removed by the
    next pull, which starts over."""
    from dataio.credentials import redact_url
    from dataio.filesystems import filesystem_for

    fs, base = filesystem_for(remote_run, storage_options)
    base = base.rstrip("/")
    name = None
    if fs.exists(f"{base}/checkpoints/latest"):
        text = fs.cat_file(f"{base}/checkpoints/latest").decode("utf-8", errors="replace")
        name = checkpoint_pointer_name(text)
        if name is None:
            raise DataError(f"its checkpoint pointer holds {text.strip()[:80]!r}, not a checkpoint file name "
                            "(NAME.pt or NAME.tfckpt); refusing to pull the run",
                            file=redact_url(f"{remote_run.rstrip('/')}/checkpoints/latest"))
    parent = local.root.parent
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob(f".{local.root.name}{PULL_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    staged = RunDir(tempfile.mkdtemp(prefix=f".{local.root.name}{PULL_PREFIX}", dir=parent))
    try:
        _download(fs, base, staged, name)
        publish_dir_mode(staged.root)  # mkdtemp's 0700 would make the pulled run private
        fsync_tree(staged.root)
        _move_into_place(staged.root, local.root)
    except BaseException:
        shutil.rmtree(staged.root, ignore_errors=True)
        raise
    log.info("pulled %s (checkpoint %s) into %s", redact_url(remote_run), name, local.root)


def _download(fs: Any, base: str, staged: RunDir, name: str | None) -> None:
    """The checkpoint, its pointer, then the run files with config.yaml last: the temp dir of a
    killed pull has no config.yaml, so ``trainer.run_dir.find_runs`` never offers it for resume."""
    staged.create()
    if name is not None:
        remote_ckpt = f"{base}/checkpoints/{name}"
        if fs.isdir(remote_ckpt):
            for path in fs.find(remote_ckpt):
                rel = Path(path[len(remote_ckpt) + 1:])
                if not path.startswith(f"{remote_ckpt}/") or rel.is_absolute() or ".." in rel.parts:
                    raise DataError(f"a checkpoint file outside its directory: {path}", file=remote_ckpt)
                target = staged.checkpoints / name / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(fs.cat_file(path))
        else:
            (staged.checkpoints / name).write_bytes(fs.cat_file(remote_ckpt))
        (staged.checkpoints / "latest").write_text(name)
    for rel in RUN_FILES:
        if fs.exists(f"{base}/{rel}"):
            (staged.root / rel).write_bytes(fs.cat_file(f"{base}/{rel}"))


def _move_into_place(staged: Path, target: Path) -> None:
    """Rename the finished pull onto ``target``. A ``target`` already there holds no checkpoint
    (the caller pulls only then: e.g. the remains of a pull by an older Lingjie): it is moved
    aside first, and removed once the new copy is in place."""
    if not target.exists():
        os.replace(staged, target)
    else:
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, trash / target.name)
        os.replace(staged, target)
        shutil.rmtree(trash, ignore_errors=True)
    fsync_dir(target.parent)
