"""Read fixed offset ranges of a topic through ``assign()``, to their ends and no further.

The reader never subscribes, so it never joins a group's membership: no live instance is
rebalanced, and no group's committed offsets move except by an explicit :meth:`RangeReader.commit`
to the consumer's own group. A partition is done once a record at or past ``end - 1`` was read,
or at its end of partition (an aborted transaction or a control record can hold the last offsets
of a range, and no record is delivered for them); the consumer needs ``enable.partition.eof``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from shared.errors import BrokerUnavailable
from shared.kafka.clients import is_fatal
from shared.kafka.message import MessageLike
from tools.replay.ranges import PartitionRange

logger = logging.getLogger(__name__)

READER_CONFIG = {"enable.partition.eof": True, "enable.auto.commit": False}
"""What a consumer handed to :class:`RangeReader` must be made with."""


class RangeReader:
    """The records of ``ranges`` (partition → ``[start, end)``) of ``topic``, a batch at a time."""

    def __init__(self, consumer: Any, topic: str, ranges: Mapping[int, PartitionRange], batch_size: int) -> None:
        self._consumer = consumer
        self._topic = topic
        self._ranges = {p: r for p, r in ranges.items() if r.size > 0}
        self._batch_size = batch_size
        self._next: dict[int, int] = {p: r.start for p, r in self._ranges.items()}
        """partition → the offset after the last record read (what a commit stores)."""
        self._open = set(self._ranges)

    @property
    def done(self) -> bool:
        return not self._open

    def open(self) -> None:
        if self._ranges:
            self._consumer.assign([TopicPartition(self._topic, p, r.start) for p, r in self._ranges.items()])

    def read(self, timeout_s: float = 0.5) -> list[MessageLike]:
        """Up to a batch of the ranges' records, in offset order per partition; ``[]`` once :attr:`done`."""
        if self.done:
            return []
        kept: list[MessageLike] = []
        for msg in self._consumer.consume(num_messages=self._batch_size, timeout=timeout_s):
            partition = msg.partition()
            if msg.error() is not None:
                self._on_error(msg.error(), partition)
            elif partition in self._open:
                offset = msg.offset()
                end = self._ranges[partition].end
                if offset < end:
                    kept.append(msg)
                    self._next[partition] = offset + 1
                if offset >= end - 1:
                    self._close(partition)
        return kept

    def positions(self) -> list[TopicPartition]:
        """Where each partition's reading got to, to commit as the reader's progress."""
        return [TopicPartition(self._topic, p, offset) for p, offset in sorted(self._next.items())]

    def commit(self, *, asynchronous: bool = True) -> None:
        """Store :meth:`positions` in the consumer's own group."""
        if self._next:
            self._consumer.commit(offsets=self.positions(), asynchronous=asynchronous)

    def _on_error(self, err: KafkaError, partition: int | None) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            if partition is not None:
                self._close(partition)
            return
        if is_fatal(err):
            raise BrokerUnavailable(f"reading {self._topic}: {err.str()}")
        logger.warning("reading %s[%s]: %s (the client retries)", self._topic, partition, err.str())

    def _close(self, partition: int) -> None:
        if partition in self._open:
            self._open.discard(partition)
            # nothing past the range is fetched into memory for nothing
            self._consumer.pause([TopicPartition(self._topic, partition)])
