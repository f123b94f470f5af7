"""Rebuild keyed state from the compacted changelog, make sure the topics exist, read end offsets."""

from __future__ import annotations

import concurrent.futures
import logging
import time
import uuid
from collections.abc import Callable, Iterable

from confluent_kafka import OFFSET_BEGINNING, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec  # type: ignore[attr-defined]

from shared.errors import BrokerUnavailable
from shared.kafka.clients import make_admin, make_consumer
from shared.runtime.state import StateStore
from shared.settings import KafkaSettings

logger = logging.getLogger(__name__)


RESTORE_STALL_S = 60.0
"""A restore fails (:class:`BrokerUnavailable`) after this long without a changelog record."""
PROGRESS_LOG_S = 10.0


class ChangelogReplay:
    """The last record of each key per partition, in the order of their last writes.

    Replaying only those is what replaying every record would leave behind, but parses each
    value once instead of once per write: a changelog whose active segment the broker has not
    compacted yet holds many writes per key (fraud: ~30 per key after 13 minutes of load).
    """

    def __init__(self) -> None:
        self.latest: dict[int, dict[bytes, bytes | None]] = {}
        self.records = 0

    def add(self, partition: int, key: bytes | None, value: bytes | None) -> None:
        self.records += 1
        if key is None:
            return
        keys = self.latest.setdefault(partition, {})
        keys.pop(key, None)  # re-inserted: the dict's order is the order of last writes
        keys[key] = value

    def apply(self, store: StateStore) -> None:
        for partition, keys in self.latest.items():
            store.apply_changelog(partition, keys.items())


def restore_partitions(
    kafka: KafkaSettings, changelog: str, partitions: Iterable[int], store: StateStore,
    stall_s: float = RESTORE_STALL_S, on_progress: Callable[[], None] = lambda: None,
) -> int:
    """Replay changelog partitions into ``store`` (committed records only); returns records read.

    However long a restore takes, it goes on while records keep coming (a big changelog on a
    loaded machine can take minutes, and failing it would only start it over from the beginning
    on the next try); ``on_progress`` is called as they come, so the caller can tell the
    liveness probe that a restore is not a wedged loop. Only ``stall_s`` without a record fails
    it: then the broker is not serving the changelog.
    """
    wanted = sorted(set(partitions))
    if not wanted:
        return 0
    consumer = make_consumer(
        kafka,
        client_id="shopstream-restore",
        group_id=f"shopstream-restore-{uuid.uuid4().hex}",
        overrides={"enable.partition.eof": True, "partition.assignment.strategy": "range"},
    )
    started = last_record = last_log = time.monotonic()
    replay = ChangelogReplay()
    try:
        consumer.assign([TopicPartition(changelog, p, OFFSET_BEGINNING) for p in wanted])
        remaining = set(wanted)
        while remaining:
            now = time.monotonic()
            if now - last_record > stall_s:
                raise BrokerUnavailable(f"restoring {changelog} {sorted(remaining)}: no record for {stall_s:.0f}s "
                                        f"({replay.records} read in {now - started:.0f}s)")
            if now - last_log > PROGRESS_LOG_S:
                last_log = now
                logger.info("restoring %s %s: %d records read so far", changelog, sorted(remaining), replay.records)
            messages = consumer.consume(num_messages=5000, timeout=0.5)
            if messages:
                last_record = time.monotonic()
                on_progress()
            for msg in messages:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        remaining.discard(msg.partition())
                    continue
                replay.add(msg.partition() or 0, msg.key(), msg.value())
    finally:
        consumer.close()
    replay.apply(store)
    logger.info("restored %d changelog records (%d keys) for partitions %s in %.2fs", replay.records,
                sum(len(keys) for keys in replay.latest.values()), wanted, time.monotonic() - started)
    return replay.records


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
