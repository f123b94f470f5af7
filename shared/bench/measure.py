"""Measuring helpers for benchmarks: output timing from broker timestamps, process CPU and RSS."""

from __future__ import annotations

import os
import statistics
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer

from shared.schemas import headers as h

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class OutputTiming:
    count: int
    first_ms: int
    last_ms: int
    latencies_ms: list[float]
    """Broker append time of each score minus its event time (``x-event-time-ms``)."""

    @property
    def throughput(self) -> float:
        span = (self.last_ms - self.first_ms) / 1000
        return self.count / span if span > 0 else float("nan")

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def read_output_timing(bootstrap: str, topic: str, expected: int, timeout_s: float = 300) -> OutputTiming:
    """Read ``expected`` records of an output topic created with LogAppendTime timestamps."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.subscribe([topic])
    stamps: list[int] = []
    latencies: list[float] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(stamps) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(5000, 0.5):
                if msg.error() is not None:
                    continue
                kind, stamp = msg.timestamp()
                if kind != TIMESTAMP_LOG_APPEND_TIME:
                    raise RuntimeError(f"{topic} must use message.timestamp.type=LogAppendTime")
                stamps.append(stamp)
                event_ms = dict(msg.headers() or []).get(h.EVENT_TIME_MS)
                if event_ms:
                    latencies.append(stamp - int(event_ms))
    finally:
        consumer.close()
    if len(stamps) < expected:
        raise TimeoutError(f"only {len(stamps)} of {expected} records arrived on {topic}")
    return OutputTiming(len(stamps), min(stamps), max(stamps), latencies)


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
