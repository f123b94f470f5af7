"""A small reader of a compacted config topic: key → latest JSON object, kept fresh in a thread.

Kafka-thin and reusable (nothing pricing-specific): it assigns every partition of the topic
from the beginning (no consumer group membership, no commits), applies each record as
"key := JSON value" (a tombstone deletes the key) and keeps polling with a short timeout, so a
change on the topic is visible to :meth:`get` within a few hundred milliseconds.

Readers see a consistent snapshot: the mapping is replaced, never mutated in place.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from shared.kafka.clients import make_consumer
from shared.settings import KafkaSettings

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]
POLL_TIMEOUT_S = 0.2


def apply_record(values: Mapping[str, JsonDict], key: bytes | None, value: bytes | None) -> dict[str, JsonDict]:
    """The mapping after one record. Keyless or non-object records are ignored (and logged)."""
    if key is None:
        logger.warning("config record without a key ignored")
        return dict(values)
    name = key.decode("utf-8", errors="replace")
    updated = dict(values)
    if value is None:
        updated.pop(name, None)
        return updated
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        logger.warning("config record %r is not JSON (%s); keeping the previous value", name, exc)
        return updated
    if not isinstance(parsed, dict):
        logger.warning("config record %r is not a JSON object; keeping the previous value", name)
        return updated
    updated[name] = parsed
    return updated


def _is_empty(consumer: Consumer, topic: str, partition: int) -> bool:
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5.0)
    return bool(high <= low)


class CompactedTopicReader:
    """Follows a compacted topic in a daemon thread. Call :meth:`start` (no I/O before it)."""

    def __init__(self, kafka: KafkaSettings, topic: str, client_id: str) -> None:
        self.topic = topic
        self._kafka = kafka
        self._client_id = client_id
        self._values: dict[str, JsonDict] = {}
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread: threading.Thread | None = None

    def get(self, key: str) -> JsonDict | None:
        return self._values.get(key)

    def snapshot(self) -> dict[str, JsonDict]:
        return dict(self._values)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"config-{self.topic}", daemon=True)
        self._thread.start()

    def wait_caught_up(self, timeout_s: float) -> bool:
        """True once every partition was read to its end (or the topic does not exist yet)."""
        return self._caught_up.wait(timeout_s)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def _consumer(self) -> Consumer:
        # fetch.wait.max.ms: a change (a kill switch, a rollout plan) is seen within about this long
        overrides = {"enable.partition.eof": True, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100}
        # A throwaway group id: librdkafka wants one, but we only assign() and never commit.
        group = f"{self._client_id}.config.{uuid.uuid4().hex[:12]}"
        return make_consumer(self._kafka, self._client_id, group, overrides)

    def _assign(self, consumer: Consumer) -> set[int]:
        meta = consumer.list_topics(self.topic, timeout=5.0).topics.get(self.topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return set()
        parts = sorted(meta.partitions)
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in parts])
        # An empty partition is read to its end already: the end-of-partition event would come only
        # after a fetch waits out fetch.wait.max.ms, and every service start waited for it.
        empty = {p for p in parts if _is_empty(consumer, self.topic, p)}
        if empty == set(parts):
            self._caught_up.set()
        return set(parts) - empty or set(parts)

    def _run(self) -> None:
        consumer = self._consumer()
        try:
            pending: set[int] = set()
            while not self._stop.is_set() and not pending:
                pending = self._assign(consumer)
                if not pending:
                    self._caught_up.set()  # no topic yet: the empty config is the truth
                    self._stop.wait(1.0)
            while not self._stop.is_set():
                self._poll_once(consumer, pending)
        except KafkaException:
            logger.exception("config reader for %s stopped", self.topic)
        finally:
            consumer.close()

    def _poll_once(self, consumer: Consumer, pending: set[int]) -> None:
        msg = consumer.poll(POLL_TIMEOUT_S)
        if msg is None:
            return
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                pending.discard(msg.partition() or 0)
                if not pending:
                    self._caught_up.set()
            else:
                logger.warning("config topic %s: %s", self.topic, err.str())
            return
        self._values = apply_record(self._values, msg.key(), msg.value())
