"""Every Kafka client the runtime opens, behind one injectable factory.

:class:`ServiceApp` asks a :class:`ClientFactory` for its consumer, its producer, changelog
restores, topic admin and the config-topic reader. :class:`BrokerClients` makes the real
confluent-kafka clients; the unit tests pass in-memory fakes (``tests/support/fake_kafka.py``),
so the loop's pause, rewind and rebalance logic runs without a broker.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient

from shared.kafka.clients import StatsCallback, make_admin, make_consumer, make_producer
from shared.kafka.config_topic import CompactedTopicReader
from shared.kafka.protocols import ConsumerLike, ProducerLike
from shared.runtime.restore import end_offsets, ensure_topics, restore_partitions, topic_partitions
from shared.runtime.state import StateStore
from shared.runtime.topics import TopicSpecs
from shared.settings import KafkaSettings, ServiceSettings

ErrorCallback = Callable[[KafkaError], None]


class ConfigReader(Protocol):
    """A config topic followed in the background (:class:`CompactedTopicReader`)."""

    def start(self) -> None: ...
    def wait_caught_up(self, timeout_s: float) -> bool: ...
    def get(self, key: str) -> dict[str, Any] | None: ...
    def close(self) -> None: ...


class ClientFactory(Protocol):
    """Opens the runtime's clients. No method is called before :meth:`ServiceApp.run`."""

    def consumer(
        self, client_id: str, group_id: str, overrides: dict[str, Any], on_error: ErrorCallback,
        on_stats: StatsCallback,
    ) -> ConsumerLike: ...
    def producer(self, client_id: str, overrides: dict[str, Any], on_error: ErrorCallback) -> ProducerLike: ...
    def restore(self, changelog: str, partitions: Iterable[int], store: StateStore,
                on_progress: Callable[[], None]) -> int: ...
    def topic_partitions(self, topic: str) -> int | None: ...
    def ensure_topics(self, specs: TopicSpecs) -> None: ...
    def config_reader(self, topic: str, client_id: str) -> ConfigReader: ...
    def end_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]: ...


END_OFFSETS_TIMEOUT_S = 5.0


class BrokerClients:
    """The real clients, for the cluster ``kafka`` describes."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self._admin: AdminClient | None = None

    def consumer(
        self, client_id: str, group_id: str, overrides: dict[str, Any], on_error: ErrorCallback,
        on_stats: StatsCallback,
    ) -> ConsumerLike:
        return make_consumer(self._kafka, client_id, group_id, overrides, on_error=on_error, on_stats=on_stats)

    def producer(self, client_id: str, overrides: dict[str, Any], on_error: ErrorCallback) -> ProducerLike:
        return make_producer(self._kafka, client_id, overrides, on_error=on_error)

    def restore(self, changelog: str, partitions: Iterable[int], store: StateStore,
                on_progress: Callable[[], None]) -> int:
        return restore_partitions(self._kafka, changelog, partitions, store, on_progress=on_progress)

    def topic_partitions(self, topic: str) -> int | None:
        return topic_partitions(self._kafka, topic)

    def ensure_topics(self, specs: TopicSpecs) -> None:
        ensure_topics(self._kafka, specs)

    def config_reader(self, topic: str, client_id: str) -> ConfigReader:
        return CompactedTopicReader(self._kafka, topic, client_id)

    def end_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """Called from the end-offsets thread only. Its admin client is kept between calls while
        every leader answers; after a miss the next call starts a fresh one, whose metadata names
        the partitions' current leaders (a frozen leader's partitions move to another broker)."""
        if self._admin is None:
            self._admin = make_admin(self._kafka, "shopstream-end-offsets")
        found = end_offsets(self._admin, topic, partitions, END_OFFSETS_TIMEOUT_S)
        if len(found) < len(partitions):
            self._admin = None
        return found


def client_id(settings: ServiceSettings) -> str:
    return f"{settings.service_name}-{socket.gethostname()}"


def consumer_overrides(settings: ServiceSettings) -> dict[str, Any]:
    rt = settings.runtime
    overrides: dict[str, Any] = {
        "session.timeout.ms": rt.session_timeout_ms,
        "statistics.interval.ms": rt.statistics_interval_ms,
    }
    if settings.instance_id:
        # static membership: a restarted replica takes its partitions straight back
        overrides["group.instance.id"] = settings.instance_id
    return overrides


def producer_overrides(settings: ServiceSettings) -> dict[str, Any]:
    rt = settings.runtime
    overrides: dict[str, Any] = {"queue.buffering.max.messages": rt.max_inflight_messages * 2}
    if rt.delivery == "exactly_once":
        instance = settings.instance_id or socket.gethostname()
        overrides |= {"transactional.id": f"{settings.resolved_group_id}.{instance}",
                      "transaction.timeout.ms": rt.transaction_timeout_ms}
    return overrides
