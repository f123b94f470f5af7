"""Throughput and latency of the pricing service on this machine.

    python -m tools.bench.pricing_service scorer            # in-process: requests/s and batch latency
    python -m tools.bench.pricing_service e2e --rate 500    # through a real Kafka broker (harness JVM)

``scorer`` times ``PricingScorer.score`` on simulated requests per batch size. ``e2e`` starts
a broker, runs the service in a thread, first drains a backlog (max requests/s), then feeds
requests at ``--rate`` stamped with the wall clock and reports the p50/p99 of event time →
decision received.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer

from services.pricing.scorer import PricingScorer
from services.pricing.settings import PricingSettings
from shared.runtime.scorer import Event, LoadContext
from shared.runtime.state import StateStore
from shared.schemas.pricing import PricingRequest
from shared.settings import KafkaSettings, MetricsSettings
from sim.pricing import PricingSim
from sim.world import World
from tools.supervisor import produce, service_in_thread, wait_until

logger = logging.getLogger(__name__)

MODELS = Path(__file__).resolve().parents[2] / "models"


def _events(n: int) -> list[dict[str, Any]]:
    return [e for e, _ in PricingSim(World.build()).iter_dicts(n)]


def bench_scorer(batch_sizes: tuple[int, ...] = (1, 32, 256), repeats: int = 20) -> dict[str, Any]:
    settings = PricingSettings(models_dir=MODELS, config_topic=None, execution_providers=["cpu"], intra_op_threads=1)
    scorer = PricingScorer(settings)
    scorer.load(LoadContext(settings=settings, state=StateStore()))
    requests = [PricingRequest.model_validate(e) for e in _events(max(batch_sizes))]
    out: dict[str, Any] = {}
    for size in batch_sizes:
        batch = [Event(r, r.sku, "pricing.requests", 0, i, r.ts_ms) for i, r in enumerate(requests[:size])]
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            scorer.score(batch)
            times.append(time.perf_counter() - start)
        t = np.array(times)
        out[str(size)] = {"requests_per_s": size / float(np.median(t)), "p50_ms": 1e3 * float(np.median(t)),
                          "p99_ms": 1e3 * float(np.quantile(t, 0.99))}
    return out


def _consume(bootstrap: str, topic: str, want: int, timeout_s: float) -> list[tuple[float, dict[str, Any]]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got: list[tuple[float, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 0.2):
            if msg.error() is None:
                got.append((time.time(), json.loads(msg.value() or b"{}")))
    consumer.close()
    return got


def bench_e2e(rate: int, seconds: float, backlog: int) -> dict[str, Any]:
    from tools.broker.kafka import KafkaBroker
    from tools.broker.kafka.admin import create_topics

    events = _events(max(backlog, 20_000))
    with KafkaBroker() as broker:
        bootstrap, topic = broker.bootstrap_servers, f"bench-{uuid.uuid4().hex[:8]}"
        create_topics(bootstrap, {topic: 4})
        produce(bootstrap, topic, [(e["sku"].encode(), json.dumps(e).encode()) for e in events[:backlog]])
        settings = PricingSettings(
            input_topic=topic, output_topic=f"{topic}.decisions", forecast_topic=f"{topic}.forecasts",
            config_topic=None, models_dir=MODELS, kafka=KafkaSettings(bootstrap_servers=bootstrap),
            metrics=MetricsSettings(host="127.0.0.1", port=0), execution_providers=["cpu"], intra_op_threads=1,
        )
        with service_in_thread(settings, PricingScorer(settings)) as app:
            got = _consume(bootstrap, f"{topic}.decisions", backlog, 300)
            times = [t for t, _ in got]
            # First to last decision: excludes model load and the group join.
            drain = {"requests": len(got), "requests_per_s": len(got) / max(max(times) - min(times), 1e-9)}
            assert wait_until(lambda: app.health.joined, 10)
            paced_from = int(time.time() * 1000)
            # The reader runs while requests are fed, so receive time is measured live.
            live: list[tuple[float, dict[str, Any]]] = []
            target = int(rate * seconds * 0.98) + backlog
            reader = threading.Thread(target=lambda: live.extend(_consume(bootstrap, f"{topic}.decisions", target, 60)))
            reader.start()
            paced = _paced(bootstrap, topic, events, rate, seconds)
            reader.join()
            got = live
    lat = np.array([1e3 * t - d["event_ts_ms"] for t, d in got if d["event_ts_ms"] >= paced_from])
    return {"backlog_drain": drain, "paced": {"rate": rate, "sent": paced, "received": len(lat),
                                              "p50_ms": float(np.median(lat)), "p99_ms": float(np.quantile(lat, 0.99))}}


def _paced(bootstrap: str, topic: str, events: list[dict[str, Any]], rate: int, seconds: float) -> int:
    sent, tick, start = 0, 0.05, time.time()
    while time.time() - start < seconds:
        chunk = events[sent % len(events): sent % len(events) + max(1, int(rate * tick))]
        now = int(time.time() * 1000)
        produce(bootstrap, topic, [(e["sku"].encode(), json.dumps({**e, "ts_ms": now}).encode()) for e in chunk])
        sent += len(chunk)
        threading.Event().wait(max(0.0, start + sent / rate - time.time()))
    return sent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["scorer", "e2e"])
    p.add_argument("--rate", type=int, default=500)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--backlog", type=int, default=20_000)
    ns = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = bench_scorer() if ns.mode == "scorer" else bench_e2e(ns.rate, ns.seconds, ns.backlog)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
