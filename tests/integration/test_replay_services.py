"""``shopstream produce beauty|ulb|ipinyou`` end to end: the replayed events are scored by the services.

Tiny in-test copies of the data sets (tests/support/replay_data.py), the committed models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.registry import load_service
from shared.models.repository import ModelRepository
from shared.settings import KafkaSettings, MetricsSettings, RuntimeSettings
from tests.support.cli import shopstream
from tests.support.factories import GroupIdFactory, TopicFactory
from tests.support.replay_data import write_tiny_data_sets
from tools.supervisor import REPO_ROOT, collect, service_in_thread

pytestmark = pytest.mark.integration


def service_settings(service: str, bootstrap: str, topic: str, group: str) -> Any:
    fields: dict[str, Any] = {
        "input_topic": topic, "output_topic": f"{topic}.out", "group_id": group,
        "changelog_topic": f"{topic}.changelog", "models_dir": REPO_ROOT / "models",
        "kafka": KafkaSettings(bootstrap_servers=bootstrap), "metrics": MetricsSettings(host="127.0.0.1", port=0),
        "runtime": RuntimeSettings(session_timeout_ms=6000), "execution_providers": ["cpu"],
    }
    if service == "fraud":
        fields["alerts_topic"] = f"{topic}.alerts"
    return load_service(service).settings_class(**fields)


@pytest.mark.parametrize(("scenario", "service", "events"), [
    ("ulb", "fraud", 2), ("ipinyou", "ad_ctr", 4), ("beauty", "recommendation", 5),
])
def test_replayed_data_set_is_scored_by_its_service(
    scenario: str, service: str, events: int, tmp_path: Path, kafka_bootstrap: str,
    topic_factory: TopicFactory, group_id_factory: GroupIdFactory,
) -> None:
    topic = topic_factory(partitions=2)
    data_dir = write_tiny_data_sets(tmp_path)
    produced = shopstream("produce", scenario, "--data-dir", str(data_dir), "--topic", topic, "--rate", "0",
                          "--quiet", "-b", kafka_bootstrap)
    assert produced.returncode == 0, produced.stderr
    assert f"produced {events} events (0 failed)" in produced.stdout
    settings = service_settings(service, kafka_bootstrap, topic, group_id_factory())
    with service_in_thread(settings, load_service(service).create_scorer(settings)):
        out = collect(kafka_bootstrap, [f"{topic}.out", f"{topic}.dlq"], lambda rs: len(rs) >= events, timeout_s=90)
    dead = [r.headers for r in out if r.topic.endswith(".dlq")]
    assert dead == []
    assert len(out) == events
    serving = ModelRepository(REPO_ROOT / "models").latest(settings.model_name)  # the newest committed version
    assert {json.loads(r.value or b"{}")["model_version"] for r in out} == {serving}
