"""Concurrent clients for the serving tests: keep-alive connections posting one request in a
loop while a test swaps versions or applies deltas underneath, recording every answer."""
from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any


class Load:
    """``threads`` clients posting ``body`` to ``path`` until stopped. ``results`` holds
    (finished at, status, the ``header`` response header, the predictions' ``output`` values);
    ``errors`` every non-200 answer or broken connection."""

    def __init__(self, port: int, path: str, body: bytes, header: str, output: str = "like", threads: int = 4) -> None:
        self.port, self.path, self.body, self.header, self.output = port, path, body, header, output
        self.results: list[tuple[float, int, str, list[float]]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(threads)]

    def loop(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stop.is_set():
            try:
                conn.request("POST", self.path, body=self.body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                raw = resp.read()
                ok = resp.status == 200
                scores = [p[self.output] for p in json.loads(raw)["predictions"]] if ok else []
                self.results.append((time.monotonic(), resp.status, resp.getheader(self.header) or "", scores))
                if not ok:
                    self.errors.append(f"{resp.status}: {raw[:200]!r}")
            except (OSError, http.client.HTTPException) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.close()

    def __enter__(self) -> "Load":
        self.started = time.monotonic()
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)
        self.seconds = time.monotonic() - self.started
