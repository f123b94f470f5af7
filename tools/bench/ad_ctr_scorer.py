"""In-process throughput of the ad CTR scorer, with and without the creative-embedding cache.

    python -m tools.bench.ad_ctr_scorer --models-dir models --requests 2000

Feeds simulated requests (validated once, beforehand) to ``AdCtrScorer.score`` in
micro-batches of several sizes; reports candidates/s and p50/p99 time per micro-batch
(a request waits at most one batch). No broker: this isolates the scorer's own cost.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from services.ad_ctr.scorer import AdCtrScorer
from services.ad_ctr.settings import AdCtrSettings
from shared.runtime.scorer import Event, LoadContext
from shared.schemas.ads import AdRequest
from sim.registry import make_stream

logger = logging.getLogger(__name__)


def _events(n: int) -> list[Event[AdRequest]]:
    reqs = [AdRequest.model_validate(e) for e, _ in make_stream("ads").iter_dicts(n)]
    return [Event(value=r, key=r.request_id, topic="ads", partition=0, offset=i, timestamp_ms=r.ts_ms)
            for i, r in enumerate(reqs)]


def bench(models_dir: Path, n: int, batches: list[int], threads: int) -> list[dict[str, float]]:
    events = _events(n)
    n_cands = sum(len(e.value.candidates) for e in events)
    rows = []
    for cache_size in (50_000, 0):
        settings = AdCtrSettings(models_dir=models_dir, execution_providers=["cpu"], intra_op_threads=threads,
                                 embedding_cache_size=cache_size)
        scorer = AdCtrScorer(settings)
        scorer.load(LoadContext(settings=settings))
        for size in batches:
            scorer.score(events[:size])  # warm: one batch, as a long-running service would be
            times = []
            start = time.perf_counter()
            for s in range(0, n, size):
                t0 = time.perf_counter()
                scorer.score(events[s : s + size])
                times.append(time.perf_counter() - t0)
            total = time.perf_counter() - start
            rows.append({"cache": float(cache_size > 0), "batch_requests": size, "candidates_per_s": n_cands / total,
                         "requests_per_s": n / total, "p50_batch_ms": 1000 * float(np.percentile(times, 50)),
                         "p99_batch_ms": 1000 * float(np.percentile(times, 99)),
                         "hit_rate": scorer.cache.hits / max(scorer.cache.hits + scorer.cache.misses, 1)})
            logger.info("%s", rows[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 128])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(json.dumps(bench(args.models_dir, args.requests, args.batches, args.threads), indent=2))


if __name__ == "__main__":
    main()
