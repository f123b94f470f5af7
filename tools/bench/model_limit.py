"""The model limit: raw ONNX Runtime throughput of a service's default model, batch 1 to 1024.

The tensors are the ones the service's own feature code builds for simulated events (captured
from one scored batch, see :func:`capture_feeds`), tiled to each batch size before timing, so
only ``session.run`` is timed. A "row" is one row of the model's batch axis; services that
score several rows per event (candidate ads) report events/s = rows/s ÷ rows per event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from shared.models.repository import ModelRepository
from shared.models.session import OnnxModel
from tools.bench.measure import median_spread
from tools.bench.scoring import CapturedFeeds, Feeds, ServiceHarness, capture_feeds
from tools.bench.wiring import MODELS_DIR, SERVICE_STREAMS, bench_topics

logger = logging.getLogger(__name__)

BATCH_SIZES = tuple(2**i for i in range(11))  # 1 .. 1024


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


def time_batch(model: OnnxModel, feeds: Feeds, min_s: float, min_calls: int = 3) -> float:
    """Rows per second of repeated ``run`` calls on the same pre-built feeds."""
    rows = int(next(iter(feeds.values())).shape[0])
    model.run(feeds)  # warm: first call of a shape allocates
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_s:
        model.run(feeds)
        calls += 1
    return rows * calls / (time.perf_counter() - start)


def load_model(name: str, variant: str | None, providers: Sequence[str], threads: int,
               io_binding: bool | None) -> tuple[OnnxModel, str]:
    repo = ModelRepository(MODELS_DIR)
    version = repo.resolve(name)
    _, data = repo.load_verified(name, version, variant)
    model = OnnxModel(data, name=name, version=version, providers=providers, intra_op_threads=threads,
                      io_binding=io_binding)
    return model, version


def capture(service: str, events: int = 4096, pairs: Sequence[tuple[bytes, bytes]] | None = None) -> CapturedFeeds:
    """The service's main-model feeds for ``pairs`` (default: ``events`` simulated events of its stream)."""
    from sim import iter_records

    harness = ServiceHarness(service, bench_topics(service, "bench.in", "bench.out"))
    try:
        return capture_feeds(harness, pairs if pairs is not None else list(iter_records(SERVICE_STREAMS[service],
                                                                                         events)))
    finally:
        harness.close()


def measure_model_limit(service: str, *, repeats: int = 3, min_s: float = 0.25,
                        batch_sizes: Sequence[int] = BATCH_SIZES, variant: str | None = None,
                        providers: Sequence[str] = ("cpu",), threads: int = 0,
                        io_binding: bool | None = None, captured: CapturedFeeds | None = None) -> ModelLimit:
    """Sweep ``batch_sizes`` ``repeats`` times (interleaved, so load drifts hit every size alike)."""
    captured = captured or capture(service)
    model, version = load_model(captured.model, variant, providers, threads, io_binding)
    batched = batched_inputs(model)
    prebuilt = {b: tile(captured.feeds, b, batched) for b in batch_sizes}
    points = [BatchPoint(b) for b in batch_sizes]
    for _ in range(repeats):
        for point in points:
            point.rows_per_s.append(time_batch(model, prebuilt[point.batch], min_s))
    logger.info("model limit %s: best batch %d", service, max(points, key=lambda p: p.median).batch)
    return ModelLimit(service, captured.model, version, model.provider, variant or "fp32",
                      captured.rows_per_event, points)
