"""Shared fixtures: a real Kafka broker (started lazily), a 3-node cluster, random topics and groups.

Their types live in :mod:`tests.support.factories`: a test module imports from ``tests.support``,
never from ``conftest`` or another test module.

Unit tests request none of these, so they never start a JVM. ``SHOPSTREAM_TEST_BOOTSTRAP``
points ``kafka_bootstrap`` at an already running broker instead of starting one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.factories import BrokerFactory, GroupIdFactory, TopicFactory
from tools.broker.kafka import KafkaBroker, KafkaCluster
from tools.broker.kafka.admin import create_topics, delete_topics
from tools.broker.settings import HarnessSettings


@pytest.fixture(scope="session")
def harness_settings() -> HarnessSettings:
    return HarnessSettings()


@pytest.fixture(scope="session")
def kafka_broker(harness_settings: HarnessSettings) -> Iterator[KafkaBroker]:
    """One single-node Kafka broker for the whole session, started on first use."""
    with KafkaBroker(settings=harness_settings) as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_bootstrap(harness_settings: HarnessSettings, request: pytest.FixtureRequest) -> str:
    """``host:port`` of the session's broker, or of ``SHOPSTREAM_TEST_BOOTSTRAP`` when set."""
    if harness_settings.test_bootstrap:
        return harness_settings.test_bootstrap
    broker: KafkaBroker = request.getfixturevalue("kafka_broker")
    return broker.bootstrap_servers


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def topic_factory(kafka_bootstrap: str) -> Iterator[TopicFactory]:
    """``make(partitions=1, *, config=None, prefix="test") -> name``: a fresh topic, deleted after the test."""
    created: list[str] = []

    def make(partitions: int = 1, *, config: Mapping[str, str] | None = None, prefix: str = "test") -> str:
        name = _unique(prefix)
        create_topics(kafka_bootstrap, {name: partitions}, config=config)
        created.append(name)
        return name

    yield make
    delete_topics(kafka_bootstrap, created)


@pytest.fixture
def group_id_factory() -> GroupIdFactory:
    """``make(prefix="group") -> str``: a consumer group id no other test uses."""

    def make(prefix: str = "group") -> str:
        return _unique(prefix)

    return make


@pytest.fixture
def broker_factory(harness_settings: HarnessSettings) -> Iterator[BrokerFactory]:
    """``make(data_dir=None, overrides=None) -> KafkaBroker``: a started broker of the test's own, to
    kill or restart; ``overrides`` are extra server.properties entries.

    Every broker it made is closed after the test, whatever the test did to it.
    """
    brokers: list[KafkaBroker] = []

    def make(data_dir: Path | None = None, overrides: Mapping[str, str] | None = None) -> KafkaBroker:
        broker = KafkaBroker(data_dir=data_dir, overrides=overrides, settings=harness_settings)
        brokers.append(broker)
        return broker.start()

    yield make
    for broker in brokers:
        broker.close()


@pytest.fixture(scope="module")
def _kafka_cluster_for_module(harness_settings: HarnessSettings) -> Iterator[KafkaCluster]:
    with KafkaCluster(3, settings=harness_settings) as cluster:
        yield cluster


@pytest.fixture
def kafka_cluster(_kafka_cluster_for_module: KafkaCluster) -> Iterator[KafkaCluster]:
    """A 3-node cluster (RF 3, min ISR 2) shared by a module's tests; each test gets it healed.

    A test may kill, stop or freeze nodes; afterwards every node is thawed and restarted.
    """
    yield _kafka_cluster_for_module
    _kafka_cluster_for_module.heal()
