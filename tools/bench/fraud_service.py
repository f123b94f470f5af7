"""Fraud service speed: ``python -m tools.bench.fraud_service [--bootstrap-servers HOST:PORT]``.

1. The scorer alone (features + state + ONNX + reasons), in process, per batch size.
2. The service end to end through a real broker (``shopstream serve fraud`` in a subprocess):
   events/s draining a backlog, then p50/p99 latency (event time → score appended by the
   broker) at half that rate.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from services.fraud.scorer import FraudScorer
from services.fraud.settings import FraudSettings
from shared.runtime.scorer import Event, LoadContext
from shared.runtime.state import StateStore
from shared.schemas.payments import Transaction
from shared.settings import KafkaSettings
from sim.registry import make_stream
from tools.bench.measure import read_output_timing
from tools.bench.runtime import APPEND_TIME, _topic
from tools.loadgen.generator import LoadGenerator
from tools.supervisor import ServiceProcess, produce

logger = logging.getLogger(__name__)

MODELS = Path(__file__).resolve().parents[2] / "models"


def sim_rows(n: int) -> list[dict[str, object]]:
    return [event for event, _ in make_stream("payments").iter_dicts(n)]


def bench_scorer(rows: list[dict[str, object]], batch: int, reasons_for: str) -> tuple[float, float, float]:
    """``(events/s, p50 ms, p99 ms)`` per batch for the scorer alone (one thread)."""
    settings = FraudSettings(models_dir=MODELS, execution_providers=["cpu"], intra_op_threads=1,
                             reasons_for=reasons_for)  # type: ignore[arg-type]
    scorer = FraudScorer(settings)
    scorer.load(LoadContext(settings=settings, state=StateStore()))
    events = [Event(Transaction.model_validate(r), str(r["user_id"]), "p", 0, i, 0) for i, r in enumerate(rows)]
    times = []
    start = time.perf_counter()
    for i in range(0, len(events), batch):
        t = time.perf_counter()
        scorer.score(events[i : i + batch])
        times.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    return len(events) / total, 1000 * float(np.percentile(times, 50)), 1000 * float(np.percentile(times, 99))


def bench_service(kafka: KafkaSettings, rows: list[dict[str, object]], partitions: int, log: Path) -> dict[str, float]:
    records: list[tuple[bytes | None, bytes | None]] = [
        (str(r["user_id"]).encode(), json.dumps(r).encode()) for r in rows
    ]
    source = _topic(kafka, "fraud-in", partitions)
    produce(kafka.bootstrap_servers, source, records)
    throughput = _run(kafka, source, partitions, log, None, records)["events_per_s"]
    source = _topic(kafka, "fraud-lat", partitions)
    latency = _run(kafka, source, partitions, log, throughput * 0.5, records)
    return {"events_per_s": throughput, "rate": throughput * 0.5, **latency}


def _run(kafka: KafkaSettings, source: str, partitions: int, log: Path, rate: float | None,
         records: list[tuple[bytes | None, bytes | None]]) -> dict[str, float]:  # fmt: skip
    sink = _topic(kafka, "fraud-scores", partitions, APPEND_TIME)
    env = {"INPUT_TOPIC": source, "OUTPUT_TOPIC": sink, "ALERTS_TOPIC": f"{sink}.alerts",
           "GROUP_ID": f"bench-{uuid.uuid4().hex}", "KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
           "CHANGELOG_TOPIC": f"{sink}.changelog", "MODELS_DIR": str(MODELS), "EXECUTION_PROVIDERS": '["cpu"]',
           "INTRA_OP_THREADS": "1"}  # fmt: skip
    with ServiceProcess("fraud", env, log) as service:
        if rate is None:
            return {"events_per_s": read_output_timing(kafka.bootstrap_servers, sink, len(records)).throughput}
        service.wait_ready(90)
        count = int(min(len(records), rate * 20))
        gen = LoadGenerator(kafka, iter((source, (k or b"", v or b"")) for k, v in records), rate=rate, count=count)
        thread = threading.Thread(target=gen.run, daemon=True)
        thread.start()
        thread.join()
        timing = read_output_timing(kafka.bootstrap_servers, sink, gen.sent)
        return {"p50_ms": timing.percentile(0.5), "p99_ms": timing.percentile(0.99)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--bootstrap-servers", help="use this Kafka instead of starting one")
    parser.add_argument("--skip-broker", action="store_true", help="only the in-process scorer")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = sim_rows(args.events)
    print("| scorer alone | batch | events/s | p50 ms/batch | p99 ms/batch |\n|---|---|---|---|---|")
    for reasons_for in ("flagged", "all"):
        for batch in (1, 32, 256):
            eps, p50, p99 = bench_scorer(rows[: 2000 if batch == 1 else None], batch, reasons_for)
            print(f"| reasons for {reasons_for} | {batch} | {eps:,.0f} | {p50:.2f} | {p99:.2f} |")
    if args.skip_broker:
        return
    with ExitStack() as stack:
        bootstrap = args.bootstrap_servers
        if not bootstrap:
            from tools.broker.kafka import KafkaBroker

            bootstrap = stack.enter_context(KafkaBroker()).bootstrap_servers
        log = Path(tempfile.mkdtemp(prefix="fraud-bench-")) / "fraud.log"
        result = bench_service(KafkaSettings(bootstrap_servers=bootstrap), rows, args.partitions, log)
    print(f"service end to end ({args.partitions} partitions, {len(rows)} events): "
          f"{result['events_per_s']:,.0f} events/s; at {result['rate']:,.0f} events/s: "
          f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
