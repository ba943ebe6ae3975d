"""Atomic-enough writes of checkpoints and exports to local, ``oss://``, ``hdfs://`` and
``webhdfs://`` paths: a reader never sees a torn file.

- local paths: temp file in the same directory + fsync + rename (:mod:`dataio.atomic`);
- object stores (``oss://``, ``s3://``, ``gs://``, ``memory://``): the object is published whole
  by one PUT, or for large files by a multipart upload whose object only appears at
  CompleteMultipartUpload (never ossfs' append-object writes, which expose partial objects);
- HDFS (``hdfs://``, ``webhdfs://``): written to a hidden ``.<name>.tmp-<id>`` sibling, then
  renamed over the target (HDFS rename is atomic; an existing target is deleted first, so a
  reader may briefly find no file, but never a partial one).

Every publish is retried on transient failures with the :class:`~dataio.retry.RetryPolicy`.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import fsspec

from dataio.atomic import atomic_write_bytes, default_file_mode
from dataio.credentials import redact_url
from dataio.filesystems import OBJECT_STORE_SCHEMES, endpoint_of, filesystem_for, scheme_of
from dataio.retry import RetryPolicy, with_retries

#: files at least this large go to OSS by multipart upload (parts of ``part_bytes``)
MULTIPART_THRESHOLD = 64 << 20
PART_BYTES = 16 << 20


def is_remote(url: str | os.PathLike) -> bool:
    """Whether ``url`` names a non-local file system (``oss://``, ``hdfs://``, ...)."""
    return scheme_of(str(url)) not in ("", "file", "local")


def _local_path(url: str) -> Path:
    return Path(url[len("file://"):] if url.startswith("file://") else url)


def atomic_upload(local_file: str | os.PathLike, url: str | os.PathLike,
                  storage_options: dict | None = None, retry: RetryPolicy | dict | None = None,
                  multipart_threshold: int = MULTIPART_THRESHOLD, part_bytes: int = PART_BYTES,
                  ) -> None:
    """Publish the finished local file ``local_file`` at ``url``, all or nothing."""
    url = str(url)
    if not is_remote(url):
        target = _local_path(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out, open(local_file, "rb") as src:
                if hasattr(os, "fchmod"):
                    os.fchmod(out.fileno(), default_file_mode())  # not mkstemp's private 0600
                shutil.copyfileobj(src, out, 1 << 22)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return
    policy = RetryPolicy.of(retry)
    fs, path = filesystem_for(url, storage_options, policy)
    scheme = scheme_of(url)
    if scheme == "oss":
        publish = lambda: _oss_publish(fs, path, str(local_file), multipart_threshold, part_bytes)  # noqa: E731
    elif scheme in OBJECT_STORE_SCHEMES:
        publish = lambda: fs.put_file(str(local_file), path)  # noqa: E731
    else:
        publish = lambda: _rename_publish(fs, path, str(local_file))  # noqa: E731
    shown = redact_url(url)
    try:
        with_retries(publish, what=f"write {shown}", endpoint=endpoint_of(url, storage_options),
                     policy=policy, file=shown)
    except Exception as exc:
        from dataio.files import remote_error
        from lingjie.errors import LingjieError

        if isinstance(exc, LingjieError):
            raise
        raise remote_error(exc, f"write {shown}", shown) from None


def atomic_write_url(url: str | os.PathLike, data: bytes, storage_options: dict | None = None,
                     retry: RetryPolicy | dict | None = None) -> None:
    """Write ``data`` to ``url`` so that readers see the old content or the new, whole."""
    url = str(url)
    if not is_remote(url):
        atomic_write_bytes(_local_path(url), data)
        return
    with atomic_open_url(url, storage_options, retry) as fh:
        fh.write(data)


@contextlib.contextmanager
def atomic_open_url(url: str | os.PathLike, storage_options: dict | None = None,
                    retry: RetryPolicy | dict | None = None) -> Iterator[BinaryIO]:
    """A binary file to write; published at ``url`` when the block ends without an error.

    The bytes go to a local temp file first (bounded memory for large checkpoints), so an
    exception inside the block publishes nothing.
    """
    fd, tmp = tempfile.mkstemp(prefix="lingjie-upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        atomic_upload(tmp, url, storage_options, retry)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def open_url(url: str | os.PathLike, mode: str = "rb", storage_options: dict | None = None,
             retry: RetryPolicy | dict | None = None):
    """Open ``url`` for reading with Lingjie's credentials and retry rules (a file object)."""
    url = str(url)
    if not is_remote(url):
        return open(_local_path(url), mode)
    policy = RetryPolicy.of(retry)
    fs, path = filesystem_for(url, storage_options, policy)
    shown = redact_url(url)
    return with_retries(lambda: fs.open(path, mode), what=f"open {shown}",
                        endpoint=endpoint_of(url, storage_options), policy=policy, file=shown)


def _oss_publish(fs: fsspec.AbstractFileSystem, path: str, local_file: str,
                 multipart_threshold: int, part_bytes: int) -> None:
    """One PutObject, or a multipart upload that is aborted if any part fails."""
    from oss2.models import PartInfo

    bucket, key = fs.split_path(path)
    size = os.path.getsize(local_file)
    fs.invalidate_cache(fs._parent(path))
    if size < multipart_threshold:
        with open(local_file, "rb") as fh:
            fs._call_oss("put_object", key, fh, bucket=bucket)
        return
    upload = fs._call_oss("init_multipart_upload", key, bucket=bucket)
    try:
        parts = []
        with open(local_file, "rb") as fh:
            number = 1
            while True:
                chunk = fh.read(part_bytes)
                if not chunk:
                    break
                out = fs._call_oss("upload_part", key, upload.upload_id, number, chunk, bucket=bucket)
                parts.append(PartInfo(number, out.etag, size=len(chunk), part_crc=out.crc))
                number += 1
        fs._call_oss("complete_multipart_upload", key, upload.upload_id, parts, bucket=bucket)
    except BaseException:
        with contextlib.suppress(Exception):
            fs._call_oss("abort_multipart_upload", key, upload.upload_id, bucket=bucket)
        raise


def _rename_publish(fs: fsspec.AbstractFileSystem, path: str, local_file: str) -> None:
    """Upload to a hidden sibling, then rename it over ``path`` (HDFS rename is atomic)."""
    parent, name = path.rsplit("/", 1) if "/" in path else ("", path)
    tmp = f"{parent}/.{name}.tmp-{uuid.uuid4().hex[:12]}"
    if parent:
        fs.makedirs(parent, exist_ok=True)
    try:
        with open(local_file, "rb") as src, fs.open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
        if fs.exists(path):
            fs.rm(path)
        fs.mv(tmp, path)
        if not fs.exists(path):  # fsspec's webhdfs ignores RENAME's {"boolean": false}
            raise OSError(f"rename of {tmp} to {path} failed")
    except BaseException:
        with contextlib.suppress(Exception):
            fs.rm(tmp)
        raise
