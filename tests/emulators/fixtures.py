"""pytest fixtures for the emulators; import them into a test module to use them.

Each fixture starts its server on 127.0.0.1 for one test module and stops it afterwards.
"""
from __future__ import annotations

import pytest


def require(module: str) -> None:
    """Skip (with the reason) when the `cloud` extra is not installed."""
    pytest.importorskip(module, reason=f"{module} is not installed: pip install -e '.[cloud]'")


@pytest.fixture(scope="module")
def oss_server(tmp_path_factory):
    require("ossfs")
    from tests.emulators.oss import OssEmulator

    with OssEmulator(tmp_path_factory.mktemp("oss")) as server:
        yield server


@pytest.fixture(scope="module")
def hdfs_server(tmp_path_factory):
    require("pyhdfs")
    from tests.emulators.webhdfs import WebHdfsEmulator

    with WebHdfsEmulator(tmp_path_factory.mktemp("hdfs")) as server:
        yield server


@pytest.fixture(scope="module")
def kafka_broker(tmp_path_factory):
    require("kafka")
    from tests.emulators.tansu import BrokerUnavailable, TansuBroker

    try:
        broker = TansuBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log").start()
    except BrokerUnavailable as exc:
        pytest.skip(f"no Kafka broker: {exc}")
    try:
        yield broker
    finally:
        broker.stop()
