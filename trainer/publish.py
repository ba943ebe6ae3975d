"""``trainer.export.repository``: publish a run's final export as the next numbered version of a
serving model repository, the layout ``lingjie serve REPO`` follows (trainer/serve/repository.py:
the highest *complete* numeric version is served, so a new version goes live on the next poll).

    REPO/1/   meta.json, model.pt2 (or saved_model/), feature_state.json ...   <- yesterday
    REPO/2/   ...                                                             <- today

Local paths: the export is copied into a hidden temp directory inside REPO, then renamed to
``REPO/<N>`` (N = the highest numeric version + 1): a reader sees the whole version or none, and
two publishers racing for one N cannot both win the rename (the loser takes N + 1). fsspec URLs
(``oss://``, ``hdfs://``, ...): each file is uploaded atomically into ``REPO/<N>/`` and
``meta.json`` last, so the version is not complete (not served) until every file is there;
there, two publishers at the same instant could pick the same N.

The run records what it published in ``published.json`` (repository, version, path): a run
that publishes again (resumed after a crash between the publish and DONE) does not add a
second version.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dataio.atomic import atomic_write_json, fsync_dir, fsync_tree, publish_dir_mode
from dataio.remote_atomic import is_remote

log = logging.getLogger("lingjie")

PUBLISHED = "published.json"
META = "meta.json"


def next_version(names: list[str]) -> int:
    """1 + the highest numeric version among ``names`` (``3`` and ``3.1.0`` count as 3); 1 if none."""
    majors = [int(n.split(".", 1)[0]) for n in names if re.fullmatch(r"\d+(\.\d+)*", n)]
    return max(majors, default=0) + 1


def publish_export(export_dir: Path, repository: str, storage_options: dict | None = None) -> int:
    """Copy ``export_dir`` into ``repository/<N>/``; returns N."""
    if is_remote(repository):
        return _publish_remote(export_dir, repository.rstrip("/"), storage_options)
    local = repository[len("file://"):] if repository.startswith("file://") else repository
    return _publish_local(export_dir, Path(local).expanduser())


def _publish_local(export_dir: Path, repo: Path) -> int:
    repo.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".publish-", dir=repo))
    try:
        shutil.copytree(export_dir, staged, dirs_exist_ok=True)
        publish_dir_mode(staged)
        fsync_tree(staged)
        for _ in range(1000):
            version = next_version([p.name for p in repo.iterdir() if p.is_dir()])
            try:
                os.rename(staged, repo / str(version))  # fails on an existing (non-empty) version
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    continue  # another publisher took this number first
                raise
            fsync_dir(repo)
            return version
        raise OSError(f"could not claim a version number in {repo}")
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def _publish_remote(export_dir: Path, url: str, storage_options: dict | None) -> int:
    from dataio.filesystems import filesystem_for
    from dataio.remote_atomic import atomic_upload

    fs, base = filesystem_for(url, storage_options)
    try:
        names = [e["name"].rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(base, detail=True)
                 if e.get("type") == "directory"]
    except FileNotFoundError:
        names = []
    version = next_version(names)
    files = sorted(p for p in export_dir.rglob("*") if p.is_file())
    for path in sorted(files, key=lambda p: p.relative_to(export_dir).as_posix() == META):  # meta.json last
        atomic_upload(path, f"{url}/{version}/{path.relative_to(export_dir).as_posix()}", storage_options)
    return version


def publish_run(run_root: Path, export_dir: Path, repository: str, storage_options: dict | None = None) -> int:
    """Publish a run's export once: the version recorded in ``<run>/published.json`` when it
    names this repository and that version is still there, else a new version (recorded)."""
    record = run_root / PUBLISHED
    try:
        done = json.loads(record.read_text())
    except (OSError, ValueError):
        done = None
    if isinstance(done, dict) and done.get("repository") == repository and _still_there(done, storage_options):
        log.info("export already published as version %s of %s", done.get("version"), repository)
        return int(done["version"])
    version = publish_export(export_dir, repository, storage_options)
    path = f"{repository.rstrip('/')}/{version}"
    atomic_write_json(record, {"repository": repository, "version": version, "path": path})
    log.info("published the export as version %d of %s", version, repository)
    return version


def _still_there(done: dict[str, Any], storage_options: dict | None) -> bool:
    path = str(done.get("path") or "")
    if not is_remote(path):
        return (Path(path[len("file://"):] if path.startswith("file://") else path) / META).exists()
    from dataio.filesystems import filesystem_for

    fs, inner = filesystem_for(path, storage_options)
    return bool(fs.exists(f"{inner.rstrip('/')}/{META}"))


def publish_if_asked(root: Any, run_root: Path, export_dir: Path) -> int | None:
    """After a training run's final export: publish it when ``trainer.export.repository`` is set."""
    repository = root.trainer.export.repository
    if not repository:
        return None
    return publish_run(run_root, export_dir, str(repository), getattr(root.data, "storage_options", None) or None)
