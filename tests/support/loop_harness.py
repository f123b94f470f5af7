"""Drive :class:`ServiceApp` turn by turn with in-memory Kafka clients and a fake clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.errors import ScoringError
from shared.runtime.app import ServiceApp
from shared.runtime.echo import EchoEvent, EchoScorer, EchoSettings
from shared.runtime.loop import StreamLoop
from shared.runtime.scorer import Event, ScoreResult
from shared.schemas import headers as h
from shared.settings import RuntimeSettings
from tests.support.fake_kafka import FakeClients, FakeConsumer, FakeProducer, echo_record


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FlakyEcho(EchoScorer):
    """The stateful echo scorer, whose model fails *after* writing its state: ``failures`` times,
    on every batch while ``down``, and on every batch that holds an event whose id is in ``poison``."""

    def __init__(self, failures: int = 0, poison: Sequence[str] = ()) -> None:
        super().__init__(stateful=True)
        self.failures = failures
        self.poison = set(poison)
        self.down = False
        self.calls: list[list[tuple[int, int]]] = []

    def score(self, batch: Sequence[Event[EchoEvent]]) -> Sequence[ScoreResult]:
        self.calls.append([(e.partition, e.offset) for e in batch])
        results = super().score(batch)  # counts per key: state writes staged by the runtime
        if self.down:
            raise ScoringError("model down")
        if self.failures:
            self.failures -= 1
            raise ScoringError("model down")
        tripped = [e.value.id for e in batch if e.value.id in self.poison]
        if tripped:
            raise ValueError(f"cannot score {tripped[0]!r}")
        return results


@dataclass
class Harness:
    app: ServiceApp
    loop: StreamLoop
    clients: FakeClients
    clock: Clock

    @property
    def consumer(self) -> FakeConsumer:
        return self.clients.consumer_

    @property
    def producer(self) -> FakeProducer:
        return self.clients.producer_

    def add(self, partition: int, *keys: str) -> None:
        for key in keys:
            self.consumer.append(partition, *echo_record(key))

    def outputs(self) -> list[tuple[int, int, int]]:
        """(source partition, source offset, per-key count) of every delivered score."""
        return [
            (int(dict(r.headers)[h.SOURCE_PARTITION] or b""), int(dict(r.headers)[h.SOURCE_OFFSET] or b""),
             int(value["count"]))
            for r, value in zip([r for r in self.producer.delivered if r.topic == "out"],
                                self.producer.values("out"), strict=True)
        ]

    def paused_gauge(self) -> float | None:
        return self.app.metrics.registry.get_sample_value("shopstream_paused", {"service": "echo"})


def harness(scorer: EchoScorer | None = None, partitions: Sequence[int] = (0, 1), **runtime: object) -> Harness:
    settings = EchoSettings(
        input_topic="in", output_topic="out", changelog_topic="in.changelog",
        runtime=RuntimeSettings.model_validate(
            {"max_wait_ms": 0, "commit_interval_ms": 0, "retry_initial_backoff_s": 1.0, **runtime}
        ),
    )
    clients, clock = FakeClients("in"), Clock()
    app = ServiceApp(settings, scorer or FlakyEcho(), clients=clients, clock=clock)
    loop = app.start()
    clients.consumer_.assign(partitions)
    return Harness(app, loop, clients, clock)
