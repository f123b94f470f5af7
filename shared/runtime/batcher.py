"""Deadline-aware micro-batching.

A batch flushes when it is full, when its first event has waited ``max_wait_ms``, or earlier
when the oldest event's record timestamp plus the latency budget, less the time scoring is
expected to take, is about to pass. The early flush happens only while it can still save the
oldest event's budget: during a catch-up of old records every deadline has already passed, and
flushing tiny batches then would only lower throughput.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

EWMA_WEIGHT = 0.2
"""How quickly the inference-time estimate follows new measurements."""


@dataclass(slots=True)
class Batcher(Generic[T]):
    max_batch_size: int
    max_wait_ms: float
    latency_budget_ms: float
    inference_estimate_ms: float
    clock_ms: Callable[[], float] = field(default=lambda: time.time() * 1000)
    _items: list[T] = field(default_factory=list)
    _first_arrival_ms: float = 0.0
    _oldest_event_ms: float = float("inf")

    def add(self, item: T, event_time_ms: float) -> None:
        if not self._items:
            self._first_arrival_ms = self.clock_ms()
        self._items.append(item)
        self._oldest_event_ms = min(self._oldest_event_ms, event_time_ms)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def room(self) -> int:
        return max(self.max_batch_size - len(self._items), 0)

    def flush_at_ms(self) -> float:
        """The wall-clock time at which the current batch must flush (``inf`` when empty)."""
        if not self._items:
            return float("inf")
        by_wait = self._first_arrival_ms + self.max_wait_ms
        by_deadline = self._oldest_event_ms + self.latency_budget_ms - self.inference_estimate_ms
        if by_deadline < self._first_arrival_ms:
            return by_wait  # already late on arrival: batching for throughput is the better deal
        return min(by_wait, by_deadline)

    def is_due(self) -> bool:
        return len(self._items) >= self.max_batch_size or self.clock_ms() >= self.flush_at_ms()

    def seconds_until_due(self) -> float:
        return max((self.flush_at_ms() - self.clock_ms()) / 1000, 0.0)

    def take(self) -> list[T]:
        items, self._items = self._items, []
        self._oldest_event_ms = float("inf")
        return items

    def drop(self, keep: Callable[[T], bool]) -> int:
        """Remove items (e.g. of revoked partitions); returns how many were dropped."""
        before = len(self._items)
        self._items = [item for item in self._items if keep(item)]
        if not self._items:
            self._oldest_event_ms = float("inf")
        return before - len(self._items)

    def observe_inference(self, elapsed_ms: float) -> None:
        self.inference_estimate_ms += EWMA_WEIGHT * (elapsed_ms - self.inference_estimate_ms)
