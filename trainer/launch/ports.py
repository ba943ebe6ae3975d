"""Loopback ports for rendezvous: a free one, or a clear error when a given one is taken."""
from __future__ import annotations

import socket

from lingjie.errors import ConfigError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_port_free(port: int, path: str = "hardware.master_port") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise ConfigError(path, f"port {port} on 127.0.0.1 is already in use; pick another or set it to null "
                              "(a free port is chosen)") from None
