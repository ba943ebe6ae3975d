"""Bounded retries with exponential backoff for remote endpoints, then one clear error.

Only *transient* failures are retried: the endpoint refused or dropped the connection, timed
out, or answered 5xx. Everything else (not found, access denied, a corrupt file) is the
caller's to report at once. After the last try the caller gets one :class:`DataError` that
names the endpoint (never a credential) and the last cause.
"""
from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from dataio.credentials import redact, redact_url
from lingjie.errors import ConfigError, DataError

log = logging.getLogger(__name__)
T = TypeVar("T")

_TRANSIENT_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT,
                     errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPIPE, errno.EAGAIN}
_TRANSIENT_NAMES = {
    # requests / urllib3
    "ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "NewConnectionError",
    "MaxRetryError", "ProtocolError", "RemoteDisconnected", "ChunkedEncodingError",
    # oss2: connection-level failures are RequestError
    "RequestError",
    # pyhdfs: no NameNode answered
    "HdfsNoServerException", "HdfsRetriableException", "HdfsStandbyException",
    # kafka-python
    "NoBrokersAvailable", "KafkaConnectionError", "KafkaTimeoutError", "NodeNotReadyError",
    "RequestTimedOutError",
    # aiohttp (ossfs' async client)
    "ClientConnectorError", "ServerDisconnectedError", "ClientOSError",
}


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure.

    ``tries`` attempts in all; the delay before attempt ``k+1`` is
    ``min(first_delay_s * multiplier**(k-1), max_delay_s)``. ``timeout_s`` is the per-request
    network timeout handed to clients that take one (pyhdfs, webhdfs, kafka).
    """

    tries: int = 3
    first_delay_s: float = 0.2
    max_delay_s: float = 2.0
    multiplier: float = 2.0
    timeout_s: float = 20.0

    def __post_init__(self) -> None:
        if not isinstance(self.tries, int) or isinstance(self.tries, bool) or self.tries < 1:
            raise ConfigError("retry.tries", f"must be a positive integer, got {self.tries!r}")
        for name in ("first_delay_s", "max_delay_s", "multiplier", "timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"retry.{name}", f"must be a non-negative number, got {value!r}")

    @classmethod
    def of(cls, value: "RetryPolicy | dict | None") -> "RetryPolicy":
        """A policy from a policy, a dict of its fields (e.g. from YAML) or None (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, RetryPolicy):
            return value
        if isinstance(value, dict):
            known = {f for f in cls.__dataclass_fields__}
            unknown = sorted(set(value) - known)
            if unknown:
                raise ConfigError(f"retry.{unknown[0]}", "unknown key", sorted(known))
            return cls(**value)
        raise ConfigError("retry", f"must be a mapping of {sorted(cls.__dataclass_fields__)}, "
                                   f"got {value!r}")

    def delays(self) -> list[float]:
        """The sleeps between attempts (``tries - 1`` of them)."""
        return [min(self.first_delay_s * self.multiplier ** k, self.max_delay_s)
                for k in range(self.tries - 1)]


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen and len(seen) < 20:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or anything in its cause chain) is a connection-level or 5xx failure."""
    for e in _chain(exc):
        if isinstance(e, DataError):
            return False
        if isinstance(e, (ConnectionError, TimeoutError, socket.timeout, socket.gaierror)):
            return True
        if type(e).__name__ in _TRANSIENT_NAMES:
            return True
        if isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNOS:
            return True
        status = getattr(e, "status", None) or getattr(e, "status_code", None)
        response = getattr(e, "response", None)
        if status is None and response is not None:
            status = getattr(response, "status_code", None)
        if isinstance(status, int) and 500 <= status < 600:
            return True
    return False


def describe(exc: BaseException) -> str:
    """A short, redacted one-line description of an exception (the innermost useful one)."""
    details = getattr(exc, "details", None)  # oss2's server errors carry the parsed <Error>
    if isinstance(details, dict) and details.get("Code"):
        text = f"{details['Code']}: {details.get('Message') or ''} (HTTP {getattr(exc, 'status', '?')})"
    else:
        text = f"{type(exc).__name__}: {exc}"
    for e in _chain(exc)[1:]:
        if type(e).__name__ in _TRANSIENT_NAMES or isinstance(e, (ConnectionError, TimeoutError)):
            text = f"{type(e).__name__}: {e}"
            break
    text = " ".join(redact(text).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def with_retries(fn: Callable[[], T], *, what: str, endpoint: str,
                 policy: RetryPolicy | None = None, file: str | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``fn``; on a transient failure retry with backoff; then raise one DataError.

    ``what`` says what was being done ("list oss://bucket/data/"), ``endpoint`` which server
    (shown, so it must not contain secrets: it is passed through :func:`redact_url`).
    Non-transient exceptions propagate unchanged on the first attempt.
    """
    policy = policy or RetryPolicy()
    delays = policy.delays()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if attempt >= policy.tries:
                shown = redact_url(endpoint)
                raise DataError(
                    f"cannot reach {shown} to {what} after {attempt} "
                    f"{'try' if attempt == 1 else 'tries'} (last error: {describe(exc)}); "
                    "check the endpoint and the network, or raise retry.tries",
                    file=redact_url(file) if file else None) from None
            delay = delays[attempt - 1]
            log.warning("%s: %s unreachable (try %d of %d: %s); retrying in %.2fs",
                        what, redact_url(endpoint), attempt, policy.tries, describe(exc), delay)
            sleep(delay)
