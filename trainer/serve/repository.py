"""PATH -> (export directory, version, model name): what ``lingjie serve PATH`` serves.

PATH may be an export directory (holds ``meta.json``), a run directory (its ``export/``), or a
model repository ``<root>/<version>/`` of export (or run) directories, of which the highest
*complete* version is served: a version still being copied in (no ``meta.json`` yet, or its
program file missing) is skipped rather than crashing the server, so a deploy job can drop a
new version next to the live one.

:class:`Repository` is the same resolution over any fsspec file system, re-listed while serving
(hot reload, pinning): see its docstring.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lingjie.errors import ConfigError


@dataclass(frozen=True)
class Resolved:
    """The export to serve: its directory, meta.json, version label and the run dir (if any)."""

    export_dir: Path
    meta: dict[str, Any]
    version: str
    run_dir: Path | None


def _complete(export_dir: Path) -> dict[str, Any] | None:
    """meta.json of a complete export directory, else None (absent, unreadable, program missing)."""
    try:
        meta = json.loads((export_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not (export_dir / str(meta.get("program", ""))).exists():
        return None
    return meta


def _as_export(path: Path) -> tuple[Path, dict[str, Any], Path | None] | None:
    """(export dir, meta, run dir) when ``path`` is an export dir or a run dir with a complete export."""
    meta = _complete(path)
    if meta is not None:
        parent = path.parent if (path.parent / "config.yaml").exists() else None
        return path, meta, parent
    meta = _complete(path / "export")
    if meta is not None:
        return path / "export", meta, path
    return None


def version_key(name: str) -> tuple[int, ...] | tuple[float, str]:
    """Numeric versions (``1``, ``2``, ``10`` or ``1.2.0``) sort as numbers, above any other name."""
    if re.fullmatch(r"\d+(\.\d+)*", name):
        return (1, *(int(p) for p in name.split(".")))
    return (0.0, name)


def resolve(path: str | Path) -> Resolved:
    """The export to serve at ``path``; ConfigError naming what was looked for if there is none."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ConfigError("serve.path", f"{root} is not a directory (an export dir, run dir or model repository)")
    found = _as_export(root)
    if found is not None:
        export_dir, meta, run_dir = found
        return Resolved(export_dir, meta, str(meta.get("version") or 1), run_dir)
    versions = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                      key=lambda p: version_key(p.name), reverse=True)
    for candidate in versions:
        found = _as_export(candidate)
        if found is not None:
            return Resolved(found[0], found[1], candidate.name, found[2])
    raise ConfigError("serve.path", f"{root} holds no complete export: expected meta.json and the program "
                      "in it, in its export/ (a run dir), or in a version subdirectory (a model repository)")


def model_name(resolved: Resolved, name_hint: str) -> str:
    """The name the model is served under: the experiment name (adapter, meta.json, the run's
    config.yaml), else the export's directory name."""
    if name_hint:
        return name_hint
    if resolved.meta.get("experiment"):
        return str(resolved.meta["experiment"])
    if resolved.run_dir is not None:
        match = re.search(r"(?m)^experiment_name:\s*(\S+)\s*$", _read(resolved.run_dir / "config.yaml"))
        if match and match.group(1) not in ("null", "~"):
            return match.group(1).strip("'\"")
    base = resolved.run_dir or resolved.export_dir
    return base.name


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@dataclass(frozen=True)
class Version:
    """One complete version of a repository as last listed: its name, its export directory
    inside the repository's file system, its meta.json, and a stamp (meta.json's size and
    modification time) that changes when the export is rewritten, so a rewritten version is
    reloaded and a version that failed is retried only once its files change."""

    name: str
    export_path: str
    meta: dict[str, Any]
    stamp: str


MTIME_KEYS = ("mtime", "LastModified", "last_modified", "modificationTime", "created", "ETag", "etag")


class Repository:
    """What ``lingjie serve PATH`` watches: a local path or an fsspec URL (``oss://``,
    ``hdfs://``, ``file://``, ``memory://``, opened by :func:`dataio.filesystems.filesystem_for`
    with credentials from the environment as the data sources do).

    PATH is either one export (an export dir, or a run dir with ``export/``): one version,
    reloaded when its meta.json changes (stream mode re-exports in place, meta.json last), or a
    repository ``<root>/<version>/`` of exports or run dirs. A listing is a directory listing
    plus one ``info`` per version (meta.json is only read again when its stamp changed), cheap
    enough to poll every few seconds even on an object store. Remote versions are copied into
    ``cache_dir`` (download into a temp dir, then one rename) before they are loaded."""

    def __init__(self, path: str, cache_dir: Path | None = None, storage_options: dict | None = None) -> None:
        from dataio.filesystems import filesystem_for, scheme_of

        self.url = path if scheme_of(path) else str(Path(path).expanduser().resolve())
        self.fs, base = filesystem_for(self.url, storage_options)
        self.base = base.rstrip("/") or base
        protocols = self.fs.protocol if isinstance(self.fs.protocol, (tuple, list)) else (self.fs.protocol,)
        self.local = "file" in protocols
        self._cache_dir = cache_dir
        self._metas: dict[str, tuple[str, dict[str, Any]]] = {}
        if not self.fs.isdir(self.base):
            raise ConfigError("serve.path", f"{path} is not a directory (an export dir, run dir or model repository)")
        self.single = self._export_at(self.base) is not None

    def versions(self) -> list[Version]:
        """The complete versions, highest first (numbers as numbers, above other names)."""
        if self.single:
            found = self._export_at(self.base)
            return [] if found is None else [Version(str(found[1].get("version") or 1), *found)]
        dirs = [e["name"].rstrip("/") for e in self.fs.ls(self.base, detail=True) if e.get("type") == "directory"]
        names = sorted((d.rsplit("/", 1)[-1] for d in dirs), key=version_key, reverse=True)
        out = []
        for name in names:
            if name.startswith("."):
                continue
            found = self._export_at(f"{self.base}/{name}")
            if found is not None:
                out.append(Version(name, *found))
        return out

    def stamp_of(self, version: Version) -> str | None:
        """meta.json's stamp now (None: gone): a load that raced a rewrite is detected by it."""
        return self._stamp(f"{version.export_path}/meta.json")

    def _stamp(self, meta_path: str) -> str | None:
        try:
            info = self.fs.info(meta_path)
        except (OSError, ValueError):
            return None
        if info.get("type") != "file":
            return None
        when = next((info[k] for k in MTIME_KEYS if info.get(k) is not None), "")
        return f"{info.get('size')}:{when}"

    def _export_at(self, path: str) -> tuple[str, dict[str, Any], str] | None:
        """(export path, meta, stamp) of the complete export at ``path`` or ``path/export``."""
        for candidate in (path, f"{path}/export"):
            meta_path = f"{candidate}/meta.json"
            stamp = self._stamp(meta_path)
            if stamp is None:
                continue
            cached = self._metas.get(meta_path)
            meta = cached[1] if cached is not None and cached[0] == stamp else self._read_meta(meta_path)
            if meta is None or not self.fs.exists(f"{candidate}/{meta.get('program', '')}") or not meta.get("program"):
                continue
            self._metas[meta_path] = (stamp, meta)
            return candidate, meta, stamp
        return None

    def _read_meta(self, meta_path: str) -> dict[str, Any] | None:
        try:
            meta = json.loads(self.fs.cat_file(meta_path))
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def local_dir(self, version: Version) -> Path:
        """A local directory holding ``version``'s export: the export itself on a local file
        system, else a copy in the cache dir, downloaded into a temp dir and renamed into place
        so a half-downloaded copy is never loaded (nor reused after a crash)."""
        if self.local:
            return Path(version.export_path)
        key = hashlib.sha1(f"{version.export_path}|{version.stamp}".encode()).hexdigest()[:12]
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", version.name)
        target = self.cache_dir() / f"{safe}-{key}"
        if (target / "meta.json").exists():
            return target
        staged = Path(tempfile.mkdtemp(prefix=f".{safe}-", dir=self.cache_dir()))
        try:
            self._download(version.export_path.rstrip("/"), staged)
            os.replace(staged, target)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        return target

    def _download(self, root: str, staged: Path) -> None:
        """Copy every file under the remote directory ``root`` into ``staged``."""
        for remote in self.fs.find(root):
            rel = Path(remote[len(root) + 1:])
            if not remote.startswith(f"{root}/") or rel.is_absolute() or ".." in rel.parts:
                raise ConfigError("serve.path", f"a file outside its export directory: {remote}")
            (staged / rel).parent.mkdir(parents=True, exist_ok=True)
            (staged / rel).write_bytes(self.fs.cat_file(remote))

    def sync_deltas(self, version: Version, local_dir: Path) -> list[str]:
        """A remote version's delta exports (``<export>/deltas/<name>/`` with its manifest.json)
        not yet in its local copy ``local_dir``, downloaded into a temp dir and renamed into
        ``local_dir/deltas/`` once the tensor file's sha256 matches its manifest (an upload still
        in progress is left for the next poll); returns the names copied."""
        if self.local:
            return []
        remote_root = f"{version.export_path.rstrip('/')}/deltas"
        try:
            entries = self.fs.ls(remote_root, detail=True)
        except (OSError, ValueError):
            return []
        target_root = local_dir / "deltas"
        copied = []
        for entry in entries:
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if entry.get("type") != "directory" or name.startswith(".") or (target_root / name).exists() \
                    or not self.fs.exists(f"{remote_root}/{name}/manifest.json"):
                continue
            target_root.mkdir(parents=True, exist_ok=True)
            staged = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target_root))
            try:
                self._download(f"{remote_root}/{name}", staged)
                manifest = json.loads((staged / "manifest.json").read_text())
                tensors = staged / str(manifest.get("file", ""))
                if not tensors.is_file() or hashlib.sha256(tensors.read_bytes()).hexdigest() != manifest.get("sha256"):
                    shutil.rmtree(staged, ignore_errors=True)  # still uploading: next poll
                    continue
                os.replace(staged, target_root / name)
                copied.append(name)
            except BaseException:
                shutil.rmtree(staged, ignore_errors=True)
                raise
        return copied

    def cache_dir(self) -> Path:
        """``--cache-dir``, else a temp dir of this process (made on first use)."""
        if self._cache_dir is None:
            self._cache_dir = Path(tempfile.mkdtemp(prefix="lingjie-serve-cache-"))
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        return self._cache_dir

    def prune_cache(self, keep: set[Path]) -> None:
        """Remove cached copies other than ``keep`` (the served one and the one before it)."""
        if self.local or self._cache_dir is None:
            return
        for entry in self._cache_dir.iterdir():
            if entry.is_dir() and entry not in keep and not entry.name.startswith("."):
                shutil.rmtree(entry, ignore_errors=True)

    def run_dir_of(self, export_dir: Path) -> Path | None:
        """The run directory around a local export (for the model name), else None."""
        if self.local and (export_dir.parent / "config.yaml").exists():
            return export_dir.parent
        return None
