"""What the runtime sets up before the first poll: topics, the config topic, the load context."""

from __future__ import annotations

from typing import Any

from shared.runtime.app import ServiceApp
from shared.runtime.delivery import AtLeastOnce, OutRecord, Rewinds
from shared.runtime.echo import EchoScorer, EchoSettings
from shared.runtime.scorer import LoadContext
from shared.runtime.topics import CHANGELOG
from tests.support.fake_kafka import FakeClients, FakeConsumer, FakeProducer

COMPACT = {"cleanup.policy": "compact"}


class ConfigReadingEcho(EchoScorer):
    """Remembers what ``load`` was handed and the config it could read right then."""

    def load(self, context: LoadContext) -> None:
        super().load(context)
        self.context = context
        self.config_at_load = context.config.get("*")


def start(settings: EchoSettings, config: dict[str, dict[str, Any]] | None = None) -> tuple[ServiceApp, FakeClients]:
    clients = FakeClients(settings.input_topic, config)
    app = ServiceApp(settings, ConfigReadingEcho(stateful=True), clients=clients)
    app.start()
    return app, clients


def test_the_runtime_follows_the_config_topic_and_hands_it_to_the_scorer() -> None:
    settings = EchoSettings(config_topic="echo.config")
    app, clients = start(settings, {"*": {"kill_switch": True}})
    scorer = app.scorer
    assert isinstance(scorer, ConfigReadingEcho)
    assert scorer.config_at_load == {"kill_switch": True}, "read to its end before load()"
    (reader,) = clients.readers
    assert scorer.context.config is reader and reader.topic == "echo.config"
    assert clients.created["echo.config"] == (1, COMPACT)
    app.close()
    assert reader.closed


def test_without_a_config_topic_the_scorer_gets_an_empty_static_config() -> None:
    app, clients = start(EchoSettings())
    scorer = app.scorer
    assert isinstance(scorer, ConfigReadingEcho)
    assert clients.readers == [] and scorer.config_at_load is None
    assert not any(topic.endswith("config") for topic in clients.created)


def test_the_load_context_carries_state_and_the_runtimes_metrics() -> None:
    app, _ = start(EchoSettings())
    scorer = app.scorer
    assert isinstance(scorer, ConfigReadingEcho)
    assert scorer.context.state is app.state is not None
    assert scorer.context.model_metrics is app.metrics


def test_the_runtime_creates_every_topic_it_uses() -> None:
    _, clients = start(EchoSettings(input_topic="in", output_topic="out", changelog_topic="in.log"))
    assert clients.created == {"in": (4, {}), "out": (4, {}), "in.dlq": (4, {}), "in.log": (4, CHANGELOG)}
    assert CHANGELOG["cleanup.policy"] == "compact"
    assert int(CHANGELOG["segment.bytes"]) < 2**30  # compacted long before Kafka's default 1 GiB segment


def test_delivery_hands_out_each_rewind_once() -> None:
    producer = FakeProducer(fail_topics={"out"})
    delivery = AtLeastOnce(producer, "in", lambda unit: None, interval_ms=0)
    consumer = FakeConsumer("in")
    delivered = delivery.tracker.open_unit({0: [5, 6], 2: [9]}, [])
    delivery.publish(delivered, [OutRecord("elsewhere", b"k", b"v", [])], consumer)
    failed = delivery.tracker.open_unit({0: [7], 2: [10, 11]}, [])
    delivery.publish(failed, [OutRecord("out", b"k", b"v", [])], consumer)
    producer.poll()
    assert delivery.take_rewinds() == Rewinds({0: 7, 2: 10}, frozenset())
    assert delivery.take_rewinds() == Rewinds({}, frozenset()), "handed out once"
    assert delivery.tracker.watermarks() == {}, "the rewound partitions are forgotten until scored again"
