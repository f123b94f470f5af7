"""The shop's outcomes on the feedback topic, published by the producing process when they are due.

``shopstream produce <scenario> --feedback-topic shop.feedback`` sends each event as before and
also schedules what the shop will observe after it (:mod:`sim.outcomes`): ad clicks, payment
chargebacks or settlements, and for pricing the units sold at the price the service decided. The
outcomes wait in a heap ordered by due time (wall clock) and the producer's loop publishes those
that are due, after every event and, once the events are done, until the heap is empty.

Pricing needs the service's decision, so the publisher reads ``pricing.decisions`` in the same
process (a consumer group of its own, never committed) from the moment it was built: an older
decision of an earlier run, identical in key and event time when the seed is the same, is
skipped by its record timestamp.

In code (the demo drives a :class:`~tools.loadgen.generator.LoadGenerator` in-process)::

    publisher = shop_publisher(kafka, "all", "shop.feedback", seed=7)
    records = with_outcomes(sim_rows("all", 7), publisher)
    LoadGenerator(kafka, records, rate=200.0, feedback=publisher).run()
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError

from shared.settings import KafkaSettings
from sim.outcomes import Due, OutcomeDelays, PricingLedger, row_outcomes
from sim.pricing import PricingSim
from sim.registry import make_stream

logger = logging.getLogger(__name__)

Record = tuple[bytes, bytes]
LabelledRecord = tuple[str, Record, str, dict[str, Any], dict[str, Any] | None]
"""``(topic, (key, value), stream, event dict, truth)``: an event and what the shop knows of its
outcome. ``stream`` names the sim stream it stands for (``ads``, ``payments``, ``pricing``,
``clickstream``); ``truth`` is shaped like that stream's truth (``None``: no outcome)."""

DEFAULT_DECISIONS_TOPIC = "pricing.decisions"
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class OutcomeSchedule:
    """Outcomes waiting for their time: a heap by due time, ties in the order they were pushed."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, bytes, bytes]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due: Due) -> None:
        at, key, record = due
        heapq.heappush(self._heap, (at, next(self._seq), key.encode(), _encode(record).encode()))

    def pop_due(self, now_s: float) -> list[Record]:
        """``(key, value)`` of every outcome due at ``now_s``, earliest first."""
        out = []
        while self._heap and self._heap[0][0] <= now_s:
            _, _, key, value = heapq.heappop(self._heap)
            out.append((key, value))
        return out


class DecisionReader:
    """Reads pricing decisions recorded at or after ``since_ms`` (the consumer is made on first read)."""

    def __init__(self, kafka: KafkaSettings, topic: str, since_ms: int) -> None:
        self.kafka, self.topic, self.since_ms = kafka, topic, since_ms
        self._consumer: Consumer | None = None
        self._reported: set[int] = set()
        self.malformed = 0

    def read(self, limit: int = 500) -> list[tuple[float, dict[str, Any]]]:
        """``(decision time in Unix seconds, decision)`` of what arrived; never blocks."""
        out = []
        for msg in self._client().consume(num_messages=limit, timeout=0):
            err = msg.error()
            if err is not None:
                self._report(err)
                continue
            _, ts_ms = msg.timestamp()
            if ts_ms < self.since_ms:
                continue  # an earlier run's decision (skipped before it is parsed)
            decision = self._parse(msg.value())
            if decision is not None:
                out.append((ts_ms / 1000.0, decision))
        return out

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _client(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer({
                **self.kafka.client_config("shopstream-shop"), "group.id": f"shopstream-shop-{uuid.uuid4().hex}",
                "enable.auto.commit": False, "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                "topic.metadata.refresh.interval.ms": 5000, "error_cb": _log_error,
            })  # fmt: skip
            self._consumer.subscribe([self.topic])
        return self._consumer

    def _report(self, err: KafkaError) -> None:
        # once per kind: a topic that does not exist yet repeats its error until it is created
        if err.code() != KafkaError._PARTITION_EOF and err.code() not in self._reported:
            self._reported.add(err.code())
            logger.warning("pricing decisions on %s: %s", self.topic, err)

    def _parse(self, value: bytes | None) -> dict[str, Any] | None:
        try:
            decision = json.loads(value or b"")
            if isinstance(decision, dict) and {"sku", "event_ts_ms", "recommended_price"} <= decision.keys():
                return decision
        except ValueError:
            pass
        self.malformed += 1
        if self.malformed == 1:
            logger.warning("skipping a malformed pricing decision on %s: %.200r", self.topic, value)
        return None


def _log_error(err: KafkaError) -> None:
    logger.warning("pricing decisions consumer: %s", err)


class FeedbackPublisher:
    """The shop's side of the feedback topic for one producing run.

    :meth:`observe` is called as each event is produced; :meth:`collect` (from the producer's
    loop) reads decisions and returns the outcomes now due; :meth:`waiting` says whether more are
    still to come; :meth:`close` stops the decision consumer. One thread calls them all.
    """

    def __init__(self, topic: str, delays: OutcomeDelays, seed: int = 7, pricing: PricingSim | None = None,
                 decisions: DecisionReader | None = None, decision_wait_s: float = 10.0) -> None:
        self.topic, self.delays, self.decisions, self.decision_wait_s = topic, delays, decisions, decision_wait_s
        self.rng = np.random.default_rng(seed)
        self.schedule = OutcomeSchedule()
        self.ledger = PricingLedger(pricing, delays, self.rng) if pricing is not None else None
        self._last_pricing_s = 0.0

    def observe(self, stream: str, event: dict[str, Any], truth: dict[str, Any] | None, now_s: float) -> None:
        if truth is None:
            return
        if stream == "pricing":
            if self.ledger is not None:
                self.ledger.requested(event, truth)
                self._last_pricing_s = now_s
            return
        for due in row_outcomes(stream, event, truth, now_s, self.delays, self.rng):
            self.schedule.push(due)

    def collect(self, now_s: float) -> list[Record]:
        """Reads the decisions that arrived, then pops every outcome due at ``now_s``."""
        if self.ledger is not None and self.decisions is not None:
            for decided_s, decision in self.decisions.read():
                self._last_pricing_s = now_s
                due = self.ledger.decided(decision, decided_s)
                if due is not None:
                    self.schedule.push(due)
        return self.schedule.pop_due(now_s)

    def waiting(self, now_s: float) -> bool:
        """Outcomes are scheduled, or requests wait for decisions that came in the last ``decision_wait_s``."""
        if len(self.schedule):
            return True
        return bool(self.ledger) and now_s - self._last_pricing_s < self.decision_wait_s

    def close(self) -> None:
        if self.decisions is not None:
            self.decisions.close()


def shop_publisher(
    kafka: KafkaSettings, scenario: str, topic: str, seed: int = 7, delay_scale: float = 1.0,
    decisions_topic: str = DEFAULT_DECISIONS_TOPIC,
) -> FeedbackPublisher:
    """The publisher of a ``produce`` scenario (``all``, a stream or a replay): it reads the pricing
    decisions, from now on, when the scenario has pricing requests. Starts no client yet."""
    delays = OutcomeDelays().scaled(delay_scale)
    if scenario not in ("pricing", "all"):
        return FeedbackPublisher(topic, delays, seed=seed)
    pricing = make_stream("pricing", seed=seed)
    assert isinstance(pricing, PricingSim)
    decisions = DecisionReader(kafka, decisions_topic, since_ms=int(time.time() * 1000))
    return FeedbackPublisher(topic, delays, seed, pricing, decisions)


def with_outcomes(rows: Iterable[LabelledRecord], publisher: FeedbackPublisher) -> Iterator[tuple[str, Record]]:
    """The ``(topic, record)`` stream a :class:`~tools.loadgen.generator.LoadGenerator` sends,
    telling ``publisher`` of each event as it is handed over (just before it is sent)."""
    for topic, record, stream, event, truth in rows:
        publisher.observe(stream, event, truth, time.time())
        yield topic, record
