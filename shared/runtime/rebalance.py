"""Partitions coming and going: restore their state on assign; commit what is done, then drop the
rest, on revoke.

The callbacks run inside ``consume()`` on the loop's thread, so they may touch the loop's
buffers directly. On assign, a partition's state is restored from the changelog *before* the
callback returns, so no event of it is scored before its state is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import TopicPartition

from shared.kafka.protocols import ConsumerLike
from shared.runtime.delivery import Delivery
from shared.runtime.health import HealthState
from shared.runtime.metrics import RuntimeMetrics
from shared.runtime.scorer import Scorer
from shared.runtime.state import StateStore

logger = logging.getLogger(__name__)

DropInflight = Callable[[set[int]], int]
"""Drops the loop's unscored events of some partitions; returns how many."""
Restore = Callable[[Iterable[int]], object]
"""Replays the changelog of some partitions into the state store."""


class Assignment:
    """The input partitions this instance owns, and their consumer-lag gauges."""

    def __init__(self, metrics: RuntimeMetrics, topic: str) -> None:
        self.topic = topic
        self.partitions: set[int] = set()
        self._lag = metrics.lag
        self._service = metrics.service
        self._lag_partitions: set[int] = set()
        self.positions: dict[int, int] = {}
        """partition → the consumer's next fetch offset at the last statistics report."""

    def __contains__(self, partition: object) -> bool:
        return partition in self.partitions

    def report_lags(self, lags: dict[int, int]) -> None:
        for partition, lag in lags.items():
            if partition in self.partitions:
                self._lag.labels(self._service, self.topic, str(partition)).set(lag)
                self._lag_partitions.add(partition)

    def report_positions(self, positions: dict[int, int]) -> None:
        self.positions.update((p, o) for p, o in positions.items() if p in self.partitions)

    def add(self, numbers: Iterable[int]) -> None:
        self.partitions.update(numbers)

    def remove(self, numbers: set[int]) -> None:
        self.partitions -= numbers
        for partition in numbers:
            self.positions.pop(partition, None)
        for partition in numbers & self._lag_partitions:
            self._lag.remove(self._service, self.topic, str(partition))
        self._lag_partitions -= numbers


class Rebalancer:
    """The consumer's ``on_assign``/``on_revoke``/``on_lost`` callbacks."""

    def __init__(
        self, *, scorer: Scorer[Any], state: StateStore | None, metrics: RuntimeMetrics, health: HealthState,
        assignment: Assignment, delivery: Delivery, restore: Restore, drop_inflight: DropInflight,
        flush_timeout_s: float,
    ) -> None:
        self._scorer = scorer
        self._state = state
        self._rebalances = metrics.rebalances
        self._service = metrics.service
        self._health = health
        self._assignment = assignment
        self._delivery = delivery
        self._restore = restore
        self._drop_inflight = drop_inflight
        self._flush_timeout_s = flush_timeout_s

    def on_assign(self, consumer: ConsumerLike, partitions: list[TopicPartition]) -> None:
        numbers = sorted(self._numbers(partitions))
        self._rebalances.labels(self._service, "assign").inc()
        if self._state is not None and numbers:
            self._restore(numbers)
        self._assignment.add(numbers)
        self._scorer.on_assign(numbers)
        self._health.joined = True
        self._health.lost_at = None
        logger.info("assigned partitions %s (now %s)", numbers, sorted(self._assignment.partitions))

    def on_revoke(self, consumer: ConsumerLike, partitions: list[TopicPartition]) -> None:
        self._release(consumer, partitions, commit=True)

    def on_lost(self, consumer: ConsumerLike, partitions: list[TopicPartition]) -> None:
        self._release(consumer, partitions, commit=False)
        self._health.lost_at = time.monotonic()

    def _release(self, consumer: ConsumerLike, partitions: list[TopicPartition], commit: bool) -> None:
        """Commit what is done for leaving partitions, then drop their in-flight work and state."""
        numbers = self._numbers(partitions)
        self._rebalances.labels(self._service, "revoke" if commit else "lost").inc()
        dropped = self._drop_inflight(numbers)
        if commit:
            self._delivery.producer.flush(self._flush_timeout_s)
            self._delivery.maybe_commit(consumer, force=True, partitions=numbers)
        self._delivery.tracker.forget_partitions(numbers)
        self._scorer.on_revoke(sorted(numbers))
        if self._state is not None:
            self._state.drop_partitions(numbers)
        self._assignment.remove(numbers)
        logger.info("released partitions %s (dropped %d unscored events, committed=%s)",
                    sorted(numbers), dropped, commit)

    def _numbers(self, partitions: list[TopicPartition]) -> set[int]:
        return {tp.partition for tp in partitions if tp.topic == self._assignment.topic}
