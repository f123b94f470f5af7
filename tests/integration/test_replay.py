"""``shopstream replay`` on a real broker: a range of the recommendation service's input, rescored.

The live service (serving the newest version, v0002) scores 600 clicks on two partitions; then the
first two thirds of each partition are replayed with v0001 (in-process) and with v0002 (through
the command). Either replay writes exactly one output per input record to its own topic, each
naming its version and source record, and leaves the live group's committed offsets exactly as
they were. Compared with the live outputs, v0001 recommends other items (top-K overlap below 1)
and v0002 agrees completely: the range starts at each partition's first offset, where the live
service's per-user state was as empty as a replay's.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from services.recommendation import create_scorer
from services.recommendation.scorer import RecommendationScorer
from services.recommendation.settings import RecommendationSettings
from shared.schemas import headers as h
from shared.settings import KafkaSettings, MetricsSettings, RuntimeSettings
from sim.clickstream import ClickstreamSim
from sim.registry import world_for
from tests.support.factories import GroupIdFactory, TopicFactory
from tools.cli.main import main
from tools.replay.ranges import parse_bound
from tools.replay.runner import ReplayRequest, run_replay
from tools.supervisor import collect, produce, service_in_thread, wait_until

pytestmark = pytest.mark.integration

MODELS = Path(__file__).resolve().parents[2] / "models"
EVENTS = 600
PARTITIONS = (0, 1)


def live_settings(bootstrap: str, topic: str, group: str) -> RecommendationSettings:
    return RecommendationSettings(
        input_topic=topic, output_topic=f"{topic}.reco", group_id=group, changelog_topic=f"{topic}.changelog",
        models_dir=MODELS, kafka=KafkaSettings(bootstrap_servers=bootstrap), execution_providers=["cpu"],
        metrics=MetricsSettings(host="127.0.0.1", port=0), runtime=RuntimeSettings(session_timeout_ms=6000),
        model_events_topic=None,  # another test's promotion on the shared topic must not switch this service
    )


def shopstream(*argv: str) -> int:
    """The command in this process; the root logger it configures is put back (pytest's capture
    handlers included), so no later log line goes to a stream the capture has closed."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return main(list(argv))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets, read without joining it."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in PARTITIONS], timeout=10)
        return {tp.partition: tp.offset for tp in found}
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in PARTITIONS}
    finally:
        consumer.close()


def check_outputs(bootstrap: str, topic: str, source: str, cut: dict[int, int], version: str) -> None:
    """Exactly one record per input record of the range, naming ``version`` and its source record."""
    size = sum(cut.values())
    assert sum(end_offsets(bootstrap, topic).values()) == size
    records = collect(bootstrap, [topic], lambda rs: len(rs) >= size, timeout_s=30)
    assert sorted((int(r.headers[h.SOURCE_PARTITION]), int(r.headers[h.SOURCE_OFFSET])) for r in records) == [
        (p, o) for p in PARTITIONS for o in range(cut[p])]
    assert {r.headers[h.MODEL_VERSION] for r in records} == {version.encode()}
    assert {r.headers[h.SOURCE_TOPIC] for r in records} == {source.encode()}


def test_a_replay_rescores_a_range_to_its_own_topic_and_compares_it_with_live(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id_factory: GroupIdFactory,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    topic, live_group = topic_factory(partitions=len(PARTITIONS)), group_id_factory("reco-live")
    since = datetime.fromtimestamp(time.time() - 1, UTC).isoformat().replace("+00:00", "Z")
    clicks = [e for e, _ in ClickstreamSim(world_for(7)).iter_dicts(EVENTS)]
    produce(kafka_bootstrap, topic, [(str(e["user_id"]).encode(), json.dumps(e).encode()) for e in clicks])
    ends = end_offsets(kafka_bootstrap, topic)
    settings = live_settings(kafka_bootstrap, topic, live_group)
    with service_in_thread(settings, RecommendationScorer(settings)):
        assert wait_until(lambda: committed(kafka_bootstrap, live_group, topic) == ends, 60)
    live_offsets = committed(kafka_bootstrap, live_group, topic)

    cut = {p: ends[p] * 2 // 3 for p in PARTITIONS}
    size, to = sum(cut.values()), ",".join(f"{p}:{n}" for p, n in cut.items())
    replay_group = group_id_factory("reco-replay")
    request = ReplayRequest(parse_bound(since), parse_bound(to), "v0001", f"{topic}.v0001", replay_group)
    outcome = run_replay(settings, create_scorer, request, live_topic=settings.output_topic)

    summary, report = outcome.summary, outcome.report
    assert (summary.total, summary.read, summary.scored, summary.written, summary.rejected) == (size,) * 4 + (0,)
    check_outputs(kafka_bootstrap, f"{topic}.v0001", topic, cut, "v0001")
    assert report is not None
    assert (report.replayed, report.matched, report.compared, report.live_missing) == (size, size, size, 0)
    assert report.live_versions == {"v0002": size}
    assert report.top_k_overlap is not None and report.top_k_overlap < 1.0
    assert committed(kafka_bootstrap, live_group, topic) == live_offsets
    assert committed(kafka_bootstrap, replay_group, topic) == cut  # its progress, in its own group

    prefix = "SHOPSTREAM_RECOMMENDATION_"
    for name, value in {"INPUT_TOPIC": topic, "OUTPUT_TOPIC": settings.output_topic, "GROUP_ID": live_group,
                        "CHANGELOG_TOPIC": f"{topic}.changelog", "MODELS_DIR": str(MODELS),
                        "EXECUTION_PROVIDERS": '["cpu"]'}.items():
        monkeypatch.setenv(prefix + name, value)
    path = tmp_path / "report.json"
    assert shopstream("replay", "recommendation", "--from", since, "--to", to, "--model", "v0002", "--to-topic",
                      f"{topic}.v0002", "--compare", "--report", str(path), "-b", kafka_bootstrap) == 0
    print(capsys.readouterr().out)  # the example output docs/replay.md shows

    check_outputs(kafka_bootstrap, f"{topic}.v0002", topic, cut, "v0002")
    written = json.loads(path.read_text())
    assert written["replay"]["written"] == size and written["replay"]["group_id"].startswith(
        "shopstream.replay.recommendation.")
    same = written["compare"]
    assert (same["matched"], same["compared"], same["live_missing"]) == (size, size, 0)
    assert same["score_correlation"] > 0.999
    assert same["decision_flip_rate"] == 0.0
    assert same["top_k_overlap"] == 1.0
    assert committed(kafka_bootstrap, live_group, topic) == live_offsets
