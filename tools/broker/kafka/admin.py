"""Small AdminClient helpers for tests and the harness: readiness, topics, leaders."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._metadata import ClusterMetadata, TopicMetadata
from confluent_kafka.cimpl import NewTopic

from tools.broker.errors import HarnessError

logger = logging.getLogger(__name__)


def admin_client(bootstrap: str, extra: Mapping[str, str] | None = None) -> AdminClient:
    """An AdminClient that retries refused connections every 100-250 ms instead of backing off to 10 s."""
    config: dict[str, str | int | float | bool] = {
        "bootstrap.servers": bootstrap,
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 250,
    }
    config.update(extra or {})
    # librdkafka's "connection refused" chatter during start-up goes to logging, not stderr.
    return AdminClient(config, logger=logger, error_cb=_log_error)


def _log_error(error: KafkaError) -> None:
    logger.debug("admin client: %s", error)


def wait_until_ready(bootstrap: str, node_ids: set[int], timeout: float = 60.0,
                     alive: Callable[[], bool] = lambda: True) -> ClusterMetadata:
    """Poll metadata at ``bootstrap`` until every node in ``node_ids`` is a registered, unfenced broker.

    ``alive`` is checked between polls so a JVM that died during start-up fails fast.
    """
    admin = admin_client(bootstrap)
    deadline = time.monotonic() + timeout
    while True:
        try:
            metadata = admin.list_topics(timeout=1.0)
            if node_ids <= set(metadata.brokers):
                return metadata
        except KafkaException as exc:
            logger.debug("waiting for %s: %s", bootstrap, exc)
        if not alive():
            raise HarnessError(f"the broker at {bootstrap} exited during start-up")
        if time.monotonic() > deadline:
            raise HarnessError(f"brokers {sorted(node_ids)} not ready at {bootstrap} after {timeout:.0f}s")
        time.sleep(0.1)


def create_topics(bootstrap: str, topics: Mapping[str, int], *, replication_factor: int = -1,
                  config: Mapping[str, str] | None = None, timeout: float = 30.0) -> None:
    """Create ``{name: partitions}`` (existing topics are fine) and wait until every partition has a leader.

    ``replication_factor=-1`` takes the broker's ``default.replication.factor``.
    """
    admin = admin_client(bootstrap)
    new = [NewTopic(name, num_partitions=n, replication_factor=replication_factor, config=dict(config or {}))
           for name, n in topics.items()]
    for name, future in admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout).items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise HarnessError(f"cannot create topic {name!r}: {exc}") from exc
    for name, partitions in topics.items():
        wait_for_topic(bootstrap, name, partitions, timeout=timeout)


def delete_topics(bootstrap: str, names: list[str], timeout: float = 30.0) -> None:
    """Delete topics; missing ones are fine."""
    if not names:
        return
    admin = admin_client(bootstrap)  # held: destroying the client fails its pending futures
    for name, future in admin.delete_topics(names, operation_timeout=timeout).items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise HarnessError(f"cannot delete topic {name!r}: {exc}") from exc


def wait_for_topic(bootstrap: str, name: str, partitions: int | None = None, timeout: float = 30.0) -> None:
    """Wait until ``name`` exists (with ``partitions`` partitions, if given) and each partition has a leader."""
    admin = admin_client(bootstrap)
    deadline = time.monotonic() + timeout
    while True:
        try:
            topic = admin.list_topics(topic=name, timeout=2.0).topics.get(name)
        except KafkaException as exc:
            logger.debug("waiting for topic %s: %s", name, exc)
            topic = None
        if _topic_ready(topic, partitions):
            return
        if time.monotonic() > deadline:
            raise HarnessError(f"topic {name!r} not ready at {bootstrap} after {timeout:.0f}s")
        time.sleep(0.1)


def _topic_ready(topic: TopicMetadata | None, partitions: int | None) -> bool:
    if topic is None or topic.error is not None:
        return False
    if partitions is not None and len(topic.partitions) != partitions:
        return False
    return all(p.leader >= 0 and p.error is None for p in topic.partitions.values())


def leader_of(bootstrap: str, topic: str, partition: int, timeout: float = 10.0) -> int:
    """The node id leading ``topic[partition]``, or -1 while it has no leader."""
    metadata = admin_client(bootstrap).list_topics(topic=topic, timeout=timeout)
    info = metadata.topics.get(topic)
    if info is None or partition not in info.partitions:
        raise HarnessError(f"no metadata for {topic}[{partition}] at {bootstrap}")
    return int(info.partitions[partition].leader)
