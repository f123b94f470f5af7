"""A batch the scorer failed on: retried, and halved to find a poison record.

A scorer that raises is either broken for everything (the model is down: *systemic*) or tripped
by one record (a value that hits a bug: *poison*). One failure cannot tell them apart, so the
loop keeps the batch here and goes step by step:

1. The batch is retried as it is, after a back-off, while consumption is paused: a model that
   comes back within a few tries costs nothing else.
2. Once it has failed ``split_after`` times it is split in halves, scored left to right without
   waiting: a part that scores is published; a part that fails is halved again at once. The
   failing record is alone after about log2(batch size) tries.
3. A record that has failed ``poison_after`` times alone is *judged* by the loop: poison if the
   scorer is known to work (another part of this batch scored, or a probe does, see
   :func:`shared.runtime.scoring.probe`), and then dead-lettered with reason
   :data:`SCORER_ERROR`; otherwise systemic: retried with back-off, nothing dead-lettered.

Parts are scored in the batch's order, so every key sees its events in order and the state and
outputs are those of a run without the poison record.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container
from dataclasses import dataclass
from enum import Enum

from shared.runtime.records import Pending

SCORER_ERROR = "scorer_error"
"""The dead-letter reason of a record the scorer raised on while it scored the records around it."""


class Next(Enum):
    """What to do after a failed try."""

    BACK_OFF = "back_off"
    """Try the same part again after the back-off."""
    SPLIT = "split"
    """The part was halved: try its first half now."""
    JUDGE = "judge"
    """A lone record failed ``poison_after`` times: decide between poison and systemic."""


@dataclass(slots=True)
class FailedBatch:
    """The unscored parts of a failed batch, in order, and the failures of the first one."""

    parts: deque[list[Pending]]
    due_at: float
    """When the first part is tried next (monotonic seconds)."""
    failures: int = 0
    """Consecutive failed tries of the first part."""
    halved: bool = False
    """Whether isolation has started: parts are then halved after one failure."""
    scored_any: bool = False
    """Some part of this batch scored: the scorer works, so a record failing alone is poison."""

    @classmethod
    def of(cls, batch: list[Pending], due_at: float) -> FailedBatch:
        return cls(deque([batch]), due_at)

    @property
    def head(self) -> list[Pending]:
        return self.parts[0]

    @property
    def done(self) -> bool:
        return not self.parts

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    def failed(self, split_after: int, poison_after: int) -> Next:
        """Count a failed try of the first part and say what comes next."""
        self.failures += 1
        head = self.head
        if len(head) > 1:
            if self.halved or self.failures >= split_after:
                middle = len(head) // 2
                self.parts.popleft()
                self.parts.extendleft([head[middle:], head[:middle]])
                self.halved, self.failures = True, 0
                return Next.SPLIT
            return Next.BACK_OFF
        return Next.JUDGE if self.failures >= poison_after else Next.BACK_OFF

    def scored(self) -> None:
        """The first part scored (and is published by the loop)."""
        self.parts.popleft()
        self.failures, self.scored_any = 0, True

    def take_poison(self) -> Pending:
        """Remove the lone failing record for the dead-letter topic."""
        (poison,) = self.parts.popleft()
        self.failures = 0
        return poison

    def drop_partitions(self, numbers: Container[int]) -> int:
        """Forget the events of revoked or rewound partitions; returns how many."""
        before = len(self)
        kept = [[p for p in part if p.event.partition not in numbers] for part in self.parts]
        if kept and len(kept[0]) != len(self.parts[0]):
            self.failures = 0  # the first part changed: its count no longer describes it
        self.parts = deque(part for part in kept if part)
        return before - len(self)
