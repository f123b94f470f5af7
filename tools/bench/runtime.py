"""The runtime benchmark: the echo service end to end against the I/O limit and the baseline loops.

All read the same pre-filled input topic (same broker, partitions and message sizes) and write
to their own output topics whose timestamps are set by the broker on append (LogAppendTime),
so throughput is measured between the first and the last acknowledged output and latency is
append time minus event time, with no client clock in between. The I/O limit writes the
records the echo service writes (captured by scoring the events in process, see
:mod:`tools.bench.record_set`); the batched plain loop and naive-sync use the echo scorer.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import KafkaSettings
from tools.bench.contestants import Baselines, RunResult, run_service
from tools.bench.latency import LOOP_KINDS, LOOP_LEVEL, LatencyResult, run_latency, run_loop_latency
from tools.bench.measure import median_spread
from tools.bench.record_set import RECORD_SET_EVENTS
from tools.bench.scoring import ServiceHarness, capture_record_set
from tools.bench.wiring import APPEND_TIME, batch_size, bench_topics, new_topic, wire
from tools.supervisor import produce

ECHO_ENV = {"RUNTIME__MAX_BATCH_SIZE": "1000"}
_topic = new_topic  # the older name, still imported by tools/bench/fraud_service.py
__all__ = ["APPEND_TIME", "RuntimeBenchReport", "echo_baselines", "echo_records", "run_runtime_bench"]


@dataclass
class RuntimeBenchReport:
    partitions: int
    events: int
    runs: dict[str, list[RunResult]] = field(default_factory=dict)
    latency: list[LatencyResult] = field(default_factory=list)
    load: list[float] = field(default_factory=list)

    def median(self, name: str) -> float:
        return median_spread([r.throughput for r in self.runs.get(name, [])])[0]


def echo_records(count: int, payload_bytes: int = 64) -> list[tuple[bytes | None, bytes | None]]:
    pad = "x" * payload_bytes
    return [(f"u{i % 1000}".encode(), json.dumps({"id": f"u{i % 1000}", "value": i, "payload": pad}).encode())
            for i in range(count)]


def echo_baselines(records: list[tuple[bytes | None, bytes | None]], log_dir: Path) -> Baselines:
    """What the echo service writes for ``records`` (a prefix: every echo event writes alike)."""
    batch = batch_size("echo", ECHO_ENV)
    harness = ServiceHarness("echo", bench_topics("echo", "bench.in", "bench.out"))
    try:
        pairs = [(k or b"", v or b"") for k, v in records[:RECORD_SET_EVENTS]]
        record_set = capture_record_set(harness, pairs, batch)
    finally:
        harness.close()
    return Baselines("echo", record_set, record_set.save(log_dir / "echo-record-set.json"), batch)


def run_runtime_bench(kafka: KafkaSettings, events: int, partitions: int, repeats: int, naive_events: int,
                      log_dir: Path, latency_seconds: float = 15) -> RuntimeBenchReport:
    report = RuntimeBenchReport(partitions, events, load=[os.getloadavg()[0]])
    records = echo_records(events)
    baselines = echo_baselines(records, log_dir)
    source = new_topic(kafka, "in", partitions)
    produce(kafka.bootstrap_servers, source, records)

    def add(name: str, run: RunResult) -> None:
        report.runs.setdefault(name, []).append(run)

    for _ in range(repeats):
        for kind in ("io-limit", "plain-batched"):
            add(kind, baselines.run(kind, kafka, wire(kafka, "echo", source, partitions, kind), events,
                                    log_dir / f"{kind}.log"))
        add("shopstream", run_service("echo", kafka, wire(kafka, "echo", source, partitions, "svc"), events,
                                      log_dir / "echo.log", ECHO_ENV))
        add("naive-sync", baselines.run("naive-sync", kafka, wire(kafka, "echo", source, partitions, "naive-sync"),
                                        naive_events, log_dir / "naive-sync.log"))
        time.sleep(1)
    saturation = report.median("shopstream")
    report.latency = run_latency("echo", kafka, records, partitions, saturation, latency_seconds,
                                 log_dir / "echo-latency.log", levels=(LOOP_LEVEL,), extra_env=ECHO_ENV)
    report.latency += [run_loop_latency(kind, baselines, kafka, records, partitions, saturation, LOOP_LEVEL,
                                        latency_seconds, log_dir / f"echo-latency-{kind}.log") for kind in LOOP_KINDS]
    report.load.append(os.getloadavg()[0])
    return report
