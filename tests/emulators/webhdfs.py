"""A WebHDFS emulator (NameNode + DataNode on two loopback ports) for pyhdfs and fsspec webhdfs.

The NameNode answers metadata operations and redirects data operations to the DataNode with
``307 Temporary Redirect``, as a real cluster does:

- NameNode: GETFILESTATUS, LISTSTATUS, GETCONTENTSUMMARY, GETHOMEDIRECTORY, MKDIRS, RENAME,
  DELETE (``recursive``), and OPEN (``offset``/``length``), CREATE (``overwrite``), APPEND
  as redirects to the DataNode;
- DataNode: OPEN streams the byte range, CREATE (PUT, answers 201) and APPEND (POST) write;
- errors are ``{"RemoteException": {"exception", "javaClassName", "message"}}`` with HDFS's
  status codes (404 FileNotFoundException, 403 FileAlreadyExistsException /
  AccessControlException, 400 IllegalArgumentException).

Optional checks: ``delegation_token`` (every NameNode request must carry ``delegation=``) and
``required_user`` (``user.name=``). Test hooks: ``calls`` counts operations by name,
``fail_next(n)`` answers the next ``n`` NameNode requests with 403 RetriableException (a
NameNode in safe mode).
"""
from __future__ import annotations

import collections
import json
import os
import posixpath
import shutil
import threading
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from tests.emulators._http import LoopbackServer, QuietHandler

PREFIX = "/webhdfs/v1"


class HdfsError(Exception):
    def __init__(self, status: int, exception: str, message: str) -> None:
        super().__init__(message)
        self.status, self.exception, self.message = status, exception, message


class WebHdfsEmulator:
    """Start with ``with WebHdfsEmulator(tmp_path) as hdfs:``; ``hdfs.port`` is the NameNode's."""

    def __init__(self, root: str | os.PathLike, delegation_token: str | None = None,
                 required_user: str | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.delegation_token = delegation_token
        self.required_user = required_user
        self.calls: collections.Counter = collections.Counter()
        self.users: collections.Counter = collections.Counter()
        self._fail = 0
        self._lock = threading.Lock()
        self._namenode = LoopbackServer(self._handler_class(datanode=False))
        self._datanode = LoopbackServer(self._handler_class(datanode=True))

    # -- life cycle
    @property
    def port(self) -> int:
        return self._namenode.port

    @property
    def datanode_port(self) -> int:
        return self._datanode.port

    def url(self, path: str = "/", scheme: str = "webhdfs") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def start(self) -> "WebHdfsEmulator":
        self._namenode.start()
        self._datanode.start()
        return self

    def stop(self) -> None:
        self._namenode.stop()
        self._datanode.stop()

    def __enter__(self) -> "WebHdfsEmulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, count: int) -> None:
        with self._lock:
            self._fail = count

    # -- direct (test-side) access
    def local(self, path: str) -> Path:
        parts = [p for p in posixpath.normpath("/" + path).split("/") if p]
        return self.root.joinpath(*parts) if parts else self.root

    def put(self, path: str, data: bytes) -> None:
        target = self.local(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def get(self, path: str) -> bytes:
        return self.local(path).read_bytes()

    # -- HTTP
    def _handler_class(self, datanode: bool) -> type:
        emu = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                emu._dispatch(self, datanode)

            do_PUT = do_POST = do_DELETE = do_GET

        return Handler

    def _dispatch(self, h: QuietHandler, datanode: bool) -> None:
        parts = urlsplit(h.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        op = query.get("op", "").upper()
        try:
            if not parts.path.startswith(PREFIX):
                raise HdfsError(404, "FileNotFoundException", f"no such servlet: {parts.path}")
            path = "/" + unquote(parts.path[len(PREFIX):]).lstrip("/")
            body = h.read_body() if h.command in ("PUT", "POST") else b""
            if datanode:
                self._datanode_op(h, op, path, query, body)
            else:
                with self._lock:
                    failing = self._fail > 0
                    if failing:
                        self._fail -= 1
                if failing:  # what a NameNode in safe mode / start-up answers
                    raise HdfsError(403, "RetriableException", "NameNode still in safe mode "
                                                               "(injected failure)")
                self._check_auth(query)
                self._namenode_op(h, op, path, query)
        except HdfsError as err:
            self.calls["error:" + err.exception] += 1
            payload = json.dumps({"RemoteException": {
                "exception": err.exception, "javaClassName": f"org.apache.hadoop.{err.exception}",
                "message": err.message}}).encode()
            h.reply(err.status, payload, content_type="application/json")

    def _check_auth(self, query: dict) -> None:
        if "user.name" in query:
            self.users[query["user.name"]] += 1
        if self.delegation_token is not None and query.get("delegation") != self.delegation_token:
            raise HdfsError(403, "SecurityException", "Failed to obtain user group information: "
                                                      "invalid or missing delegation token")
        if self.required_user is not None and query.get("user.name") != self.required_user:
            raise HdfsError(403, "AccessControlException",
                            f"Permission denied: user={query.get('user.name', 'dr.who')}")

    @staticmethod
    def _json(h: QuietHandler, obj: object, status: int = 200) -> None:
        h.reply(status, json.dumps(obj).encode(), content_type="application/json")

    def _status(self, local: Path, suffix: str) -> dict:
        st = local.stat()
        is_dir = local.is_dir()
        return {"accessTime": int(st.st_atime * 1000), "blockSize": 0 if is_dir else 134217728,
                "childrenNum": len(os.listdir(local)) if is_dir else 0,
                "fileId": st.st_ino, "group": "supergroup", "length": 0 if is_dir else st.st_size,
                "modificationTime": int(st.st_mtime * 1000), "owner": "hdfs",
                "pathSuffix": suffix, "permission": "755" if is_dir else "644",
                "replication": 0 if is_dir else 3, "storagePolicy": 0,
                "type": "DIRECTORY" if is_dir else "FILE"}

    def _existing(self, path: str) -> Path:
        local = self.local(path)
        if not local.exists():
            raise HdfsError(404, "FileNotFoundException", f"File does not exist: {path}")
        return local

    def _redirect(self, h: QuietHandler, path: str, query: dict) -> None:
        query = {k: v for k, v in query.items() if k not in ("user.name", "delegation")}
        query["namenoderpcaddress"] = f"127.0.0.1:{self.port}"
        location = (f"http://127.0.0.1:{self.datanode_port}{PREFIX}{quote(path)}?"
                    f"{urlencode(query)}")
        h.reply(307, b"", {"Location": location}, "application/octet-stream")

    def _namenode_op(self, h: QuietHandler, op: str, path: str, query: dict) -> None:
        m = h.command
        self.calls[op] += 1
        if m == "GET" and op == "GETFILESTATUS":
            self._json(h, {"FileStatus": self._status(self._existing(path), "")})
        elif m == "GET" and op == "LISTSTATUS":
            local = self._existing(path)
            if local.is_dir():
                entries = [self._status(local / n, n) for n in sorted(os.listdir(local))
                           if not n.startswith(".emulator-")]
            else:
                entries = [self._status(local, "")]
            self._json(h, {"FileStatuses": {"FileStatus": entries}})
        elif m == "GET" and op == "GETCONTENTSUMMARY":
            local = self._existing(path)
            files = [p for p in local.rglob("*") if p.is_file()] if local.is_dir() else [local]
            dirs = [p for p in local.rglob("*") if p.is_dir()] if local.is_dir() else []
            length = sum(p.stat().st_size for p in files)
            self._json(h, {"ContentSummary": {
                "directoryCount": len(dirs) + int(local.is_dir()), "fileCount": len(files),
                "length": length, "quota": -1, "spaceConsumed": 3 * length, "spaceQuota": -1,
                "typeQuota": {}}})
        elif m == "GET" and op == "GETHOMEDIRECTORY":
            self._json(h, {"Path": f"/user/{query.get('user.name', 'dr.who')}"})
        elif m == "GET" and op == "OPEN":
            local = self._existing(path)
            if local.is_dir():
                raise HdfsError(404, "FileNotFoundException", f"Path is not a file: {path}")
            offset = int(query.get("offset", 0))
            if offset > local.stat().st_size:
                raise HdfsError(403, "IOException", f"Offset={offset} out of the range")
            self._redirect(h, path, query)
        elif m == "PUT" and op == "CREATE":
            local = self.local(path)
            overwrite = query.get("overwrite", "false").lower() == "true"
            if local.is_dir():
                raise HdfsError(403, "FileAlreadyExistsException", f"{path} is a directory")
            if local.exists() and not overwrite:
                raise HdfsError(403, "FileAlreadyExistsException", f"{path} already exists")
            self._redirect(h, path, query)
        elif m == "POST" and op == "APPEND":
            local = self._existing(path)
            if local.is_dir():
                raise HdfsError(403, "IOException", f"Cannot append to directory {path}")
            self._redirect(h, path, query)
        elif m == "PUT" and op == "MKDIRS":
            local = self.local(path)
            if local.is_file():
                raise HdfsError(403, "FileAlreadyExistsException", f"Parent path is not a directory: {path}")
            local.mkdir(parents=True, exist_ok=True)
            self._json(h, {"boolean": True})
        elif m == "PUT" and op == "RENAME":
            dest = query.get("destination", "")
            if not dest.startswith("/"):
                raise HdfsError(400, "IllegalArgumentException", f"Invalid destination: {dest}")
            src, dst = self.local(path), self.local(dest)
            if not src.exists() or dst.exists() and not dst.is_dir() or not dst.parent.is_dir():
                self._json(h, {"boolean": False})  # HDFS reports a failed rename as false
                return
            if dst.is_dir():
                dst = dst / src.name
                if dst.exists():
                    self._json(h, {"boolean": False})
                    return
            os.rename(src, dst)
            self._json(h, {"boolean": True})
        elif m == "DELETE" and op == "DELETE":
            local = self.local(path)
            if not local.exists():
                self._json(h, {"boolean": False})
                return
            if local.is_dir():
                if os.listdir(local) and query.get("recursive", "false").lower() != "true":
                    raise HdfsError(403, "PathIsNotEmptyDirectoryException", f"{path} is non empty")
                shutil.rmtree(local)
            else:
                local.unlink()
            self._json(h, {"boolean": True})
        else:
            raise HdfsError(400, "IllegalArgumentException", f"Invalid value for webhdfs parameter "
                                                             f"\"op\": {op} with {m}")

    def _datanode_op(self, h: QuietHandler, op: str, path: str, query: dict, body: bytes) -> None:
        self.calls["datanode:" + op] += 1
        local = self.local(path)
        if op == "OPEN":
            if not local.is_file():
                raise HdfsError(404, "FileNotFoundException", f"File does not exist: {path}")
            offset = int(query.get("offset", 0))
            length = query.get("length")
            with open(local, "rb") as fh:
                fh.seek(offset)
                data = fh.read(int(length)) if length is not None else fh.read()
            h.reply(200, data, content_type="application/octet-stream")
        elif op == "CREATE" and h.command == "PUT":
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(f".emulator-{uuid.uuid4().hex}")
            tmp.write_bytes(body)
            os.replace(tmp, local)
            h.reply(201, b"", {"Location": f"hdfs://127.0.0.1:{self.port}{quote(path)}"})
        elif op == "APPEND" and h.command == "POST":
            if not local.is_file():
                raise HdfsError(404, "FileNotFoundException", f"File does not exist: {path}")
            with open(local, "ab") as fh:
                fh.write(body)
            h.reply(200, b"")
        else:
            raise HdfsError(400, "IllegalArgumentException", f"op {op} is not a DataNode operation")
