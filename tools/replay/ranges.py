"""Where a replay starts and stops: ``--from``/``--to`` parsed and resolved to offsets per partition.

A bound is a time (ISO-8601, e.g. ``2026-12-03T08:00:00Z``, or epoch milliseconds written with an
``ms`` suffix, e.g. ``1796284800000ms``), an offset applied to every partition (``1200``) or
offsets per partition (``0:1200,1:1180``). A time becomes, per partition, the first offset whose
record timestamp is at or after it (the consumer's ``offsets_for_times``); ``--to`` is exclusive
and defaults to the partitions' current ends (high watermarks).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from confluent_kafka import KafkaException, TopicPartition

from shared.errors import BrokerUnavailable, ConfigError

logger = logging.getLogger(__name__)

SURELY_A_TIME = 10**12
"""A plain integer this large is an epoch-milliseconds time written without its ``ms`` suffix (it is
September 2001), never an offset a partition reaches; it is refused rather than guessed."""
_PER_PARTITION = re.compile(r"\d+:\d+(?:,\d+:\d+)*")


@dataclass(frozen=True, slots=True)
class AtTime:
    ms: int
    """Epoch milliseconds."""


@dataclass(frozen=True, slots=True)
class AtOffset:
    offset: int
    """The same offset in every partition."""


@dataclass(frozen=True, slots=True)
class AtOffsets:
    offsets: Mapping[int, int]
    """partition → offset; a ``--from`` leaves the other partitions out of the range."""


Bound = AtTime | AtOffset | AtOffsets


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """``[start, end)`` of one partition."""

    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return max(self.end - self.start, 0)


Ranges = dict[int, PartitionRange]


def total(ranges: Mapping[int, PartitionRange]) -> int:
    return sum(r.size for r in ranges.values())


def parse_bound(text: str) -> Bound:
    """A ``--from``/``--to`` value; :class:`ConfigError` naming the accepted forms otherwise."""
    text = text.strip()
    if text.endswith("ms") and text[:-2].isdigit():
        return AtTime(int(text[:-2]))
    if text.isdigit():
        if int(text) >= SURELY_A_TIME:
            raise ConfigError(f"{text} looks like epoch milliseconds, not an offset: write {text}ms for a time")
        return AtOffset(int(text))
    if _PER_PARTITION.fullmatch(text):
        pairs = [part.split(":") for part in text.split(",")]
        offsets = {int(p): int(o) for p, o in pairs}
        if len(offsets) < len(pairs):
            raise ConfigError(f"{text}: a partition is named twice")
        return AtOffsets(offsets)
    return AtTime(_epoch_ms(text))


def _epoch_ms(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a time or an offset: expected an ISO-8601 time "
                          "(2026-12-03T08:00:00Z), epoch milliseconds (1796284800000ms), an offset (1200) "
                          "or offsets per partition (0:1200,1:1180)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # brokers stamp records in UTC; a local guess would shift the range
    return int(moment.timestamp() * 1000)


class OffsetLookup(Protocol):
    """What resolving a range asks of the cluster (a consumer's metadata calls)."""

    def partitions(self, topic: str) -> list[int]: ...
    def watermarks(self, topic: str, partition: int) -> tuple[int, int]: ...
    def offsets_for_time(self, topic: str, partitions: Sequence[int], ms: int) -> dict[int, int]:
        """The first offset at or after ``ms`` per partition; ``-1`` where no record is that late."""
        ...


class ConsumerLookup:
    """:class:`OffsetLookup` through a confluent-kafka consumer."""

    def __init__(self, consumer: Any, timeout_s: float = 10.0) -> None:
        self._consumer = consumer
        self._timeout = timeout_s

    def partitions(self, topic: str) -> list[int]:
        meta = self._call(self._consumer.list_topics, topic, timeout=self._timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            return []
        return sorted(meta.partitions)

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        low, high = self._call(self._consumer.get_watermark_offsets, TopicPartition(topic, partition),
                               timeout=self._timeout, cached=False)
        return int(low), int(high)

    def offsets_for_time(self, topic: str, partitions: Sequence[int], ms: int) -> dict[int, int]:
        found = self._call(self._consumer.offsets_for_times, [TopicPartition(topic, p, ms) for p in partitions],
                           timeout=self._timeout)
        return {tp.partition: tp.offset for tp in found}

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except KafkaException as exc:
            raise BrokerUnavailable(f"{method.__name__}: {exc}") from exc


def resolve(lookup: OffsetLookup, topic: str, start: Bound, end: Bound | None = None) -> Ranges:
    """Per-partition ``[start, end)`` of ``topic``; offsets are kept within what the partitions hold."""
    partitions = lookup.partitions(topic)
    if not partitions:
        raise ConfigError(f"topic {topic} does not exist or has no partitions")
    marks = {p: lookup.watermarks(topic, p) for p in partitions}
    starts = _offsets(lookup, topic, start, marks, "--from")
    ends = {p: high for p, (_, high) in marks.items()} if end is None else _offsets(lookup, topic, end, marks, "--to")
    ranges: Ranges = {}
    for p, first in starts.items():
        low, high = marks[p]
        if first < low:
            logger.warning("partition %d: offsets %d to %d are gone (retention); the range starts at %d",
                           p, first, low - 1, low)
        first = min(max(first, low), high)
        last = min(ends.get(p, high), high)
        if end is not None and last < first:
            raise ConfigError(f"--to is before --from on partition {p} (offsets {last} < {first})")
        ranges[p] = PartitionRange(p, first, max(last, first))
    return ranges


def _offsets(lookup: OffsetLookup, topic: str, bound: Bound, marks: Mapping[int, tuple[int, int]],
             option: str) -> dict[int, int]:
    if isinstance(bound, AtOffset):
        return dict.fromkeys(marks, bound.offset)
    if isinstance(bound, AtOffsets):
        unknown = sorted(set(bound.offsets) - set(marks))
        if unknown:
            raise ConfigError(f"{option}: {topic} has no partition {', '.join(map(str, unknown))} "
                              f"(it has {len(marks)})")
        return dict(bound.offsets)
    found = lookup.offsets_for_time(topic, sorted(marks), bound.ms)
    # -1: no record that late, so the bound is the partition's end
    return {p: found.get(p, -1) if found.get(p, -1) >= 0 else marks[p][1] for p in marks}
