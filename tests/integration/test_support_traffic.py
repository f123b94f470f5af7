"""``shopstream produce banking77|support`` end to end: the support service scores the replayed and
the simulated messages, and the malformed ones ``--bad-fraction`` makes reach its DLQ with a reason.

A tiny random support model (tests/support/tiny_support_model.py): what is checked is the traffic's
path through the broker and the service, not the model's accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.registry import load_service
from shared.models.repository import ModelRepository
from shared.schemas import headers as h
from shared.settings import KafkaSettings, MetricsSettings, RuntimeSettings
from tests.support.cli import shopstream
from tests.support.factories import GroupIdFactory, TopicFactory
from tests.support.replay_data import BANKING77_ROWS, write_tiny_banking77
from tools.supervisor import collect, service_in_thread

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tiny_support_model import publish_tiny_support

    root = tmp_path_factory.mktemp("support-models")
    publish_tiny_support(ModelRepository(root), seed=2)
    return root


def support_settings(bootstrap: str, topic: str, group: str, models: Path) -> Any:
    return load_service("support").settings_class(
        input_topic=topic, output_topic=f"{topic}.out", escalations_topic=f"{topic}.escalations", group_id=group,
        changelog_topic=f"{topic}.changelog", config_topic=None, models_dir=models,
        kafka=KafkaSettings(bootstrap_servers=bootstrap), metrics=MetricsSettings(host="127.0.0.1", port=0),
        runtime=RuntimeSettings(session_timeout_ms=6000), execution_providers=["cpu"],
    )  # fmt: skip


def test_replayed_banking77_messages_are_each_given_an_intent_and_a_queue(
    models: Path, tmp_path: Path, kafka_bootstrap: str, topic_factory: TopicFactory,
    group_id_factory: GroupIdFactory,
) -> None:
    topic = topic_factory(partitions=2)
    produced = shopstream("produce", "banking77", "--data-dir", str(write_tiny_banking77(tmp_path)), "--topic",
                          topic, "--rate", "0", "--quiet", "-b", kafka_bootstrap)
    assert produced.returncode == 0, produced.stderr
    assert f"produced {len(BANKING77_ROWS)} events (0 failed)" in produced.stdout
    settings = support_settings(kafka_bootstrap, topic, group_id_factory(), models)
    with service_in_thread(settings, load_service("support").create_scorer(settings)):
        out = collect(kafka_bootstrap, [f"{topic}.out", f"{topic}.dlq"], lambda rs: len(rs) >= len(BANKING77_ROWS),
                      timeout_s=90)
    assert [r.topic for r in out] == [f"{topic}.out"] * len(BANKING77_ROWS)
    intents = [json.loads(r.value or b"{}") for r in out]
    assert sorted(i["message_id"] for i in intents) == [f"b77-test-{n}" for n in range(len(BANKING77_ROWS))]
    assert all(r.key == i["customer_id"].encode() and i["queue"] for r, i in zip(out, intents, strict=True))


def test_the_shops_support_messages_are_scored_and_the_broken_ones_dead_lettered_with_reasons(
    models: Path, kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory,
) -> None:
    topic, count = topic_factory(partitions=2), 60
    produced = shopstream("produce", "support", "--count", str(count), "--bad-fraction", "0.4", "--topic", topic,
                          "--rate", "0", "--quiet", "-b", kafka_bootstrap)
    assert produced.returncode == 0, produced.stderr
    settings = support_settings(kafka_bootstrap, topic, group_id_factory(), models)
    with service_in_thread(settings, load_service("support").create_scorer(settings)):
        out = collect(kafka_bootstrap, [f"{topic}.out", f"{topic}.dlq"], lambda rs: len(rs) >= count, timeout_s=90)
    dead = [r for r in out if r.topic == f"{topic}.dlq"]
    assert len(out) == count and 10 <= len(dead) <= 40, (len(out), len(dead))
    reasons = {r.headers[h.ERROR_REASON].decode() for r in dead}
    assert len(reasons) >= 3, reasons  # control characters, overlong, invalid UTF-8, missing fields, broken JSON
    assert all(r.headers[h.SERVICE] == b"support" for r in dead)
