"""The runtime benchmark: the echo service end to end against a bare loop and a naive loop.

All three read the same pre-filled input topic (same broker, partitions and message sizes)
and write to their own output topic whose timestamps are set by the broker on append
(LogAppendTime), so throughput is measured between the first and the last acknowledged
output and latency is append time minus event time, with no client clock in between.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import KafkaSettings
from tools.bench.contestants import RunResult, run_loop, run_service
from tools.bench.latency import LatencyResult, run_latency
from tools.bench.measure import median_spread
from tools.bench.wiring import APPEND_TIME, new_topic, wire
from tools.supervisor import produce

ECHO_ENV = {"RUNTIME__MAX_BATCH_SIZE": "1000"}
_topic = new_topic  # the older name, still imported by tools/bench/fraud_service.py
__all__ = ["APPEND_TIME", "RuntimeBenchReport", "echo_records", "format_report", "run_runtime_bench"]


@dataclass
class RuntimeBenchReport:
    partitions: int
    events: int
    runs: dict[str, list[RunResult]] = field(default_factory=dict)
    latency: list[LatencyResult] = field(default_factory=list)
    load: list[float] = field(default_factory=list)


def echo_records(count: int, payload_bytes: int = 64) -> list[tuple[bytes | None, bytes | None]]:
    pad = "x" * payload_bytes
    return [(f"u{i % 1000}".encode(), json.dumps({"id": f"u{i % 1000}", "value": i, "payload": pad}).encode())
            for i in range(count)]


def run_runtime_bench(kafka: KafkaSettings, events: int, partitions: int, repeats: int, naive_events: int,
                      log_dir: Path, latency_seconds: float = 15) -> RuntimeBenchReport:
    report = RuntimeBenchReport(partitions, events, load=[os.getloadavg()[0]])
    records = echo_records(events)
    source = new_topic(kafka, "in", partitions)
    produce(kafka.bootstrap_servers, source, records)
    for _ in range(repeats):
        report.runs.setdefault("bare", []).append(
            run_loop("bare", kafka, wire(kafka, "echo", source, partitions, "bare"), events, log_dir / "bare.log"))
        report.runs.setdefault("shopstream", []).append(run_service(
            "echo", kafka, wire(kafka, "echo", source, partitions, "svc"), events, log_dir / "echo.log", ECHO_ENV))
        report.runs.setdefault("naive", []).append(run_loop(
            "naive", kafka, wire(kafka, "echo", source, partitions, "naive"), naive_events, log_dir / "naive.log"))
        time.sleep(1)
    saturation, _ = median_spread([r.throughput for r in report.runs["shopstream"]])
    report.latency = run_latency("echo", kafka, records, partitions, saturation, latency_seconds,
                                 log_dir / "echo-latency.log", levels=(0.5,), extra_env=ECHO_ENV)
    report.load.append(os.getloadavg()[0])
    return report


def format_report(report: RuntimeBenchReport) -> str:
    lines = [f"runtime benchmark: echo scorer, {report.events} events, {report.partitions} partitions, "
             f"load average {' → '.join(f'{x:.1f}' for x in report.load)}",
             "| loop | events/s (median ± half-range) | CPU s / 1000 events | peak RSS MB |", "|---|---|---|---|"]
    medians = {}
    for name, runs in report.runs.items():
        median, spread = median_spread([r.throughput for r in runs])
        medians[name] = median
        cpu, _ = median_spread([r.cpu_s_per_1000 for r in runs])
        rss, _ = median_spread([r.usage.peak_rss_mb for r in runs])
        lines.append(f"| {name} | {median:,.0f} ± {spread:,.0f} | {cpu:.3f} | {rss:.0f} |")
    lines.append("")
    lines.append(f"shopstream / bare loop = {medians['shopstream'] / medians['bare']:.2f}  (goal ≥ 0.8)")
    lines.append(f"shopstream / naive loop = {medians['shopstream'] / medians['naive']:.1f}x")
    for lat in report.latency:
        lines.append(f"latency at {lat.rate:,.0f} events/s ({lat.fraction:.0%} of saturation): "
                     f"p50 {lat.p50_ms:.0f} ms, p95 {lat.p95_ms:.0f} ms, p99 {lat.p99_ms:.0f} ms")
    return "\n".join(lines)
