"""What a replay is asked to do (:class:`ReplayRequest`) and what it did (:class:`ReplaySummary`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.schemas.headers import DLQ_SUFFIX
from tools.replay.ranges import Bound, Ranges, total


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    start: Bound
    end: Bound | None
    """Exclusive; ``None``: the partitions' ends when the replay starts."""
    model_version: str
    to_topic: str
    group_id: str | None = None
    """``None``: ``shopstream.replay.<service>.<8 hex digits>``, new for each replay."""

    @property
    def dlq_topic(self) -> str:
        return self.to_topic + DLQ_SUFFIX


@dataclass(slots=True)
class ReplaySummary:
    service: str
    model_version: str
    input_topic: str
    to_topic: str
    group_id: str
    ranges: Ranges
    stateful: bool
    read: int = 0
    scored: int = 0
    rejected: int = 0
    written: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    """Outputs for the scorer's extra topics, by topic: not written."""
    seconds: float = 0.0
    first_timestamp_ms: int | None = None
    """The earliest input record's timestamp (where ``--compare`` starts reading the live outputs)."""

    @property
    def total(self) -> int:
        return total(self.ranges)

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        dropped = sum(self.dropped.values())
        return (f"replayed {self.input_topic} with {self.service} {self.model_version} to {self.to_topic}: "
                f"read {self.read}, scored {self.scored}, rejected {self.rejected}, written {self.written}, "
                f"dropped {dropped} (extra topics), {self.seconds:.1f} s, {self.rate:,.0f} records/s")

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service, "model_version": self.model_version, "input_topic": self.input_topic,
            "to_topic": self.to_topic, "group_id": self.group_id, "stateful": self.stateful,
            "ranges": {str(p): [r.start, r.end] for p, r in sorted(self.ranges.items())},
            "records": self.total, "read": self.read, "scored": self.scored, "rejected": self.rejected,
            "written": self.written, "dropped": dict(self.dropped), "seconds": round(self.seconds, 3),
        }  # fmt: skip

