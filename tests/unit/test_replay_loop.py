"""The replay loop without a broker: a range read through ``assign()``, scored by the runtime's parts,
written to the replay's own topics; extra topics dropped, bad records to ``<to-topic>.dlq``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition

from services.recommendation.scorer import RecommendationScorer
from services.recommendation.settings import RecommendationSettings
from shared.errors import ConfigError, ShopstreamError
from shared.runtime.echo import EchoEvent, EchoScorer, EchoSettings
from shared.runtime.scorer import Event, LoadContext, Output, Scored, ScoreResult
from shared.runtime.state import StateStore
from shared.schemas import headers as h
from tests.support.fake_kafka import FakeProducer
from tests.support.stubs import StubMessage
from tools.replay.compare import source_of
from tools.replay.loop import ReplayLoop
from tools.replay.ranges import AtOffset, PartitionRange
from tools.replay.reader import RangeReader
from tools.replay.runner import ReplayRequest, ReplaySummary, check_request, check_version
from tools.replay.writer import ReplayWriter

MODELS = Path(__file__).resolve().parents[2] / "models"
TOPIC, TO = "echo.events", "echo.replay"
RANGES = {0: PartitionRange(0, 2, 8), 1: PartitionRange(1, 0, 6)}


class AlertingEcho(EchoScorer):
    """Echo, plus an alert on a topic of its own for every event it scores (as fraud alerts)."""

    def extra_output_topics(self) -> Sequence[str]:
        return ["echo.alerts"]

    def score(self, batch: Sequence[Event[EchoEvent]]) -> Sequence[ScoreResult]:
        return [Scored([*r.outputs, Output(b'{"alert":true}', topic="echo.alerts")]) if isinstance(r, Scored) else r
                for r in super().score(batch)]


class AssignedConsumer:
    """Records per partition, served from the offsets ``assign()`` set, then end-of-partition events.
    It has no ``subscribe``: a replay that tried to join a group would fail here."""

    def __init__(self, log: dict[int, list[StubMessage]]) -> None:
        self.log = log
        self.position: dict[int, int] = {}
        self.paused: set[int] = set()
        self.commits: list[dict[int, int]] = []

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.position = {tp.partition: tp.offset for tp in partitions}

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[StubMessage]:
        out: list[StubMessage] = []
        for p in sorted(set(self.position) - self.paused):
            room = min(3, num_messages - len(out))  # a few of each partition at a time, interleaved
            taken = self.log[p][self.position[p]: self.position[p] + room]
            self.position[p] += len(taken)
            out += taken
            if room and not taken:
                out.append(StubMessage(None, None, TOPIC, p, self.position[p], _error=KafkaError(
                    KafkaError._PARTITION_EOF)))
        return out

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused.update(tp.partition for tp in partitions)

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool = True) -> Any:
        self.commits.append({tp.partition: tp.offset for tp in offsets})


def record(partition: int, offset: int) -> StubMessage:
    key = f"user-{partition}-{offset}"
    if (partition, offset) == (0, 3):
        return StubMessage(b"{not json", key.encode(), TOPIC, partition, offset)
    ident = f"reject-{offset}" if (partition, offset) == (1, 4) else key
    return StubMessage(json.dumps({"id": ident}).encode(), ident.encode(), TOPIC, partition, offset)


def input_log() -> AssignedConsumer:
    return AssignedConsumer({p: [record(p, o) for o in range(10)] for p in (0, 1)})


def replay(batch_size: int = 4, producer: FakeProducer | None = None,
           consumer: AssignedConsumer | None = None) -> tuple[ReplaySummary, AssignedConsumer, FakeProducer]:
    consumer = input_log() if consumer is None else consumer
    producer = FakeProducer() if producer is None else producer  # an empty one is falsy (len 0)
    settings = EchoSettings(input_topic=TOPIC, output_topic="echo.scores")
    scorer, state = AlertingEcho(stateful=True), StateStore()
    scorer.load(LoadContext(settings=settings, state=state))
    summary = ReplaySummary("echo", "1", TOPIC, TO, "g", RANGES, True)
    loop = ReplayLoop(settings, scorer, state, RangeReader(consumer, TOPIC, RANGES, batch_size),
                      ReplayWriter(producer, TO, TO + ".dlq"), summary)
    loop.run(progress=_Silent())
    return summary, consumer, producer


class _Silent:
    def start(self, total: int) -> None:
        assert total == 12

    def advance(self, records: int) -> None:
        pass

    def stop(self) -> None:
        pass


def test_the_range_is_read_once_scored_and_written_to_the_replays_own_topics() -> None:
    summary, consumer, producer = replay()
    assert (summary.read, summary.scored, summary.rejected, summary.written) == (12, 10, 2, 10)
    assert {r.topic for r in producer.delivered} == {TO, TO + ".dlq"}
    scores = [r for r in producer.delivered if r.topic == TO]
    sources = sorted(source_of(r.headers) or (-1, -1) for r in scores)
    assert sources == [(0, o) for o in (2, 4, 5, 6, 7)] + [(1, o) for o in (0, 1, 2, 3, 5)]
    assert all(dict(r.headers)[h.MODEL_VERSION] == b"1" for r in scores)
    assert consumer.commits[-1] == {0: 8, 1: 6}  # its own progress: the ranges' ends


def test_outputs_for_the_scorers_extra_topics_are_dropped_and_counted() -> None:
    summary, _, producer = replay()
    assert summary.dropped == {"echo.alerts": 10}
    assert not [r for r in producer.delivered if r.topic == "echo.alerts"]


def test_bad_records_go_to_the_replays_dead_letter_topic_with_their_reasons() -> None:
    _, _, producer = replay()
    letters = [dict(r.headers) for r in producer.delivered if r.topic == TO + ".dlq"]
    assert sorted((d[h.ERROR_REASON], d[h.SOURCE_PARTITION], d[h.SOURCE_OFFSET]) for d in letters) == [
        (b"malformed_json", b"0", b"3"), (b"rejected_by_scorer", b"1", b"4")]


def test_a_refused_delivery_stops_the_replay_before_it_commits() -> None:
    consumer = input_log()
    with pytest.raises(ShopstreamError, match="3 records refused by Kafka"):
        replay(producer=FakeProducer(fail_topics={TO}), consumer=consumer)
    assert consumer.commits == []


def test_a_replay_may_not_write_the_live_services_topics_or_commit_to_its_group() -> None:
    settings = EchoSettings(input_topic=TOPIC, output_topic="echo.scores", group_id="live")
    scorer = AlertingEcho()
    for to_topic in ("echo.scores", TOPIC, "echo.alerts", "echo.scores.shadow"):
        with pytest.raises(ConfigError, match="live service uses"):
            check_request(settings, scorer, ReplayRequest(AtOffset(0), None, "1", to_topic), "g")
    with pytest.raises(ConfigError, match="live service's group"):
        check_request(settings, scorer, ReplayRequest(AtOffset(0), None, "1", TO), "live")
    check_request(settings, scorer, ReplayRequest(AtOffset(0), None, "1", TO), "g")


def test_a_version_the_repository_lacks_is_a_configuration_error() -> None:
    settings = RecommendationSettings(models_dir=MODELS)
    with pytest.raises(ConfigError, match=r"has no version v0999 .*\(it has v0001, v0002\)"):
        check_version(settings, RecommendationScorer(settings), "v0999")
    check_version(settings, RecommendationScorer(settings), "v0001")
    with pytest.raises(ConfigError, match="serves no model versions"):
        check_version(EchoSettings(), EchoScorer(), "1")
