"""The Go example producer (examples/producer-go) against a real broker: the pricing service scores its events.

Its schema check without a broker is in tests/unit/test_example_producer.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services import pricing
from services.pricing.settings import PricingSettings
from shared.schemas.pricing import PricingDecision
from shared.settings import KafkaSettings, MetricsSettings, RuntimeSettings
from tests.support.factories import GroupIdFactory, TopicFactory
from tests.support.go_producer import build_producer, run_producer
from tools.supervisor import REPO_ROOT, collect, service_in_thread

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def producer_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_producer(tmp_path_factory.mktemp("producer-go"))


def test_pricing_service_scores_the_go_producers_events(
    producer_binary: Path, kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory
) -> None:
    topic = topic_factory(partitions=2)
    result = run_producer(producer_binary, "-brokers", kafka_bootstrap, "-topic", topic, "-count", "60",
                          "-bad-every", "20")
    assert result.returncode == 0, result.stderr
    assert f"produced 57 pricing events to {topic} (rejected 3 invalid)" in result.stdout
    settings: PricingSettings = pricing.SETTINGS_CLASS(
        input_topic=topic, output_topic=f"{topic}.decisions", forecast_topic=f"{topic}.forecasts",
        config_topic=None, group_id=group_id_factory(), changelog_topic=f"{topic}.changelog",
        models_dir=REPO_ROOT / "models", kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
        metrics=MetricsSettings(host="127.0.0.1", port=0), runtime=RuntimeSettings(session_timeout_ms=6000),
        execution_providers=["cpu"],
    )
    with service_in_thread(settings, pricing.create_scorer(settings)):
        out = collect(kafka_bootstrap, [f"{topic}.decisions", f"{topic}.dlq"], lambda rs: len(rs) >= 57,
                      timeout_s=90)
    assert [r.topic for r in out if r.topic.endswith(".dlq")] == []
    decisions = [PricingDecision.model_validate_json(r.value or b"") for r in out]
    assert len(decisions) == 57
    assert {d.sku for d in decisions} <= {f"go-sku{i:05d}" for i in range(60)}
    assert all(d.recommended_price > 0 for d in decisions)
    assert all(json.loads(r.value or b"{}")["sku"] == (r.key or b"").decode() for r in out)
