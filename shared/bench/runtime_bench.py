"""The runtime benchmark: the echo service end to end against a bare loop and a naive loop.

All three read the same pre-filled input topic (same broker, partitions and message sizes)
and write to their own output topic whose timestamps are set by the broker on append
(LogAppendTime), so throughput is measured between the first and the last acknowledged
output and latency is append time minus event time, with no client clock in between.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from shared.bench.measure import ProcessUsage, median_spread, process_usage, read_output_timing
from shared.cli.loadgen import LoadGenerator
from shared.runtime.restore import ensure_topics
from shared.settings import KafkaSettings
from shared.testing.services import REPO_ROOT, ServiceProcess, produce

APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


@dataclass
class RunResult:
    name: str
    events: int
    throughput: float
    usage: ProcessUsage

    @property
    def cpu_s_per_1000(self) -> float:
        return self.usage.cpu_s / self.events * 1000


@dataclass
class LatencyResult:
    rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass
class RuntimeBenchReport:
    partitions: int
    events: int
    runs: dict[str, list[RunResult]] = field(default_factory=dict)
    latency: list[LatencyResult] = field(default_factory=list)


def echo_records(count: int, payload_bytes: int = 64) -> list[tuple[bytes | None, bytes | None]]:
    pad = "x" * payload_bytes
    return [(f"u{i % 1000}".encode(), json.dumps({"id": f"u{i % 1000}", "value": i, "payload": pad}).encode())
            for i in range(count)]


def _topic(kafka: KafkaSettings, prefix: str, partitions: int, config: dict[str, str] | None = None) -> str:
    name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka, {name: (partitions, config or {})})
    return name


def _loop_process(kind: str, bootstrap: str, source: str, sink: str, count: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "shared.bench.loops", kind, "--bootstrap", bootstrap, "--input", source,
         "--output", sink, "--count", str(count)],
        cwd=REPO_ROOT, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )


def run_loop(kind: str, kafka: KafkaSettings, source: str, partitions: int, count: int) -> RunResult:
    sink = _topic(kafka, kind, partitions, APPEND_TIME)
    proc = _loop_process(kind, kafka.bootstrap_servers, source, sink, count)
    timing = read_output_timing(kafka.bootstrap_servers, sink, count)
    usage = process_usage(proc.pid)
    proc.wait(60)
    return RunResult(kind, count, timing.throughput, usage)


def run_service(kafka: KafkaSettings, source: str, partitions: int, count: int, log: Path,
                extra_env: dict[str, str] | None = None) -> RunResult:
    sink = _topic(kafka, "svc", partitions, APPEND_TIME)
    env = {"INPUT_TOPIC": source, "OUTPUT_TOPIC": sink, "GROUP_ID": f"bench-{uuid.uuid4().hex}",
           "KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "CHANGELOG_TOPIC": f"{sink}.changelog",
           "RUNTIME__MAX_BATCH_SIZE": "1000", **(extra_env or {})}
    with ServiceProcess("echo", env, log) as service:
        timing = read_output_timing(kafka.bootstrap_servers, sink, count)
        assert service.proc is not None
        usage = process_usage(service.proc.pid)
    return RunResult("shopstream", count, timing.throughput, usage)


def run_latency(kafka: KafkaSettings, partitions: int, rate: float, seconds: float, log: Path) -> LatencyResult:
    source = _topic(kafka, "lat-in", partitions)
    sink = _topic(kafka, "lat-out", partitions, APPEND_TIME)
    env = {"INPUT_TOPIC": source, "OUTPUT_TOPIC": sink, "GROUP_ID": f"bench-{uuid.uuid4().hex}",
           "KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers}
    records = ((source, (k or b"", v or b"")) for k, v in echo_records(int(rate * seconds) + 1))
    with ServiceProcess("echo", env, log) as service:
        service.wait_ready(60)
        generator = LoadGenerator(kafka, records, rate=rate, count=int(rate * seconds))
        thread = threading.Thread(target=generator.run, daemon=True)
        thread.start()
        thread.join()
        timing = read_output_timing(kafka.bootstrap_servers, sink, generator.sent)
    return LatencyResult(rate, timing.percentile(0.5), timing.percentile(0.95), timing.percentile(0.99))


def run_runtime_bench(kafka: KafkaSettings, events: int, partitions: int, repeats: int, naive_events: int,
                      log_dir: Path) -> RuntimeBenchReport:
    report = RuntimeBenchReport(partitions, events)
    for _ in range(repeats):
        source = _topic(kafka, "in", partitions)
        produce(kafka.bootstrap_servers, source, echo_records(events))
        report.runs.setdefault("bare", []).append(run_loop("bare", kafka, source, partitions, events))
        report.runs.setdefault("shopstream", []).append(
            run_service(kafka, source, partitions, events, log_dir / "echo.log"))
        report.runs.setdefault("naive", []).append(run_loop("naive", kafka, source, partitions, naive_events))
        time.sleep(1)
    saturation, _ = median_spread([r.throughput for r in report.runs["shopstream"]])
    report.latency.append(run_latency(kafka, partitions, saturation * 0.5, 15, log_dir / "echo-latency.log"))
    return report


def format_report(report: RuntimeBenchReport) -> str:
    lines = [f"runtime benchmark: echo scorer, {report.events} events, {report.partitions} partitions",
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
        lines.append(f"latency at {lat.rate:,.0f} events/s (50% of saturation): p50 {lat.p50_ms:.0f} ms, "
                     f"p95 {lat.p95_ms:.0f} ms, p99 {lat.p99_ms:.0f} ms")
    return "\n".join(lines)
