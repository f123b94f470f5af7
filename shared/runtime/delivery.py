"""How a scored batch reaches Kafka: at-least-once (async acks + watermarks) or exactly-once.

Both strategies take the records of one batch as a unit. At-least-once produces them
asynchronously and commits each partition's watermark only once every record derived from its
offsets is acknowledged. Exactly-once wraps the records and the input offsets in one Kafka
transaction. Either way, a failed unit makes its partitions *rewind*: the loop seeks back to the
last safe offset and scores them again, so nothing that was read is lost.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import NamedTuple

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from shared.kafka.protocols import ConsumerLike, ProducerLike
from shared.runtime.offsets import DeliveryUnit, WatermarkTracker

logger = logging.getLogger(__name__)


class OutRecord(NamedTuple):
    """One record to produce (a NamedTuple: built once per output on the hot path)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]
    partition: int | None = None
    """Explicit partition (changelogs); ``None`` lets the partitioner choose by key."""


UnitDone = Callable[[DeliveryUnit], None]


class Rewinds(NamedTuple):
    """Partitions to score again, handed out once by :meth:`Delivery.take_rewinds`."""

    offsets: dict[int, int]
    """partition → offset to seek back to (the first offset of its oldest failed unit)."""
    aborted: frozenset[int]
    """Partitions whose exactly-once transaction aborted: their state must be restored again."""


class Delivery(ABC):
    """Common produce path; subclasses decide when input offsets are committed."""

    def __init__(self, producer: ProducerLike, input_topic: str, on_unit_done: UnitDone) -> None:
        self.producer = producer
        self.input_topic = input_topic
        self.tracker = WatermarkTracker()
        self._on_unit_done = on_unit_done
        self._rewind: dict[int, int] = {}
        """partition → offset to seek back to after a failed unit."""
        self._aborted: set[int] = set()
        self._last_refusal = ""

    def take_rewinds(self) -> Rewinds:
        """The partitions to rewind since the last call (each handed out once)."""
        rewinds = Rewinds(self._rewind, frozenset(self._aborted & set(self._rewind)))
        self._rewind, self._aborted = {}, set()
        return rewinds

    def _fail_unit(self, unit: DeliveryUnit) -> None:
        """Forget a failed unit's partitions and ask for each to be rewound to its oldest unfinished
        offset. Not to the failed unit's own first offset: an older unit of the partition may still
        be in flight (a record refused before it was queued fails its unit at once, ahead of older
        records still awaiting the broker), and forgetting the partition forgets that unit too, so
        a rewind to the failed unit alone would skip its records and later commit past them."""
        for partition in unit.first_offsets:
            start = self.tracker.oldest_unfinished(partition)
            if start is not None:
                self._rewind[partition] = min(self._rewind.get(partition, start), start)
        self.tracker.forget_partitions(set(unit.first_offsets))  # empties the unit's offsets: last

    def _produce(self, record: OutRecord, callback: Callable[[KafkaError | None, object], None] | None) -> None:
        # librdkafka's partitioner picks by key when the partition is -1 (RD_KAFKA_PARTITION_UA)
        partition = record.partition if record.partition is not None else -1
        while True:
            try:
                self.producer.produce(
                    record.topic, record.value, record.key, partition, on_delivery=callback, headers=record.headers
                )
                return
            except BufferError:  # the local queue is full: serve acks until there is room
                self.producer.poll(0.05)
            except KafkaException as exc:
                # Refused before it was queued (the topic's WRITE ACL is gone, or it is too
                # large): fail it like a failed delivery so the unit rewinds and nothing is
                # committed. Exactly-once has no callback and aborts its transaction instead.
                if callback is None:
                    raise
                refusal = f"{record.topic}: {exc.args[0].str()}"
                if refusal != self._last_refusal:  # once per cause, not once per record
                    logger.warning("cannot produce to %s", refusal)
                    self._last_refusal = refusal
                callback(exc.args[0], None)
                return

    @abstractmethod
    def publish(self, unit: DeliveryUnit, records: Sequence[OutRecord], consumer: ConsumerLike) -> None:
        """Produce one batch's records; commit its input offsets when the strategy says so."""

    def maybe_commit(  # noqa: B027 — a hook: exactly-once commits inside its transactions instead
        self, consumer: ConsumerLike, force: bool = False, partitions: set[int] | None = None
    ) -> None:
        """Commit what is safe (at-least-once); exactly-once commits inside transactions."""

    def inflight(self) -> int:
        return len(self.producer)


class AtLeastOnce(Delivery):
    def __init__(self, producer: ProducerLike, input_topic: str, on_unit_done: UnitDone, interval_ms: int) -> None:
        super().__init__(producer, input_topic, on_unit_done)
        self._interval_s = interval_ms / 1000
        self._last_commit = 0.0

    def publish(self, unit: DeliveryUnit, records: Sequence[OutRecord], consumer: ConsumerLike) -> None:
        unit.pending = len(records) + 1  # +1 guards against settling while still producing
        unit.on_settled = self._settled
        for record in records:
            self._produce(record, unit.ack)
        unit.ack(None)

    def _settled(self, unit: DeliveryUnit) -> None:
        if not self.tracker.is_tracked(unit):  # dropped by a revoke or a rewind meanwhile
            return
        if unit.failed:
            logger.warning("delivery failed for unit %d (partitions %s)", unit.unit_id, sorted(unit.first_offsets))
            self._fail_unit(unit)
        else:
            self.tracker.finish(unit)
        self._on_unit_done(unit)

    def maybe_commit(self, consumer: ConsumerLike, force: bool = False, partitions: set[int] | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_commit < self._interval_s:
            return
        self._last_commit = now
        marks = self.tracker.uncommitted()
        if partitions is not None:
            marks = {p: o for p, o in marks.items() if p in partitions}
        if not marks:
            return
        offsets = [TopicPartition(self.input_topic, p, o) for p, o in marks.items()]
        try:
            if force:
                consumer.commit(offsets=offsets, asynchronous=False)
            else:
                consumer.commit(offsets=offsets, asynchronous=True)
            self.tracker.mark_committed(marks)
        except KafkaException as exc:
            logger.warning("offset commit failed (will retry): %s", exc)


class ExactlyOnce(Delivery):
    """One transaction per batch: records, then ``send_offsets_to_transaction``, then commit."""

    def __init__(self, producer: ProducerLike, input_topic: str, on_unit_done: UnitDone, timeout_s: float,
                 on_waiting: Callable[[], None] = lambda: None) -> None:
        super().__init__(producer, input_topic, on_unit_done)
        self._timeout_s = timeout_s
        self._on_waiting = on_waiting
        """Called each time a commit timed out and is tried again (the brokers are away)."""

    def start(self) -> None:
        self.producer.init_transactions(self._timeout_s)

    def publish(self, unit: DeliveryUnit, records: Sequence[OutRecord], consumer: ConsumerLike) -> None:
        self.producer.begin_transaction()
        try:
            for record in records:
                self._produce(record, None)  # the transaction's commit reports failures
            offsets = [TopicPartition(self.input_topic, p, o + 1) for p, o in unit.last_offsets.items()]
            self.producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), self._timeout_s)
            self._commit_with_retry()
        except KafkaException as exc:
            self._abort(unit, exc)
            return
        self.tracker.finish(unit)
        self._on_unit_done(unit)

    def _commit_with_retry(self) -> None:
        while True:
            try:
                self.producer.commit_transaction(self._timeout_s)
                return
            except KafkaException as exc:
                if not exc.args[0].retriable():
                    raise
                logger.warning("commit_transaction retriable error, retrying: %s", exc)
                self._on_waiting()

    def _abort(self, unit: DeliveryUnit, exc: KafkaException) -> None:
        """Abort the transaction and rewind its partitions; the unit is reported failed, so producing
        pauses with back-off (an output whose WRITE ACL was revoked is retried, not spun on or
        crashed over). Only a fatal error (a fenced producer) ends the process, for a restart."""
        error = exc.args[0]
        if error.fatal():
            raise exc
        logger.warning("transaction aborted, rewinding partitions %s: %s", sorted(unit.first_offsets), error)
        try:
            self.producer.abort_transaction(self._timeout_s)
        except KafkaException:
            raise exc from None  # the producer cannot even abort: only a fresh one can go on
        self._aborted.update(unit.first_offsets)
        self._fail_unit(unit)
        unit.failed = True
        self._on_unit_done(unit)
