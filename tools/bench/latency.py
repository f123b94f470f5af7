"""Latency under a steady producer: event time → score acknowledged, at fractions of saturation.

One service process serves a fresh input topic while a paced producer steps through the load
levels (25%, 50%, 80% of the saturation throughput measured just before), each for a fixed
time. An event's latency is its output's broker append time minus its input record's
timestamp (both from the broker host's clock); each event is attributed to the level its
event time falls in, skipping the first second of each level (the step itself).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from shared.settings import KafkaSettings
from tools.bench.contestants import LOOP_FOREVER, Baselines, Records, stop_child, terminate_service
from tools.bench.measure import percentile, read_output_timing
from tools.bench.wiring import new_topic, service_env, wire
from tools.loadgen.generator import LoadGenerator
from tools.supervisor import ServiceProcess

logger = logging.getLogger(__name__)

LOAD_LEVELS = (0.25, 0.5, 0.8)
LOOP_LEVEL = 0.5
"""The level the baseline loops are also measured at (the latency targets are set there)."""
LOOP_KINDS = ("io-limit", "plain-batched")
SETTLE_MS = 1000


@dataclass
class LatencyResult:
    fraction: float
    rate: float
    """Target events/s."""
    achieved: float
    """Events/s the producer really sent (a loaded machine may fall short)."""
    events: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    contestant: str = "shopstream"


@dataclass(frozen=True)
class _Phase:
    fraction: float
    rate: float
    start_ms: int
    end_ms: int
    sent: int


def _paced(kafka: KafkaSettings, source: str, records: Records, rate: float, seconds: float) -> int:
    stream = ((source, (k or b"", v or b"")) for k, v in itertools.cycle(records))
    generator = LoadGenerator(kafka, stream, rate=rate, duration_s=seconds)
    return generator.run()


def run_latency(service: str, kafka: KafkaSettings, records: Records, partitions: int, saturation: float,
                seconds: float, log: Path, levels: Sequence[float] = LOAD_LEVELS,
                extra_env: dict[str, str] | None = None) -> list[LatencyResult]:
    """The service at each load level in turn (one process)."""
    source = new_topic(kafka, f"{service}-lat-in", partitions)
    wiring = wire(kafka, service, source, partitions, f"{service}-lat-out")
    proc = ServiceProcess(service, service_env(kafka, wiring, extra_env), log)
    try:
        proc.start()
        proc.wait_ready(180)
        return _paced_levels(kafka, source, wiring.timed_topics, records, saturation, levels, seconds, service)
    finally:
        terminate_service(proc)


def run_loop_latency(kind: str, baselines: Baselines, kafka: KafkaSettings, records: Records, partitions: int,
                     saturation: float, fraction: float, seconds: float, log: Path) -> LatencyResult:
    """A baseline loop (``io-limit`` or ``plain-batched``) at ``fraction`` of the service's
    saturation: the floor under the service's latency at the same rate."""
    service = baselines.service
    source = new_topic(kafka, f"{service}-lat-{kind}-in", partitions)
    wiring = wire(kafka, service, source, partitions, f"{service}-lat-{kind}")
    proc, timed = baselines.start(kind, kafka, wiring, LOOP_FOREVER, log)
    try:
        (result,) = _paced_levels(kafka, source, [wiring.topics[role] for role in timed], records, saturation,
                                  [fraction], seconds, f"{service} {kind}")
    finally:
        stop_child(proc)
    return replace(result, contestant=kind)


def _paced_levels(kafka: KafkaSettings, source: str, timed_topics: Sequence[str], records: Records,
                  saturation: float, levels: Sequence[float], seconds: float, what: str) -> list[LatencyResult]:
    """Pace ``source`` through the load levels, then attribute each output to its level by event time."""
    phases: list[_Phase] = []
    for fraction in levels:
        start = int(time.time() * 1000)
        logger.info("%s latency: %.0f%% of saturation, %.0f events/s", what, fraction * 100, saturation * fraction)
        sent = _paced(kafka, source, records, saturation * fraction, seconds)
        phases.append(_Phase(fraction, saturation * fraction, start, int(time.time() * 1000), sent))
    timing = read_output_timing(kafka.bootstrap_servers, list(timed_topics), sum(p.sent for p in phases), idle_s=15)
    results = []
    for phase in phases:
        window = timing.window(phase.start_ms + SETTLE_MS, phase.end_ms)
        achieved = phase.sent / max((phase.end_ms - phase.start_ms) / 1000, 1e-9)
        results.append(LatencyResult(phase.fraction, phase.rate, achieved, len(window), percentile(window, 0.5),
                                     percentile(window, 0.95), percentile(window, 0.99)))
    return results
