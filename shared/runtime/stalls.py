"""A partition that silently stops making progress is noticed.

The complaint users of stream processors make most: the consumer stops fetching one partition
(a frozen broker, a stuck fetch session, a leader that moved) while the process looks healthy,
because every other partition keeps going and the loop keeps turning. Here a partition is
*stalled* when records wait on it that the consumer has not fetched (the partition's end offset,
asked of its leader by :mod:`shared.runtime.end_offsets`, is past the consumer's next fetch
offset) and nothing of it was delivered for ``stall_after_s``, while the loop itself turned and
consumption was not paused. A pause has its own stated reason (a failing scorer or output,
backpressure) and is not a stall: a paused partition's clock starts again when it resumes.

Progress is a delivery unit of the partition settling successfully, which is when its offsets
become committable (at-least-once) or are committed in the unit's transaction (exactly-once).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import NamedTuple

logger = logging.getLogger(__name__)


class StallChange(NamedTuple):
    started: frozenset[int]
    ended: frozenset[int]


class StallWatch:
    """When each assigned partition last made progress, and which ones are stalled."""

    def __init__(self, stall_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.after_s = stall_after_s
        self._clock = clock
        self._progress_at: dict[int, float] = {}
        self.progress_wall_time: dict[int, float] = {}
        """partition → Unix time of its last progress (for the metric: a timestamp, not an age)."""
        self.stalled: frozenset[int] = frozenset()

    def progressed(self, partitions: Iterable[int]) -> None:
        now, wall = self._clock(), time.time()
        for partition in partitions:
            self._progress_at[partition] = now
            self.progress_wall_time[partition] = wall

    def check(self, assigned: Collection[int], waiting: Mapping[int, int], paused: bool) -> StallChange:
        """Which partitions became stalled or stopped being stalled since the last check;
        ``waiting``: records on each partition the consumer has not fetched (unknown: none)."""
        now = self._clock()
        for partition in [p for p in self._progress_at if p not in assigned]:
            del self._progress_at[partition]
            self.progress_wall_time.pop(partition, None)
        for partition in assigned:
            if paused or partition not in self._progress_at:  # newly assigned or paused: the clock starts now
                self._progress_at[partition] = now
                self.progress_wall_time.setdefault(partition, time.time())
        stalled = frozenset(p for p in assigned
                            if waiting.get(p, 0) > 0 and now - self._progress_at[p] >= self.after_s)
        change = StallChange(stalled - self.stalled, self.stalled - stalled)
        self.stalled = stalled
        return change
