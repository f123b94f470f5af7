"""The model limit: raw ONNX Runtime throughput of a service's default model, swept until it stops rising.

The tensors are the ones the service's own feature code builds for simulated events (captured
from the scored batches, see :func:`capture_feeds`), tiled to each batch size before timing, so
only ``session.run`` is timed. A text model's cost follows its messages' lengths instead: each
point runs the graph calls the service makes for the same sample of the benchmark's messages in
micro-batches of that size, grouped by length and padded per group (:mod:`tools.bench.text`). A
"row" is one row of the model's batch axis; services that score several rows per event
(candidate ads) report events/s = rows/s ÷ rows per event.

The sweep doubles the batch from 1 row up to 65,536 and stops once two doublings in a row each
gained less than 3 % (:func:`still_rising`). Each point is timed ``repeats`` times for at least
``min_s`` seconds each; a point's figure is the median of its repeats and the limit is the best
point. It runs once with one intra-op thread and once with one per core (:func:`thread_counts`).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx

from shared.models.manifest import ModelManifest
from shared.models.providers import CPU
from shared.models.repository import ModelRepository
from shared.models.session import OnnxModel
from shared.models.slot import GraphTransform
from tools.bench.measure import median_spread
from tools.bench.scoring import CapturedFeeds, Feeds, ServiceHarness, capture_feeds
from tools.bench.wiring import MODELS_DIR, SERVICE_STREAMS, bench_topics

logger = logging.getLogger(__name__)

BATCH_SIZES = tuple(2**i for i in range(17))  # 1 .. 65,536
MIN_GAIN = 0.03
"""A doubling that raises throughput by less than this is not rising."""
PATIENCE = 2
"""The sweep stops after this many doublings in a row that were not rising."""
MIN_S = 0.5
"""Seconds each timing of a point lasts at least (several calls; the median of ``repeats`` counts)."""


@dataclass
class BatchPoint:
    batch: int
    rows_per_s: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return median_spread(self.rows_per_s)[0]

    @property
    def spread(self) -> float:
        return median_spread(self.rows_per_s)[1]


@dataclass
class ModelLimit:
    service: str
    model: str
    version: str
    provider: str
    variant: str
    rows_per_event: float
    points: list[BatchPoint]
    threads: int = 0
    """ONNX Runtime intra-op threads (0: its default, one per physical core)."""
    all_cores: bool = False
    """``threads`` was the machine's core count."""

    @property
    def threads_label(self) -> str:
        if self.threads <= 0:
            return "default threads"
        plural = "s" if self.threads > 1 else ""
        return f"{self.threads} thread{plural}{' (all cores)' if self.all_cores else ''}"

    @property
    def best(self) -> BatchPoint:
        return max(self.points, key=lambda p: p.median)

    @property
    def events_per_s(self) -> float:
        return self.best.median / self.rows_per_event

    @property
    def events_spread(self) -> float:
        return self.best.spread / self.rows_per_event


def tile(feeds: Mapping[str, np.ndarray], batch: int, batched: set[str]) -> Feeds:
    """Feeds with ``batch`` rows, repeating the captured rows (inputs in ``batched`` only)."""
    out: Feeds = {}
    for name, value in feeds.items():
        if name in batched:
            out[name] = np.ascontiguousarray(np.take(value, np.arange(batch) % value.shape[0], axis=0))
        else:
            out[name] = value
    return out


def batched_inputs(model: OnnxModel) -> set[str]:
    """Inputs whose first axis is symbolic (the batch axis)."""
    return {spec.name for spec in model.inputs if spec.shape and not isinstance(spec.shape[0], int)}


def batches_of(captured: CapturedFeeds, batch: int, batched: set[str], provider: str = CPU) -> list[Feeds]:
    """What one timing pass runs at ``batch``: the graph calls the service makes for its events in
    micro-batches of ``batch`` on ``provider`` (text models, :attr:`CapturedFeeds.batches`), else
    the captured feeds tiled to ``batch`` rows."""
    if captured.batches is not None:
        return captured.batches(batch, provider)
    return [tile(captured.feeds, batch, batched)]


def swept(captured: CapturedFeeds, batch_sizes: Sequence[int]) -> list[int]:
    """``batch_sizes`` up to the largest batch worth sweeping (:attr:`CapturedFeeds.max_batch`)."""
    bound = captured.max_batch
    return [b for b in batch_sizes if bound is None or b <= bound]


def sweep_patience(captured: CapturedFeeds, sizes: Sequence[int]) -> int:
    """:data:`PATIENCE`; a bounded sweep (a text model's, up to the service's own batch) measures every
    size: its gains per doubling are small (3-15 % for support) and one noisy point must not end it."""
    return len(sizes) if captured.max_batch is not None else PATIENCE


def time_batches(run: Callable[[Feeds], object], batches: Sequence[Feeds], min_s: float,
                 min_calls: int = 2) -> tuple[float, float]:
    """(rows/s, seconds per pass) of whole passes over the same pre-built ``batches`` (one ``run``
    call each) until ``min_s`` and ``min_calls`` calls are reached (the caller warms up)."""
    rows = sum(int(next(iter(feeds.values())).shape[0]) for feeds in batches)
    passes, start = 0, time.perf_counter()
    while passes * len(batches) < min_calls or time.perf_counter() - start < min_s:
        for feeds in batches:
            run(feeds)
        passes += 1
    elapsed = time.perf_counter() - start
    return rows * passes / elapsed, elapsed / passes


def still_rising(medians: Sequence[float], min_gain: float = MIN_GAIN, patience: int = PATIENCE) -> bool:
    """Whether the sweep goes on: ``False`` once each of the last ``patience`` steps gained less
    than ``min_gain`` over the point before it (a fall counts as no gain)."""
    if len(medians) <= patience:
        return True
    recent = medians[-patience - 1:]
    return any(after >= before * (1 + min_gain) for before, after in itertools.pairwise(recent))


def sweep(measure: Callable[[int], list[float]], batch_sizes: Sequence[int] = BATCH_SIZES,
          min_gain: float = MIN_GAIN, patience: int = PATIENCE) -> list[BatchPoint]:
    """Measure ``batch_sizes`` in order (``measure(batch)`` → the repeats' rows/s) until they stop rising."""
    points: list[BatchPoint] = []
    for batch in batch_sizes:
        points.append(BatchPoint(batch, measure(batch)))
        if not still_rising([p.median for p in points], min_gain, patience):
            break
    return points


def thread_counts() -> tuple[int, ...]:
    """One intra-op thread, and one per core (the same setting on a one-core machine)."""
    cores = os.cpu_count() or 1
    return (1, cores) if cores > 1 else (1,)


def load_model(name: str, variant: str | None, providers: Sequence[str], threads: int,
               io_binding: bool | None, transform: GraphTransform | None = None) -> tuple[OnnxModel, str]:
    """The verified model, with the graph rewritten as the service serves it when ``transform`` is given."""
    repo = ModelRepository(MODELS_DIR)
    version = repo.resolve(name)
    manifest, data = repo.load_verified(name, version, variant)
    data = served_graph(manifest, data, transform)
    model = OnnxModel(data, name=name, version=version, providers=providers, intra_op_threads=threads,
                      io_binding=io_binding)
    return model, version


def served_graph(manifest: ModelManifest, data: bytes, transform: GraphTransform | None) -> bytes:
    """The verified model file as the service serves it (``transform``, if any, applied)."""
    if transform is None:
        return data
    served: bytes = transform(manifest, onnx.load_model_from_string(data)).SerializeToString()
    return served


def capture(service: str, events: int = 4096, pairs: Sequence[tuple[bytes, bytes]] | None = None,
            batch: int = 256) -> CapturedFeeds:
    """The service's main-model feeds and record set for ``pairs`` (default: ``events`` simulated
    events of its stream), scored in batches of ``batch``."""
    from sim import iter_records
    from tools.bench.text import text_batches

    harness = ServiceHarness(service, bench_topics(service, "bench.in", "bench.out"))
    pairs = pairs if pairs is not None else list(iter_records(SERVICE_STREAMS[service], events))
    try:
        captured = capture_feeds(harness, pairs, batch)
        batches = text_batches(harness, pairs)
        return dataclasses.replace(captured, batches=batches,
                                   max_batch=harness.settings.runtime.max_batch_size if batches else None)
    finally:
        harness.close()


def measure_model_limit(service: str, *, repeats: int = 3, min_s: float = MIN_S,
                        batch_sizes: Sequence[int] = BATCH_SIZES, variant: str | None = None,
                        providers: Sequence[str] = ("cpu",), threads: int = 1,
                        io_binding: bool | None = None, captured: CapturedFeeds | None = None) -> ModelLimit:
    """Sweep ``batch_sizes`` until throughput stops rising; each point timed ``repeats`` times."""
    captured = captured or capture(service)
    model, version = load_model(captured.model, variant, providers, threads, io_binding, captured.transform)
    batched = batched_inputs(model)

    def measure(batch: int) -> list[float]:
        batches = batches_of(captured, batch, batched, model.provider)
        for feeds in batches:
            model.run(feeds)  # warm: the first call of a shape allocates
        return [time_batches(model.run, batches, min_s)[0] for _ in range(repeats)]

    sizes = swept(captured, batch_sizes)
    points = sweep(measure, sizes, patience=sweep_patience(captured, sizes))
    limit = ModelLimit(service, captured.model, version, model.provider, variant or "fp32",
                       captured.rows_per_event, points, threads, threads == os.cpu_count())
    logger.info("model limit %s, %s: best batch %d of %d swept, %.0f events/s", service, limit.threads_label,
                limit.best.batch, points[-1].batch, limit.events_per_s)
    return limit


def measure_model_limits(service: str, *, repeats: int = 3, min_s: float = MIN_S,
                         captured: CapturedFeeds | None = None, variants: Sequence[str] = ("fp32",),
                         batch_sizes: Sequence[int] = BATCH_SIZES) -> list[ModelLimit]:
    """The CPU model limit of each of ``variants`` at one thread and at one thread per core
    (:func:`thread_counts`)."""
    captured = captured or capture(service)
    return [measure_model_limit(service, repeats=repeats, min_s=min_s, threads=t, captured=captured,
                                variant=None if variant == "fp32" else variant, batch_sizes=batch_sizes)
            for variant in variants for t in thread_counts()]


def model_variants(service: str, asked: str) -> tuple[str, ...]:
    """The variants ``--variants`` names: ``served`` (fp32, what the service serves by default),
    ``all`` (fp32 and every variant the default version exported) or a comma list."""
    if asked == "served":
        return ("fp32",)
    if asked != "all":
        return tuple(v.strip() for v in asked.split(",") if v.strip())
    repo = ModelRepository(MODELS_DIR)
    name = model_name(service)
    return ("fp32", *sorted(repo.get(name, repo.resolve(name)).variants))


def model_name(service: str) -> str:
    """The model a service serves by default (its settings' ``model_name``)."""
    from services.registry import load_service

    return str(load_service(service).settings_class.model_fields["model_name"].default)
