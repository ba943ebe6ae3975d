"""What the serve tests share: one tiny trained movielens_deepfm run (trained once per session),
a plain http.client client, and a server subprocess on 127.0.0.1 that is ready when yielded."""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import ROOT, run_cli

NAME = "movielens_deepfm"
TRAIN = ["+experiment=movielens_deepfm", "data.limit_train_rows=2000", "data.limit_eval_rows=300",
         "data.batch_size=256", "trainer.epochs=1", "hardware.threads=1", "trainer.progress_bar=false",
         "trainer.plots=false", "logger=none"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """Plain http.client against the server (one connection per call: what curl does)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             ) -> tuple[int, Any]:
        return self.call_full(method, path, body, headers)[:2]

    def call_full(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                  ) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON or text body, lower-cased response headers)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            data = body if isinstance(body, (bytes, type(None))) else \
                body.encode() if isinstance(body, str) else json.dumps(body).encode()
            conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        ctype = resp.getheader("Content-Type") or ""
        heads = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, json.loads(raw) if "json" in ctype else raw.decode(), heads

    def metric(self, name: str) -> float:
        """Sum of a metric's samples whose full name (labels included) starts with ``name``."""
        _, text = self.call("GET", "/metrics")
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny trained run directory (its ``export/`` is what the servers serve)."""
    tmp = tmp_path_factory.mktemp("tiny_run")
    train = tmp / "train"
    run_cli([*TRAIN, f"hydra.run.dir={train}"], cwd=tmp)
    return train


@contextlib.contextmanager
def serving(path: str, cwd: Path, *flags: str) -> Iterator[Client]:
    """``python -m trainer.serve PATH FLAGS`` in a subprocess, ready; terminated afterwards
    (its output, shown when it fails to start, is in ``cwd/server.log``)."""
    port = free_port()
    log = open(cwd / "server.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "trainer.serve", path, "--port", str(port),
                             "--host", "127.0.0.1", *flags], cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=log, stderr=subprocess.STDOUT)
    client = Client(port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.call("GET", "/v2/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise AssertionError(f"server did not become ready:\n{log.read()[-4000:]}")
            time.sleep(0.2)
        yield client
        assert proc.poll() is None, "the server died during the tests"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
