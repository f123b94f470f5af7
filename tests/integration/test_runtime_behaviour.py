"""The runtime's guarantees against a real broker: DLQ, failing scorer, drain, state, metrics."""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from shared.runtime.echo import EchoScorer
from shared.schemas import headers as h
from tests.support.echo import echo_settings, good
from tests.support.factories import BrokerFactory, GroupIdFactory, TopicFactory
from tools.supervisor import (
    Collected,
    ServiceProcess,
    collect,
    http_get,
    produce,
    service_in_thread,
    wait_until,
)

pytestmark = pytest.mark.integration


BAD_RECORDS: dict[str, tuple[bytes | None, bytes | None]] = {
    "malformed_json": (b"u1", b'{"id": "u1", "value": '),
    "invalid_value": (b"u1", b'{"id": "u1", "value": "lots"}'),
    "missing_field": (b"u1", b'{"value": 3}'),
    "oversized": (b"u1", b'{"id": "u1", "payload": "' + b"x" * 5000 + b'"}'),
    "invalid_utf8": (b"u1", b'{"id": "\xc3\x28"}'),
    "rejected_by_scorer": (b"reject-1", b'{"id": "reject-1"}'),
}


def test_bad_input_lands_on_the_dlq_with_reasons_and_the_rest_is_scored(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory
) -> None:
    topic = topic_factory(partitions=3)
    rng = random.Random(7)
    records: list[tuple[bytes | None, bytes | None]] = []
    expected_bad: Counter[str] = Counter()
    for i in range(2000):
        if rng.random() < 0.05:
            reason = rng.choice(sorted(BAD_RECORDS))
            records.append(BAD_RECORDS[reason])
            expected_bad[reason] += 1
        else:
            records.append(good(i))
    produce(kafka_bootstrap, topic, records)
    n_good = len(records) - sum(expected_bad.values())
    settings = echo_settings(kafka_bootstrap, topic, group_id_factory(), max_message_bytes=4096)
    with service_in_thread(settings, EchoScorer()):
        out = collect(
            kafka_bootstrap, [f"{topic}.out", f"{topic}.dlq"],
            lambda rs: len(rs) >= len(records), timeout_s=60,
        )
    scores = [r for r in out if r.topic == f"{topic}.out"]
    dead = [r for r in out if r.topic == f"{topic}.dlq"]
    assert len(scores) == n_good
    assert Counter(r.headers[h.ERROR_REASON].decode() for r in dead) == expected_bad
    inputs = collect(kafka_bootstrap, [topic], lambda rs: len(rs) >= len(records), timeout_s=30)
    for letter in dead:
        assert letter.headers[h.SOURCE_TOPIC] == topic.encode()
        assert letter.headers[h.SERVICE] == b"echo"
        assert letter.headers[h.ERROR_MESSAGE], "a human-readable message explains the refusal"
        original = record_at(inputs, letter)
        assert (original.key, original.value) == BAD_RECORDS[letter.headers[h.ERROR_REASON].decode()]
        assert (letter.key, letter.value) == (original.key, original.value), "the raw bytes are kept for redrive"
    lineage = scores[0].headers
    assert lineage[h.MODEL_NAME] == b"echo" and lineage[h.SOURCE_TOPIC] == topic.encode()
    assert int(lineage[h.EVENT_TIME_MS]) > 0 and h.SOURCE_OFFSET in lineage


def record_at(inputs: list[Collected], letter: Collected) -> Collected:
    """The input record a dead letter names in its ``x-source-partition``/``x-source-offset`` headers."""
    partition, offset = int(letter.headers[h.SOURCE_PARTITION]), int(letter.headers[h.SOURCE_OFFSET])
    matches = [r for r in inputs if (r.partition, r.offset) == (partition, offset)]
    assert len(matches) == 1, f"no input record at partition {partition} offset {offset}"
    return matches[0]


def test_failing_scorer_pauses_turns_unready_and_recovers_without_dead_letters(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory, tmp_path: Path
) -> None:
    topic = topic_factory(partitions=2)
    outage = tmp_path / "model-down"
    outage.touch()
    settings = echo_settings(kafka_bootstrap, topic, group_id_factory(), retry_max_backoff_s=1.0)
    with service_in_thread(settings, EchoScorer(fail_while_file_exists=outage)) as app:
        assert wait_until(lambda: app.health.joined, 30)
        produce(kafka_bootstrap, topic, [good(i) for i in range(1000)])
        assert wait_until(lambda: app.health.failing, 15), "the outage must be noticed"
        status, body = http_get(app.metrics_port, "/readyz")
        assert status == 503 and "scorer failing" in body
        time.sleep(10)  # a ten-second model outage
        metrics = http_get(app.metrics_port, "/metrics")[1]
        assert 'shopstream_paused{service="echo"} 1.0' in metrics
        dead = re.findall(r"^shopstream_events_dead_lettered_total\{[^}]*\} (\S+)$", metrics, re.M)
        assert dead and all(float(v) == 0 for v in dead), "nothing dead-lettered (the series start at 0)"
        outage.unlink()
        out = collect(kafka_bootstrap, [f"{topic}.out"], lambda rs: len(rs) >= 1000, timeout_s=60)
        assert wait_until(lambda: http_get(app.metrics_port, "/readyz")[0] == 200, 10)
    assert len({r.headers[h.SOURCE_PARTITION] + b":" + r.headers[h.SOURCE_OFFSET] for r in out}) == 1000
    dead = collect(kafka_bootstrap, [f"{topic}.dlq"], lambda rs: False, timeout_s=3)
    assert dead == [], "a failing model must never dead-letter good events"


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def test_sigterm_drains_commits_and_exits_within_the_deadline(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory, tmp_path: Path
) -> None:
    topic = topic_factory(partitions=2)
    group = group_id_factory()
    env = {
        "INPUT_TOPIC": topic, "OUTPUT_TOPIC": f"{topic}.out", "GROUP_ID": group,
        "KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap, "RUNTIME__SHUTDOWN_DEADLINE_S": "8",
        "RUNTIME__MAX_WAIT_MS": "50", "DELAY_MS": "20",
    }
    service = ServiceProcess("echo", env, tmp_path / "echo.log").start()
    try:
        service.wait_ready()
        produce(kafka_bootstrap, topic, [good(i) for i in range(3000)])
        time.sleep(1.0)
        started = time.monotonic()
        code = service.terminate(timeout_s=30)
        took = time.monotonic() - started
    finally:
        if service.alive():
            service.kill()
    assert code == 0, (tmp_path / "echo.log").read_text()[-2000:]
    assert took < 8 + 2, f"drain took {took:.1f}s for an 8s deadline"
    out = collect(kafka_bootstrap, [f"{topic}.out"], lambda rs: False, timeout_s=4)
    scored: Counter[int] = Counter(int(r.headers[h.SOURCE_PARTITION]) for r in out)
    committed = committed_offsets(kafka_bootstrap, group, topic, 2)
    for partition in range(2):
        assert committed[partition] == scored[partition], "every scored event is committed, nothing more"
    assert sum(scored.values()) > 0


def test_state_is_restored_from_the_changelog_after_a_restart(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory
) -> None:
    topic = topic_factory(partitions=3)
    group = group_id_factory()
    produce(kafka_bootstrap, topic, [good(i, keys=20) for i in range(600)])
    settings = echo_settings(kafka_bootstrap, topic, group)
    with service_in_thread(settings, EchoScorer(stateful=True)) as first:
        collect(kafka_bootstrap, [f"{topic}.out"], lambda rs: len(rs) >= 600, timeout_s=60)
        assert first.state is not None
        wait_until(lambda: first._delivery is not None and first._delivery.tracker.pending_units() == 0, 10)
        before = {p: first.state.snapshot(p) for p in range(3)}
    with service_in_thread(settings, EchoScorer(stateful=True)) as second:
        assert wait_until(lambda: second.health.joined, 30)
        assert second.state is not None
        after = {p: second.state.snapshot(p) for p in range(3)}
    assert after == before
    assert sum(entry["count"] for part in after.values() for entry in part.values()) == 600


def test_metrics_move_and_lag_drains_to_zero(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory
) -> None:
    topic = topic_factory(partitions=2)
    settings = echo_settings(kafka_bootstrap, topic, group_id_factory(), statistics_interval_ms=500)
    produce(kafka_bootstrap, topic, [good(i) for i in range(3000)])
    with service_in_thread(settings, EchoScorer()) as app:
        collect(kafka_bootstrap, [f"{topic}.out"], lambda rs: len(rs) >= 3000, timeout_s=60)

        def lag_zero() -> bool:
            text = http_get(app.metrics_port, "/metrics")[1]
            lags = re.findall(r'shopstream_consumer_lag\{[^}]*\} (\S+)', text)
            return len(lags) == 2 and all(float(v) == 0 for v in lags)

        assert wait_until(lag_zero, 20), "lag per partition must reach 0 once everything is scored"
        text = http_get(app.metrics_port, "/metrics")[1]
    sample = r"^(shopstream_[a-z_]+(?:total|count))\{[^}]*\} (\S+)$"
    values = {name: float(v) for name, v in re.findall(sample, text, re.M)}
    assert values["shopstream_events_consumed_total"] == 3000
    assert values["shopstream_events_scored_total"] == 3000
    assert values["shopstream_batch_size_count"] >= 1
    assert values["shopstream_end_to_end_seconds_count"] == 3000
    assert values["shopstream_inference_seconds_count"] == values["shopstream_batch_size_count"]
    assert 'shopstream_model_info{' in text and 'provider="none"' in text


def test_sigterm_with_every_broker_down_still_exits_within_the_deadline(
    tmp_path: Path, broker_factory: BrokerFactory
) -> None:
    broker = broker_factory()
    env = {"INPUT_TOPIC": "down.in", "OUTPUT_TOPIC": "down.out", "KAFKA__BOOTSTRAP_SERVERS":
           broker.bootstrap_servers, "RUNTIME__SHUTDOWN_DEADLINE_S": "4"}
    service = ServiceProcess("echo", env, tmp_path / "echo.log").start()
    try:
        service.wait_ready()
        produce(broker.bootstrap_servers, "down.in", [good(i) for i in range(200)])
        broker.kill()
        time.sleep(2)
        started = time.monotonic()
        code = service.terminate(timeout_s=60)
        took = time.monotonic() - started
    finally:
        if service.alive():
            service.kill()
    assert took < 4 + 5 + 3, f"exit took {took:.1f}s with a 4 s deadline"
    assert code in (0, 70), (tmp_path / "echo.log").read_text()[-2000:]
