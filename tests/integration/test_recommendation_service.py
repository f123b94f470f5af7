"""The recommendation service against a real broker: replayed user sequences in, top-K out,
bad events dead-lettered, and per-user history surviving a SIGKILL (changelog restore).

The replayed sequences are Amazon Beauty users' (a 300-user sample of the S3-Rec file shipped
in ``tests/data/seqrec-amazon-beauty-s3rec``, see its PROVENANCE.md): a tiny model is trained
on them through the real ``shopstream export recommendation --set data=beauty`` path, and the
service replays every user's reviewed items as ``purchase`` events. The restart test uses the
committed default model (the simulated shop's catalogue).
"""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from services.recommendation.scorer import RecommendationScorer
from services.recommendation.settings import RecommendationSettings
from shared.models.repository import ModelRepository
from shared.runtime.scorer import Event, LoadContext, Scored
from shared.runtime.state import StateStore
from shared.schemas import headers as h
from shared.schemas.clickstream import ClickEvent, RecoScores
from shared.settings import KafkaSettings, MetricsSettings, RuntimeSettings
from sim.clickstream import ClickstreamSim
from sim.registry import world_for
from tests.support.factories import GroupIdFactory, TopicFactory
from tools.supervisor import ServiceProcess, collect, produce, service_in_thread

pytestmark = pytest.mark.integration

MODELS = Path(__file__).resolve().parents[2] / "models"
TEST_DATA = Path(__file__).resolve().parents[1] / "data"
BEAUTY = TEST_DATA / "seqrec-amazon-beauty-s3rec" / "Beauty.txt.gz"
START_MS = 1_400_000_000_000  # 2014, inside the Amazon review years
STEP_MS = 60_000


def reco_settings(bootstrap: str, topic: str, group: str, models_dir: Path = MODELS) -> RecommendationSettings:
    return RecommendationSettings(
        input_topic=topic, output_topic=f"{topic}.reco", group_id=group, changelog_topic=f"{topic}.changelog",
        models_dir=models_dir, kafka=KafkaSettings(bootstrap_servers=bootstrap),
        metrics=MetricsSettings(host="127.0.0.1", port=0), runtime=RuntimeSettings(session_timeout_ms=6000),
        execution_providers=["cpu"],
    )


def sim_events(n: int) -> list[dict[str, object]]:
    return [e for e, _ in ClickstreamSim(world_for(7)).iter_dicts(n)]


def records(events: list[dict[str, object]]) -> list[tuple[bytes | None, bytes | None]]:
    return [(str(e["user_id"]).encode(), json.dumps(e).encode()) for e in events]


@pytest.fixture(scope="module")
def beauty_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir holding a tiny SASRec trained on the Beauty sample (a few seconds, 1 thread)."""
    from export.cli import run_export

    models = tmp_path_factory.mktemp("beauty-models")
    argv = ["recommendation", "--tiny", "--quiet", "--variants", "", "--data", str(TEST_DATA),
            "--models-dir", str(models), "--set", "data=beauty"]
    assert run_export(argv) == 0
    return models


def beauty_users() -> list[list[str]]:
    """``[user, item, item, ...]`` per line of the Beauty sample (original ids, items in time order)."""
    with gzip.open(BEAUTY, "rt") as fh:
        return [line.split() for line in fh if line.strip()]


def beauty_replay(users: list[list[str]]) -> list[dict[str, Any]]:
    """Every user's reviewed items as purchases, one minute apart, users interleaved in time."""
    events = [
        {"user_id": f"beauty-{user}", "session_id": f"beauty-{user}-s1", "item_id": int(item),
         "event_type": "purchase", "ts_ms": START_MS + step * STEP_MS + n}
        for n, (user, *items) in enumerate(users) for step, item in enumerate(items)
    ]
    return sorted(events, key=lambda e: e["ts_ms"])


@pytest.mark.train
def test_replayed_beauty_sequences_get_k_items_never_purchased_and_bad_events_are_dead_lettered(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory, beauty_models: Path
) -> None:
    manifest = ModelRepository(beauty_models).get("recommendation", "v0001")
    assert manifest.training.data == "beauty" and manifest.preprocessing["num_items"] == 2795
    assert not manifest.preprocessing.get("repeat_purchase_categories")  # Beauty: every purchase is excluded
    topic = topic_factory(partitions=2)
    users = beauty_users()
    events = beauty_replay(users)
    unknown = {**events[0], "item_id": 50_000_000}  # far outside the sample's 2,795-item catalogue
    bad = [*records([unknown]), (b"u-bad", b'{"user_id": "u-bad", ')]
    produce(kafka_bootstrap, topic, records(events) + bad)
    settings = reco_settings(kafka_bootstrap, topic, group_id_factory(), beauty_models)
    assert max(len(u) - 1 for u in users) <= settings.purchased_len  # every purchase stays remembered
    with service_in_thread(settings, RecommendationScorer(settings)):
        out = collect(kafka_bootstrap, [f"{topic}.reco", f"{topic}.dlq"],
                      lambda rs: len(rs) >= len(events) + len(bad), timeout_s=180)
    recos = [RecoScores.model_validate_json(r.value or b"") for r in out if r.topic == f"{topic}.reco"]
    dead = [r for r in out if r.topic == f"{topic}.dlq"]
    answered = sorted((r.user_id, r.source.ts_ms, r.source.item_id) for r in recos)
    assert answered == sorted((e["user_id"], e["ts_ms"], e["item_id"]) for e in events)  # one each
    bought: dict[str, set[int]] = {}
    for reco in sorted(recos, key=lambda r: (r.user_id, r.source.ts_ms)):
        items = [s.item_id for s in reco.items]
        assert len(set(items)) == len(items) == reco.k == 10 and reco.model_version == "v0001"
        assert not set(items) & bought.get(reco.user_id, set()), f"{reco.user_id} got an item it already bought"
        assert reco.cold_start == (reco.user_id not in bought)  # only a user's first event lacks history
        bought.setdefault(reco.user_id, set()).add(reco.source.item_id)
    assert sorted(r.headers[h.ERROR_REASON].decode() for r in dead) == ["malformed_json", "unknown_item"]


def in_memory_recommendation(events: list[dict[str, object]]) -> RecoScores:
    """What an uninterrupted scorer answers to the last event."""
    settings = RecommendationSettings(models_dir=MODELS, execution_providers=["cpu"])
    scorer = RecommendationScorer(settings)
    scorer.load(LoadContext(settings=settings, state=StateStore()))
    clicks = [ClickEvent.model_validate(e) for e in events]
    results = scorer.score([Event(c, c.user_id, "t", 0, i, c.ts_ms) for i, c in enumerate(clicks)])
    last = results[-1]
    assert isinstance(last, Scored)
    value = last.outputs[0].value
    assert isinstance(value, bytes)  # encoded in bulk from columns
    return RecoScores.model_validate_json(value)


def test_history_from_before_a_sigkill_is_used_after_the_restart(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory, tmp_path: Path
) -> None:
    topic = topic_factory(partitions=1)
    stream = sim_events(3000)
    busiest = Counter(e["user_id"] for e in stream).most_common(1)[0][0]  # a history worth restoring
    user_events = [e for e in stream if e["user_id"] == busiest]
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
