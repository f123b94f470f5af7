"""The records a service writes per input event, captured once and replayed by the I/O limit.

The I/O limit must write what the service writes, not just forward its input: the same number
of records per input event on the same topics (scores, dead letters, extra outputs such as
pricing's forecasts, and a stateful scorer's changelog), with the same keys, values and
headers. :class:`RecordSetBuilder` collects them while the benchmark scores its events with the
service's own code (:func:`tools.bench.scoring.capture_feeds`, in batches of the service's batch
size, so the changelog holds one record per key changed in a batch, as in the service); the I/O
limit then writes the record set of the ``i``-th captured event (cycling) for its ``i``-th input
record, taking the lineage headers that name the input record from the record it consumed.

Topics are stored by their settings field (``output_topic``, ``dlq_topic``, ``changelog_topic``,
``forecast_topic``...), so a capture made with one set of topic names replays onto another.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.kafka.message import MessageLike
from shared.runtime.delivery import OutRecord
from shared.schemas import headers as h

PER_EVENT_HEADERS = (h.SOURCE_TOPIC, h.SOURCE_PARTITION, h.SOURCE_OFFSET, h.EVENT_TIME_MS)
"""Headers whose value comes from the input record; every other header is replayed as captured."""
TIMED_ROLES = ("output_topic", "dlq_topic")
"""Scores and dead letters: every input event ends in one of them (what the benchmark counts)."""
CHANGELOG = "changelog_topic"
RECORD_SET_EVENTS = 2048
"""Events (evenly spaced over a capture) whose records are kept for the replay."""

Headers = list[tuple[str, str | bytes | None]]


@dataclass(frozen=True, slots=True)
class PlannedRecord:
    role: str
    """The settings field of the record's topic."""
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    """The headers that do not depend on the input record."""
    per_event: tuple[str, ...]
    """Names of the headers filled from the input record (:data:`PER_EVENT_HEADERS`)."""

    def headers_for(self, lineage: Mapping[str, bytes]) -> Headers:
        return [*self.headers, *((name, lineage[name]) for name in self.per_event)]


def lineage_of(msg: MessageLike) -> dict[str, bytes]:
    """The per-event header values for an input record (as the service derives them)."""
    return {h.SOURCE_TOPIC: (msg.topic() or "").encode(), h.SOURCE_PARTITION: str(msg.partition()).encode(),
            h.SOURCE_OFFSET: str(msg.offset()).encode(), h.EVENT_TIME_MS: str(msg.timestamp()[1]).encode()}


def _planned(record: OutRecord, role: str) -> PlannedRecord:
    headers = [(name, value if isinstance(value, bytes) else (value or "").encode())
               for name, value in record.headers]
    return PlannedRecord(role, record.key, record.value,
                         tuple((n, v) for n, v in headers if n not in PER_EVENT_HEADERS),
                         tuple(n for n, _ in headers if n in PER_EVENT_HEADERS))


@dataclass(frozen=True)
class RecordSet:
    events: list[tuple[PlannedRecord, ...]]
    """What the service wrote for each captured input event (a sample of them, in order)."""

    def for_input(self, index: int) -> tuple[PlannedRecord, ...]:
        """The records to write for the ``index``-th input record (the captured events cycle)."""
        return self.events[index % len(self.events)]

    def count(self, inputs: int, roles: Iterable[str] = TIMED_ROLES) -> int:
        """Records on ``roles`` written for the first ``inputs`` input records."""
        wanted = set(roles)
        return sum(1 for i in range(inputs) for r in self.for_input(i) if r.role in wanted)

    def per_event(self) -> dict[str, float]:
        """Records per input event, by role."""
        counts: dict[str, int] = {}
        for records in self.events:
            for r in records:
                counts[r.role] = counts.get(r.role, 0) + 1
        return {role: n / max(len(self.events), 1) for role, n in sorted(counts.items())}

    def save(self, path: Path) -> Path:
        def enc(b: bytes | None) -> str | None:
            return None if b is None else b.decode("latin-1")  # latin-1: every byte round-trips

        rows = [[[r.role, enc(r.key), enc(r.value), [[n, enc(v)] for n, v in r.headers], list(r.per_event)]
                 for r in records] for records in self.events]
        path.write_text(json.dumps({"events": rows}))
        return path

    @classmethod
    def load(cls, path: Path) -> RecordSet:
        def dec(s: str | None) -> bytes | None:
            return None if s is None else s.encode("latin-1")

        rows = json.loads(path.read_text())["events"]
        return cls([tuple(PlannedRecord(role, dec(key), dec(value), tuple((n, dec(v) or b"") for n, v in headers),
                                        tuple(per_event)) for role, key, value, headers, per_event in records)
                    for records in rows])


class RecordSetBuilder:
    """Collects a service's records per input event from scored batches.

    ``roles`` maps each topic the service writes to its settings field. Of ``total`` input
    events only about ``keep`` (evenly spaced, so a stateful scorer's later, larger states are
    in the sample) are kept. A record is attributed to its input event by its source-offset
    header; records without one (the changelog) are spread evenly over the batch's events.
    """

    def __init__(self, roles: Mapping[str, str], total: int, keep: int = RECORD_SET_EVENTS) -> None:
        self._roles = dict(roles)
        self._stride = max(1, -(-total // max(keep, 1)))
        self._seen = 0
        self._events: list[tuple[PlannedRecord, ...]] = []

    def add(self, inputs: Sequence[MessageLike], outputs: Sequence[OutRecord]) -> None:
        per_input: list[list[PlannedRecord]] = [[] for _ in inputs]
        position = {str(msg.offset()).encode(): i for i, msg in enumerate(inputs)}
        unattributed: list[PlannedRecord] = []
        for record in outputs:
            planned = _planned(record, self._role(record.topic))
            offset = dict(record.headers).get(h.SOURCE_OFFSET)
            index = position.get(offset if isinstance(offset, bytes) else str(offset).encode())
            (per_input[index] if index is not None else unattributed).append(planned)
        n = len(inputs)
        for j, records in enumerate(per_input):
            records.extend(unattributed[j * len(unattributed) // n:(j + 1) * len(unattributed) // n])
            if (self._seen + j) % self._stride == 0:
                self._events.append(tuple(records))
        self._seen += n

    def _role(self, topic: str) -> str:
        if topic not in self._roles:
            raise KeyError(f"the service wrote to {topic!r}, which is none of its topic settings")
        return self._roles[topic]

    def build(self) -> RecordSet:
        if not self._events:
            raise ValueError("no scored events were captured")
        return RecordSet(list(self._events))
