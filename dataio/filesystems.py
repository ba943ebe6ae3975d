"""Which fsspec file system opens a URL, with Lingjie's credential and retry rules applied.

- ``oss://bucket/key``: ossfs, endpoint and credentials from :func:`dataio.credentials.resolve_oss`
  (a missing one is a ConfigError naming the environment variables to set);
- ``hdfs://namenode:port/path``: pyhdfs over WebHDFS (:class:`dataio.hdfs.PyHdfsFileSystem`);
- ``webhdfs://namenode:port/path``: fsspec's WebHDFS (:class:`dataio.hdfs.WebHDFS`);
- anything else: fsspec's own ``url_to_fs`` (local paths, ``file://``, ``memory://``, ...).

``storage_options`` are passed to the file system (less the keys Lingjie consumes). The
retry policy's ``timeout_s`` becomes the per-request timeout of clients that take one.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import fsspec
from fsspec.core import url_to_fs
from fsspec.utils import infer_storage_options

from dataio.credentials import SECRET_KEYS, redact_url, remember_secret, resolve_oss
from dataio.retry import RetryPolicy
from lingjie.errors import ConfigError, DataError

REMOTE_SCHEMES = ("oss", "hdfs", "webhdfs", "viewfs", "s3", "s3a", "gs", "gcs", "abfs", "az",
                  "http", "https")
OBJECT_STORE_SCHEMES = ("oss", "s3", "s3a", "gs", "gcs", "abfs", "az", "memory")


def scheme_of(url: str) -> str:
    """The URL's scheme in lower case; ``""`` for a plain local path."""
    return url.split("://", 1)[0].lower() if "://" in url else ""


def endpoint_of(url: str, storage_options: dict | None = None) -> str:
    """The server a URL talks to, fit to show in an error (no credentials)."""
    scheme = scheme_of(url)
    if scheme == "oss":
        endpoint = (storage_options or {}).get("endpoint")
        if not endpoint:
            try:
                endpoint = resolve_oss(storage_options).endpoint
            except ConfigError:
                endpoint = "?"
        bucket = urlsplit(url).netloc
        return redact_url(f"{endpoint} (bucket {bucket})")
    if scheme:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return redact_url(f"{scheme}://{host}{port}")
    return "the local file system"


def _remember(options: dict) -> None:
    for k, v in options.items():
        if str(k).lower() in SECRET_KEYS and isinstance(v, str):
            remember_secret(v)


def _oss(url: str, options: dict, policy: RetryPolicy) -> tuple[fsspec.AbstractFileSystem, str]:
    from ossfs import OSSFileSystem

    creds = resolve_oss(options)
    rest = {k: v for k, v in options.items()
            if k not in ("endpoint", "key", "secret", "token", "anon")}
    rest.setdefault("skip_instance_cache", True)  # a fresh listing cache per source
    fs = OSSFileSystem(**creds.ossfs_options(), **rest)
    return fs, OSSFileSystem._strip_protocol(url).lstrip("/")


def _hdfs(url: str, options: dict, policy: RetryPolicy) -> tuple[fsspec.AbstractFileSystem, str]:
    from dataio.hdfs import PyHdfsFileSystem

    import os

    kw = {**PyHdfsFileSystem._get_kwargs_from_urls(url), **options}
    kw.setdefault("timeout", policy.timeout_s)
    if os.environ.get("HADOOP_USER_NAME"):  # explicit, so fsspec's instance cache keys on it
        kw.setdefault("user", os.environ["HADOOP_USER_NAME"])
    if "host" not in kw:
        raise ConfigError("path", f"{redact_url(url)!r} names no NameNode: write "
                                  "hdfs://namenode:port/path (port: the NameNode's HTTP port)")
    return PyHdfsFileSystem(**kw), PyHdfsFileSystem._strip_protocol(url)


def _webhdfs(url: str, options: dict, policy: RetryPolicy) -> tuple[fsspec.AbstractFileSystem, str]:
    import os

    from dataio.hdfs import DEFAULT_PORT, WebHDFS

    parsed = infer_storage_options(url)
    if not parsed.get("host"):
        raise ConfigError("path", f"{redact_url(url)!r} names no NameNode: write "
                                  "webhdfs://namenode:port/path")
    kw: dict[str, Any] = {"host": parsed["host"], "port": int(parsed.get("port") or DEFAULT_PORT)}
    if parsed.get("username"):
        kw["user"] = parsed["username"]
    kw.update(options)
    kw.setdefault("timeout", policy.timeout_s)
    if "user" not in kw and "token" not in kw and not kw.get("kerberos") and os.environ.get("HADOOP_USER_NAME"):
        kw["user"] = os.environ["HADOOP_USER_NAME"]
    return WebHDFS(**kw), WebHDFS._strip_protocol(url)


_BUILDERS = {"oss": _oss, "hdfs": _hdfs, "webhdfs": _webhdfs}


def filesystem_for(url: str, storage_options: dict | None = None,
                   retry: RetryPolicy | dict | None = None,
                   ) -> tuple[fsspec.AbstractFileSystem, str]:
    """The file system and the path inside it for ``url`` (no network call is made here)."""
    options = dict(storage_options or {})
    _remember(options)
    policy = RetryPolicy.of(retry)
    builder = _BUILDERS.get(scheme_of(url))
    try:
        if builder is not None:
            return builder(url, options, policy)
        return url_to_fs(url, **options)
    except ImportError as exc:
        extra = " (pip install 'lingjie[cloud]')" if scheme_of(url) in _BUILDERS else ""
        raise DataError(f"cannot open path {redact_url(url)!r}: {exc}{extra}",
                        file=redact_url(url)) from None
    except (ValueError, TypeError) as exc:  # unknown protocol, bad option
        raise DataError(f"cannot open path {redact_url(url)!r}: {type(exc).__name__}: "
                        f"{redact_url(str(exc))}", file=redact_url(url)) from None
