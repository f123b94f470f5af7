"""The input partitions' end offsets, asked of the brokers themselves, from a thread of its own.

The stall check needs to know whether records are waiting on a partition. The consumer's own view
(librdkafka's statistics) is not enough: when the broker that leads a partition freezes, the
consumer's fetch to it hangs until a request timeout, the partition's new leader takes new records,
and the consumer, seeing nothing new, reports the partition as caught up. An admin client's
``list_offsets`` goes to the partition's current leader, refreshing its metadata when a broker does
not answer, so it sees those records. It runs here, every ``interval_s``, so a slow or frozen broker
never blocks the loop; a partition whose leader does not answer keeps its last known end offset.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection

logger = logging.getLogger(__name__)

Lookup = Callable[[str, list[int]], dict[int, int]]
"""(topic, partitions) → {partition: end offset} for the partitions whose leader answered."""


class EndOffsets:
    """The latest end offset known for each watched partition, refreshed in the background."""

    def __init__(self, lookup: Lookup, topic: str, interval_s: float) -> None:
        self._lookup = lookup
        self._topic = topic
        self._interval_s = interval_s
        self._watched: frozenset[int] = frozenset()
        self.latest: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, partitions: Collection[int]) -> None:
        """The partitions to ask about from now on (the loop's assignment)."""
        watched = frozenset(partitions)
        if watched != self._watched:
            self._watched = watched
            self.latest = {p: o for p, o in self.latest.items() if p in watched}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="end-offsets", daemon=True)
        self._thread.start()

    def refresh(self) -> None:
        """One round of lookups (the thread's body; tests call it directly)."""
        watched = self._watched
        if not watched:
            return
        try:
            found = self._lookup(self._topic, sorted(watched))
        except Exception as exc:  # a broker outage must not end the thread
            logger.debug("end offsets of %s not available: %s", self._topic, exc)
            return
        self.latest = {**self.latest, **{p: o for p, o in found.items() if p in self._watched}}

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.refresh()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)  # a daemon thread: a lookup in flight must not delay shutdown
