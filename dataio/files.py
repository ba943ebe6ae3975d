"""Path expansion: turn what a user wrote (file, directory, glob, any fsspec URL) into data files.

Done once, eagerly, when a :class:`~dataio.source.Source` is built, so a typo in a path fails
at start-up with the path in the message rather than deep inside the training loop. Every
shard expands the same paths to the same sorted list, which is what makes sharding by chunk
index deterministic across ranks and workers.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.core import url_to_fs

from trainer.errors import ConfigError, DataError

FORMATS = ("parquet", "csv", "jsonl")
_EXTENSIONS = {
    ".parquet": "parquet", ".pq": "parquet",
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".json": "jsonl", ".jsonl": "jsonl", ".ndjson": "jsonl",
}
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class DataFile:
    """One data file: where it lives (``fs`` + ``path``), how to show it (``url``), its format."""

    url: str
    path: str
    fs: fsspec.AbstractFileSystem
    format: str
    compression: str | None  # a codec fsspec understands ("gzip", ...) or None

    def open(self) -> Any:
        """A binary file object, decompressed on the fly (bounded memory, no temp copy)."""
        return self.fs.open(self.path, "rb", compression=self.compression)


def _strip_compression(name: str) -> tuple[str, str | None]:
    """Split ``x.csv.gz`` into ``("x.csv", "gzip")`` using fsspec's own codec table."""
    from fsspec.utils import infer_compression

    codec = infer_compression(name)
    if codec is None:
        return name, None
    return posixpath.splitext(name)[0], codec


def detect_format(name: str) -> str | None:
    """The format implied by a file name's extension (after any compression suffix), or None."""
    base, _ = _strip_compression(name.lower())
    return _EXTENSIONS.get(posixpath.splitext(base)[1])


def _is_hidden(relpath: str) -> bool:
    """Spark/Hive side files (``_SUCCESS``, ``.crc``, ``_temporary/``) are never data."""
    return any(part.startswith((".", "_")) for part in relpath.split("/"))


def _files_under(fs: fsspec.AbstractFileSystem, root: str) -> list[str]:
    return [p for p in fs.find(root) if not _is_hidden(posixpath.relpath(p, root))]


def _display(fs: fsspec.AbstractFileSystem, path: str) -> str:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return path if "file" in protocols else fs.unstrip_protocol(path)


def _expand_one(url: str, storage_options: dict,
                ) -> tuple[list[tuple[fsspec.AbstractFileSystem, str]], bool]:
    """The files a URL names, and whether it named one file directly."""
    try:
        fs, root = url_to_fs(url, **storage_options)
    except (ValueError, ImportError) as exc:  # unknown protocol, missing optional backend
        raise DataError(f"cannot open path {url!r}: {exc}", file=url) from exc
    if any(c in root for c in _GLOB_CHARS):
        found = []
        for match in fs.glob(root):  # a matched directory (e.g. "day=*") means its files
            found.extend(_files_under(fs, match) if fs.isdir(match) else [match])
        if not found:
            raise DataError(f"no files match {url!r}", file=url)
        return [(fs, p) for p in found], False
    if fs.isdir(root):
        found = _files_under(fs, root)
        if not found:
            raise DataError(f"directory {url!r} contains no files", file=url)
        return [(fs, p) for p in found], False
    if fs.isfile(root):
        return [(fs, root)], True
    raise DataError(f"no such file or directory: {url!r}", file=url)


def expand_paths(paths: str | list[str], format: str = "auto",
                 storage_options: dict | None = None) -> list[DataFile]:
    """Expand files, directories and globs into a sorted, de-duplicated list of data files.

    With ``format="auto"`` a directory keeps only files with a known data extension (so a
    README next to the data is ignored) and an explicitly named file must have one.
    """
    if format != "auto" and format not in FORMATS:
        raise ConfigError("format", f"unknown format {format!r}", ["auto", *FORMATS])
    urls = [paths] if isinstance(paths, str) else list(paths)
    if not urls:
        raise ConfigError("path", "no input path given")
    found: dict[str, DataFile] = {}
    for url in urls:
        if not isinstance(url, str) or not url:
            raise ConfigError("path", f"a path must be a non-empty string, got {url!r}")
        expanded, explicit = _expand_one(url, dict(storage_options or {}))
        kept = 0
        for fs, p in expanded:
            fmt = format if format != "auto" else detect_format(p)
            if fmt is None:
                if explicit:
                    raise DataError(
                        f"cannot tell the format of {url!r} from its extension; "
                        f"set format to one of {', '.join(FORMATS)}", file=url)
                continue
            codec = None if fmt == "parquet" else _strip_compression(p)[1]
            shown = _display(fs, p)
            found[shown] = DataFile(url=shown, path=p, fs=fs, format=fmt, compression=codec)
            kept += 1
        if kept == 0:
            raise DataError(f"no data files (.parquet, .csv, .jsonl, ...) found under {url!r}", file=url)
    return [found[k] for k in sorted(found)]
