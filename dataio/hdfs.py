"""HDFS as fsspec file systems over WebHDFS: ``hdfs://`` through pyhdfs, ``webhdfs://`` through fsspec.

Both speak the NameNode's WebHDFS REST API (HTTP, default port 9870 in Hadoop 3, 50070 in
Hadoop 2), so neither needs a JVM or libhdfs. ``hdfs://namenode:port/path`` names the
NameNode's *HTTP* port. fsspec's own ``hdfs://`` (pyarrow + libhdfs) is not used.

Both classes keep ``host:port`` in the URLs they show, so a listed file's URL opens again.
"""
from __future__ import annotations

import functools
import logging
import os
import posixpath
from typing import Any

from fsspec.implementations.webhdfs import WebHDFS as _FsspecWebHDFS
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem
from fsspec.utils import infer_storage_options

log = logging.getLogger(__name__)

DEFAULT_PORT = 9870


class WebHDFS(_FsspecWebHDFS):
    """fsspec's WebHDFS client with a network timeout and ``webhdfs://host:port/path`` URLs."""

    def __init__(self, host: str, port: int = DEFAULT_PORT, timeout: float = 20.0, **kwargs: Any) -> None:
        self._timeout = timeout
        super().__init__(host, port=port, **kwargs)
        self._host_port = f"{host}:{port}"

    def _connect(self) -> None:
        super()._connect()
        self.session.request = functools.partial(self.session.request, timeout=self._timeout)

    def unstrip_protocol(self, name: str) -> str:
        path = self._strip_protocol(name)
        return f"webhdfs://{self._host_port}{path if path.startswith('/') else '/' + path}"


def _translate(exc: Exception, path: str) -> Exception:
    """pyhdfs' exceptions as the builtin ones fsspec callers expect."""
    import pyhdfs

    if isinstance(exc, pyhdfs.HdfsFileNotFoundException):
        return FileNotFoundError(path)
    if isinstance(exc, (pyhdfs.HdfsAccessControlException, pyhdfs.HdfsSecurityException)):
        return PermissionError(f"access denied: {path}")
    if isinstance(exc, pyhdfs.HdfsFileAlreadyExistsException):
        return FileExistsError(path)
    return exc


class PyHdfsFileSystem(AbstractFileSystem):
    """``hdfs://namenode:port/path`` through pyhdfs (WebHDFS REST, NameNode HA host lists too).

    ``host`` may be a comma-separated list of NameNodes (HA); ``user`` defaults to
    ``HADOOP_USER_NAME``. Failover/retry inside pyhdfs is switched off (one try per NameNode):
    the caller's :class:`~dataio.retry.RetryPolicy` owns retrying.
    """

    protocol = ("hdfs",)
    root_marker = "/"

    def __init__(self, host: str, port: int | None = DEFAULT_PORT, user: str | None = None,
                 timeout: float = 20.0, scheme: str = "http", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        import pyhdfs
        import requests

        quiet = logging.getLogger("pyhdfs")
        if quiet.level == logging.NOTSET:  # it logs a traceback per failed try; we log one line
            quiet.setLevel(logging.ERROR)

        hosts = [h if ":" in h else f"{h}:{port or DEFAULT_PORT}" for h in str(host).split(",")]
        self._hosts = hosts
        self._session = requests.Session()
        self.client = pyhdfs.HdfsClient(
            hosts=hosts, randomize_hosts=False, user_name=user or os.environ.get("HADOOP_USER_NAME"),
            timeout=timeout, max_tries=1, retry_delay=0, scheme=scheme,
            requests_session=self._session)

    # -- paths
    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        p = infer_storage_options(path)["path"] if "://" in str(path) else str(path)
        p = "/" + p.lstrip("/")
        return p.rstrip("/") or "/"

    @staticmethod
    def _get_kwargs_from_urls(urlpath: str) -> dict:
        out = infer_storage_options(urlpath)
        kw = {}
        if out.get("host"):
            kw["host"] = out["host"]
        if out.get("port"):
            kw["port"] = int(out["port"])
        if out.get("username"):
            kw["user"] = out["username"]
        return kw

    def unstrip_protocol(self, name: str) -> str:
        return f"hdfs://{self._hosts[0]}{self._strip_protocol(name)}"

    def _call(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(path, *args, **kwargs)
        except Exception as exc:
            translated = _translate(exc, self.unstrip_protocol(path))
            if translated is exc:
                raise
            raise translated from exc

    # -- metadata
    @staticmethod
    def _entry(path: str, status: Any) -> dict:
        return {"name": path, "size": int(status.length), "type": status.type.lower(),
                "mtime": status.modificationTime / 1000.0, "replication": status.replication,
                "owner": status.owner, "group": status.group, "permission": status.permission}

    def info(self, path: str, **kwargs: Any) -> dict:
        path = self._strip_protocol(path)
        return self._entry(path, self._call("get_file_status", path))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list:
        path = self._strip_protocol(path)
        statuses = self._call("list_status", path)
        entries = []
        for st in statuses:
            name = path if not st.pathSuffix else posixpath.join(path, st.pathSuffix)
            entries.append(self._entry(name, st))
        entries.sort(key=lambda e: e["name"])
        return entries if detail else [e["name"] for e in entries]

    # -- changes
    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self._call("mkdirs", self._strip_protocol(path))

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        path = self._strip_protocol(path)
        if not exist_ok and self.exists(path):
            raise FileExistsError(path)
        self._call("mkdirs", path)

    def rm(self, path: str | list[str], recursive: bool = False, maxdepth: int | None = None) -> None:
        for p in [path] if isinstance(path, str) else path:
            p = self._strip_protocol(p)
            if not self._call("delete", p, recursive="true" if recursive else "false"):
                raise FileNotFoundError(self.unstrip_protocol(p))
        self.invalidate_cache()

    def rm_file(self, path: str) -> None:
        self.rm(path)

    def mv(self, path1: str, path2: str, recursive: bool = False, maxdepth: int | None = None,
           **kwargs: Any) -> None:
        """HDFS rename: atomic; fails (FileExistsError) when ``path2`` exists."""
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        if not self._call("rename", src, destination=dst):
            if self.exists(dst):
                raise FileExistsError(self.unstrip_protocol(dst))
            raise FileNotFoundError(self.unstrip_protocol(src))
        self.invalidate_cache()

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        with self.open(path1, "rb") as src, self.open(path2, "wb") as dst:
            while True:
                block = src.read(1 << 22)
                if not block:
                    break
                dst.write(block)

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None,
              autocommit: bool = True, cache_options: dict | None = None, **kwargs: Any,
              ) -> "PyHdfsFile":
        return PyHdfsFile(self, self._strip_protocol(path), mode=mode,
                          block_size=block_size or self.blocksize, autocommit=autocommit,
                          cache_options=cache_options, **kwargs)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        path = self._strip_protocol(path)
        size = None
        if start is not None and start < 0 or end is not None and end < 0:
            size = self.size(path)
        start = 0 if start is None else (start if start >= 0 else max(size + start, 0))
        params: dict = {"offset": start}
        if end is not None:
            end = end if end >= 0 else size + end
            if end <= start:
                return b""
            params["length"] = end - start
        with self._call("open", path, **params) as handle:
            return handle.read()


class PyHdfsFile(AbstractBufferedFile):
    """Reads by byte range (OPEN offset/length); writes by CREATE then APPEND per block."""

    fs: PyHdfsFileSystem

    def _fetch_range(self, start: int, end: int) -> bytes:
        start = max(start, 0)
        end = min(self.size, end)
        if start >= end:
            return b""
        handle = self.fs._call("open", self.path, offset=start, length=end - start)
        try:
            return handle.read()
        finally:
            handle.close()

    def _initiate_upload(self) -> None:
        self._created = False

    def _upload_chunk(self, final: bool = False) -> bool:
        data = self.buffer.getvalue()
        if not self._created:
            self.fs._call("create", self.path, data, overwrite="true")
            self._created = True
        elif data:
            self.fs._call("append", self.path, data)
        if final:
            self.fs.invalidate_cache()
        return True
