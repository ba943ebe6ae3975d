"""PATH -> (export directory, version, model name): what ``lingjie serve PATH`` serves.

PATH may be an export directory (holds ``meta.json``), a run directory (its ``export/``), or a
model repository ``<root>/<version>/`` of export (or run) directories, of which the highest
*complete* version is served: a version still being copied in (no ``meta.json`` yet, or its
program file missing) is skipped rather than crashing the server, so a deploy job can drop a
new version next to the live one.
"""
from __future__ import annotations

import json
import re
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


def _version_key(name: str) -> tuple[int, ...] | tuple[float, str]:
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
                      key=lambda p: _version_key(p.name), reverse=True)
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
