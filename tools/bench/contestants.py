"""Run each contestant once against a pre-filled input topic and time its outputs.

Every contestant is its own process (its CPU and peak RSS are its own); CPU is counted from
the moment it reports ready (model loaded, clients created) to its last output, so start-up
and imports are not charged per event. Throughput is first to last broker append time.
"""

from __future__ import annotations

import json
import logging
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.settings import KafkaSettings
from tools.bench.measure import ProcessUsage, process_usage, read_output_timing
from tools.bench.record_set import CHANGELOG, TIMED_ROLES, RecordSet
from tools.bench.wiring import REPO_ROOT, Wiring, ensure_outputs, service_env
from tools.supervisor import ServiceProcess, produce

logger = logging.getLogger(__name__)

Records = Sequence[tuple[bytes | None, bytes | None]]


@dataclass
class RunResult:
    name: str
    events: int
    throughput: float
    usage: ProcessUsage
    """CPU seconds from ready to the last output (all instances), and the largest peak RSS."""

    @property
    def cpu_s_per_1000(self) -> float:
        return self.usage.cpu_s / self.events * 1000


def usage_since(pids: Sequence[int], start_cpu: float) -> ProcessUsage:
    usages = [process_usage(pid) for pid in pids]
    return ProcessUsage(sum(u.cpu_s for u in usages) - start_cpu, max(u.peak_rss_mb for u in usages))


def wait_for_ready_line(proc: subprocess.Popen[bytes], timeout_s: float, what: str) -> None:
    """Block until the child prints ``ready`` (the loops and the peer do, once set up)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        readable, _, _ = select.select([proc.stdout], [], [], 0.5)
        if readable:
            line = proc.stdout.readline()
            if line.strip() == b"ready":
                return
            if not line:
                raise RuntimeError(f"{what} exited with {proc.wait()} before it was ready")
    raise TimeoutError(f"{what} not ready within {timeout_s}s")


def _spawn(args: list[str], python: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen([python, *args], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=err,
                                env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"})


LOOP_FOREVER = 10**12
"""A loop's ``--count`` when it is stopped from outside (latency runs)."""


def stop_child(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a child (a loop started with :meth:`Baselines.start`), killing it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def run_child(name: str, args: list[str], kafka: KafkaSettings, wiring: Wiring, count: int, log: Path,
              python: str = sys.executable) -> RunResult:
    """A child process that prints ``ready`` and writes ``count`` records to the wiring's outputs."""
    proc = _spawn(args, python, log)
    try:
        wait_for_ready_line(proc, 180, name)
        start = process_usage(proc.pid).cpu_s
        timing = read_output_timing(kafka.bootstrap_servers, wiring.timed_topics, count, idle_s=20)
        usage = usage_since([proc.pid], start)
    finally:
        stop_child(proc)
    return RunResult(name, timing.count, timing.throughput, usage)


@dataclass(frozen=True)
class Baselines:
    """What the loops of :mod:`tools.bench.loops` need to stand in for ``service``."""

    service: str
    record_set: RecordSet
    """What the service writes per event (captured by scoring the benchmark's events)."""
    records_path: Path
    """``record_set`` saved for the I/O limit's process."""
    batch: int
    """The service's max batch size: records per consume of the batched loops."""

    def run(self, kind: str, kafka: KafkaSettings, wiring: Wiring, count: int, log: Path) -> RunResult:
        """Loop ``kind`` reads ``count`` input records; timed until the records it writes for them
        on the scores and dead-letter topics have arrived."""
        timed = self._timed(kind)
        return run_child(kind, self._args(kind, kafka, wiring, count), kafka, wiring,
                         self.record_set.count(count, timed), log)

    def start(self, kind: str, kafka: KafkaSettings, wiring: Wiring, count: int,
              log: Path) -> tuple[subprocess.Popen[bytes], tuple[str, ...]]:
        """Loop ``kind`` started and ready, and the roles of the topics to time it on (for latency runs)."""
        proc = _spawn(self._args(kind, kafka, wiring, count), sys.executable, log)
        try:
            wait_for_ready_line(proc, 180, kind)
        except BaseException:
            stop_child(proc)
            raise
        return proc, self._timed(kind)

    @staticmethod
    def _timed(kind: str) -> tuple[str, ...]:
        return ("output_topic",) if kind == "plain-batched" else TIMED_ROLES  # it has no dead-letter topic

    def _args(self, kind: str, kafka: KafkaSettings, wiring: Wiring, count: int) -> list[str]:
        writes_changelog = kind == "io-limit"
        roles = [r for r in self.record_set.per_event() if writes_changelog or r != CHANGELOG]
        ensure_outputs(kafka, wiring, roles)
        return ["-m", "tools.bench.loops", kind, "--service", self.service, "--bootstrap", kafka.bootstrap_servers,
                "--topics", json.dumps(wiring.topics), "--count", str(count), "--batch", str(self.batch),
                "--records", str(self.records_path), "--linger"]


def run_peer(service: str, kafka: KafkaSettings, wiring: Wiring, count: int, log: Path, python: str) -> RunResult:
    args = ["-m", "tools.bench.peer_quix", "--service", service, "--bootstrap", kafka.bootstrap_servers,
            "--topics", json.dumps(wiring.topics)]
    return run_child("peer", args, kafka, wiring, count, log, python)


def run_service(service: str, kafka: KafkaSettings, wiring: Wiring, count: int, log: Path,
                extra_env: dict[str, str] | None = None, instances: int = 1,
                fill: Records | None = None) -> RunResult:
    """``instances`` service processes in one group; with ``fill``, the records are produced
    only once every instance is ready (a fair start for the scaling curve)."""
    env = service_env(kafka, wiring, extra_env)
    procs = [ServiceProcess(service, {**env, "INSTANCE_ID": f"bench-{i}"}, log) for i in range(instances)]
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.wait_ready(180)
        pids = [p.proc.pid for p in procs if p.proc is not None]
        start = sum(process_usage(pid).cpu_s for pid in pids)
        if fill is not None:
            time.sleep(2)  # let the last join's rebalance settle before the data arrives
            produce(kafka.bootstrap_servers, wiring.source, list(fill))
        timing = read_output_timing(kafka.bootstrap_servers, wiring.timed_topics, count, idle_s=20)
        usage = usage_since(pids, start)
    finally:
        for proc in procs:
            terminate_service(proc)
    name = "shopstream" if instances == 1 else f"shopstream x{instances}"
    logger.info("%s %s: %d events, %.0f events/s", service, name, timing.count, timing.throughput)
    return RunResult(name, timing.count, timing.throughput, usage)


def terminate_service(service: ServiceProcess) -> None:
    if not service.alive():
        return
    try:
        service.terminate(30)
    except subprocess.TimeoutExpired:
        service.kill()
