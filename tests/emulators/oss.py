"""An Alibaba Cloud OSS emulator for the real oss2 / ossfs clients (loopback only, temp-dir backed).

Implemented, with OSS's wire formats (path-style URLs, as oss2 uses for an IP endpoint):

- service: ListBuckets (``GET /``);
- bucket: PutBucket, GetBucketInfo (``?bucketInfo``), ListObjects v1 (prefix, delimiter,
  marker, max-keys, ``encoding-type=url``, pagination), DeleteMultipleObjects (``POST ?delete``);
- object: PutObject, CopyObject (``x-oss-copy-source``), GetObject with ``Range`` (RFC 7233,
  inclusive; ``x-oss-range-behavior: standard`` gives 416 past the end), HeadObject and
  GetObjectMeta (``HEAD ?objectMeta``), DeleteObject, AppendObject (``POST ?append&position``),
  multipart (InitiateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload);
- V1 request signatures (``Authorization: OSS id:signature``, HMAC-SHA1) are verified against
  the configured key pair; errors are OSS's XML ``<Error>`` bodies (``x-oss-err`` for HEAD);
- ``x-oss-hash-crc64ecma`` on writes and reads, which oss2 checks.

Test hooks: ``calls`` counts requests by operation, ``fail_next(n)`` answers the next ``n``
requests with 503 (a transient server error), ``corrupt(bucket, key, data)`` writes bytes
behind the API's back.
"""
from __future__ import annotations

import base64
import collections
import email.utils
import hashlib
import hmac
import os
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.etree import ElementTree as ET

from tests.emulators._http import LoopbackServer, QuietHandler

try:  # oss2 depends on crcmod; the emulator sends CRCs when it is there
    import crcmod

    _crc64 = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True)
except ImportError:  # pragma: no cover
    _crc64 = None

SUBRESOURCES = frozenset([
    "response-content-type", "response-content-language", "response-cache-control", "logging",
    "response-content-encoding", "acl", "uploadId", "uploads", "partNumber", "group", "link",
    "delete", "website", "location", "objectInfo", "objectMeta", "response-expires",
    "response-content-disposition", "cors", "lifecycle", "restore", "qos", "referer", "stat",
    "bucketInfo", "append", "position", "security-token", "live", "comp", "status", "vod",
    "startTime", "endTime", "x-oss-process", "symlink", "callback", "callback-var", "tagging",
    "encryption", "versions", "versioning", "versionId", "policy", "requestPayment",
    "x-oss-traffic-limit", "qosInfo", "asyncFetch", "x-oss-request-payer", "sequential",
    "inventory", "inventoryId", "continuation-token", "worm", "wormId", "wormExtend",
    "replication", "replicationLocation", "replicationProgress", "transferAcceleration", "cname",
    "metaQuery", "resourceGroup", "style", "styleName", "regionList"])


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def _xml(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def _sub(parent: ET.Element, tag: str, text: object = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = str(text)
    return el


class OssError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class OssEmulator:
    """Start with ``with OssEmulator(tmp_path) as oss:``; ``oss.endpoint`` is its URL."""

    def __init__(self, root: str | os.PathLike, access_key_id: str = "LTAIemulatorKey",
                 access_key_secret: str = "emulator-secret-0123456789",
                 security_token: str | None = None, allow_anonymous: bool = False,
                 port: int = 0) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.security_token = security_token
        self.allow_anonymous = allow_anonymous
        self.calls: collections.Counter = collections.Counter()
        self.bytes_sent = 0
        self._lock = threading.Lock()
        self._fail = 0
        self._uploads: dict[str, tuple[str, str]] = {}  # upload id -> (bucket, key)
        self._types: dict[tuple[str, str], str] = {}  # (bucket, key) -> Normal/Appendable/Multipart
        self._digests: dict[tuple[str, str], tuple[str, int | None]] = {}  # -> (etag, crc64)
        self._server = LoopbackServer(self._handler_class(), port)

    # -- life cycle
    @property
    def port(self) -> int:
        return self._server.port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "OssEmulator":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> "OssEmulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def storage_options(self) -> dict:
        """``storage_options`` that point ossfs at this emulator with its credentials."""
        opts = {"endpoint": self.endpoint, "key": self.access_key_id,
                "secret": self.access_key_secret}
        if self.security_token:
            opts["token"] = self.security_token
        return opts

    # -- direct (test-side) access
    def _bucket_dir(self, bucket: str) -> Path:
        return self.root / bucket

    def _object_path(self, bucket: str, key: str) -> Path:
        return self._bucket_dir(bucket) / "objects" / quote(key, safe="")

    def create_bucket(self, bucket: str) -> None:
        (self._bucket_dir(bucket) / "objects").mkdir(parents=True, exist_ok=True)
        (self._bucket_dir(bucket) / "uploads").mkdir(parents=True, exist_ok=True)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.create_bucket(bucket)
        self._write(bucket, key, data, "Normal")

    def corrupt(self, bucket: str, key: str, data: bytes) -> None:
        """Overwrite an object's bytes without the API (ETag and CRC keep the old values)."""
        self._object_path(bucket, key).write_bytes(data)

    def get(self, bucket: str, key: str) -> bytes:
        return self._object_path(bucket, key).read_bytes()

    def keys(self, bucket: str) -> list[str]:
        d = self._bucket_dir(bucket) / "objects"
        return sorted(unquote(p.name) for p in d.iterdir() if not p.name.startswith(".tmp-"))

    def fail_next(self, count: int) -> None:
        """Answer the next ``count`` requests with 503 ServiceUnavailable."""
        with self._lock:
            self._fail = count

    def _write(self, bucket: str, key: str, data: bytes, kind: str, etag: str | None = None) -> None:
        path = self._object_path(bucket, key)
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}")
        tmp.write_bytes(data)
        self._digests[(bucket, key)] = (etag or hashlib.md5(data).hexdigest().upper(),
                                        _crc64(data) if _crc64 is not None else None)
        os.replace(tmp, path)  # readers see the old or the new object, whole
        self._types[(bucket, key)] = kind

    def _digest(self, bucket: str, key: str) -> tuple[str, int | None]:
        if (bucket, key) not in self._digests:  # written behind the API's back
            data = self._object_path(bucket, key).read_bytes()
            self._digests[(bucket, key)] = (hashlib.md5(data).hexdigest().upper(),
                                            _crc64(data) if _crc64 is not None else None)
        return self._digests[(bucket, key)]

    # -- the HTTP side
    def _handler_class(self) -> type:
        emu = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                emu._dispatch(self)

            do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

        return Handler

    def _dispatch(self, h: QuietHandler) -> None:
        parts = urlsplit(h.path)
        path = unquote(parts.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        body = h.read_body() if h.command in ("PUT", "POST") else b""
        bucket, _, key = path.lstrip("/").partition("/")
        request_id = uuid.uuid4().hex[:24].upper()
        try:
            with self._lock:
                failing = self._fail > 0
                if failing:
                    self._fail -= 1
            if failing:
                raise OssError(503, "ServiceUnavailable", "injected failure")
            self._authenticate(h, bucket, key, query)
            status, headers, payload = self._route(h, bucket, key, query, body)
        except OssError as err:
            self.calls["error:" + err.code] += 1
            root = ET.Element("Error")
            _sub(root, "Code", err.code)
            _sub(root, "Message", err.message)
            _sub(root, "RequestId", request_id)
            _sub(root, "HostId", f"127.0.0.1:{self.port}")
            payload = _xml(root)
            headers = {"x-oss-request-id": request_id}
            if h.command == "HEAD":
                headers["x-oss-err"] = base64.b64encode(payload).decode()
            h.reply(err.status, payload, headers, "application/xml")
            return
        headers = {"x-oss-request-id": request_id, "Server": "OssEmulator", **headers}
        if h.command == "HEAD":
            h.send_response(status)
            for k, v in headers.items():
                h.send_header(k, str(v))
            h.end_headers()
            return
        self.bytes_sent += len(payload)
        h.reply(status, payload, headers)

    def _authenticate(self, h: QuietHandler, bucket: str, key: str, query: dict) -> None:
        auth = h.headers.get("Authorization")
        if not auth:
            if self.allow_anonymous:
                return
            raise OssError(403, "AccessDenied", "anonymous access is forbidden for this bucket")
        if not auth.startswith("OSS ") or ":" not in auth:
            raise OssError(400, "InvalidArgument", "Authorization header is invalid")
        key_id, signature = auth[4:].rsplit(":", 1)
        if key_id != self.access_key_id:
            raise OssError(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist")
        if self.security_token and h.headers.get("x-oss-security-token") != self.security_token:
            raise OssError(403, "InvalidSecurityToken", "The security token you provided is invalid")
        canon = sorted((k.lower(), v) for k, v in h.headers.items() if k.lower().startswith("x-oss-"))
        headers_part = "".join(f"{k}:{v}\n" for k, v in canon)
        subs = sorted((k, v) for k, v in query.items() if k in SUBRESOURCES)
        sub = ("?" + "&".join(k + "=" + v if v else k for k, v in subs)) if subs else ""
        resource = f"/{bucket}/{key}{sub}" if bucket else f"/{sub}"
        to_sign = "\n".join([h.command, h.headers.get("Content-MD5", ""), h.headers.get("Content-Type", ""),
                             h.headers.get("x-oss-date") or h.headers.get("Date", ""),
                             headers_part + resource])
        expected = base64.b64encode(hmac.new(self.access_key_secret.encode(), to_sign.encode(),
                                             hashlib.sha1).digest()).decode()
        if not hmac.compare_digest(expected, signature):
            raise OssError(403, "SignatureDoesNotMatch",
                           "The request signature we calculated does not match the signature you provided")

    def _route(self, h: QuietHandler, bucket: str, key: str, query: dict, body: bytes,
               ) -> tuple[int, dict, bytes]:
        m = h.command
        if not bucket:
            self.calls["ListBuckets"] += 1
            return self._list_buckets()
        bdir = self._bucket_dir(bucket)
        if not key:
            if m == "PUT":
                self.calls["PutBucket"] += 1
                self.create_bucket(bucket)
                return 200, {}, b""
            if not bdir.is_dir():
                raise OssError(404, "NoSuchBucket", "The specified bucket does not exist.")
            if m == "GET" and "bucketInfo" in query:
                self.calls["GetBucketInfo"] += 1
                return self._bucket_info(bucket)
            if m == "GET":
                self.calls["ListObjects"] += 1
                return self._list_objects(bucket, query)
            if m == "POST" and "delete" in query:
                self.calls["DeleteMultipleObjects"] += 1
                return self._delete_many(bucket, body)
            raise OssError(405, "MethodNotAllowed", f"{m} on a bucket is not supported here")
        if not bdir.is_dir():
            raise OssError(404, "NoSuchBucket", "The specified bucket does not exist.")
        if m == "PUT" and "uploadId" in query:
            self.calls["UploadPart"] += 1
            return self._upload_part(bucket, key, query, body)
        if m == "PUT" and h.headers.get("x-oss-copy-source"):
            self.calls["CopyObject"] += 1
            return self._copy(bucket, key, h.headers["x-oss-copy-source"])
        if m == "PUT":
            self.calls["PutObject"] += 1
            self._write(bucket, key, body, "Normal")
            return 200, self._etag_headers(body), b""
        if m == "POST" and "uploads" in query:
            self.calls["InitiateMultipartUpload"] += 1
            return self._init_upload(bucket, key)
        if m == "POST" and "uploadId" in query:
            self.calls["CompleteMultipartUpload"] += 1
            return self._complete_upload(bucket, key, query["uploadId"], body)
        if m == "POST" and "append" in query:
            self.calls["AppendObject"] += 1
            return self._append(bucket, key, int(query.get("position", "0")), body)
        if m == "DELETE" and "uploadId" in query:
            self.calls["AbortMultipartUpload"] += 1
            self._uploads.pop(query["uploadId"], None)
            return 204, {}, b""
        if m == "DELETE":
            self.calls["DeleteObject"] += 1
            self._object_path(bucket, key).unlink(missing_ok=True)
            self._types.pop((bucket, key), None)
            self._digests.pop((bucket, key), None)
            return 204, {}, b""
        path = self._object_path(bucket, key)
        if not path.is_file():
            raise OssError(404, "NoSuchKey", "The specified key does not exist.")
        if m == "HEAD":
            self.calls["GetObjectMeta" if "objectMeta" in query else "HeadObject"] += 1
            return 200, {**self._meta_headers(bucket, key, path),
                         "Content-Length": path.stat().st_size}, b""
        if m == "GET":
            return self._get_object(h, bucket, key, path)
        raise OssError(405, "MethodNotAllowed", f"{m} on an object is not supported here")

    # -- operations
    def _etag_headers(self, data: bytes, etag: str | None = None) -> dict:
        headers = {"ETag": f'"{etag or hashlib.md5(data).hexdigest().upper()}"'}
        if _crc64 is not None:
            headers["x-oss-hash-crc64ecma"] = str(_crc64(data))
        return headers

    def _meta_headers(self, bucket: str, key: str, path: Path) -> dict:
        etag, crc = self._digest(bucket, key)
        headers = {"ETag": f'"{etag}"'}
        if crc is not None:
            headers["x-oss-hash-crc64ecma"] = str(crc)
        return {**headers,
                "Last-Modified": email.utils.formatdate(path.stat().st_mtime, usegmt=True),
                "x-oss-object-type": self._types.get((bucket, key), "Normal"),
                "Content-Type": "application/octet-stream",
                "Accept-Ranges": "bytes"}

    def _get_object(self, h: QuietHandler, bucket: str, key: str, path: Path) -> tuple[int, dict, bytes]:
        size = path.stat().st_size
        headers = self._meta_headers(bucket, key, path)
        rng = h.headers.get("Range")
        if not rng:
            self.calls["GetObject"] += 1
            return 200, headers, path.read_bytes()
        self.calls["GetObjectRange"] += 1
        spec = rng.split("=", 1)[1]
        first_s, _, last_s = spec.partition("-")
        if first_s == "":  # suffix: the last N bytes
            first, last = max(size - int(last_s), 0), size - 1
        else:
            first = int(first_s)
            last = int(last_s) if last_s else size - 1
        standard = h.headers.get("x-oss-range-behavior", "").lower() == "standard"
        if first >= size or last < first:
            if standard:
                raise OssError(416, "InvalidRange", "The requested range is not satisfiable")
            return 200, headers, path.read_bytes()  # OSS's legacy behaviour: the whole object
        last = min(last, size - 1)
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        with open(path, "rb") as fh:
            fh.seek(first)
            return 206, headers, fh.read(last - first + 1)

    def _list_buckets(self) -> tuple[int, dict, bytes]:
        root = ET.Element("ListAllMyBucketsResult")
        owner = _sub(root, "Owner")
        _sub(owner, "ID", "emulator")
        _sub(owner, "DisplayName", "emulator")
        buckets = _sub(root, "Buckets")
        for d in sorted(p for p in self.root.iterdir() if p.is_dir()):
            b = _sub(buckets, "Bucket")
            _sub(b, "CreationDate", _iso(d.stat().st_mtime))
            _sub(b, "ExtranetEndpoint", f"127.0.0.1:{self.port}")
            _sub(b, "IntranetEndpoint", f"127.0.0.1:{self.port}")
            _sub(b, "Location", "oss-emulator")
            _sub(b, "Name", d.name)
            _sub(b, "StorageClass", "Standard")
        return 200, {"Content-Type": "application/xml"}, _xml(root)

    def _bucket_info(self, bucket: str) -> tuple[int, dict, bytes]:
        root = ET.Element("BucketInfo")
        b = _sub(root, "Bucket")
        _sub(b, "CreationDate", _iso(self._bucket_dir(bucket).stat().st_mtime))
        _sub(b, "ExtranetEndpoint", f"127.0.0.1:{self.port}")
        _sub(b, "IntranetEndpoint", f"127.0.0.1:{self.port}")
        _sub(b, "Location", "oss-emulator")
        _sub(b, "Name", bucket)
        _sub(b, "StorageClass", "Standard")
        owner = _sub(b, "Owner")
        _sub(owner, "DisplayName", "emulator")
        _sub(owner, "ID", "emulator")
        acl = _sub(b, "AccessControlList")
        _sub(acl, "Grant", "private")
        return 200, {"Content-Type": "application/xml"}, _xml(root)

    def _list_objects(self, bucket: str, q: dict) -> tuple[int, dict, bytes]:
        prefix, delimiter, marker = q.get("prefix", ""), q.get("delimiter", ""), q.get("marker", "")
        max_keys = int(q.get("max-keys") or 100)
        encode = q.get("encoding-type") == "url"
        contents: list[tuple[str, Path]] = []
        prefixes: list[str] = []
        truncated = False
        next_marker = ""
        count = 0
        for k in self.keys(bucket):
            if not k.startswith(prefix) or k <= marker:
                continue
            if delimiter:
                cut = k.find(delimiter, len(prefix))
                if cut >= 0:
                    common = k[:cut + len(delimiter)]
                    if common <= marker or (prefixes and prefixes[-1] == common):
                        continue
                    if count == max_keys:
                        truncated = True
                        break
                    prefixes.append(common)
                    next_marker = common
                    count += 1
                    continue
            if count == max_keys:
                truncated = True
                break
            contents.append((k, self._object_path(bucket, k)))
            next_marker = k
            count += 1
        enc = (lambda s: quote(s, safe="")) if encode else (lambda s: s)
        root = ET.Element("ListBucketResult")
        _sub(root, "Name", bucket)
        _sub(root, "Prefix", enc(prefix))
        _sub(root, "Marker", enc(marker))
        _sub(root, "MaxKeys", max_keys)
        _sub(root, "Delimiter", enc(delimiter))
        if encode:
            _sub(root, "EncodingType", "url")
        _sub(root, "IsTruncated", "true" if truncated else "false")
        if truncated:
            _sub(root, "NextMarker", enc(next_marker))
        for k, path in contents:
            st = path.stat()
            c = _sub(root, "Contents")
            _sub(c, "Key", enc(k))
            _sub(c, "LastModified", _iso(st.st_mtime))
            _sub(c, "ETag", f'"{k}"')  # listing ETags are opaque to the clients
            _sub(c, "Type", self._types.get((bucket, k), "Normal"))
            _sub(c, "Size", st.st_size)
            _sub(c, "StorageClass", "Standard")
        for p in prefixes:
            _sub(_sub(root, "CommonPrefixes"), "Prefix", enc(p))
        return 200, {"Content-Type": "application/xml"}, _xml(root)

    def _delete_many(self, bucket: str, body: bytes) -> tuple[int, dict, bytes]:
        req = ET.fromstring(body)
        quiet = (req.findtext("Quiet") or "false").lower() == "true"
        root = ET.Element("DeleteResult")
        _sub(root, "EncodingType", "url")
        for obj in req.findall("Object"):
            k = obj.findtext("Key") or ""
            self._object_path(bucket, k).unlink(missing_ok=True)
            self._types.pop((bucket, k), None)
            self._digests.pop((bucket, k), None)
            if not quiet:
                _sub(_sub(root, "Deleted"), "Key", quote(k, safe=""))
        return 200, {"Content-Type": "application/xml"}, _xml(root)

    def _copy(self, bucket: str, key: str, source: str) -> tuple[int, dict, bytes]:
        src_bucket, _, src_key = unquote(source).lstrip("/").partition("/")
        src = self._object_path(src_bucket, src_key)
        if not src.is_file():
            raise OssError(404, "NoSuchKey", "The specified key does not exist.")
        data = src.read_bytes()
        self._write(bucket, key, data, "Normal")
        root = ET.Element("CopyObjectResult")
        _sub(root, "ETag", f'"{hashlib.md5(data).hexdigest().upper()}"')
        _sub(root, "LastModified", _iso(time.time()))
        return 200, {"Content-Type": "application/xml"}, _xml(root)

    def _append(self, bucket: str, key: str, position: int, body: bytes) -> tuple[int, dict, bytes]:
        path = self._object_path(bucket, key)
        current = path.read_bytes() if path.is_file() else b""
        if path.is_file() and self._types.get((bucket, key), "Normal") != "Appendable":
            raise OssError(409, "ObjectNotAppendable", "The object is not appendable")
        if position != len(current):
            raise OssError(409, "PositionNotEqualToLength",
                           "Position is not equal to file length")
        data = current + body
        self._write(bucket, key, data, "Appendable")
        return 200, {**self._etag_headers(data), "x-oss-next-append-position": len(data)}, b""

    def _init_upload(self, bucket: str, key: str) -> tuple[int, dict, bytes]:
        upload_id = uuid.uuid4().hex.upper()
        self._uploads[upload_id] = (bucket, key)
        (self._bucket_dir(bucket) / "uploads" / upload_id).mkdir(parents=True)
        root = ET.Element("InitiateMultipartUploadResult")
        _sub(root, "Bucket", bucket)
        _sub(root, "Key", key)
        _sub(root, "UploadId", upload_id)
        return 200, {"Content-Type": "application/xml"}, _xml(root)

    def _upload_part(self, bucket: str, key: str, q: dict, body: bytes) -> tuple[int, dict, bytes]:
        upload_id = q["uploadId"]
        if self._uploads.get(upload_id) != (bucket, key):
            raise OssError(404, "NoSuchUpload", "The specified upload does not exist.")
        number = int(q["partNumber"])
        (self._bucket_dir(bucket) / "uploads" / upload_id / f"{number:05d}").write_bytes(body)
        return 200, self._etag_headers(body), b""

    def _complete_upload(self, bucket: str, key: str, upload_id: str, body: bytes,
                         ) -> tuple[int, dict, bytes]:
        if self._uploads.get(upload_id) != (bucket, key):
            raise OssError(404, "NoSuchUpload", "The specified upload does not exist.")
        req = ET.fromstring(body)
        updir = self._bucket_dir(bucket) / "uploads" / upload_id
        chunks, md5s = [], []
        last = 0
        for part in req.findall("Part"):
            number = int(part.findtext("PartNumber") or 0)
            if number <= last:
                raise OssError(400, "InvalidPartOrder", "parts must be in ascending order")
            last = number
            part_path = updir / f"{number:05d}"
            if not part_path.is_file():
                raise OssError(400, "InvalidPart", f"part {number} was not uploaded")
            data = part_path.read_bytes()
            etag = (part.findtext("ETag") or "").strip('"')
            if etag.upper() != hashlib.md5(data).hexdigest().upper():
                raise OssError(400, "InvalidPart", f"ETag of part {number} does not match")
            chunks.append(data)
            md5s.append(hashlib.md5(data).digest())
        data = b"".join(chunks)
        etag = f"{hashlib.md5(b''.join(md5s)).hexdigest().upper()}-{len(chunks)}"
        self._write(bucket, key, data, "Multipart", etag)  # the object appears whole, now
        del self._uploads[upload_id]
        for p in updir.iterdir():
            p.unlink()
        updir.rmdir()
        root = ET.Element("CompleteMultipartUploadResult")
        _sub(root, "EncodingType", "url")
        _sub(root, "Bucket", bucket)
        _sub(root, "Key", quote(key, safe=""))
        _sub(root, "ETag", f'"{etag}"')
        return 200, {**self._etag_headers(data, etag), "Content-Type": "application/xml"}, _xml(root)
