"""A steady (or bursty) producer of simulated shop events, shared by ``produce`` and ``demo``."""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from confluent_kafka import Producer

from shared.settings import KafkaSettings
from tools.loadgen.feedback import FeedbackPublisher, LabelledRecord

logger = logging.getLogger(__name__)

Record = tuple[bytes, bytes]
Corrupter = Callable[[Record, random.Random], Record]
SIM_SCENARIOS = ("clickstream", "ads", "pricing", "payments", "support")
SHOP_STREAMS = ("clickstream", "ads", "pricing", "payments")
"""The streams ``all`` takes turns over; ``support`` follows the payments among them (:func:`sim_rows`)."""


def corrupt(record: Record, rng: random.Random) -> Record:
    """One malformed variant of a record, for DLQ demos: broken JSON, wrong type or missing field."""
    key, value = record
    kind = rng.randrange(3)
    if kind == 0:
        return key, value[: max(len(value) // 2, 1)]
    if kind == 1:
        return key, b'{"schema_version": 7}'
    return key, value.replace(b'"', b"'", 4)


def sim_records(scenario: str, seed: int, support: bool = True) -> Iterator[tuple[str, Record]]:
    """Endless ``(topic, (key, value))`` from one simulated stream, or ``all`` of them (see :func:`sim_rows`)."""
    return ((topic, record) for topic, record, *_ in sim_rows(scenario, seed, support))


def sim_rows(scenario: str, seed: int, support: bool = True) -> Iterator[LabelledRecord]:
    """Endless rows of one simulated stream with each event's stream, dict and truth (for the shop's
    outcomes), or of ``all``: one event of each of :data:`SHOP_STREAMS` in turn and, with ``support``,
    each support message as soon as the payments sent reach its event time (the messages are about
    those payments: :class:`sim.support.SupportDesk` follows them)."""
    from sim import TOPIC_OF_STREAM, make_stream

    if scenario != "all":
        stream = make_stream(scenario, seed=seed)
        topic = TOPIC_OF_STREAM[scenario]
        for event, truth in stream.iter_dicts():
            yield topic, stream.record_of(event), scenario, event, truth
        return
    yield from _shop_rows(seed, support)


def _shop_rows(seed: int, support: bool) -> Iterator[LabelledRecord]:
    from sim import TOPIC_OF_STREAM, make_stream, world_for
    from sim.support import SupportDesk, SupportSim

    streams = [make_stream(n, seed=seed) for n in SHOP_STREAMS]
    desk = SupportDesk.for_world(world_for(seed)) if support else None
    messages = SupportSim(world_for(seed))
    rows = [zip(itertools.repeat((n, s)), s.iter_dicts()) for n, s in zip(SHOP_STREAMS, streams, strict=True)]
    for group in zip(*rows, strict=True):
        for (name, stream), (event, truth) in group:
            yield TOPIC_OF_STREAM[name], stream.record_of(event), name, event, truth
            if desk is not None and name == "payments":
                desk.observe(event, truth)
                for message, why in desk.due(event["ts_ms"]):
                    yield TOPIC_OF_STREAM["support"], messages.record_of(message), "support", message, why


@dataclass
class LoadGenerator:
    """Produces ``rate`` events/s (0 = as fast as possible) until ``count`` or ``duration``.

    With ``feedback``, the shop's outcomes go to its topic when due, and once the events are done
    the run waits for those still to come (:meth:`stop` ends the wait).
    """

    kafka: KafkaSettings
    records: Iterator[tuple[str, Record]]
    rate: float
    count: int | None = None
    duration_s: float | None = None
    bad_fraction: float = 0.0
    bursty: bool = False
    seed: int = 7
    feedback: FeedbackPublisher | None = None
    corrupters: Mapping[str, Corrupter] = field(default_factory=dict)
    """Topic → how its malformed events are made (others: :func:`corrupt`)."""
    sent: int = 0
    failed: int = 0
    outcomes_sent: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _budget: float = 0.0
    _last_pace: float = 0.0
    _next_outcomes: float = 0.0

    def stop(self) -> None:
        self._stop.set()

    def current_rate(self, elapsed: float) -> float:
        """Bursty mode alternates 5 s at 2x and 5 s at 0.2x the nominal rate."""
        if not self.bursty:
            return self.rate
        return self.rate * (2.0 if int(elapsed / 5) % 2 == 0 else 0.2)

    def run(self) -> int:
        producer = Producer({**self.kafka.client_config("shopstream-producer"), "linger.ms": 10,
                             "partitioner": "murmur2_random", "compression.type": "lz4"})
        rng = random.Random(self.seed)
        started = time.monotonic()
        limit = self.count if self.count is not None else None
        source = itertools.islice(self.records, limit) if limit is not None else self.records
        try:
            # stop and duration are checked before the next record is taken: the feedback source
            # schedules an event's outcome as it hands the event over
            while not self._stop.is_set() and not (self.duration_s and time.monotonic() - started >= self.duration_s):
                item = next(source, None)
                if item is None:
                    break
                topic, record = item
                if self.bad_fraction and rng.random() < self.bad_fraction:
                    record = self.corrupters.get(topic, corrupt)(record, rng)
                self._send(producer, topic, record)
                self.sent += 1
                self._publish_outcomes(producer)
                self._pace(started)
            self._wait_for_outcomes(producer)
        finally:
            if self.feedback is not None:
                self.feedback.close()
        producer.flush(30)
        return self.sent

    def _send(self, producer: Producer, topic: str, record: Record) -> None:
        while True:
            try:
                producer.produce(topic, record[1], record[0], on_delivery=self._on_delivery)
                producer.poll(0)
                return
            except BufferError:
                producer.poll(0.05)

    def _publish_outcomes(self, producer: Producer, every_s: float = 0.02) -> None:
        """Sends the outcomes now due (at most every ``every_s``: the heap is not looked at per event)."""
        now = time.time()
        if self.feedback is None or now < self._next_outcomes:
            return
        self._next_outcomes = now + every_s
        for record in self.feedback.collect(now):
            self._send(producer, self.feedback.topic, record)
            self.outcomes_sent += 1

    def _wait_for_outcomes(self, producer: Producer) -> None:
        while self.feedback is not None and not self._stop.is_set() and self.feedback.waiting(time.time()):
            self._publish_outcomes(producer, every_s=0.0)
            producer.poll(0.05)  # serves delivery reports while it waits

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None:
            self.failed += 1

    def _pace(self, started: float) -> None:
        """Token accounting: sleep while more was sent than the rate allows so far."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        rate = self.current_rate(now - started)
        last = self._last_pace or now
        # never bank more than 100 ms of budget, so a stall is not followed by a burst
        self._budget = min(self._budget + rate * (now - last), self.sent + rate * 0.1)
        self._last_pace = now
        excess = self.sent - self._budget
        if excess > 0:
            time.sleep(min(excess / rate, 0.05))
