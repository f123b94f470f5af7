"""The recommendation service against a real broker: replayed user sequences in, top-K out,
bad events dead-lettered, and per-user history surviving a SIGKILL (changelog restore).

The replayed sequences come from the simulated shop, whose catalogue the committed default
model knows (a fresh clone has no Amazon data); the Beauty replay through the same scorer
code is in ``export/recommendation`` (see docs/recommendation.md).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from services.recommendation.scorer import RecommendationScorer
from services.recommendation.settings import RecommendationSettings
from shared.kafka.config_topic import StaticConfig
from shared.runtime.scorer import Event, LoadContext, Scored
from shared.runtime.state import StateStore
from shared.schemas import headers as h
from shared.schemas.clickstream import ClickEvent, RecoScores
from shared.settings import KafkaSettings, MetricsSettings, RuntimeSettings
from shared.sim.catalogue import CATEGORIES
from shared.sim.clickstream import ClickstreamSim
from shared.sim.registry import world_for
from shared.testing.services import ServiceProcess, collect, produce, service_in_thread

pytestmark = pytest.mark.integration

MODELS = Path(__file__).resolve().parents[2] / "models"
REPEAT = {c.name for c in CATEGORIES if c.repeat_purchase}


def reco_settings(bootstrap: str, topic: str, group: str) -> RecommendationSettings:
    return RecommendationSettings(
        input_topic=topic, output_topic=f"{topic}.reco", group_id=group, changelog_topic=f"{topic}.changelog",
        models_dir=MODELS, kafka=KafkaSettings(bootstrap_servers=bootstrap),
        metrics=MetricsSettings(host="127.0.0.1", port=0), runtime=RuntimeSettings(session_timeout_ms=6000),
        execution_providers=["cpu"],
    )


def sim_events(n: int) -> list[dict[str, object]]:
    return [e for e, _ in ClickstreamSim(world_for(7)).iter_dicts(n)]


def records(events: list[dict[str, object]]) -> list[tuple[bytes | None, bytes | None]]:
    return [(str(e["user_id"]).encode(), json.dumps(e).encode()) for e in events]


def test_replayed_sequences_get_k_items_never_purchased_and_bad_events_are_dead_lettered(
    kafka_bootstrap: str, topic_factory, group_id_factory
) -> None:
    topic = topic_factory(partitions=2)
    events = sim_events(600)
    unknown = {**events[0], "item_id": 50_000_000}
    bad = [(str(unknown["user_id"]).encode(), json.dumps(unknown).encode()), (b"u-bad", b'{"user_id": "u-bad", ')]
    produce(kafka_bootstrap, topic, records(events) + bad)
    settings = reco_settings(kafka_bootstrap, topic, group_id_factory())
    with service_in_thread(settings, RecommendationScorer(settings, StaticConfig())):
        out = collect(kafka_bootstrap, [f"{topic}.reco", f"{topic}.dlq"],
                      lambda rs: len(rs) >= len(events) + len(bad), timeout_s=120)
    recos = [RecoScores.model_validate_json(r.value or b"") for r in out if r.topic == f"{topic}.reco"]
    dead = [r for r in out if r.topic == f"{topic}.dlq"]
    assert len(recos) == len(events)
    catalogue = world_for(7).catalogue
    bought: dict[str, set[int]] = {}
    by_user_time = sorted(recos, key=lambda r: (r.user_id, r.source.ts_ms))
    for reco in by_user_time:  # per-user order is kept: users are keys, keys stay on one partition
        if reco.source.event_type == "purchase":
            bought.setdefault(reco.user_id, set()).add(reco.source.item_id)
        items = {s.item_id for s in reco.items}
        assert len(items) == reco.k == 10
        never_again = {i for i in bought.get(reco.user_id, ()) if catalogue.category_name(i) not in REPEAT}
        assert not items & never_again
    assert sorted(r.headers[h.ERROR_REASON].decode() for r in dead) == ["malformed_json", "unknown_item"]


def in_memory_recommendation(events: list[dict[str, object]]) -> RecoScores:
    """What an uninterrupted scorer answers to the last event."""
    settings = RecommendationSettings(models_dir=MODELS, execution_providers=["cpu"])
    scorer = RecommendationScorer(settings, StaticConfig())
    scorer.load(LoadContext(settings=settings, state=StateStore()))
    clicks = [ClickEvent.model_validate(e) for e in events]
    results = scorer.score([Event(c, c.user_id, "t", 0, i, c.ts_ms) for i, c in enumerate(clicks)])
    last = results[-1]
    assert isinstance(last, Scored)
    value = last.outputs[0].value
    assert isinstance(value, RecoScores)
    return value


def test_history_from_before_a_sigkill_is_used_after_the_restart(
    kafka_bootstrap: str, topic_factory, group_id_factory, tmp_path: Path
) -> None:
    topic = topic_factory(partitions=1)
    stream = sim_events(3000)
    user_events = [e for e in stream if e["user_id"] == stream[0]["user_id"]]
    before, after = user_events[:-1], user_events[-1:]
    env = {
        "INPUT_TOPIC": topic, "OUTPUT_TOPIC": f"{topic}.reco", "GROUP_ID": group_id_factory(),
        "CHANGELOG_TOPIC": f"{topic}.changelog", "MODELS_DIR": str(MODELS),
        "KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap, "RUNTIME__SESSION_TIMEOUT_MS": "6000",
        "EXECUTION_PROVIDERS": '["cpu"]',
    }
    service = ServiceProcess("recommendation", env, tmp_path / "reco.log").start()
    try:
        service.wait_ready(90)
        produce(kafka_bootstrap, topic, records(before))
        collect(kafka_bootstrap, [f"{topic}.reco"], lambda rs: len(rs) >= len(before), timeout_s=60)
        time.sleep(2.0)  # past the 200 ms commit interval: the history and offsets are durable
        service.kill()
        service = ServiceProcess("recommendation", env, tmp_path / "reco2.log").start()
        service.wait_ready(90)
        produce(kafka_bootstrap, topic, records(after))
        out = collect(kafka_bootstrap, [f"{topic}.reco"], lambda rs: len(rs) >= len(user_events), timeout_s=60)
    finally:
        if service.alive():
            service.kill()
    last = max((RecoScores.model_validate_json(r.value or b"") for r in out), key=lambda r: r.source.ts_ms)
    expected = in_memory_recommendation(user_events)
    assert len(user_events) >= 3 and not last.cold_start
    assert [s.item_id for s in last.items] == [s.item_id for s in expected.items]
