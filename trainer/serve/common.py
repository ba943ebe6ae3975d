"""What the app and its routes share: the options, the served model, the body reader and
the one JSON error shape ``{"error": ..., "field": ...}``."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from lingjie.errors import RequestError

SERVER_NAME = "lingjie"


@dataclass
class ServeOptions:
    """The knobs of ``lingjie serve`` (see ``trainer/serve/__main__.py`` for their help)."""

    max_batch_size: int = 32
    max_latency_ms: float = 5.0
    workers: int = 2
    max_instances: int = 1024
    max_body_bytes: int = 8 << 20


@dataclass
class Served:
    """What the app serves: the public name, and the manager whose ``current`` model (adapter,
    version, signature, platform) a request takes once and keeps to its end."""

    name: str
    manager: Any  # trainer.serve.models.ModelManager


def error_response(status: int, message: str, field: str) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status)


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request body as JSON: 413 when larger than ``max_bytes`` (from Content-Length, and
    counted while streaming for chunked bodies), 400 naming ``body`` when it is not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise RequestError("Content-Length", f"not a byte count: {declared!r}")
        if int(declared) > max_bytes:
            raise RequestError("body", f"payload of {int(declared)} bytes exceeds the limit of {max_bytes} "
                               "(--max-body-bytes)", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestError("body", f"payload exceeds the limit of {max_bytes} bytes (--max-body-bytes)", 413)
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise RequestError("body", "empty body: expected a JSON object")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError("body", f"malformed JSON: {exc}") from exc
