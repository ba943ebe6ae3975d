"""Credentials for cloud sources, resolved at run time and never written anywhere.

Where each service's credentials come from, first match wins:

- OSS (``oss://``): ``storage_options`` (``endpoint``, ``key``, ``secret``, ``token``), then the
  environment (``OSS_ENDPOINT``, ``OSS_ACCESS_KEY_ID``, ``OSS_ACCESS_KEY_SECRET``,
  ``OSS_SESSION_TOKEN``; the Alibaba Cloud SDK names ``ALIBABA_CLOUD_ACCESS_KEY_ID``,
  ``ALIBABA_CLOUD_ACCESS_KEY_SECRET``, ``ALIBABA_CLOUD_SECURITY_TOKEN`` are accepted too), then
  the INI file named by ``LINGJIE_OSS_CREDENTIALS`` (section ``[oss]`` with ``endpoint``,
  ``access_key_id``, ``access_key_secret``, ``security_token``; an ossutil config with its
  ``[Credentials]`` section ``endpoint``/``accessKeyID``/``accessKeySecret``/``stsToken`` works
  as it is). ``storage_options={"anon": True}`` reads public buckets without credentials.
- MaxCompute (``odps://``): ``ODPS_ENDPOINT``, ``ODPS_ACCESS_ID``, ``ODPS_ACCESS_KEY`` (or the
  ``ALIBABA_CLOUD_*`` names), or the INI file named by ``LINGJIE_ODPS_CREDENTIALS``
  (section ``[odps]``: ``endpoint``, ``access_id``, ``access_key``).
- Kafka (``kafka://``): optional SASL from ``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_MECHANISM``,
  ``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD``.

Every secret value that passes through here is remembered for this process, and
:func:`redact` replaces each remembered value in any text (error messages, reprs, dead-letter
records, log records of the client libraries) with ``***``.
"""
from __future__ import annotations

import configparser
import logging
import os
import re
import threading
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from lingjie.errors import ConfigError

REDACTED = "***"

OSS_ENV = ("OSS_ENDPOINT", "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN")
OSS_FILE_ENV = "LINGJIE_OSS_CREDENTIALS"
ODPS_ENV = ("ODPS_ENDPOINT", "ODPS_ACCESS_ID", "ODPS_ACCESS_KEY")
ODPS_FILE_ENV = "LINGJIE_ODPS_CREDENTIALS"
KAFKA_ENV = ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME",
             "KAFKA_SASL_PASSWORD")

# storage_options / query keys whose values are secrets wherever they appear
SECRET_KEYS = frozenset({
    "secret", "token", "password", "access_key_secret", "access_key", "secret_access_key",
    "security_token", "sasl_plain_password", "delegation", "sts_token", "ststoken",
    "accesskeysecret", "signature", "x-oss-security-token", "security-token",
})

_known: set[str] = set()
_lock = threading.Lock()
_pattern: re.Pattern | None = None


def remember_secret(value: str | None) -> None:
    """Add a secret value to the set that :func:`redact` removes (short values are ignored)."""
    global _pattern
    if not value or not isinstance(value, str) or len(value) < 4:
        return
    with _lock:
        if value in _known:
            return
        _known.add(value)
        _pattern = re.compile("|".join(re.escape(v) for v in sorted(_known, key=len, reverse=True)))
    _install_log_filter()


def redact(text: object) -> str:
    """``text`` as a string with every remembered secret and URL password replaced by ``***``."""
    s = str(text)
    pattern = _pattern
    if pattern is not None:
        s = pattern.sub(REDACTED, s)
    return _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + "@", s)


_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)[^/\s@]+@")


def redact_url(url: str) -> str:
    """A URL fit to show: no password in the user part, no secret query parameters."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        if ":" in user:
            user = user.split(":", 1)[0] + ":" + REDACTED
        netloc = f"{user}@{host}"
    query = parts.query
    if query:
        pairs = [(k, REDACTED if k.lower() in SECRET_KEYS else v)
                 for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="*,:")
    return redact(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def redact_options(options: dict | None) -> dict:
    """A copy of ``storage_options`` fit to log: secret values replaced by ``***``."""
    out = {}
    for k, v in (options or {}).items():
        if isinstance(v, dict):
            out[k] = redact_options(v)
        elif str(k).lower() in SECRET_KEYS and v is not None:
            out[k] = REDACTED
        else:
            out[k] = v
    return out


class _RedactingFilter(logging.Filter):
    """Scrubs remembered secrets from records of the client libraries (urllib3 logs URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken log call is not ours to fix
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTERED_LOGGERS = ("urllib3.connectionpool", "requests", "fsspec", "fsspec.webhdfs", "ossfs",
                     "oss2", "aiooss2", "pyhdfs", "kafka", "kafka.conn", "kafka.client",
                     "kafka.consumer.fetcher", "kafka.coordinator", "odps", "dataio")
_filter = _RedactingFilter()
_filter_installed = False


def _install_log_filter() -> None:
    global _filter_installed
    if _filter_installed:
        return
    _filter_installed = True
    for name in _FILTERED_LOGGERS:
        logging.getLogger(name).addFilter(_filter)


class Secret(str):
    """A string whose repr and str never show the value; ``reveal()`` returns it."""

    def __new__(cls, value: str) -> "Secret":
        remember_secret(value)
        obj = super().__new__(cls, REDACTED)
        obj._value = value
        return obj

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _read_ini(env_name: str, sections: dict[str, dict[str, str]]) -> dict[str, str]:
    """Values from the INI file named by ``env_name``: ``{our_key: value}``."""
    path = os.environ.get(env_name)
    if not path:
        return {}
    if not os.path.isfile(path):
        raise ConfigError(env_name, f"credentials file {path!r} does not exist")
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep ossutil's camelCase keys
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise ConfigError(env_name, f"credentials file {path!r} is not an INI file: "
                                    f"{type(exc).__name__}") from None
    out: dict[str, str] = {}
    for section, keys in sections.items():
        if parser.has_section(section):
            for ours, theirs in keys.items():
                value = parser.get(section, theirs, fallback=None)
                if value and ours not in out:
                    out[ours] = value.strip()
    return out


@dataclass(frozen=True)
class OssCredentials:
    """Resolved OSS connection settings; the repr hides the secret and the token."""

    endpoint: str
    key: str | None
    secret: Secret | None
    token: Secret | None

    def ossfs_options(self) -> dict:
        """Keyword arguments for ``ossfs.OSSFileSystem`` (values revealed)."""
        return {"endpoint": self.endpoint, "key": self.key,
                "secret": self.secret.reveal() if self.secret else None,
                "token": self.token.reveal() if self.token else None}


_OSS_FILE_KEYS = {
    "oss": {"endpoint": "endpoint", "key": "access_key_id", "secret": "access_key_secret",
            "token": "security_token"},
    "Credentials": {"endpoint": "endpoint", "key": "accessKeyID", "secret": "accessKeySecret",
                    "token": "stsToken"},
}


def _normalise_endpoint(endpoint: str) -> str:
    return endpoint if "://" in endpoint else f"https://{endpoint}"


def resolve_oss(storage_options: dict | None) -> OssCredentials:
    """OSS endpoint and credentials from options, environment or the credentials file.

    Raises :class:`ConfigError` naming the variables to set when something is missing.
    """
    opts = dict(storage_options or {})
    from_file = _read_ini(OSS_FILE_ENV, _OSS_FILE_KEYS)
    endpoint = (opts.get("endpoint") or _env("OSS_ENDPOINT", "ALIBABA_CLOUD_OSS_ENDPOINT")
                or from_file.get("endpoint"))
    if not endpoint:
        raise ConfigError(
            "data.storage_options.endpoint",
            "no OSS endpoint: set the environment variable OSS_ENDPOINT "
            "(e.g. https://oss-cn-hangzhou.aliyuncs.com), or storage_options.endpoint, or "
            f"'endpoint' in the file named by {OSS_FILE_ENV}")
    if opts.get("anon"):
        return OssCredentials(_normalise_endpoint(endpoint), None, None, None)
    if opts.get("key") or opts.get("secret"):
        key, secret, token = opts.get("key"), opts.get("secret"), opts.get("token")
    elif _env("OSS_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_ID"):
        key = _env("OSS_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_ID")
        secret = _env("OSS_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        token = _env("OSS_SESSION_TOKEN", "ALIBABA_CLOUD_SECURITY_TOKEN")
    else:
        key, secret, token = from_file.get("key"), from_file.get("secret"), from_file.get("token")
    if not key or not secret:
        raise ConfigError(
            "data.storage_options",
            "no OSS credentials: set the environment variables OSS_ACCESS_KEY_ID and "
            "OSS_ACCESS_KEY_SECRET (and OSS_SESSION_TOKEN for STS), or point "
            f"{OSS_FILE_ENV} at a credentials file, or set storage_options.anon=true "
            "for a public bucket")
    return OssCredentials(_normalise_endpoint(endpoint), key, Secret(secret),
                          Secret(token) if token else None)


@dataclass(frozen=True)
class OdpsCredentials:
    """Resolved MaxCompute settings; the repr hides the access key."""

    endpoint: str
    access_id: str
    access_key: Secret


_ODPS_FILE_KEYS = {"odps": {"endpoint": "endpoint", "access_id": "access_id",
                            "access_key": "access_key"}}


def odps_available() -> bool:
    """Whether MaxCompute credentials are configured (the real-service test needs them)."""
    try:
        resolve_odps()
    except ConfigError:
        return False
    return True


def resolve_odps(options: dict | None = None) -> OdpsCredentials:
    """MaxCompute endpoint and access key from options, environment or credentials file."""
    opts = dict(options or {})
    from_file = _read_ini(ODPS_FILE_ENV, _ODPS_FILE_KEYS)
    endpoint = opts.get("endpoint") or _env("ODPS_ENDPOINT") or from_file.get("endpoint")
    access_id = (opts.get("access_id") or _env("ODPS_ACCESS_ID", "ALIBABA_CLOUD_ACCESS_KEY_ID")
                 or from_file.get("access_id"))
    access_key = (opts.get("access_key")
                  or _env("ODPS_ACCESS_KEY", "ALIBABA_CLOUD_ACCESS_KEY_SECRET")
                  or from_file.get("access_key"))
    missing = [name for name, value in zip(ODPS_ENV, (endpoint, access_id, access_key)) if not value]
    if missing:
        raise ConfigError(
            "data.storage_options",
            f"no MaxCompute credentials: set the environment variables {', '.join(missing)} "
            f"(or point {ODPS_FILE_ENV} at a credentials file with an [odps] section)")
    return OdpsCredentials(endpoint, access_id, Secret(access_key))


def kafka_security_options(options: dict | None = None) -> dict:
    """kafka-python security settings from options or the environment (empty: plaintext)."""
    opts = dict(options or {})
    protocol = opts.get("security_protocol") or _env("KAFKA_SECURITY_PROTOCOL")
    mechanism = opts.get("sasl_mechanism") or _env("KAFKA_SASL_MECHANISM")
    user = opts.get("sasl_plain_username") or _env("KAFKA_SASL_USERNAME")
    password = opts.get("sasl_plain_password") or _env("KAFKA_SASL_PASSWORD")
    out: dict = {}
    if protocol:
        out["security_protocol"] = protocol
    if user or password:
        if not (user and password):
            raise ConfigError("data.storage_options",
                              "Kafka SASL needs both KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        remember_secret(password)
        out.update(sasl_mechanism=mechanism or "PLAIN", sasl_plain_username=user,
                   sasl_plain_password=password)
        out.setdefault("security_protocol", "SASL_PLAINTEXT")
    return out
