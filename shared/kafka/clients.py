"""Thin confluent-kafka client factories.

Clients are created only when asked for (no network I/O at construction of the callers),
each call builds a fresh config dict (a caller's dict is never mutated), and every client gets
an ``error_cb``; consumers also get a ``stats_cb`` when statistics are enabled.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient

from shared.settings import KafkaSettings

logger = logging.getLogger(__name__)

StatsCallback = Callable[[dict[str, Any]], None]


def is_fatal(err: KafkaError) -> bool:
    """Whether the client that raised ``err`` is dead and must be replaced.

    A consumer's fatal error (e.g. a static member fenced by its own old membership after a
    coordinator failover) reaches ``poll()`` as code ``_FATAL`` with ``fatal()`` False, so the
    flag alone misses it and the service would poll a dead consumer forever.
    """
    return bool(err.fatal()) or err.code() == KafkaError._FATAL


def log_kafka_error(err: KafkaError) -> None:
    """Default ``error_cb``: librdkafka retries transient errors itself, so only log them."""
    level = logging.ERROR if is_fatal(err) else logging.WARNING
    logger.log(level, "kafka client error: %s (code=%s fatal=%s)", err.str(), err.name(), is_fatal(err))


RECOVERY_DEFAULTS = {
    # librdkafka backs off reconnects up to 10 s by default; after a broker or coordinator
    # fails over, that alone can stall a service for ten seconds. One second is plenty.
    "reconnect.backoff.max.ms": 1000,
}


def _with_callbacks(config: dict[str, Any], on_error: Callable[[KafkaError], None] | None) -> dict[str, Any]:
    config = {**RECOVERY_DEFAULTS, **config}
    config["error_cb"] = on_error or log_kafka_error
    return config


def make_consumer(
    kafka: KafkaSettings,
    client_id: str,
    group_id: str,
    overrides: dict[str, Any] | None = None,
    on_error: Callable[[KafkaError], None] | None = None,
    on_stats: StatsCallback | None = None,
) -> Consumer:
    config: dict[str, Any] = {
        **kafka.client_config(client_id),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "isolation.level": "read_committed",
        **(overrides or {}),
    }
    if on_stats is not None:
        config["stats_cb"] = lambda raw: on_stats(json.loads(raw))
    return Consumer(_with_callbacks(config, on_error))


def make_producer(
    kafka: KafkaSettings,
    client_id: str,
    overrides: dict[str, Any] | None = None,
    on_error: Callable[[KafkaError], None] | None = None,
) -> Producer:
    config: dict[str, Any] = {
        **kafka.client_config(client_id),
        "enable.idempotence": True,
        "acks": "all",
        # a turn produces its whole batch at once, so 2 ms is enough for those records to share
        # requests; a longer linger would only add to every score's latency
        "linger.ms": 2,
        "compression.type": "lz4",
        # murmur2 places keys on the same partitions as the Java client, so keyed state
        # written by other producers lines up with ours
        "partitioner": "murmur2_random",
        **(overrides or {}),
    }
    return Producer(_with_callbacks(config, on_error))


def make_admin(kafka: KafkaSettings, client_id: str = "shopstream-admin") -> AdminClient:
    return AdminClient(_with_callbacks(kafka.client_config(client_id), None))


def fetch_positions(stats: dict[str, Any], topic: str) -> dict[int, int]:
    """The next offset the consumer will fetch, per partition of ``topic`` (librdkafka's
    ``next_offset``: past control records and aborted transactions, unlike the application's
    position), from a statistics payload."""
    partitions = stats.get("topics", {}).get(topic, {}).get("partitions", {})
    positions: dict[int, int] = {}
    for number, info in partitions.items():
        partition, offset = int(number), info.get("next_offset", -1)
        if partition >= 0 and offset >= 0:
            positions[partition] = int(offset)
    return positions


def partition_lags(stats: dict[str, Any], topic: str) -> dict[int, int]:
    """Consumer lag per assigned partition of ``topic`` from a librdkafka statistics payload."""
    partitions = stats.get("topics", {}).get(topic, {}).get("partitions", {})
    lags: dict[int, int] = {}
    for number, info in partitions.items():
        partition = int(number)
        lag = info.get("consumer_lag", -1)
        if partition >= 0 and info.get("fetch_state") not in (None, "none", "stopped") and lag >= 0:
            lags[partition] = int(lag)
    return lags
