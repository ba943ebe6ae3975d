"""Credential resolution, redaction and the retry policy (no servers needed)."""
from __future__ import annotations

import logging
import pickle

import pytest

from dataio.credentials import (Secret, kafka_security_options, redact, redact_options,
                                redact_url, remember_secret, resolve_odps, resolve_oss)
from dataio.retry import RetryPolicy, is_transient, with_retries
from lingjie.errors import ConfigError, DataError

OSS_VARS = ("OSS_ENDPOINT", "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN",
            "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
            "ALIBABA_CLOUD_SECURITY_TOKEN", "ALIBABA_CLOUD_OSS_ENDPOINT", "LINGJIE_OSS_CREDENTIALS")


@pytest.fixture
def clean_env(monkeypatch):
    for name in OSS_VARS + ("ODPS_ENDPOINT", "ODPS_ACCESS_ID", "ODPS_ACCESS_KEY",
                            "LINGJIE_ODPS_CREDENTIALS", "KAFKA_SASL_USERNAME",
                            "KAFKA_SASL_PASSWORD", "KAFKA_SECURITY_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_oss_precedence_options_then_env_then_file(clean_env, tmp_path):
    cred = tmp_path / "oss.ini"
    cred.write_text("[oss]\nendpoint = oss-file.example\naccess_key_id = FILEID\n"
                    "access_key_secret = file-secret-1\n")
    clean_env.setenv("LINGJIE_OSS_CREDENTIALS", str(cred))
    c = resolve_oss(None)
    assert (c.endpoint, c.key, c.secret.reveal()) == ("https://oss-file.example", "FILEID", "file-secret-1")
    clean_env.setenv("OSS_ACCESS_KEY_ID", "ENVID")
    clean_env.setenv("OSS_ACCESS_KEY_SECRET", "env-secret-1")
    clean_env.setenv("OSS_ENDPOINT", "http://oss-env.example")
    c = resolve_oss(None)
    assert (c.endpoint, c.key, c.secret.reveal()) == ("http://oss-env.example", "ENVID", "env-secret-1")
    c = resolve_oss({"endpoint": "http://opt", "key": "OPTID", "secret": "opt-secret-1", "token": "sts-tok-1"})
    assert (c.endpoint, c.key, c.secret.reveal(), c.token.reveal()) == \
        ("http://opt", "OPTID", "opt-secret-1", "sts-tok-1")
    assert "opt-secret-1" not in repr(c) and "sts-tok-1" not in repr(c)
    assert resolve_oss({"anon": True}).key is None


def test_oss_errors_name_what_to_set(clean_env, tmp_path):
    with pytest.raises(ConfigError, match="OSS_ENDPOINT"):
        resolve_oss(None)
    clean_env.setenv("OSS_ENDPOINT", "http://x")
    clean_env.setenv("OSS_ACCESS_KEY_ID", "ID-only")
    with pytest.raises(ConfigError) as err:
        resolve_oss(None)
    assert "OSS_ACCESS_KEY_SECRET" in str(err.value)
    clean_env.setenv("LINGJIE_OSS_CREDENTIALS", str(tmp_path / "missing.ini"))
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_oss(None)


def test_odps_and_kafka_settings(clean_env):
    with pytest.raises(ConfigError) as err:
        resolve_odps()
    assert all(v in str(err.value) for v in ("ODPS_ENDPOINT", "ODPS_ACCESS_ID", "ODPS_ACCESS_KEY"))
    clean_env.setenv("ODPS_ENDPOINT", "http://service.odps.example/api")
    clean_env.setenv("ODPS_ACCESS_ID", "AID")
    clean_env.setenv("ODPS_ACCESS_KEY", "odps-key-secret-9")
    c = resolve_odps()
    assert c.access_key.reveal() == "odps-key-secret-9" and "odps-key-secret-9" not in repr(c)
    assert kafka_security_options() == {}
    clean_env.setenv("KAFKA_SASL_USERNAME", "u")
    with pytest.raises(ConfigError, match="KAFKA_SASL_PASSWORD"):
        kafka_security_options()
    clean_env.setenv("KAFKA_SASL_PASSWORD", "kafka-secret-pw-1")
    opts = kafka_security_options()
    # SASL/PLAIN sends the password as it is: TLS unless plaintext is asked for
    assert opts["security_protocol"] == "SASL_SSL" and opts["sasl_mechanism"] == "PLAIN"
    assert "kafka-secret-pw-1" not in redact(f"conf={opts}")


def test_kafka_sasl_plaintext_only_when_asked_and_then_warns(clean_env, caplog):
    clean_env.setenv("KAFKA_SASL_USERNAME", "u")
    clean_env.setenv("KAFKA_SASL_PASSWORD", "kafka-secret-pw-2")
    with caplog.at_level(logging.WARNING, logger="dataio.credentials"):
        assert kafka_security_options()["security_protocol"] == "SASL_SSL"
        assert "SASL_PLAINTEXT" not in caplog.text
        clean_env.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
        assert kafka_security_options()["security_protocol"] == "SASL_PLAINTEXT"
    assert "unencrypted" in caplog.text and "kafka-secret-pw-2" not in caplog.text
    clean_env.delenv("KAFKA_SECURITY_PROTOCOL")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dataio.credentials"):  # the source's own option
        assert kafka_security_options({"security_protocol": "SASL_PLAINTEXT"})["security_protocol"] == \
            "SASL_PLAINTEXT"
    assert "unencrypted" in caplog.text


@pytest.mark.parametrize("mode, warns", [(0o600, False), (0o400, False), (0o640, True), (0o644, True),
                                         (0o604, True)])
def test_credentials_file_readable_by_others_warns(clean_env, tmp_path, caplog, mode, warns):
    cred = tmp_path / "oss.ini"
    cred.write_text("[oss]\nendpoint = e.example\naccess_key_id = ID\naccess_key_secret = file-secret-3\n")
    cred.chmod(mode)
    clean_env.setenv("LINGJIE_OSS_CREDENTIALS", str(cred))
    with caplog.at_level(logging.WARNING, logger="dataio.credentials"):
        assert resolve_oss(None).secret.reveal() == "file-secret-3"
    assert (f"chmod 600 {cred}" in caplog.text) is warns, caplog.text
    assert "file-secret-3" not in caplog.text
    odps = tmp_path / "odps.ini"
    odps.write_text("[odps]\nendpoint = http://o\naccess_id = A\naccess_key = odps-file-key-3\n")
    odps.chmod(mode)
    clean_env.setenv("LINGJIE_ODPS_CREDENTIALS", str(odps))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dataio.credentials"):
        resolve_odps()
    assert (f"chmod 600 {odps}" in caplog.text) is warns


def test_redaction_of_urls_options_logs_and_secrets(caplog):
    remember_secret("remembered-secret-42")
    assert redact("x remembered-secret-42 y") == "x *** y"
    assert redact_url("webhdfs://alice:pw123456@nn:9870/p?delegation=tok&op=OPEN") == \
        "webhdfs://alice:***@nn:9870/p?delegation=***&op=OPEN"
    assert redact_options({"key": "AK", "secret": "s", "nested": {"password": "p"}}) == \
        {"key": "AK", "secret": "***", "nested": {"password": "***"}}
    s = Secret("secret-value-77")
    assert str(s) == "***" and "secret-value-77" not in repr(s) and f"{s}" == "***"
    assert pickle.loads(pickle.dumps(s)).reveal() == "secret-value-77"
    caplog.set_level(logging.DEBUG)
    # other suites' imports (TF, kubernetes) may have raised this logger's own level: set it here
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    pool = logging.getLogger("urllib3.connectionpool")
    propagate, pool.propagate = pool.propagate, True
    try:
        pool.debug("GET /x?delegation=%s", "secret-value-77")
    finally:
        pool.propagate = propagate
    assert "secret-value-77" not in caplog.text and "delegation=***" in caplog.text


def test_retry_policy_backoff_and_classification():
    assert RetryPolicy(tries=4, first_delay_s=0.1, multiplier=3, max_delay_s=0.5).delays() == \
        [0.1, 0.30000000000000004, 0.5]
    with pytest.raises(ConfigError, match="retry.tires"):
        RetryPolicy.of({"tires": 3})
    with pytest.raises(ConfigError):
        RetryPolicy(tries=0)
    assert is_transient(ConnectionRefusedError())
    assert is_transient(OSError(5, "wrapped").with_traceback(None)) is False
    wrapped = OSError(5, "io")
    wrapped.__cause__ = TimeoutError()
    assert is_transient(wrapped)
    assert not is_transient(FileNotFoundError("x")) and not is_transient(PermissionError("x"))

    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("reset")
        return "ok"

    policy = RetryPolicy(tries=3, first_delay_s=0.01)
    assert with_retries(flaky, what="read", endpoint="http://h:1", policy=policy,
                        sleep=sleeps.append) == "ok"
    assert sleeps == [0.01, 0.02]
    calls.clear()
    with pytest.raises(DataError, match=r"cannot reach http://h:1 to read after 2 tries"):
        with_retries(flaky, what="read", endpoint="http://h:1",
                     policy=RetryPolicy(tries=2, first_delay_s=0), sleep=lambda s: None)
    with pytest.raises(FileNotFoundError):  # not transient: no retry, no wrapping
        with_retries(lambda: open("/nonexistent/x"), what="read", endpoint="local")


def test_unreachable_maxcompute_endpoint_is_one_error_without_the_key(clean_env):
    pytest.importorskip("odps")
    from odps import options

    from dataio.odps import OdpsSource

    clean_env.setenv("ODPS_ENDPOINT", "http://127.0.0.1:9/api")
    clean_env.setenv("ODPS_ACCESS_ID", "AID")
    clean_env.setenv("ODPS_ACCESS_KEY", "odps-unreachable-secret")
    saved = options.retry_times
    options.retry_times = 0  # pyodps' own retries (global): keep the test short
    try:
        with pytest.raises(DataError) as err:
            OdpsSource("odps://proj/tables/clicks", retry={"tries": 2, "first_delay_s": 0.01})
    finally:
        options.retry_times = saved
    text = str(err.value)
    assert "http://127.0.0.1:9/api" in text and "after 2 tries" in text
    assert "odps-unreachable-secret" not in text
