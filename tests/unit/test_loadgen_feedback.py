"""The producer publishes the shop's outcomes when due (tools/loadgen/feedback.py), without a broker."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from shared.schemas.feedback import OUTCOME_MODELS, FeedbackRecord
from shared.settings import KafkaSettings
from sim import make_stream
from sim.outcomes import OutcomeDelays, outcome_record
from sim.pricing import PricingSim
from tests.support.replay_data import write_tiny_data_sets
from tools.loadgen import generator
from tools.loadgen.datasets import replay_records, replay_rows
from tools.loadgen.feedback import FeedbackPublisher, OutcomeSchedule, shop_publisher, with_outcomes
from tools.loadgen.generator import LoadGenerator, sim_records, sim_rows

FAST = OutcomeDelays().scaled(0.01)  # chargebacks 0.2-0.6 s, settlement 0.3 s, a pricing period 0.1 s


class FakeProducer:
    """Records what is produced, and when; acknowledges at once."""

    sent: list[tuple[float, str, bytes, bytes]]

    def __init__(self, _config: dict[str, Any]) -> None:
        FakeProducer.sent = []

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any = None) -> None:
        FakeProducer.sent.append((time.time(), topic, key, value))

    def poll(self, timeout: float = 0.0) -> int:
        time.sleep(min(timeout, 0.01))
        return 0

    def flush(self, _timeout: float = 0.0) -> int:
        return 0


class StubDecisions:
    """The pricing service's decisions as the shop reads them: handed in by the test."""

    def __init__(self) -> None:
        self.queue: list[tuple[float, dict[str, Any]]] = []
        self.closed = False

    def read(self, limit: int = 500) -> list[tuple[float, dict[str, Any]]]:
        out, self.queue = self.queue, []
        return out

    def close(self) -> None:
        self.closed = True


def due(at: float, key: str) -> tuple[float, str, dict[str, Any]]:
    return at, key, outcome_record("fraud", round(at * 1000), {"txn_id": key, "user_id": key, "fraud": False})


def test_the_schedule_releases_what_is_due_in_due_order_ties_in_push_order() -> None:
    schedule = OutcomeSchedule()
    for at, key in ((5.0, "e"), (1.0, "a"), (3.0, "c"), (1.0, "b"), (4.0, "d")):
        schedule.push(due(at, key))
    assert schedule.pop_due(0.5) == []
    assert [k for k, _ in schedule.pop_due(3.0)] == [b"a", b"b", b"c"]
    assert len(schedule) == 2
    assert [k for k, _ in schedule.pop_due(10.0)] == [b"d", b"e"] and len(schedule) == 0


def test_pricing_outcomes_wait_for_the_decision_and_use_its_price() -> None:
    sim = make_stream("pricing", seed=7)
    assert isinstance(sim, PricingSim)
    decisions = StubDecisions()
    publisher = FeedbackPublisher("fb", FAST, pricing=sim, decisions=decisions, decision_wait_s=1.0)  # type: ignore[arg-type]
    (event, truth), (lost, lost_truth) = sim.iter_dicts(2)
    publisher.observe("pricing", event, truth, 100.0)
    publisher.observe("pricing", lost, lost_truth, 100.0)
    assert publisher.collect(100.0) == [] and publisher.waiting(100.5)
    decision = {"sku": event["sku"], "event_ts_ms": event["ts_ms"], "recommended_price": 12.5}
    decisions.queue.append((101.0, decision))
    assert publisher.collect(101.0) == []  # sold over the period that follows the decision
    [(key, value)] = publisher.collect(101.0 + FAST.sales_period_s)
    outcome = json.loads(value)["record"]
    assert key == event["sku"].encode() and outcome["price"] == 12.5 and outcome["event_ts_ms"] == event["ts_ms"]
    assert not publisher.waiting(101.0 + 1.0)  # the other request's decision never came: no outcome
    publisher.close()
    assert decisions.closed


def test_the_producer_sends_each_outcome_when_due_and_waits_for_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generator, "Producer", FakeProducer)
    publisher = FeedbackPublisher("shop.feedback", FAST, seed=7)
    records = with_outcomes(sim_rows("payments", 7), publisher)
    gen = LoadGenerator(KafkaSettings(), records, rate=0.0, count=300, feedback=publisher)
    gen.run()
    events = [s for s in FakeProducer.sent if s[1] == "payments.transactions"]
    outcomes = [s for s in FakeProducer.sent if s[1] == "shop.feedback"]
    assert gen.sent == len(events) == 300 and gen.outcomes_sent == len(outcomes) == 300
    sent_at = {json.loads(v)["txn_id"]: t for t, _, _, v in events}
    for produced_at, _, key, value in outcomes:
        feedback = FeedbackRecord.model_validate_json(value)
        outcome = OUTCOME_MODELS[feedback.service].model_validate(feedback.record)
        assert key.decode() == outcome.user_id  # type: ignore[attr-defined]
        assert produced_at >= feedback.ts_ms / 1000 - 1e-3  # never before it is due
        assert feedback.ts_ms / 1000 >= sent_at[outcome.txn_id] + 0.2 - 1e-3  # type: ignore[attr-defined]
    assert [json.loads(v)["ts_ms"] for _, _, _, v in outcomes] == sorted(json.loads(v)["ts_ms"] for *_, v in outcomes)


def test_without_feedback_the_records_are_those_of_today() -> None:
    rows = [(topic, record) for topic, record, *_ in itertools.islice(sim_rows("all", 7), 400)]
    assert rows == list(itertools.islice(sim_records("all", 7), 400))


def test_replays_carry_their_labels_as_the_shops_truth(tmp_path: Path) -> None:
    data_dir = write_tiny_data_sets(tmp_path)
    for scenario in ("beauty", "ulb", "ipinyou"):
        rows = list(replay_rows(scenario, data_dir))
        assert [(t, r) for t, r, *_ in rows] == list(replay_records(scenario, data_dir))
    assert [(e["txn_id"], t) for *_, e, t in replay_rows("ulb", data_dir)] == [
        ("ulb-1", {"is_fraud": True}), ("ulb-0", {"is_fraud": False})]
    assert [(e["request_id"], t) for *_, e, t in replay_rows("ipinyou", data_dir)] == [
        ("ipy-train-1", {"click": [1]}), ("ipy-train-0", {"click": [0]}), ("ipy-train-2", {"click": [0]}),
        ("ipy-test-0", {"click": [0]})]
    assert {t for *_, t in replay_rows("beauty", data_dir)} == {None}


def test_replayed_labels_become_valid_outcomes(tmp_path: Path) -> None:
    publisher = FeedbackPublisher("fb", OutcomeDelays().scaled(0.0), seed=1)
    for scenario in ("beauty", "ulb", "ipinyou"):
        list(with_outcomes(replay_rows(scenario, write_tiny_data_sets(tmp_path)), publisher))
    published = [FeedbackRecord.model_validate_json(v) for _, v in publisher.collect(time.time() + 1)]
    assert sorted(f.service for f in published) == ["ad_ctr"] * 4 + ["fraud"] * 2
    for f in published:
        OUTCOME_MODELS[f.service].model_validate(f.record)
    clicked = [f.record["shown"][0]["clicked"] for f in published if f.service == "ad_ctr"]
    assert sorted(clicked) == [False, False, False, True]
    assert sum(f.record.get("fraud", False) for f in published) == 1


def test_only_scenarios_with_pricing_read_decisions() -> None:
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1")  # nothing listens: no client may start yet
    for scenario, reads in (("all", True), ("pricing", True), ("payments", False), ("ulb", False)):
        publisher = shop_publisher(kafka, scenario, "fb", delay_scale=0.5)
        assert (publisher.decisions is not None) == reads == (publisher.ledger is not None)
        assert publisher.delays == OutcomeDelays().scaled(0.5)
        publisher.close()
