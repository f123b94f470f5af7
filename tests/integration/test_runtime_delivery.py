"""No event that was read may be lost: SIGKILLs, exactly-once and rebalances against a real broker."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from shared.schemas import headers as h
from tests.support.factories import GroupIdFactory, TopicFactory
from tools.broker.kafka.admin import create_topics
from tools.supervisor import Collected, ServiceProcess, collect, produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 50_000
PARTITIONS = 4


def steady_producer(bootstrap: str, topic: str, count: int, chunks: int = 25) -> threading.Thread:
    """Produce ``count`` events in chunks over a few seconds, in the background."""

    def run() -> None:
        per_chunk = count // chunks
        for chunk in range(chunks):
            records = []
            for i in range(chunk * per_chunk, (chunk + 1) * per_chunk):
                key = f"u{i % 500}"
                records.append((key.encode(), json.dumps({"id": key, "value": float(i)}).encode()))
            produce(bootstrap, topic, records)
            time.sleep(0.2)

    thread = threading.Thread(target=run, name="steady-producer", daemon=True)
    thread.start()
    return thread


def sources(records: list[Collected]) -> Counter[tuple[int, int]]:
    return Counter((int(r.headers[h.SOURCE_PARTITION]), int(r.headers[h.SOURCE_OFFSET])) for r in records)


def service_env(bootstrap: str, topic: str, group: str, **extra: str) -> dict[str, str]:
    return {
        "INPUT_TOPIC": topic, "OUTPUT_TOPIC": f"{topic}.out", "GROUP_ID": group,
        "KAFKA__BOOTSTRAP_SERVERS": bootstrap, "RUNTIME__SESSION_TIMEOUT_MS": "6000",
        "RUNTIME__CREATE_TOPICS": "false", **extra,
    }


def kill_repeatedly(env: dict[str, str], log: Path, kills: int, seed: int) -> ServiceProcess:
    """SIGKILL the service at random moments ``kills`` times; returns the last, running one."""
    rng = random.Random(seed)
    for _ in range(kills):
        service = ServiceProcess("echo", env, log).start()
        service.wait_ready(60)
        time.sleep(rng.uniform(0.3, 2.0))
        service.kill()
    service = ServiceProcess("echo", env, log).start()
    service.wait_ready(60)
    return service


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_sigkill_loses_nothing(
    delivery: str, kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory, tmp_path: Path
) -> None:
    topic = topic_factory(partitions=PARTITIONS)
    topic_factory_out = f"{topic}.out"
    _create(kafka_bootstrap, topic_factory_out, f"{topic}.dlq")
    env = service_env(kafka_bootstrap, topic, group_id_factory(), RUNTIME__DELIVERY=delivery, INSTANCE_ID="echo-0")
    producer = steady_producer(kafka_bootstrap, topic, EVENTS)
    service = kill_repeatedly(env, tmp_path / "echo.log", kills=5, seed=11)
    try:
        producer.join(120)
        out = collect(
            kafka_bootstrap, [topic_factory_out], lambda rs: len(sources(rs)) >= EVENTS, timeout_s=180,
            read_committed=True,
        )
    finally:
        service.terminate()
    seen = sources(out)
    missing = EVENTS - len(seen)
    duplicates = sum(seen.values()) - len(seen)
    print(f"\n[{delivery}] inputs={EVENTS} scored={len(seen)} missing={missing} duplicates={duplicates}")
    assert missing == 0, f"{missing} input events have no score"
    if delivery == "exactly_once":
        assert duplicates == 0, "a read_committed reader must see exactly one score per input"


def _create(bootstrap: str, *names: str, partitions: int = PARTITIONS) -> None:
    """Create outputs up front with the input's partition count (these services do not create topics)."""
    create_topics(bootstrap, dict.fromkeys(names, partitions))


def test_rebalance_add_one_then_stop_two_loses_nothing(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory, tmp_path: Path
) -> None:
    topic = topic_factory(partitions=PARTITIONS * 2)
    _create(kafka_bootstrap, f"{topic}.out", f"{topic}.dlq", partitions=PARTITIONS * 2)
    env = service_env(kafka_bootstrap, topic, group_id_factory(), DELAY_MS="0")
    first = ServiceProcess("echo", env, tmp_path / "a.log").start()
    second = ServiceProcess("echo", env, tmp_path / "b.log").start()
    first.wait_ready()
    second.wait_ready()
    producer = steady_producer(kafka_bootstrap, topic, 30_000)
    time.sleep(1.5)
    third = ServiceProcess("echo", env, tmp_path / "c.log").start()
    third.wait_ready()
    time.sleep(1.5)
    assert first.terminate() == 0
    second.kill()
    try:
        producer.join(120)
        out = collect(kafka_bootstrap, [f"{topic}.out"], lambda rs: len(sources(rs)) >= 30_000, timeout_s=180)
    finally:
        third.terminate()
    seen = sources(out)
    print(f"\n[rebalance] inputs=30000 scored={len(seen)} duplicates={sum(seen.values()) - len(seen)}")
    assert len(seen) == 30_000
