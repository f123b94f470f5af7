"""Per-partition commit watermarks for at-least-once delivery.

A *unit* is the set of input offsets of one micro-batch together with the number of records
produced from them (scores, dead letters, state changes). The unit is done when every one of
those records is acknowledged. A partition's watermark, the offset safe to commit, is the first
offset of its oldest unfinished unit, or one past the highest finished offset when none is
pending. Offsets are therefore never committed ahead of the work that depends on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class DeliveryUnit:
    """The records one batch produced and the input offsets they cover."""

    unit_id: int
    first_offsets: dict[int, int]
    """partition → lowest input offset in the unit."""
    last_offsets: dict[int, int]
    """partition → highest input offset in the unit."""
    pending: int = 0
    failed: bool = False
    event_times_ms: list[int] = field(default_factory=list)
    on_settled: Callable[[DeliveryUnit], None] | None = None

    def ack(self, err: Any, _msg: Any = None) -> None:
        """librdkafka delivery callback: kept tiny because it runs once per produced record."""
        self.pending -= 1
        if err is not None:
            self.failed = True
        if self.pending == 0 and self.on_settled is not None:
            self.on_settled(self)


class WatermarkTracker:
    """Tracks delivery units and tells which offsets may be committed, per partition."""

    def __init__(self) -> None:
        self._units: dict[int, DeliveryUnit] = {}
        self._done_upto: dict[int, int] = {}
        """partition → next offset after the highest finished offset."""
        self._next_id = 0
        self._committed: dict[int, int] = {}

    def open_unit(self, offsets_by_partition: dict[int, list[int]], event_times_ms: list[int]) -> DeliveryUnit:
        unit = DeliveryUnit(
            unit_id=self._next_id,
            first_offsets={p: min(o) for p, o in offsets_by_partition.items()},
            last_offsets={p: max(o) for p, o in offsets_by_partition.items()},
            event_times_ms=event_times_ms,
        )
        self._next_id += 1
        self._units[unit.unit_id] = unit
        return unit

    def add_pending(self, unit: DeliveryUnit, count: int = 1) -> None:
        unit.pending += count

    def acknowledge(self, unit_id: int, ok: bool) -> DeliveryUnit | None:
        """One record of the unit was acknowledged (or failed). Returns the unit once settled."""
        unit = self._units.get(unit_id)
        if unit is None:  # dropped by a revoke or a rewind; late acks are harmless
            return None
        unit.pending -= 1
        unit.failed = unit.failed or not ok
        return unit if unit.pending <= 0 else None

    def is_tracked(self, unit: DeliveryUnit) -> bool:
        return unit.unit_id in self._units

    def finish(self, unit: DeliveryUnit) -> None:
        """A settled, successful unit: its offsets count as done."""
        self._units.pop(unit.unit_id, None)
        for partition, last in unit.last_offsets.items():
            self._done_upto[partition] = max(self._done_upto.get(partition, 0), last + 1)

    def watermarks(self) -> dict[int, int]:
        """partition → offset that is safe to commit now."""
        marks = dict(self._done_upto)
        for unit in self._units.values():
            for partition, first in unit.first_offsets.items():
                marks[partition] = min(marks.get(partition, first), first)
        return marks

    def oldest_unfinished(self, partition: int) -> int | None:
        """The first offset of the partition's oldest unit still tracked, or ``None``."""
        firsts = [u.first_offsets[partition] for u in self._units.values() if partition in u.first_offsets]
        return min(firsts, default=None)

    def uncommitted(self) -> dict[int, int]:
        """Watermarks that moved since the last :meth:`mark_committed`."""
        return {p: o for p, o in self.watermarks().items() if self._committed.get(p) != o and o > 0}

    def mark_committed(self, offsets: dict[int, int]) -> None:
        self._committed.update(offsets)

    def forget_partitions(self, partitions: set[int]) -> None:
        """Drop all tracking of partitions (revoked, or rewound after a failed delivery)."""
        for partition in partitions:
            self._done_upto.pop(partition, None)
            self._committed.pop(partition, None)
        for unit_id in [u.unit_id for u in self._units.values() if partitions & set(u.first_offsets)]:
            unit = self._units[unit_id]
            for partition in partitions:
                unit.first_offsets.pop(partition, None)
                unit.last_offsets.pop(partition, None)
            if not unit.first_offsets:
                del self._units[unit_id]

    def pending_units(self) -> int:
        return len(self._units)

    def pending_records(self) -> int:
        return sum(unit.pending for unit in self._units.values())
