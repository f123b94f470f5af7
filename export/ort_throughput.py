"""ORT throughput of a published model version at a few batch sizes."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shared.models.repository import ModelRepository
from shared.models.session import OnnxModel

FeedsFactory = Callable[[int], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class BenchRow:
    batch: int
    calls: int
    rows_per_s: float
    p50_ms: float
    p99_ms: float


def throughput(
    model: OnnxModel, batch_sizes: Sequence[int] = (1, 32, 256), seconds: float = 1.0,
    feeds: FeedsFactory | None = None,
) -> list[BenchRow]:
    """Call ``model.run`` repeatedly for about ``seconds`` per batch size (after one warm call)."""
    rows = []
    for batch in batch_sizes:
        inputs = feeds(batch) if feeds else model.zeros(batch)
        model.run(inputs)
        latencies: list[float] = []
        began = time.perf_counter()
        while time.perf_counter() - began < seconds or len(latencies) < 5:
            start = time.perf_counter()
            model.run(inputs)
            latencies.append(time.perf_counter() - start)
        elapsed = time.perf_counter() - began
        lat = np.array(latencies) * 1000
        rows.append(BenchRow(batch, len(lat), batch * len(lat) / elapsed,
                             float(np.percentile(lat, 50)), float(np.percentile(lat, 99))))
    return rows


def bench_version(
    repository: ModelRepository, name: str, version: str, *, variant: str | None = None,
    providers: Sequence[str] = ("cpu",), threads: int = 1, seconds: float = 1.0,
) -> list[BenchRow]:
    """Throughput of one stored version (checksum-verified) with ``threads`` intra-op threads."""
    _, data = repository.load_verified(name, version, variant)
    model = OnnxModel(data, name=name, version=version, providers=providers, intra_op_threads=threads)
    return throughput(model, seconds=seconds)
