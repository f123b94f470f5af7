"""When the loop stops fetching: one controller for every reason to pause, and the back-off clock.

Consumption pauses while any reason holds: the scorer failing (its batch waits for a retry),
producing failing (a unit could not be delivered; retried after a back-off), or backpressure (too
many records await acknowledgement). Only this controller calls ``consumer.pause``/``resume``
and sets the ``shopstream_paused`` gauge, so one reason clearing never resumes past another.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

from prometheus_client import Gauge

from shared.kafka.protocols import ConsumerLike

logger = logging.getLogger(__name__)

PauseReason = Literal["scorer", "produce", "backpressure"]


class Backoff:
    """Exponential back-off: ``initial_s``, doubling per failure up to ``max_s``; reset on success."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self.delay_s = 0.0

    def failed(self) -> float:
        """Record a failure; returns how long to wait before the next try."""
        self.delay_s = min(max(self.delay_s * 2, self._initial_s), self._max_s)
        return self.delay_s

    def reset(self) -> None:
        self.delay_s = 0.0


class PauseController:
    """Owns the pause reasons, the consumer's pause/resume calls and the paused gauge."""

    def __init__(
        self, consumer: ConsumerLike, paused_gauge: Gauge, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._consumer = consumer
        self._gauge = paused_gauge
        self._clock = clock
        self._reasons: dict[PauseReason, float] = {}
        """reason → monotonic time it lifts by itself (``inf``: until resumed)."""

    @property
    def reasons(self) -> frozenset[PauseReason]:
        return frozenset(self._reasons)

    @property
    def paused(self) -> bool:
        return bool(self._reasons)

    def pause(self, reason: PauseReason, for_s: float | None = None) -> None:
        """Pause for ``reason``, until :meth:`resume` or, with ``for_s``, until that much time passed."""
        if not self._reasons:
            self._consumer.pause(self._consumer.assignment())
            self._gauge.set(1)
            logger.info("consumption paused (%s)", reason)
        self._reasons[reason] = self._clock() + for_s if for_s is not None else float("inf")

    def resume(self, reason: PauseReason) -> None:
        if self._reasons.pop(reason, None) is not None and not self._reasons:
            self._consumer.resume(self._consumer.assignment())
            self._gauge.set(0)
            logger.info("consumption resumed")

    def resume_expired(self) -> None:
        """Lift the timed reasons whose time has come (called once per loop turn)."""
        now = self._clock()
        for reason in [r for r, until in self._reasons.items() if until <= now]:
            self.resume(reason)

    def backpressure(self, inflight: int, limit: int) -> None:
        """Pause above ``limit`` records awaiting acknowledgement; resume below half of it."""
        if inflight > limit:
            self.pause("backpressure")
        elif inflight < limit // 2:
            self.resume("backpressure")
