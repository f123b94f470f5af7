"""The shop's outcomes (sim/outcomes.py): keyed like their events, delayed, valid, and true to the sim."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pytest

from shared.schemas.feedback import OUTCOME_MODELS, FeedbackRecord
from sim import World, WorldConfig, make_stream
from sim.outcomes import (
    Due,
    OutcomeDelays,
    PricingLedger,
    ad_outcome,
    payment_outcome,
    row_outcomes,
    sales_outcome,
)
from sim.pricing import PricingSim

NOW = 1_800_000_000.0
DELAYS = OutcomeDelays()


@pytest.fixture(scope="module")
def world() -> World:
    return World.build(WorldConfig(seed=3, n_users=2_000, n_items=800))


@pytest.fixture(scope="module")
def pricing(world: World) -> PricingSim:
    sim = make_stream("pricing", world=world, n_skus=50)
    assert isinstance(sim, PricingSim)
    return sim


def rows(world: World, stream: str, n: int, **config: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return list(make_stream(stream, world=world, **config).iter_dicts(n))


def validated(due: Due) -> tuple[FeedbackRecord, Any]:
    """The record as the monitor reads it: from JSON, then the service's outcome model."""
    _, _, record = due
    feedback = FeedbackRecord.model_validate_json(json.dumps(record))
    assert feedback.kind == "outcome"
    return feedback, OUTCOME_MODELS[feedback.service].model_validate(feedback.record)


def test_ad_outcomes_show_every_candidate_with_the_sims_click(world: World) -> None:
    rng = np.random.default_rng(0)
    clicks = 0
    for event, truth in rows(world, "ads", 300, requests_per_chunk=300):
        due = ad_outcome(event, truth, NOW, DELAYS, rng)
        at, key, _ = due
        feedback, outcome = validated(due)
        assert key == event["request_id"] == outcome.request_id and feedback.service == "ad_ctr"
        assert [s.ad_id for s in outcome.shown] == [c["ad_id"] for c in event["candidates"]]
        assert [int(s.clicked) for s in outcome.shown] == truth["click"]
        assert NOW + 1.0 <= at <= NOW + 5.0 and feedback.ts_ms == round(at * 1000)
        clicks += sum(truth["click"])
    assert clicks > 0  # the labels are not all "no click"


def test_payment_outcomes_are_chargebacks_for_fraud_and_settlements_otherwise(world: World) -> None:
    rng = np.random.default_rng(0)
    payments = rows(world, "payments", 3_000, chunk_seconds=60.0)
    assert any(t["is_fraud"] for _, t in payments)
    for event, truth in payments:
        due = payment_outcome(event, truth, NOW, DELAYS, rng)
        at, key, _ = due
        feedback, outcome = validated(due)
        assert key == event["user_id"] == outcome.user_id and outcome.txn_id == event["txn_id"]
        assert outcome.fraud == truth["is_fraud"] and feedback.service == "fraud"
        if truth["is_fraud"]:
            assert NOW + 20.0 <= at <= NOW + 60.0
        else:
            assert at == NOW + 30.0


def test_only_ads_and_payments_have_outcomes_from_the_row_alone(world: World) -> None:
    rng = np.random.default_rng(0)
    for stream, expected in (("clickstream", 0), ("pricing", 0), ("ads", 1), ("payments", 1)):
        event, truth = rows(world, stream, 1, **({"n_skus": 50} if stream == "pricing" else {}))[0]
        assert len(row_outcomes(stream, event, truth, NOW, DELAYS, rng)) == expected


def test_delays_scale_together() -> None:
    assert OutcomeDelays().scaled(0.5) == OutcomeDelays(click_s=(0.5, 2.5), settle_s=15.0, chargeback_s=(10.0, 30.0),
                                                        sales_period_s=5.0)
    assert OutcomeDelays().scaled(0.0).longest_s == 0.0
    with pytest.raises(ValueError, match="delay scale"):
        OutcomeDelays().scaled(-1.0)


def decision_for(event: dict[str, Any], price: float) -> dict[str, Any]:
    return {"sku": event["sku"], "event_ts_ms": event["ts_ms"], "recommended_price": price,
            "current_price": event["current_price"]}


def test_sales_are_sold_at_the_decided_price_and_follow_the_sims_demand(pricing: PricingSim) -> None:
    rng = np.random.default_rng(1)
    event, truth = next(pricing.iter_dicts(1))
    price = round(event["current_price"] * 0.9, 2)
    draws = [sales_outcome(pricing, event, truth, decision_for(event, price), NOW, DELAYS, rng) for _ in range(4_000)]
    at, key, _ = draws[0]
    feedback, outcome = validated(draws[0])
    assert key == event["sku"] == outcome.sku and outcome.event_ts_ms == event["ts_ms"]
    assert outcome.price == price and outcome.unit_cost == event["unit_cost"] and at == NOW + 10.0
    assert outcome.oracle_profit == truth["oracle_profit"] and feedback.service == "pricing"
    assert outcome.profit_at_current == pytest.approx(
        (event["current_price"] - event["unit_cost"]) * float(pricing.units_for(event, event["current_price"])))
    mean = float(pricing.units_for(event, price))
    units = np.array([d[2]["record"]["units"] for d in draws])
    assert units.mean() == pytest.approx(mean, rel=0.05)  # the sim's demand at the decided price
    assert units.mean() != pytest.approx(float(pricing.units_for(event, event["current_price"])), rel=0.05)


def test_the_ledger_answers_each_decision_once_and_forgets_the_oldest(pricing: PricingSim) -> None:
    ledger = PricingLedger(pricing, DELAYS, np.random.default_rng(0), capacity=3)
    requests = list(pricing.iter_dicts(5))
    for event, truth in requests:
        ledger.requested(event, truth)
    assert len(ledger) == 3 and ledger.dropped == 2
    first, last = requests[0][0], requests[-1][0]
    assert ledger.decided(decision_for(first, 10.0), NOW) is None  # pushed out before its decision came
    due = ledger.decided(decision_for(last, 10.0), NOW)
    assert due is not None and due[1] == last["sku"]
    assert ledger.decided(decision_for(last, 10.0), NOW) is None  # a redelivered decision finds nothing
    stranger = {**decision_for(last, 10.0), "event_ts_ms": last["ts_ms"] + 1}
    assert ledger.decided(stranger, NOW) is None and len(ledger) == 2


def test_outcomes_of_one_run_are_deterministic_for_a_seed(world: World) -> None:
    payments = rows(world, "payments", 200, chunk_seconds=60.0)

    def run(seed: int) -> list[Due]:
        rng = np.random.default_rng(seed)
        return [payment_outcome(e, t, NOW, DELAYS, rng) for e, t in itertools.islice(payments, 200)]

    assert run(5) == run(5)
