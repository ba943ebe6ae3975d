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
from pathlib import Path
from typing import Any

from dataio.remote_atomic import atomic_upload
from trainer.callbacks import Callback
from trainer.checkpoint_io import META_FILE
from trainer.run_dir import RunDir

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
        for f in (self.run.config, self.run.metrics, self.run.feature_state):
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
        for path in (run.metrics, run.export, run.done_marker):
            self.mirror.push(path)


def pull_run(remote_run: str, local: RunDir, storage_options: dict | None = None) -> None:
    """Copy a mirrored run (config, metrics, feature state, the latest checkpoint) into ``local``."""
    from dataio.filesystems import filesystem_for

    fs, base = filesystem_for(remote_run, storage_options)
    base = base.rstrip("/")
    local.create()
    for name in ("config.yaml", "metrics.json", "feature_state.json", "checkpoints/latest"):
        if fs.exists(f"{base}/{name}"):
            (local.root / name).parent.mkdir(parents=True, exist_ok=True)
            (local.root / name).write_bytes(fs.cat_file(f"{base}/{name}"))
    pointer = local.checkpoints / "latest"
    if not pointer.exists():
        return
    name = pointer.read_text().strip()
    remote_ckpt = f"{base}/checkpoints/{name}"
    if fs.isdir(remote_ckpt):
        for path in fs.find(remote_ckpt):
            rel = path[len(base) + 1:]
            (local.root / rel).parent.mkdir(parents=True, exist_ok=True)
            (local.root / rel).write_bytes(fs.cat_file(path))
    else:
        (local.checkpoints / name).write_bytes(fs.cat_file(remote_ckpt))
    log.info("pulled %s (checkpoint %s) into %s", remote_run, name, local.root)
