"""Measuring helpers for benchmarks: output timing from broker timestamps, process CPU and RSS."""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, Message

from shared.schemas import headers as h

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class OutputTiming:
    count: int
    first_ms: int
    last_ms: int
    latencies_ms: list[float]
    """Broker append time of each score minus its event time (``x-event-time-ms``)."""
    event_times_ms: list[int] = field(default_factory=list)
    """The event time of each latency above (to split a run into load phases)."""

    @property
    def throughput(self) -> float:
        span = (self.last_ms - self.first_ms) / 1000
        return self.count / span if span > 0 else float("nan")

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def window(self, start_ms: int, end_ms: int) -> list[float]:
        """Latencies of the events whose event time lies in ``[start_ms, end_ms)``."""
        return [lat for lat, t in zip(self.latencies_ms, self.event_times_ms, strict=True) if start_ms <= t < end_ms]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by rank, NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def read_output_timing(bootstrap: str, topic: str | Sequence[str], expected: int, timeout_s: float = 300,
                       idle_s: float | None = None) -> OutputTiming:
    """Read ``expected`` records of output topics created with LogAppendTime timestamps.

    Several topics (scores and dead letters) are read together and counted as one. With
    ``idle_s``, reading also ends once records have arrived and none came for that long (a
    scorer may write nothing for some events); otherwise too few records is an error.
    """
    topics = [topic] if isinstance(topic, str) else list(topic)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.subscribe(topics)
    stamps: list[int] = []
    latencies: list[float] = []
    events: list[int] = []
    deadline = time.monotonic() + timeout_s
    last_arrival = time.monotonic()
    try:
        while len(stamps) < expected and time.monotonic() < deadline:
            if idle_s is not None and stamps and time.monotonic() - last_arrival > idle_s:
                break
            for msg in consumer.consume(5000, 0.5):
                if msg.error() is None:
                    _record(msg, stamps, latencies, events)
                    last_arrival = time.monotonic()
    finally:
        consumer.close()
    if not stamps or (len(stamps) < expected and idle_s is None):
        raise TimeoutError(f"only {len(stamps)} of {expected} records arrived on {', '.join(topics)}")
    return OutputTiming(len(stamps), min(stamps), max(stamps), latencies, events)


def _record(msg: Message, stamps: list[int], latencies: list[float], events: list[int]) -> None:
    kind, stamp = msg.timestamp()
    if kind != TIMESTAMP_LOG_APPEND_TIME:
        raise RuntimeError(f"{msg.topic()} must use message.timestamp.type=LogAppendTime")
    stamps.append(stamp)
    event_ms = dict(msg.headers() or []).get(h.EVENT_TIME_MS)
    if event_ms:
        events.append(int(event_ms))
        latencies.append(stamp - int(event_ms))


@dataclass(frozen=True)
class ProcessUsage:
    cpu_s: float
    peak_rss_mb: float


def process_usage(pid: int) -> ProcessUsage:
    """CPU seconds (user + system) and peak RSS of a live process, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    peak = 0.0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return ProcessUsage(cpu, peak)


def median_spread(values: list[float]) -> tuple[float, float]:
    """Median and (max - min) / 2 of repeated measurements."""
    if not values:
        return float("nan"), float("nan")
    return statistics.median(values), (max(values) - min(values)) / 2
