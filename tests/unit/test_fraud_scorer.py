"""The fraud scorer without a broker: decisions, alerts, reasons, bad input, error policies, restore."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from services import fraud
from services.fraud.decisions import MODEL_UNAVAILABLE, decide
from services.fraud.settings import FraudSettings
from shared.errors import InvalidEvent, ScoringError
from shared.runtime.scorer import Rejected, Scored
from shared.runtime.state import StateStore
from shared.schemas.base import decode
from shared.schemas.payments import FraudScore, Transaction
from tests.support.fraud import T0, StubSlot, events, make_scorer, score_record, scores_of, txn


def _burst(n: int, user: str = "u1", start: int = 0) -> list[Transaction]:
    return [txn(start + i, user=user, ts_ms=T0 + (start + i) * 5_000) for i in range(n)]


def _scores(results: list[Scored | Rejected]) -> list[FraudScore]:
    assert all(isinstance(r, Scored) for r in results)
    return scores_of(results)


def test_service_module_exports_the_two_names() -> None:
    assert fraud.SETTINGS_CLASS is FraudSettings
    assert type(fraud.create_scorer(FraudSettings())).__name__ == "FraudScorer"


def test_decisions_follow_the_thresholds() -> None:
    s = FraudSettings(review_threshold=0.3, decline_threshold=0.8)
    assert [decide(p, s) for p in (0.1, 0.3, 0.79, 0.8, 1.0)] == ["approve", "review", "review", "decline", "decline"]
    with pytest.raises(ValidationError):
        FraudSettings(review_threshold=0.9, decline_threshold=0.5)


def test_thresholds_and_policy_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPSTREAM_FRAUD_DECLINE_THRESHOLD", "0.75")
    monkeypatch.setenv("SHOPSTREAM_FRAUD_MODEL_ERROR_POLICY", "fail_open")
    monkeypatch.setenv("SHOPSTREAM_FRAUD_FALLBACK_RULES__AMOUNT_EUR", "800")
    s = FraudSettings()
    assert (s.decline_threshold, s.model_error_policy, s.fallback_rules.amount_eur) == (0.75, "fail_open", 800.0)
    assert (s.input_topic, s.output_topic, s.alerts_topic) == ("payments.transactions", "fraud.scores", "fraud.alerts")


def test_a_burst_is_declined_with_an_alert_and_velocity_reasons() -> None:
    scorer, _, _ = make_scorer()
    results = scorer.score(events(_burst(5)))
    scores = _scores(list(results))
    assert [s.decision for s in scores] == ["approve", "approve", "approve", "decline", "decline"]
    assert all(len(r.outputs) == 1 for r in results[:3])  # type: ignore[union-attr]
    alert = results[3].outputs[1]  # type: ignore[union-attr]
    assert alert.topic == "fraud.alerts" and score_record(alert) == scores[3]
    assert scores[3].reasons[0] == "velocity_1m"
    assert scores[0].reasons == ()  # approvals are not explained by default
    assert scores[3].model_version == "v0042" and scores[3].event_ts_ms == T0 + 15_000


def test_reasons_for_every_payment_when_asked() -> None:
    scorer, _, _ = make_scorer(reasons_for="all", review_threshold=0.5, decline_threshold=0.9)
    big = txn(1, amount=5000.0)
    [score] = _scores(list(scorer.score(events([big]))))
    assert score.decision == "review" and score.reasons == ("amount",)


def test_bursts_of_different_users_do_not_mix() -> None:
    scorer, _, _ = make_scorer()
    interleaved = [t for pair in zip(_burst(3, "ua"), _burst(3, "ub", start=100), strict=True) for t in pair]
    assert {s.decision for s in _scores(list(scorer.score(events(interleaved))))} == {"approve"}


def test_state_is_carried_across_batches_and_through_the_changelog() -> None:
    """A restart restores the velocity state from the changelog: the burst is still caught."""
    scorer, _, state = make_scorer()
    scorer.score(events(_burst(2), partition=3))
    changelog = [(c.key.encode(), c.value) for c in state.drain_changes()]
    restored = StateStore()
    restored.apply_changelog(3, changelog)
    assert restored.get_value(3, "u1") == state.get_value(3, "u1")
    after_restart, _, _ = make_scorer(state=restored)
    later = _scores(list(after_restart.score(events(_burst(4)[2:], partition=3))))
    assert [s.decision for s in later] == ["approve", "decline"]


def test_unknown_currency_for_the_service_is_rejected_with_a_reason() -> None:
    rates = {"EUR": 1.0}
    scorer, _, _ = make_scorer(currency_rates=rates)
    results = scorer.score(events([txn(1), txn(2, currency="JPY", amount=3000.0)]))
    assert isinstance(results[0], Scored)
    assert isinstance(results[1], Rejected) and results[1].reason == "unknown_currency"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"amount": -5.0}, "invalid_value"),
        ({"currency": "XXX"}, "invalid_value"),
        ({"card_bin": None}, "missing_field"),
    ],
)
def test_bad_payments_are_invalid_events_for_the_dlq(change: dict[str, object], reason: str) -> None:
    raw = txn(1).model_dump()
    raw.update(change)
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(InvalidEvent) as info:
        decode(Transaction, json.dumps(raw))
    assert info.value.reason == reason


def _broken(numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    raise RuntimeError("onnxruntime: CUDA failure")


def test_retry_policy_raises_and_leaves_state_untouched() -> None:
    scorer, _, state = make_scorer(StubSlot(_broken))
    with pytest.raises(ScoringError):
        scorer.score(events(_burst(3)))
    assert state.get_value(0, "u1") is None  # a retry of the batch computes the same features


def test_fail_open_decides_with_the_rules() -> None:
    scorer, _, state = make_scorer(StubSlot(_broken), model_error_policy="fail_open")
    scores = _scores(list(scorer.score(events([*_burst(4), txn(9, user="u2", amount=700.0)]))))
    assert [s.decision for s in scores] == ["approve", "approve", "approve", "review", "review"]
    assert scores[3].reasons == (MODEL_UNAVAILABLE, "velocity_1m")
    assert scores[4].reasons == (MODEL_UNAVAILABLE, "high_amount")
    assert state.get_value(0, "u1") is not None


def test_fail_closed_holds_every_payment() -> None:
    nan_model = StubSlot(lambda n, c: np.full(len(n), np.nan, dtype=np.float32))
    scorer, _, _ = make_scorer(nan_model, model_error_policy="fail_closed", fail_closed_decision="decline")
    results = scorer.score(events(_burst(2)))
    assert {s.decision for s in _scores(list(results))} == {"decline"}
    assert all(len(r.outputs) == 2 for r in results)  # type: ignore[union-attr]
