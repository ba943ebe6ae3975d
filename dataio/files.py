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

from dataio.credentials import redact_url
from dataio.filesystems import endpoint_of, filesystem_for, scheme_of
from dataio.retry import RetryPolicy, with_retries
from lingjie.errors import ConfigError, DataError

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
    retry: RetryPolicy | None = None  # remote files: retry opening on a transient failure
    endpoint: str = ""  # the server, as shown in errors (no credentials)

    def open(self) -> Any:
        """A binary file object, decompressed on the fly (bounded memory, no temp copy)."""
        if self.retry is None:
            return self.fs.open(self.path, "rb", compression=self.compression)
        return with_retries(lambda: self.fs.open(self.path, "rb", compression=self.compression),
                            what=f"open {self.url}", endpoint=self.endpoint, policy=self.retry,
                            file=self.url)


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


def _expand_one(url: str, storage_options: dict, retry: RetryPolicy,
                ) -> tuple[list[tuple[fsspec.AbstractFileSystem, str]], bool]:
    """The files a URL names, and whether it named one file directly."""
    fs, root = filesystem_for(url, storage_options, retry)  # ConfigError/DataError on a bad URL
    if not scheme_of(url) or scheme_of(url) in ("file", "local", "memory"):
        return _list(fs, root, url)
    shown = redact_url(url)

    def probe_and_list() -> tuple[list[tuple[fsspec.AbstractFileSystem, str]], bool]:
        _probe(fs, root)
        return _list(fs, root, shown)

    try:
        return with_retries(probe_and_list, what=f"list {shown}",
                            endpoint=endpoint_of(url, storage_options), policy=retry, file=shown)
    except (ConfigError, DataError):
        raise
    except Exception as exc:  # a client library's own error: one clear, redacted DataError
        raise remote_error(exc, f"list {shown}", shown) from None


def _probe(fs: fsspec.AbstractFileSystem, root: str) -> None:
    """Touch the deepest glob-free directory of ``root``, so that an unreachable endpoint or
    a permission error surfaces here: fsspec's glob/walk/isdir turn any OSError (a refused
    connection too) into "no such file"."""
    cut = min((root.find(c) for c in _GLOB_CHARS if c in root), default=-1)
    base = root if cut < 0 else root[:cut].rsplit("/", 1)[0]
    if not base:
        return
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    try:
        if "oss" in protocols and "/" not in base.strip("/"):
            fs.ls(base)  # a bucket: ossfs' info() would ListBuckets, often not permitted
        else:
            fs.info(base)
    except FileNotFoundError:
        pass


def remote_error(exc: BaseException, what: str, file: str | None) -> DataError:
    """A DataError for a remote client's non-transient failure (access denied, bad request)."""
    from dataio.retry import describe

    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    if isinstance(exc, PermissionError) or status in (401, 403):
        return DataError(f"access denied to {what} ({describe(exc)}); check the credentials "
                         "and their permissions on this path", file=file)
    return DataError(f"cannot {what}: {describe(exc)}", file=file)


def _list(fs: fsspec.AbstractFileSystem, root: str, url: str,
          ) -> tuple[list[tuple[fsspec.AbstractFileSystem, str]], bool]:
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
                 storage_options: dict | None = None,
                 retry: RetryPolicy | dict | None = None) -> list[DataFile]:
    """Expand files, directories and globs into a sorted, de-duplicated list of data files.

    With ``format="auto"`` a directory keeps only files with a known data extension (so a
    README next to the data is ignored) and an explicitly named file must have one.
    Remote URLs (``oss://``, ``hdfs://``, ``webhdfs://``, ...) are listed with bounded
    retries (``retry``, a :class:`~dataio.retry.RetryPolicy`); an unreachable endpoint ends
    in one DataError naming it.
    """
    policy = RetryPolicy.of(retry)
    if format != "auto" and format not in FORMATS:
        raise ConfigError("format", f"unknown format {format!r}", ["auto", *FORMATS])
    urls = [paths] if isinstance(paths, str) else list(paths)
    if not urls:
        raise ConfigError("path", "no input path given")
    found: dict[str, DataFile] = {}
    for url in urls:
        if not isinstance(url, str) or not url:
            raise ConfigError("path", f"a path must be a non-empty string, got {url!r}")
        expanded, explicit = _expand_one(url, dict(storage_options or {}), policy)
        remote = bool(scheme_of(url)) and scheme_of(url) not in ("file", "local", "memory")
        kept = 0
        for fs, p in expanded:
            fmt = format if format != "auto" else detect_format(p)
            if fmt is None:
                if explicit:
                    raise DataError(
                        f"cannot tell the format of {redact_url(url)!r} from its extension; "
                        f"set format to one of {', '.join(FORMATS)}", file=redact_url(url))
                continue
            codec = None if fmt == "parquet" else _strip_compression(p)[1]
            shown = _display(fs, p)
            found[shown] = DataFile(url=shown, path=p, fs=fs, format=fmt, compression=codec,
                                    retry=policy if remote else None,
                                    endpoint=endpoint_of(url, storage_options) if remote else "")
            kept += 1
        if kept == 0:
            raise DataError(f"no data files (.parquet, .csv, .jsonl, ...) found under "
                            f"{redact_url(url)!r}", file=redact_url(url))
    return [found[k] for k in sorted(found)]
