"""Scorer throughput and batch latency of the recommendation service (no broker).

``python -m tools.bench.recommendation_scorer --events 20000 --batch 256`` scores simulated
clickstream events through the service's own scorer (state updates, one ONNX call per batch,
filters, top-K) in micro-batches and prints events/s and the p50/p99 batch latency.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from services.recommendation.scorer import RecommendationScorer
from services.recommendation.settings import RecommendationSettings
from shared.runtime.scorer import Event, LoadContext
from shared.runtime.state import StateStore
from shared.schemas.clickstream import ClickEvent
from sim.clickstream import ClickstreamSim
from sim.registry import world_for

logger = logging.getLogger(__name__)

MODELS = Path(__file__).resolve().parents[2] / "models"


def bench(events: int, batch: int, threads: int) -> dict[str, float]:
    settings = RecommendationSettings(models_dir=MODELS, execution_providers=["cpu"], intra_op_threads=threads)
    scorer = RecommendationScorer(settings)
    scorer.load(LoadContext(settings=settings, state=StateStore()))
    clicks = [ClickEvent.model_validate(e) for e, _ in ClickstreamSim(world_for(7)).iter_dicts(events)]
    wrapped = [Event(c, c.user_id, "clickstream.events", 0, i, c.ts_ms) for i, c in enumerate(clicks)]
    scorer.score(wrapped[:batch])  # warm-up
    latencies = []
    start = time.perf_counter()
    for i in range(0, len(wrapped), batch):
        t0 = time.perf_counter()
        scorer.score(wrapped[i : i + batch])
        latencies.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {
        "events": events, "batch": batch, "events_per_s": round(events / total, 1),
        "p50_batch_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_batch_ms": round(float(np.percentile(ms, 99)), 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 32, 256])
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    args = p.parse_args()
    for size in args.batch:
        print(bench(args.events, size, args.threads))


if __name__ == "__main__":
    main()
