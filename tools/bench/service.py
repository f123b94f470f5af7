"""One shop service against its limits, a batched plain loop, naive-sync and a peer, in one run.

Per service: its events are scored once in process (the model's tensors and the records the
service writes per event are captured), the model limit is swept at one thread and at all cores
(no broker), then one input topic pre-filled with the events is read ``repeats`` times by each
contestant in turn (I/O limit, batched plain loop, shopstream, naive-sync, Quix peer;
interleaved so a change in machine load hits them alike), then latency at 25/50/80% of the
shopstream saturation measured here.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import KafkaSettings
from tools.bench.contestants import Baselines, RunResult, run_peer, run_service
from tools.bench.latency import LOOP_KINDS, LOOP_LEVEL, LatencyResult, run_latency, run_loop_latency
from tools.bench.measure import median_spread
from tools.bench.model_limit import MIN_S, ModelLimit, capture, measure_model_limits
from tools.bench.scoring import CapturedFeeds
from tools.bench.wiring import SERVICE_STREAMS, batch_size, new_topic, wire
from tools.supervisor import produce

logger = logging.getLogger(__name__)

SERVED_VARIANT = "fp32"
"""The variant ``shopstream serve`` loads by default (``MODEL_VARIANT``), so the ratio's model limit."""
CONTESTANTS = ("io-limit", "plain-batched", "shopstream", "naive-sync", "peer")
"""Run names, in the order they run and are reported."""


@dataclass(frozen=True)
class ServiceBenchConfig:
    events: int = 20_000
    """Pre-filled events read by the I/O limit, the batched plain loop and shopstream."""
    naive_events: int = 1_000
    """naive-sync reads only this prefix of the events (it is ~100x slower)."""
    peer_events: int = 20_000
    partitions: int = 4
    repeats: int = 3
    latency_seconds: float = 8.0
    peer_python: str | None = None
    """Interpreter with quixstreams installed; ``None`` skips the peer."""
    model_min_s: float = MIN_S
    """Seconds each timing of a model-limit point lasts at least."""
    records: str = "sim"
    """The events: the service's simulated stream, or a data set replayed (cycled): ``banking77``."""
    variants: tuple[str, ...] = ("fp32",)
    """Model variants whose limits are swept; the ratio uses fp32's (what the service serves)."""


@dataclass
class ServiceReport:
    service: str
    config: ServiceBenchConfig
    models: list[ModelLimit] = field(default_factory=list)
    """The model limit of each variant at one thread and at all cores."""
    eager: list[ModelLimit] = field(default_factory=list)
    """Torch eager per message (text models with a torch checkpoint), at one thread and at all cores."""
    runs: dict[str, list[RunResult]] = field(default_factory=dict)
    latency: list[LatencyResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Contestant → why it did not run (missing peer interpreter, a failure)."""
    load: list[float] = field(default_factory=list)
    """1-minute load average at the start and the end of the run."""

    def median(self, name: str) -> float:
        return median_spread([r.throughput for r in self.runs.get(name, [])])[0]

    @property
    def model_limit(self) -> float:
        """The best model limit (events/s) of the served variant over the thread settings; NaN if not measured."""
        return max((m.events_per_s for m in self.served_models), default=float("nan"))

    @property
    def served_models(self) -> list[ModelLimit]:
        """The model limits of the variant the service serves (fp32: its default)."""
        return [m for m in self.models if m.variant == SERVED_VARIANT]

    @property
    def eager_limit(self) -> float:
        return max((m.events_per_s for m in self.eager), default=float("nan"))


def sim_records(service: str, count: int) -> list[tuple[bytes | None, bytes | None]]:
    """``count`` simulated events of the service's stream (synthetic records for ``echo``)."""
    if service == "echo":
        from tools.bench.runtime import echo_records

        return echo_records(count)
    from sim import iter_records

    return list(iter_records(SERVICE_STREAMS[service], count))


def bench_records(service: str, count: int, source: str = "sim") -> list[tuple[bytes | None, bytes | None]]:
    """``count`` input records: simulated (``sim``), or a replayed data set cycled to ``count``
    (``banking77``: BANKING77's 3,080 test messages, as ``shopstream produce banking77`` sends them)."""
    if source == "sim":
        return sim_records(service, count)
    from tools.loadgen.datasets import default_data_dir, replay_records

    replayed: list[tuple[bytes | None, bytes | None]] = [r for _, r in replay_records(source, default_data_dir())]
    return [replayed[i % len(replayed)] for i in range(count)]


def _attempt(report: ServiceReport, name: str, run: Callable[[], RunResult]) -> None:
    """Run one contestant; a failure is recorded (and shown in the report), not fatal."""
    logger.info("%s: %s run %d", report.service, name, len(report.runs.get(name, [])) + 1)
    try:
        result = run()
    except Exception as exc:
        logger.warning("%s %s failed: %s", report.service, name, exc)
        report.skipped[name] = f"{type(exc).__name__}: {exc}"
        return
    report.runs.setdefault(name, []).append(result)
    logger.info("%s: %s %.0f events/s", report.service, name, result.throughput)


def _eager(report: ServiceReport, captured: CapturedFeeds) -> None:
    from tools.bench.torch_eager import measure_torch_eager

    try:
        report.eager = measure_torch_eager(report.service, captured, repeats=report.config.repeats,
                                           min_s=report.config.model_min_s)
    except Exception as exc:  # no checkpoint, no torch: reported, not fatal
        logger.warning("%s torch eager failed: %s", report.service, exc)
        report.skipped["torch-eager"] = f"{type(exc).__name__}: {exc}"


def bench_service(service: str, kafka: KafkaSettings, config: ServiceBenchConfig, log_dir: Path) -> ServiceReport:
    report = ServiceReport(service, config, load=[os.getloadavg()[0]])
    records = bench_records(service, config.events, config.records)
    batch = batch_size(service)
    # Rows per event and records per event over the very events the contestants read (state
    # warms up as in the service, scored in the service's batch size).
    captured = capture(service, pairs=[(k or b"", v or b"") for k, v in records], batch=batch)
    report.models = measure_model_limits(service, repeats=config.repeats, min_s=config.model_min_s,
                                         captured=captured, variants=config.variants)
    if captured.batches is not None:  # a text model: the seed's way, torch eager per message
        _eager(report, captured)
    baselines = Baselines(service, captured.record_set,
                          captured.record_set.save(log_dir / f"{service}-record-set.json"), batch)
    source = new_topic(kafka, f"{service}-in", config.partitions)
    produce(kafka.bootstrap_servers, source, records)
    c, p = config, config.partitions
    log = log_dir / f"{service}.log"

    def loop(kind: str, count: int) -> Callable[[], RunResult]:
        return lambda: baselines.run(kind, kafka, wire(kafka, service, source, p, f"{service}-{kind}"), count, log)

    for _ in range(config.repeats):
        _attempt(report, "io-limit", loop("io-limit", c.events))
        _attempt(report, "plain-batched", loop("plain-batched", c.events))
        _attempt(report, "shopstream", lambda: run_service(
            service, kafka, wire(kafka, service, source, p, f"{service}-svc"), c.events, log))
        _attempt(report, "naive-sync", loop("naive-sync", c.naive_events))
        if config.peer_python:
            _attempt(report, "peer", lambda: run_peer(
                service, kafka, wire(kafka, service, source, p, f"{service}-peer"), c.peer_events,
                log_dir / f"{service}-peer.log", c.peer_python or ""))
        time.sleep(1)
    if not config.peer_python:
        report.skipped["peer"] = "no interpreter with quixstreams (--peer-python)"
    saturation = report.median("shopstream")
    if saturation == saturation:  # not NaN: shopstream ran at least once
        report.latency = run_latency(service, kafka, records, p, saturation, c.latency_seconds,
                                     log_dir / f"{service}-latency.log")
        for kind in LOOP_KINDS:
            try:
                report.latency.append(run_loop_latency(kind, baselines, kafka, records, p, saturation, LOOP_LEVEL,
                                                       c.latency_seconds, log_dir / f"{service}-latency-{kind}.log"))
            except Exception as exc:
                report.skipped[f"{kind} latency"] = f"{type(exc).__name__}: {exc}"
    report.load.append(os.getloadavg()[0])
    return report
