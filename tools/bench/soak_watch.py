"""What the soak benchmark watches while it runs: every output record, and each process over time.

:class:`OutputReader` reads the services' score and dead-letter topics (LogAppendTime) from the
beginning for the whole run: per 5-second window of event time it keeps each record's latency
(broker append time minus the input record's timestamp, carried in ``x-event-time-ms``), per
window of append time the scored and dead-lettered counts, and per input partition a counter of
the outputs that name each input offset in their lineage headers, so loss and duplicates are
counted from the records themselves at the end, whatever restarts happened.

:class:`Sampler` reads, every few seconds, each live instance's RSS (``/proc``) and metrics
(state bytes and entries, stalled partitions) and each group's committed lag.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from array import array
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, Message, TopicPartition

from shared.schemas import headers as h
from tools.supervisor import ServiceProcess

logger = logging.getLogger(__name__)

_LINEAGE = (h.SOURCE_PARTITION.encode(), h.SOURCE_OFFSET.encode(), h.EVENT_TIME_MS.encode())


@dataclass
class ServiceOutputs:
    """Everything the reader learnt about one service's outputs."""

    latencies: dict[int, array[float]] = field(default_factory=lambda: defaultdict(lambda: array("f")))
    """Window index (event time // window) → latencies (ms) of the outputs of events in it."""
    scored: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    """Window index (append time // window) → score records appended in it."""
    dead_lettered: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    seen: dict[int, bytearray] = field(default_factory=dict)
    """Input partition → per input offset, how many outputs name it (saturating at 255)."""
    records: int = 0

    def mark(self, partition: int, offset: int) -> None:
        counts = self.seen.get(partition)
        if counts is None:
            counts = self.seen[partition] = bytearray()
        if offset >= len(counts):
            counts.extend(bytes(offset + 1 - len(counts) + 65_536))
        if counts[offset] < 255:
            counts[offset] += 1

    def lost_and_duplicated(self, partition: int, low: int, high: int) -> tuple[int, int]:
        """Input offsets in ``[low, high)`` with no output, and with more than one."""
        counts = self.seen.get(partition, bytearray())
        window = counts[low:high]
        window += bytes(max(0, high - low - len(window)))
        return window.count(0), len(window) - window.count(0) - window.count(1)


class OutputReader:
    """Reads ``topics`` (topic → (service, is_dead_letter)) on a thread of its own until stopped."""

    def __init__(self, bootstrap: str, topics: Mapping[str, tuple[str, bool]], window_s: float) -> None:
        self.topics = dict(topics)
        self.window_ms = int(window_s * 1000)
        self.outputs = {service: ServiceOutputs() for service, _ in self.topics.values()}
        self.last_arrival = time.monotonic()
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"soak-reader-{uuid.uuid4().hex}",
                                   "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-reader", daemon=True)
        self.errors: list[str] = []

    def start(self) -> OutputReader:
        self._consumer.subscribe(list(self.topics))
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self._consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(5000, 0.5):
                if msg.error() is None:
                    self._record(msg)
                    self.last_arrival = time.monotonic()

    def _record(self, msg: Message) -> None:
        service, dead = self.topics[msg.topic() or ""]
        out = self.outputs[service]
        kind, stamp = msg.timestamp()
        if kind != TIMESTAMP_LOG_APPEND_TIME:
            self.errors.append(f"{msg.topic()} is not LogAppendTime")
            return
        lineage: dict[bytes, bytes | None] = {}
        raw = msg.headers() or []
        for name, value in raw.items() if isinstance(raw, dict) else raw:
            if (key := name.encode()) in _LINEAGE:
                lineage[key] = value if isinstance(value, bytes | None) else value.encode()
        out.records += 1
        (out.dead_lettered if dead else out.scored)[stamp // self.window_ms] += 1
        try:
            partition, offset = int(lineage[_LINEAGE[0]] or b""), int(lineage[_LINEAGE[1]] or b"")
            event_ms = int(lineage[_LINEAGE[2]] or b"")
        except (KeyError, ValueError):
            self.errors.append(f"{msg.topic()}@{msg.partition()}:{msg.offset()} lacks lineage headers")
            return
        out.mark(partition, offset)
        out.latencies[event_ms // self.window_ms].append(stamp - event_ms)


@dataclass(frozen=True)
class InstanceSample:
    at: float
    """Seconds since the soak started."""
    service: str
    instance: str
    pid: int
    rss_mb: float
    state_bytes: float
    state_entries: float
    stalled: float
    """Partitions of this instance reported stalled (``shopstream_partition_stalled``)."""


@dataclass(frozen=True)
class LagSample:
    at: float
    service: str
    lag: int
    """Input records not yet committed by the service's group (all partitions); -1 if unknown."""


def _metric_sum(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", text, re.M))


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


@dataclass
class Sampler:
    """Samples instances and group lag every ``every_s`` seconds on a thread of its own."""

    bootstrap: str
    every_s: float
    instances: Callable[[], Sequence[tuple[str, str, ServiceProcess]]]
    """(service, instance name, process) of every instance running now."""
    groups: Mapping[str, tuple[str, str]]
    """service → (group id, input topic)."""
    partitions: int
    started: float
    instance_samples: list[InstanceSample] = field(default_factory=list)
    lag_samples: list[LagSample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(30)

    def _run(self) -> None:
        # A consumer that never subscribes reads its group's committed offsets without joining it.
        readers = {service: Consumer({"bootstrap.servers": self.bootstrap, "group.id": group,
                                      "enable.auto.commit": False})
                   for service, (group, _) in self.groups.items()}
        try:
            while not self._stop.wait(self.every_s):
                at = time.monotonic() - self.started
                self._sample_instances(at)
                for service, (_, topic) in self.groups.items():
                    self.lag_samples.append(LagSample(at, service, self._lag(readers[service], topic)))
        finally:
            for reader in readers.values():
                reader.close()

    def _sample_instances(self, at: float) -> None:
        for service, name, proc in self.instances():
            if proc.proc is None or not proc.alive():
                continue
            text = proc.metrics()
            self.instance_samples.append(InstanceSample(
                at, service, name, proc.proc.pid, rss_mb(proc.proc.pid),
                _metric_sum(text, "shopstream_state_bytes") if text else float("nan"),
                _metric_sum(text, "shopstream_state_entries") if text else float("nan"),
                _metric_sum(text, "shopstream_partition_stalled") if text else float("nan")))

    def _lag(self, reader: Consumer, topic: str) -> int:
        try:
            committed = reader.committed([TopicPartition(topic, p) for p in range(self.partitions)], timeout=3)
            lag = 0
            for tp in committed:
                _, high = reader.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=3)
                lag += high - max(tp.offset, 0)
            return lag
        except Exception as exc:  # a broker restart: the sample is unknown, not fatal
            logger.debug("lag of %s unknown: %s", topic, exc)
            return -1
