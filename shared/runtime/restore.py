"""Rebuild keyed state from the compacted changelog, make sure the topics exist, read end offsets."""

from __future__ import annotations

import concurrent.futures
import logging
import time
import uuid
from collections.abc import Iterable

from confluent_kafka import OFFSET_BEGINNING, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec  # type: ignore[attr-defined]

from shared.errors import BrokerUnavailable
from shared.kafka.clients import make_admin, make_consumer
from shared.runtime.state import StateStore
from shared.settings import KafkaSettings

logger = logging.getLogger(__name__)


def restore_partitions(
    kafka: KafkaSettings, changelog: str, partitions: Iterable[int], store: StateStore, timeout_s: float = 60.0
) -> int:
    """Replay changelog partitions into ``store`` (committed records only); returns records read."""
    wanted = sorted(set(partitions))
    if not wanted:
        return 0
    consumer = make_consumer(
        kafka,
        client_id="shopstream-restore",
        group_id=f"shopstream-restore-{uuid.uuid4().hex}",
        overrides={"enable.partition.eof": True, "partition.assignment.strategy": "range"},
    )
    started = time.monotonic()
    read = 0
    try:
        consumer.assign([TopicPartition(changelog, p, OFFSET_BEGINNING) for p in wanted])
        remaining = set(wanted)
        while remaining:
            if time.monotonic() - started > timeout_s:
                raise BrokerUnavailable(f"restoring {changelog} {sorted(remaining)} took over {timeout_s}s")
            for msg in consumer.consume(num_messages=5000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        remaining.discard(msg.partition())
                    continue
                store.apply_changelog(msg.partition() or 0, [(msg.key(), msg.value())])
                read += 1
    finally:
        consumer.close()
    logger.info("restored %d changelog records for partitions %s in %.2fs", read, wanted, time.monotonic() - started)
    return read


def topic_partitions(kafka: KafkaSettings, topic: str, timeout_s: float = 10.0) -> int | None:
    """How many partitions ``topic`` has, or ``None`` if it does not exist."""
    metadata = make_admin(kafka).list_topics(topic=topic, timeout=timeout_s)
    info = metadata.topics.get(topic)
    if info is None or info.error is not None:
        return None
    return len(info.partitions)


def ensure_topics(kafka: KafkaSettings, specs: dict[str, tuple[int, dict[str, str]]], timeout_s: float = 15.0) -> None:
    """Create missing topics: name → (partitions, config). Existing topics are left alone."""
    admin = make_admin(kafka)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [
        NewTopic(name, num_partitions=partitions, replication_factor=-1, config=config)
        for name, (partitions, config) in specs.items()
        if name not in existing
    ]
    if not missing:
        return
    for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result()
            logger.info("created topic %s", name)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise BrokerUnavailable(f"could not create topic {name}: {exc}") from exc


def end_offsets(admin: AdminClient, topic: str, partitions: Iterable[int], timeout_s: float) -> dict[int, int]:
    """The last stable offsets of ``partitions``, asked of each partition's leader; a partition
    whose leader does not answer within ``timeout_s`` is left out."""
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    wanted = {TopicPartition(topic, p): latest for p in partitions}
    if not wanted:
        return {}
    futures = admin.list_offsets(wanted, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=timeout_s)
    found: dict[int, int] = {}
    for tp, future in futures.items():
        try:
            offset = future.result(timeout_s).offset
        except (KafkaException, concurrent.futures.TimeoutError):
            continue
        if offset >= 0:  # -1001 (unknown) while a partition's leadership moves
            found[tp.partition] = offset
    return found
