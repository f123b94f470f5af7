"""A model that fails once mid-stream changes nothing: state and outputs equal an uninterrupted run.

Each stateful service scores a stream batch by batch through the runtime's own transaction
(:func:`shared.runtime.scoring.score_batch`) on a real in-memory :class:`StateStore`, with the
runtime's retry semantics: a batch whose score raised is scored again, against the same state.
The model is the committed default one; its ``run`` fails once on a chosen call, as a CUDA
error would.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from pydantic import BaseModel

from services.fraud.scorer import FraudScorer
from services.fraud.settings import FraudSettings
from services.pricing.scorer import PricingScorer
from services.pricing.settings import PricingSettings
from services.recommendation.scorer import RecommendationScorer
from services.recommendation.settings import RecommendationSettings
from shared.errors import ScoringError
from shared.runtime.model_scorer import ModelScorer
from shared.runtime.scorer import Event, LoadContext, Scored, ScoreResult
from shared.runtime.scoring import score_batch
from shared.runtime.state import StateChange, StateStore
from shared.schemas.clickstream import ClickEvent
from shared.schemas.payments import FraudScore, Transaction
from shared.schemas.pricing import PricingDecision, PricingRequest
from sim.clickstream import ClickstreamSim
from sim.payments import PaymentsSim
from sim.pricing import PricingSim
from sim.registry import world_for
from tests.support.fraud import T0, score_record, txn

MODELS = Path(__file__).resolve().parents[2] / "models"
PARTITIONS = 3
DAY_MS = 86_400_000

E = TypeVar("E", bound=BaseModel)
S = TypeVar("S", bound="ModelScorer[Any, Any]")
Batches = list[list[Event[Any]]]


class FailOnce:
    """Stands in for a model's ``run``: once armed, its next call raises; every other call runs the model."""

    def __init__(self, run: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]) -> None:
        self.run = run
        self.armed = self.failed = False

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.armed:
            self.armed, self.failed = False, True
            raise ScoringError("injected: CUDA error 700 in the model's run")
        return self.run(feeds)


def run_stream(scorer: ModelScorer[Any, Any], state: StateStore, batches: Batches) -> list[ScoreResult]:
    """What the runtime does with each batch: score it; if that raised, score the same batch again."""
    results: list[ScoreResult] = []
    for batch in batches:
        for _ in range(3):
            try:
                results.extend(score_batch(scorer, batch, state))
                break
            except ScoringError:
                continue
        else:
            raise AssertionError("a batch kept failing")
        scorer.between_batches()
    return results


def run_failing_once(
    monkeypatch: pytest.MonkeyPatch, scorer: ModelScorer[Any, Any], state: StateStore, batches: Batches, at: int
) -> list[ScoreResult]:
    """:func:`run_stream`, with the model failing once: on its first call for ``batches[at]``."""
    model = scorer.slot.current.model
    failing = FailOnce(model.run)
    monkeypatch.setattr(model, "run", failing)
    results = run_stream(scorer, state, batches[:at])
    failing.armed = True
    results += run_stream(scorer, state, batches[at:])
    assert failing.failed, "the model was never called for the batch meant to fail"
    return results


def changelog(state: StateStore) -> list[StateChange]:
    return sorted(state.drain_changes(), key=lambda c: (c.partition, c.key))


def snapshot(state: StateStore) -> list[dict[str, Any]]:
    return [state.snapshot(p) for p in range(PARTITIONS)]


def as_events(values: Iterable[E], key: Callable[[E], str], topic: str, ts: Callable[[E], int]) -> list[Event[E]]:
    """Events keyed like the runtime keys them, spread over partitions by a stable hash of the key."""
    return [
        Event(v, key(v), topic, zlib.crc32(key(v).encode()) % PARTITIONS, offset, ts(v))
        for offset, v in enumerate(values)
    ]


def batches_of(events: Sequence[Event[Any]], size: int) -> Batches:
    return [list(events[i : i + size]) for i in range(0, len(events), size)]


def loaded(scorer: S, state: StateStore) -> S:
    scorer.load(LoadContext(settings=scorer.settings, state=state))
    return scorer


# -- recommendation ------------------------------------------------------------------------------


def reco(state: StateStore) -> RecommendationScorer:
    return loaded(RecommendationScorer(RecommendationSettings(models_dir=MODELS, execution_providers=["cpu"])), state)


def clicks(user: str, items: Sequence[int], start: int = 0) -> list[ClickEvent]:
    return [ClickEvent(user_id=user, session_id="s1", item_id=item, event_type="view", ts_ms=T0 + start + i)
            for i, item in enumerate(items)]  # fmt: skip


def click_events(values: Sequence[ClickEvent]) -> list[Event[ClickEvent]]:
    return as_events(values, lambda c: c.user_id, "clickstream.events", lambda c: c.ts_ms)


def test_recommendation_retried_batch_appends_its_items_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's reproduction: u1 viewed 1-5; the model fails once on the batch of 6 and 7."""
    batches = [click_events(clicks("u1", [1, 2, 3, 4, 5])), click_events(clicks("u1", [6, 7], start=5))]
    clean_state, state = StateStore(), StateStore()
    clean = run_stream(reco(clean_state), clean_state, batches)
    retried = run_failing_once(monkeypatch, reco(state), state, batches, at=1)
    [key] = state.snapshot(batches[0][0].partition)
    assert [item for item, *_ in state.get(batches[0][0].partition, key)["items"]] == [1, 2, 3, 4, 5, 6, 7]  # type: ignore[index]
    assert retried == clean and snapshot(state) == snapshot(clean_state)


def test_recommendation_stream_with_one_model_failure_equals_an_uninterrupted_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = [ClickEvent.model_validate(e) for e, _ in ClickstreamSim(world_for(7)).iter_dicts(1200)]
    batches = batches_of(click_events(values), 100)
    clean_state, state = StateStore(), StateStore()
    clean = run_stream(reco(clean_state), clean_state, batches)
    retried = run_failing_once(monkeypatch, reco(state), state, batches, at=6)
    assert len(retried) == len(values) and retried == clean
    assert snapshot(state) == snapshot(clean_state)
    assert changelog(state) == changelog(clean_state)


# -- pricing ---------------------------------------------------------------------------------------


def pricing(state: StateStore, **settings: Any) -> PricingScorer:
    s = PricingSettings(models_dir=MODELS, execution_providers=["cpu"], **settings)
    return loaded(PricingScorer(s), state)


def price_events(values: Sequence[PricingRequest]) -> list[Event[PricingRequest]]:
    return as_events(values, lambda r: r.sku, "pricing.requests", lambda r: r.ts_ms)


def request(price: float, ts_ms: int) -> PricingRequest:
    return PricingRequest(
        sku="sku-1", category="grocery", current_price=price, unit_cost=5.0, stock=500, competitor_prices=[11.0],
        recent_units=40.0, week_of_year=10, day_of_week=0, floor=6.0, ceiling=16.0, ts_ms=ts_ms,
    )  # fmt: skip


def test_pricing_daily_limit_after_a_retry_is_measured_from_the_first_price_of_the_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The retried batch holds the day's second request and the next day's first: on the retry the
    first must still be limited around the day's first price (9.00), not the next day's (11.00)."""
    midnight = (T0 // DAY_MS + 1) * DAY_MS
    batches = [
        price_events([request(9.0, midnight - 3_600_000)]),
        price_events([request(10.0, midnight - 60_000), request(11.0, midnight + 60_000)]),
    ]
    guardrails = {"max_change_per_decision": 0.5, "max_change_per_day": 0.1, "price_ending": None}
    clean_state, state = StateStore(), StateStore()
    clean = run_stream(pricing(clean_state, guardrails=guardrails), clean_state, batches)
    retried = run_failing_once(monkeypatch, pricing(state, guardrails=guardrails), state, batches, at=1)
    price = decision_of(retried[1]).recommended_price
    assert 9.0 * 0.9 - 1e-9 <= price < 10.0 * 0.9, "the model's choice, allowed around 9.00, not around 10.00"
    assert retried == clean and snapshot(state) == snapshot(clean_state)
    [saved] = [v for p in snapshot(state) for v in p.values()]
    assert (saved["anchor"], saved["seen_price"]) == (11.0, 11.0)


def test_pricing_stream_with_one_model_failure_equals_an_uninterrupted_run(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = PricingSim(world_for(7))
    values = [PricingRequest.model_validate(e) for e, _ in sim.iter_dicts(600)]
    batches = batches_of(price_events(values), 60)
    earlier = {e.value.sku: e.value.current_price for batch in batches[:7] for e in batch}
    assert any(earlier.get(e.value.sku, e.value.current_price) != e.value.current_price for e in batches[7]), \
        "the batch that fails re-prices SKUs whose earlier price is in the state"
    clean_state, state = StateStore(), StateStore()
    clean = run_stream(pricing(clean_state), clean_state, batches)
    retried = run_failing_once(monkeypatch, pricing(state), state, batches, at=7)
    assert len(retried) == len(values) and retried == clean
    assert snapshot(state) == snapshot(clean_state)
    assert changelog(state) == changelog(clean_state)


def decision_of(result: ScoreResult) -> PricingDecision:
    assert isinstance(result, Scored) and isinstance(result.outputs[0].value, bytes)
    return PricingDecision.model_validate_json(result.outputs[0].value)


# -- fraud -----------------------------------------------------------------------------------------


def test_fraud_stream_with_one_model_failure_equals_an_uninterrupted_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sim payments with a card-testing burst that runs from one batch into the one the model fails on."""
    values = [Transaction.model_validate(e) for e, _ in PaymentsSim(world_for(7)).iter_dicts(400)]
    burst = [txn(1000 + i, user="burst", ts_ms=values[247].ts_ms + i, merchant_category="digital_goods")
             for i in range(6)]  # fmt: skip
    events = as_events([*values[:247], *burst, *values[247:]], lambda t: t.user_id, "payments.transactions",
                       lambda t: t.ts_ms)  # fmt: skip
    batches = batches_of(events, 50)  # the burst: 3 payments in batch 4, 3 in batch 5
    settings = FraudSettings(models_dir=MODELS, execution_providers=["cpu"])
    clean_state, state = StateStore(), StateStore()
    clean = run_stream(loaded(FraudScorer(settings), clean_state), clean_state, batches)
    retried = run_failing_once(monkeypatch, loaded(FraudScorer(settings), state), state, batches, at=5)
    assert len(retried) == len(events) and retried == clean
    assert snapshot(state) == snapshot(clean_state)
    assert changelog(state) == changelog(clean_state)
    decisions = [score_of(r).decision for r, e in zip(retried, events, strict=True) if e.key == "burst"]
    assert decisions[:3] == ["approve"] * 3 and decisions[-1] == "decline", "velocity carried into the retried batch"


def score_of(result: ScoreResult) -> FraudScore:
    assert isinstance(result, Scored)
    return score_record(result.outputs[0])
