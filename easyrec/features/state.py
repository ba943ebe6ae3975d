"""Reading and writing the fitted pipeline state as one JSON document.

The state travels with the model (checkpoints, exports), so it must load anywhere: JSON,
a format name and version checked on load, and an atomic write (a crash mid-save never
leaves a half-written file where a good one was). Paths may be local or any fsspec URL.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from dataio.atomic import atomic_write_bytes
from lingjie.errors import DataError

FORMAT = "lingjie.feature_pipeline"
VERSION = 1


def write_json(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON at a local path or fsspec URL, atomically where the FS allows."""
    text = json.dumps(data, indent=1, sort_keys=True, allow_nan=False)
    fs, fs_path = fsspec.core.url_to_fs(str(path))
    if isinstance(fs, LocalFileSystem):
        atomic_write_bytes(Path(fs_path), text.encode("utf-8"))
    else:  # object stores publish a whole object per put, which is atomic for readers
        fs.pipe_file(fs_path, text.encode("utf-8"))


def read_json(path: str) -> dict[str, Any]:
    """Read a state document, checking its format and version."""
    try:
        with fsspec.open(str(path), "r", encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError as exc:
        raise DataError("feature pipeline state not found", file=str(path)) from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"feature pipeline state is not valid JSON: {exc}", file=str(path)) from exc
    check_header(data, str(path))
    return data


def check_header(data: Any, where: str | None = None) -> None:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"not a feature pipeline state (expected format '{FORMAT}')", file=where)
    if data.get("version") != VERSION:
        raise DataError(
            f"feature pipeline state version {data.get('version')!r} is not supported "
            f"(this code reads version {VERSION})", file=where,
        )
