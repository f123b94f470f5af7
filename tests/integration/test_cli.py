"""The ``shopstream`` command against a real broker: produce → tail, DLQ inspect and redrive, topics create."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka.admin._config import ConfigResource

from shared.runtime.echo import EchoScorer
from tests.support.cli import shopstream
from tests.support.echo import echo_settings
from tests.support.factories import GroupIdFactory, TopicFactory
from tools.broker.kafka.admin import admin_client, delete_topics
from tools.supervisor import collect, produce, service_in_thread

pytestmark = pytest.mark.integration


def test_produce_then_tail_round_trip(kafka_bootstrap: str, topic_factory: TopicFactory) -> None:
    topic = topic_factory(partitions=2)
    produced = shopstream("produce", "payments", "--count", "40", "--rate", "0", "--topic", topic,
                          "-b", kafka_bootstrap, "--quiet")
    assert produced.returncode == 0, produced.stderr
    assert "produced 40 events (0 failed)" in produced.stdout
    tailed = shopstream("tail", topic, "--from-beginning", "--json", "--max", "40", "-b", kafka_bootstrap)
    assert tailed.returncode == 0, tailed.stderr
    events = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert len(events) == 40 and all("txn_id" in e and e["amount"] > 0 for e in events)


def test_dlq_inspect_and_redrive_after_a_fix(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory
) -> None:
    topic = topic_factory(partitions=2)
    big = [(f"u{i}".encode(), json.dumps({"id": f"u{i}", "payload": "x" * 400}).encode()) for i in range(20)]
    small = [(f"s{i}".encode(), json.dumps({"id": f"s{i}"}).encode()) for i in range(20)]
    produce(kafka_bootstrap, topic, big + small)
    strict = echo_settings(kafka_bootstrap, topic, group_id_factory(), max_message_bytes=200)
    with service_in_thread(strict, EchoScorer()):
        collect(kafka_bootstrap, [f"{topic}.out", f"{topic}.dlq"], lambda rs: len(rs) >= 40, timeout_s=60)

    inspected = shopstream("dlq", "inspect", topic, "-b", kafka_bootstrap)
    assert inspected.returncode == 0, inspected.stderr
    assert "20 dead letters" in inspected.stdout and "oversized: 20" in inspected.stdout

    dry = shopstream("dlq", "redrive", topic, "--reason", "oversized", "--dry-run", "-b", kafka_bootstrap)
    assert f"would send 20 records to {topic}" in dry.stdout

    fixed = strict.model_copy(update={"runtime": strict.runtime.model_copy(update={"max_message_bytes": 10_000})})
    with service_in_thread(fixed, EchoScorer()):
        sent = shopstream("dlq", "redrive", topic, "--reason", "oversized", "-b", kafka_bootstrap)
        assert f"sent 20 records to {topic}" in sent.stdout, sent.stderr
        out = collect(kafka_bootstrap, [f"{topic}.out"], lambda rs: len(rs) >= 40, timeout_s=60)
    expected = {f"u{i}" for i in range(20)} | {f"s{i}" for i in range(20)}
    assert {json.loads(r.value or b"{}")["id"] for r in out} == expected


def test_topics_create_makes_the_config_topic_compacted_and_is_safe_to_rerun(kafka_bootstrap: str) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:8]}"
    env = {f"SHOPSTREAM_PRICING_{field.upper()}": f"{prefix}.{field}"
           for field in ("input_topic", "output_topic", "forecast_topic", "changelog_topic", "config_topic")}
    args = ("topics", "create", "--services", "pricing", "--partitions", "3", "-b", kafka_bootstrap)
    admin = admin_client(kafka_bootstrap)
    try:
        first = shopstream(*args, env=env)
        assert first.returncode == 0, first.stderr
        assert f"{prefix}.config_topic\tpartitions=1\tcleanup.policy=compact" in first.stdout
        again = shopstream(*args, env=env)
        assert again.returncode == 0 and again.stdout == first.stdout, again.stderr
        metadata = admin.list_topics(timeout=10).topics
        assert len(metadata[f"{prefix}.config_topic"].partitions) == 1
        assert len(metadata[f"{prefix}.input_topic"].partitions) == 3
        resource = ConfigResource(ConfigResource.Type.TOPIC, f"{prefix}.config_topic")
        config = admin.describe_configs([resource])[resource].result(timeout=10)
        assert config["cleanup.policy"].value == "compact"
    finally:
        delete_topics(kafka_bootstrap, [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)])
