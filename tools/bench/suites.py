"""The scaling curve (1, 2, 4 instances, 8 partitions) and the cost of exactly-once delivery."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import KafkaSettings
from tools.bench.contestants import RunResult, run_service
from tools.bench.measure import median_spread
from tools.bench.runtime import ECHO_ENV
from tools.bench.service import sim_records
from tools.bench.wiring import new_topic, wire
from tools.supervisor import produce

logger = logging.getLogger(__name__)


@dataclass
class SuiteReport:
    title: str
    service: str
    events: int
    partitions: int
    runs: dict[str, list[RunResult]] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)

    def median(self, name: str) -> tuple[float, float]:
        return median_spread([r.throughput for r in self.runs.get(name, [])])


def bench_scaling(service: str, kafka: KafkaSettings, events: int, repeats: int, log_dir: Path,
                  instances: Sequence[int] = (1, 2, 4), partitions: int = 8) -> SuiteReport:
    """Every instance joins first, then the events are produced: the curve is not a rebalance race."""
    report = SuiteReport("scaling", service, events, partitions, load=[os.getloadavg()[0]])
    records = sim_records(service, events)
    for _ in range(repeats):
        for n in instances:
            source = new_topic(kafka, f"{service}-scale-in", partitions)
            wiring = wire(kafka, service, source, partitions, f"{service}-scale{n}")
            run = run_service(service, kafka, wiring, events, log_dir / f"{service}-scaling.log", instances=n,
                              fill=records)
            report.runs.setdefault(f"{n} instance{'s' if n > 1 else ''}", []).append(run)
        time.sleep(1)
    report.load.append(os.getloadavg()[0])
    return report


def bench_delivery(service: str, kafka: KafkaSettings, events: int, repeats: int, log_dir: Path,
                   partitions: int = 4) -> SuiteReport:
    """At-least-once vs exactly-once (transactions) on the same pre-filled topic."""
    report = SuiteReport("delivery", service, events, partitions, load=[os.getloadavg()[0]])
    source = new_topic(kafka, f"{service}-eos-in", partitions)
    produce(kafka.bootstrap_servers, source, sim_records(service, events))
    base = ECHO_ENV if service == "echo" else {}
    modes = {"at_least_once": {**base}, "exactly_once": {**base, "RUNTIME__DELIVERY": "exactly_once"}}
    for _ in range(repeats):
        for mode, env in modes.items():
            wiring = wire(kafka, service, source, partitions, f"{service}-{mode.replace('_', '')}")
            run = run_service(service, kafka, wiring, events, log_dir / f"{service}-delivery.log", env)
            report.runs.setdefault(mode, []).append(run)
        time.sleep(1)
    report.load.append(os.getloadavg()[0])
    return report
