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

Secrets at rest: :func:`redact_config` is the one rule for what of a config may be written
down (config.yaml, checkpoint metadata, the Kubernetes ConfigMap, the remote mirror). Keys
that look like credentials (:func:`looks_secret_key`) and values of credential environment
variables (:func:`looks_secret_env`) never appear in clear: a value that came from the
environment is written back as ``${oc.env:NAME}`` (a worker or pod with the same environment
resolves it again), any other secret as ``***``.
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


# words that make a config key or an environment variable name a credential (whole words of
# the name split at _ - . and camelCase: "tokenizer" and "max_tokens" are not credentials)
_SECRET_WORDS = frozenset({"secret", "secrets", "password", "passwd", "passphrase", "token",
                           "credential", "credentials", "signature", "apikey", "accesskey", "privatekey"})
_SECRET_PAIRS = frozenset({("access", "key"), ("private", "key"), ("api", "key"), ("secret", "key"),
                           ("sts", "token"), ("account", "key"), ("sas", "token")})
_VOCAB_WORDS = frozenset({"pad", "cls", "sep", "unk", "mask", "bos", "eos", "special", "start", "end"})
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(str(name))]


def looks_secret_key(name: object) -> bool:
    """Whether a config key (``storage_options.secret``, ``sasl_plain_password``, ...) names a
    credential: one of :data:`SECRET_KEYS`, or a name with a credential word in it."""
    key = str(name)
    if key.lower() in SECRET_KEYS:
        return True
    words = _words(key)
    if words and words[-1] == "id":
        return False  # access_key_id, OSS_ACCESS_KEY_ID: the user name of a key pair, not its secret
    # a tokenizer's special tokens (pad_token, eos_token, ...) are vocabulary, not credentials
    words = [w for i, w in enumerate(words) if not (w == "token" and i and words[i - 1] in _VOCAB_WORDS)]
    return any(w in _SECRET_WORDS for w in words) or any(p in _SECRET_PAIRS for p in zip(words, words[1:]))


def looks_secret_env(name: str) -> bool:
    """Whether an environment variable's NAME says it holds a credential (``*SECRET*``,
    ``*PASSWORD*``, ``*TOKEN*``, ``*ACCESS_KEY*``, ``*_KEY``, ...)."""
    return looks_secret_key(name) or (name.upper().endswith("_KEY") and len(name) > 4)


def secret_env_values(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``{value: NAME}`` of the credential environment variables (values of 4+ characters;
    of two names with one value the first in sorted order wins)."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for name in sorted(env):
        value = env[name]
        if looks_secret_env(name) and isinstance(value, str) and len(value) >= 4 and value not in out:
            out[value] = name
    return out


@dataclass
class RedactedConfig:
    """A config fit to write down, and where literal secrets were replaced by ``***``:
    ``literals`` maps each such dotted path to the value it held (to be passed on in memory,
    or refused, by whoever ships the config to other processes)."""

    tree: object
    literals: dict[str, object]
    from_env: dict[str, str]  # NAME -> value of the credential variables found in the config


def redact_config(tree: object, environ: dict[str, str] | None = None) -> RedactedConfig:
    """A copy of a plain config tree (dicts, lists, scalars) with no secret in clear.

    - a string holding the value of a credential environment variable: that value becomes
      ``${oc.env:NAME}`` (OmegaConf resolves it again wherever the variable is set);
    - any other value under a key that looks like a credential, a string holding a secret
      this process remembered, or a URL with a password or a secret query parameter: ``***``
      (recorded in ``literals``)."""
    by_value = secret_env_values(environ)
    pattern = (re.compile("|".join(re.escape(v) for v in sorted(by_value, key=len, reverse=True)))
               if by_value else None)
    literals: dict[str, object] = {}
    from_env: dict[str, str] = {}

    def to_env(match: re.Match) -> str:
        name = by_value[match.group(0)]
        from_env[name] = match.group(0)
        return "${oc.env:" + name + "}"

    def walk(node: object, path: str, secret_key: bool) -> object:
        if isinstance(node, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k), looks_secret_key(k))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{path}[{i}]", secret_key) for i, v in enumerate(node)]
        if isinstance(node, str):
            if pattern is not None and pattern.search(node):
                return pattern.sub(to_env, node)
            shown = redact_url(node) if "://" in node else redact(node)
            if shown != node or (secret_key and node and not node.startswith("${oc.env:")):
                literals[path] = node
                return shown if shown != node else REDACTED
            return node
        if secret_key and node is not None and not isinstance(node, bool):
            literals[path] = node
            return REDACTED
        return node

    return RedactedConfig(walk(tree, "", False), literals, from_env)


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


def redact_log_handlers() -> None:
    """Scrub remembered secrets from every record the root logger's handlers write (the
    console and Hydra's log file in the run directory), whichever logger made it."""
    for handler in logging.getLogger().handlers:
        if _filter not in handler.filters:
            handler.addFilter(_filter)


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


def warn_if_shared(path: str) -> None:
    """A WARNING when a credentials file can be read by group or others (mode & 0o077).

    Why not refuse: on some shared volumes (NFS, a Kubernetes Secret mounted with a default
    mode) the owner cannot change the mode, and a run that stops there helps nobody; the
    warning names the file and the fix, like ssh does for its keys."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if os.name == "posix" and mode & 0o077:
        logging.getLogger("dataio.credentials").warning(
            "credentials file %s can be read by group or others (mode %03o): run `chmod 600 %s`",
            path, mode & 0o777, path)


def _read_ini(env_name: str, sections: dict[str, dict[str, str]]) -> dict[str, str]:
    """Values from the INI file named by ``env_name``: ``{our_key: value}``."""
    path = os.environ.get(env_name)
    if not path:
        return {}
    if not os.path.isfile(path):
        raise ConfigError(env_name, f"credentials file {path!r} does not exist")
    warn_if_shared(path)
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
    """kafka-python security settings from options or the environment (empty: no SASL).

    With SASL credentials the protocol defaults to SASL_SSL; SASL_PLAINTEXT only when asked
    for (``KAFKA_SECURITY_PROTOCOL`` or the ``security_protocol`` option), with a WARNING."""
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
        # SASL/PLAIN sends the password as it is: without TLS anyone on the path reads it
        out.setdefault("security_protocol", "SASL_SSL")
        if str(out["security_protocol"]).upper() == "SASL_PLAINTEXT":
            logging.getLogger("dataio.credentials").warning(
                "Kafka SASL over SASL_PLAINTEXT (asked for explicitly): the password and the data "
                "cross the network unencrypted; use KAFKA_SECURITY_PROTOCOL=SASL_SSL")
    return out
