"""Where a replay's records go: its own output and dead-letter topics, never the live service's.

The runtime's :class:`~shared.runtime.records.RecordBuilder` names the main output topic of every
score; a replay builds with ``--to-topic`` there, so the main outputs land on it. Records a
scorer addresses to its own extra topics (fraud alerts, support escalations) would reach the
shop's live consumers, so they are counted and dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from shared.errors import ShopstreamError
from shared.kafka.protocols import ProducerLike
from shared.runtime.delivery import OutRecord

FLUSH_TIMEOUT_S = 60.0

OnOutput = Callable[[OutRecord], None]
"""Sees every main output the replay writes (``--compare`` keeps them for the join)."""


class ReplayWriter:
    def __init__(self, producer: ProducerLike, to_topic: str, dlq_topic: str,
                 on_output: OnOutput | None = None) -> None:
        self._producer = producer
        self.to_topic = to_topic
        self.dlq_topic = dlq_topic
        self._on_output = on_output
        self.written = 0
        """Main outputs produced to ``to_topic``."""
        self.dead_lettered = 0
        self.dropped: Counter[str] = Counter()
        """Records the scorer addressed to other topics, by topic (not produced)."""
        self._failures: list[str] = []

    def write(self, records: Sequence[OutRecord]) -> None:
        for record in records:
            if record.topic == self.to_topic:
                self.written += 1
                if self._on_output is not None:
                    self._on_output(record)
            elif record.topic == self.dlq_topic:
                self.dead_lettered += 1
            else:
                self.dropped[record.topic] += 1
                continue
            self._produce(record)

    def flush(self) -> None:
        """Wait for every record's acknowledgement; raise if any was refused (nothing is then committed)."""
        remaining = self._producer.flush(FLUSH_TIMEOUT_S)
        if self._failures:
            raise ShopstreamError(f"{len(self._failures)} records refused by Kafka (first: {self._failures[0]})")
        if remaining:
            raise ShopstreamError(f"{remaining} records not acknowledged within {FLUSH_TIMEOUT_S:g} s")

    def _produce(self, record: OutRecord) -> None:
        while True:
            try:
                self._producer.produce(record.topic, record.value, record.key, on_delivery=self._delivered,
                                       headers=record.headers)
                break
            except BufferError:  # the local queue is full: let acknowledgements drain it
                self._producer.poll(0.1)
        self._producer.poll(0)

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._failures.append(str(err))
