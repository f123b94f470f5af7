"""The cost of a shadow: one shop service with and without a shadow candidate, side by side.

A shadow scores every micro-batch twice (the candidate first, then the live version) and writes
the candidate's outputs to ``<output>.shadow``, so it costs inference time, output records and the
memory of a second loaded version. This suite measures that cost for the worst realistic
candidate, one exactly as big as the live version:

* a temporary model repository holds a copy of the service's model folders (the served model and
  any model its manifest's ``preprocessing`` names, e.g. ad_ctr's text encoder), and the served
  version is published again under the next version name with
  :meth:`~shared.models.repository.ModelRepository.write_version` (same files, same checksums).
  The live version is pinned (``MODEL_VERSION``) so the copy never becomes live;
* two twins of ``shopstream serve <service>`` run on that repository, each with its own fresh
  compacted config topic: *shopstream* with no plan on it, *shopstream + shadow* with the plan
  ``{"mode": "shadow", "candidate": <copy>}`` written before it starts (what ``shopstream models
  rollout <service> --shadow <copy>`` writes);
* each run reads a fresh input topic that is filled only once the service is ready and, for the
  shadow twin, reports the candidate serving (``shopstream_rollout_share{mode="shadow"}`` on its
  ``/metrics``): every timed batch is shadowed. Both twins are started and filled the same way,
  interleaved ``repeats`` times; throughput is first to last broker append time, as elsewhere;
* latency of both twins at the same offered load, fractions of the plain twin's saturation;
* memory of each service process: RSS once loaded (and the candidate with it), before any event,
  and peak RSS (``VmHWM``) after the run.

The candidate's coverage is checked from the shadow twin's own metrics after each run
(``shopstream_rollout_events``: events the candidate scored).

Run: ``shopstream bench shadow ad_ctr --events 40000`` (starts a broker unless
``--bootstrap-servers`` is given).
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from shared.models.manifest import MANIFEST_FILE, ModelManifest
from shared.models.repository import ModelRepository
from shared.runtime.topics import COMPACT, CONFIG_TOPIC_PARTITIONS
from shared.schemas.rollout import RolloutPlan
from shared.settings import KafkaSettings
from tools.bench.contestants import Records, terminate_service
from tools.bench.latency import LatencyResult, _paced_levels
from tools.bench.measure import median_spread, process_usage, read_output_timing
from tools.bench.model_limit import model_name
from tools.bench.service import sim_records
from tools.bench.wiring import MODELS_DIR, Wiring, new_topic, service_env, wire
from tools.supervisor import ServiceProcess, produce, wait_until

logger = logging.getLogger(__name__)

PLAIN, SHADOW = "shopstream", "shopstream + shadow"
TWINS = (PLAIN, SHADOW)
"""Run names, in the order they run and are reported."""
SHADOW_LEVELS = (0.25, 0.5)
"""Latency load levels, as fractions of the plain twin's saturation."""
ACTIVE_TIMEOUT_S = 120.0
SHARE_METRIC = "shopstream_rollout_share"
EVENTS_METRIC = "shopstream_rollout_events_total"
PASS_METRIC = "shopstream_shadow_inference_seconds"
"""The candidate's pass per micro-batch (part of the scorer's time)."""
SCORER_METRIC = "shopstream_inference_seconds"
"""The scorer's time per micro-batch (the candidate's pass included)."""
BATCH_METRIC = "shopstream_batch_size"


# -- the temporary model repository ------------------------------------------------------------


@dataclass(frozen=True)
class ShadowRepository:
    root: Path
    model: str
    live: str
    """The served version, pinned."""
    candidate: str
    """A byte-for-byte copy of ``live`` under the next version name."""
    copied: tuple[str, ...]
    """The model folders copied from the real repository."""


def companion_models(manifest: ModelManifest, available: Sequence[str]) -> list[str]:
    """Other models a manifest names in its ``preprocessing`` (``{"name": <model>, ...}``), e.g. the
    text encoder an ad_ctr version was trained with; only those present in ``available``."""
    found: list[str] = []
    for value in manifest.preprocessing.values():
        name = value.get("name") if isinstance(value, Mapping) else None
        if isinstance(name, str) and name in available and name != manifest.name and name not in found:
            found.append(name)
    return found


def shadow_repository(model: str, dest: Path, source: Path = MODELS_DIR, live: str | None = None) -> ShadowRepository:
    """Copy ``model``'s folder and its companions from ``source`` into ``dest`` and publish the live
    version (``live``, else the latest) again as the next version there. ``source`` is not touched."""
    real = ModelRepository(source)
    version = real.resolve(model, live)
    copied = [model, *companion_models(real.get(model, version), real.names())]
    for name in copied:
        shutil.copytree(source / name, dest / name, ignore=shutil.ignore_patterns(".staging-*"))
    repo = ModelRepository(dest)
    manifest = repo.verify(model, version)
    folder = repo.path(model, version)
    files = {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST_FILE}
    candidate = repo.write_version(manifest, files)
    return ShadowRepository(dest, model, version, candidate.version, tuple(copied))


# -- what the service reports ------------------------------------------------------------------

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric_samples(text: str, name: str, **labels: str) -> list[float]:
    """Values of the samples of ``name`` (Prometheus text format) whose labels include ``labels``."""
    values = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] != name:
            continue
        found = dict(_LABEL.findall(match["labels"] or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            values.append(float(match["value"]))
    return values


def shadow_active(text: str, service: str) -> bool:
    """The service reports a shadow candidate serving (``shopstream_rollout_share{mode="shadow"} 1``)."""
    return any(v > 0 for v in metric_samples(text, SHARE_METRIC, service=service, mode="shadow"))


def candidate_events(text: str, service: str) -> float:
    """Events the shadow candidate scored (NaN: none reported)."""
    values = metric_samples(text, EVENTS_METRIC, service=service, mode="shadow")
    return sum(values) if values else float("nan")


def per_event_us(text: str, service: str, seconds_metric: str) -> float:
    """A per-batch time histogram's total over all the events scored (``shopstream_batch_size``), in µs
    per event (NaN: nothing scored)."""
    total = sum(metric_samples(text, f"{seconds_metric}_sum", service=service))
    events = sum(metric_samples(text, f"{BATCH_METRIC}_sum", service=service))
    return total / events * 1e6 if events else float("nan")


def mean_batch(text: str, service: str) -> float:
    """Events per scored micro-batch, on average (NaN: nothing scored)."""
    events = sum(metric_samples(text, f"{BATCH_METRIC}_sum", service=service))
    batches = sum(metric_samples(text, f"{BATCH_METRIC}_count", service=service))
    return events / batches if batches else float("nan")


@dataclass(frozen=True)
class Memory:
    rss_mb: float
    peak_rss_mb: float


def parse_memory(status: str) -> Memory:
    """RSS and peak RSS (``VmRSS``, ``VmHWM``) from a ``/proc/<pid>/status`` text, MB."""
    kb = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in status.splitlines() if ":" in line)
          if k in ("VmRSS", "VmHWM")}
    return Memory(kb.get("VmRSS", 0) / 1024, kb.get("VmHWM", 0) / 1024)


def process_memory(pid: int) -> Memory:
    with open(f"/proc/{pid}/status") as status:
        return parse_memory(status.read())


# -- the runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShadowBenchConfig:
    events: int = 40_000
    partitions: int = 4
    repeats: int = 3
    latency_seconds: float = 8.0
    levels: tuple[float, ...] = SHADOW_LEVELS


@dataclass
class TwinRun:
    name: str
    events: int
    throughput: float
    cpu_s: float
    """CPU seconds of the service process from the fill to its last output."""
    loaded: Memory
    """Once ready (and, for the shadow twin, its candidate serving), before any event."""
    after: Memory
    """After the run: RSS, and peak RSS over the process's life."""
    fill_s: float = float("nan")
    """Seconds the benchmark's producer took to write the input (on the same cores, while it runs)."""
    scorer_us: float = float("nan")
    """The scorer's time per event, µs (the candidate's pass included)."""
    candidate_us: float = float("nan")
    """The candidate's pass per event, µs (shadow twin)."""
    batch: float = float("nan")
    """Events per micro-batch, on average."""
    candidate_events: float = float("nan")

    @property
    def cpu_s_per_1000(self) -> float:
        return self.cpu_s / self.events * 1000 if self.events else float("nan")


@dataclass
class ShadowReport:
    service: str
    config: ShadowBenchConfig
    repository: ShadowRepository | None = None
    runs: dict[str, list[TwinRun]] = field(default_factory=dict)
    latency: list[LatencyResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)

    def median(self, name: str, value: str = "throughput") -> float:
        return median_spread([float(getattr(r, value)) for r in self.runs.get(name, [])])[0]

    def memory(self, name: str, which: str) -> float:
        """Median MB of ``loaded.rss_mb``, ``after.rss_mb`` or ``after.peak_rss_mb`` over the runs."""
        part, attr = which.split(".")
        return median_spread([float(getattr(getattr(r, part), attr)) for r in self.runs.get(name, [])])[0]


def twin_env(kafka: KafkaSettings, wiring: Wiring, repo: ShadowRepository, config_topic: str) -> dict[str, str]:
    """Both twins: the temporary repository, the live version pinned, their own config topic."""
    return service_env(kafka, wiring, {"MODELS_DIR": str(repo.root), "MODEL_VERSION": repo.live,
                                       "CONFIG_TOPIC": config_topic})


def config_topic(kafka: KafkaSettings, service: str, plan: RolloutPlan | None) -> str:
    """A fresh compacted config topic, with ``plan`` on it (key ``rollout``) if given."""
    topic = new_topic(kafka, f"{service}-cfg", CONFIG_TOPIC_PARTITIONS, COMPACT)
    if plan is not None:
        from tools.rollout.decisions import publish_plan

        publish_plan(kafka, topic, plan)
    return topic


def start_twin(service: str, env: dict[str, str], log: Path, shadowed: bool) -> ServiceProcess:
    """The service started and ready and, if ``shadowed``, its candidate serving."""
    proc = ServiceProcess(service, env, log).start()
    try:
        proc.wait_ready(180)
        if shadowed and not wait_until(lambda: shadow_active(proc.metrics(), service), ACTIVE_TIMEOUT_S, 0.5):
            raise TimeoutError(f"{service}: the shadow candidate did not serve within {ACTIVE_TIMEOUT_S:g}s "
                               f"(log: {log})")
    except BaseException:
        terminate_service(proc)
        raise
    return proc


def run_twin(name: str, service: str, kafka: KafkaSettings, repo: ShadowRepository, records: Records,
             partitions: int, log: Path) -> TwinRun:
    """One twin on a fresh input topic, filled once it is ready (and shadowing)."""
    shadowed = name == SHADOW
    plan = RolloutPlan(mode="shadow", candidate=repo.candidate) if shadowed else None
    cfg = config_topic(kafka, service, plan)
    source = new_topic(kafka, f"{service}-shadow-in", partitions)
    wiring = wire(kafka, service, source, partitions, f"{service}-{'shadow' if shadowed else 'plain'}")
    proc = start_twin(service, twin_env(kafka, wiring, repo, cfg), log, shadowed)
    try:
        assert proc.proc is not None
        pid = proc.proc.pid
        time.sleep(2)  # let the group's rebalance settle before the data arrives (as the scaling suite)
        loaded = process_memory(pid)
        start_cpu = process_usage(pid).cpu_s
        filling = time.monotonic()
        produce(kafka.bootstrap_servers, source, list(records))
        fill_s = time.monotonic() - filling
        timing = read_output_timing(kafka.bootstrap_servers, wiring.timed_topics, len(records), idle_s=20)
        cpu = process_usage(pid).cpu_s - start_cpu
        after = process_memory(pid)
        text = proc.metrics()
    finally:
        terminate_service(proc)
    run = TwinRun(name, timing.count, timing.throughput, cpu, loaded, after, fill_s,
                  per_event_us(text, service, SCORER_METRIC), per_event_us(text, service, PASS_METRIC),
                  mean_batch(text, service))
    if shadowed:
        run = replace(run, candidate_events=candidate_events(text, service))
    logger.info("%s %s: %d events, %.0f events/s (input written in %.1f s), RSS %.0f MB loaded, peak %.0f MB",
                service, name, run.events, run.throughput, fill_s, loaded.rss_mb, after.peak_rss_mb)
    return run


def twin_latency(name: str, service: str, kafka: KafkaSettings, repo: ShadowRepository, records: Records,
                 partitions: int, saturation: float, config: ShadowBenchConfig, log: Path) -> list[LatencyResult]:
    """One twin under a paced producer at ``config.levels`` of ``saturation`` (the plain twin's)."""
    shadowed = name == SHADOW
    cfg = config_topic(kafka, service, RolloutPlan(mode="shadow", candidate=repo.candidate) if shadowed else None)
    source = new_topic(kafka, f"{service}-shadow-lat-in", partitions)
    wiring = wire(kafka, service, source, partitions, f"{service}-shadow-lat")
    proc = start_twin(service, twin_env(kafka, wiring, repo, cfg), log, shadowed)
    try:
        results = _paced_levels(kafka, source, wiring.timed_topics, records, saturation, config.levels,
                                config.latency_seconds, f"{service} {name}")
    finally:
        terminate_service(proc)
    return [replace(r, contestant=name) for r in results]


def _attempt(report: ShadowReport, name: str, run: Callable[[], TwinRun | list[LatencyResult]]) -> None:
    try:
        result = run()
    except Exception as exc:
        logger.warning("%s %s failed: %s", report.service, name, exc)
        report.skipped[name] = f"{type(exc).__name__}: {exc}"
        return
    if isinstance(result, TwinRun):
        report.runs.setdefault(name, []).append(result)
    else:
        report.latency.extend(result)


def bench_shadow(service: str, kafka: KafkaSettings, config: ShadowBenchConfig, log_dir: Path) -> ShadowReport:
    report = ShadowReport(service, config, load=[os.getloadavg()[0]])
    records = sim_records(service, config.events)
    root = Path(tempfile.mkdtemp(prefix=f"shopstream-shadow-{service}-"))
    try:
        repo = report.repository = shadow_repository(model_name(service), root)
        logger.info("%s: live %s, shadow candidate %s (a copy) in %s", service, repo.live, repo.candidate, root)
        log = log_dir / f"{service}-shadow.log"
        for _ in range(config.repeats):
            for name in TWINS:
                _attempt(report, name, partial(run_twin, name, service, kafka, repo, records, config.partitions, log))
            time.sleep(1)
        saturation = report.median(PLAIN)
        if not math.isnan(saturation):
            for name in TWINS:
                _attempt(report, f"{name} latency", partial(
                    twin_latency, name, service, kafka, repo, records, config.partitions, saturation, config,
                    log_dir / f"{service}-shadow-latency.log"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report.load.append(os.getloadavg()[0])
    return report
