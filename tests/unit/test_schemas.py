"""Schema contract tests: valid events pass, invalid ones fail with a clear reason and message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from shared.errors import InvalidEvent
from shared.schemas import (
    AdRequest,
    ClickEvent,
    CtrScores,
    DeadLetter,
    FraudScore,
    PricingRequest,
    RecoScores,
    Transaction,
    decode,
    headers,
)
from shared.schemas.registry import JSON_SCHEMA_DIR, TOPICS, all_models, by_topic, render, write_json_schemas

TS = 1_700_000_000_000
TXN: dict[str, Any] = dict(
    txn_id="t1", user_id="u1", card_id="c1", amount=12.5, currency="USD", merchant_id="m1",
    merchant_category="grocery", device_id="d1", ip_country="US", card_bin="411111", channel="web", ts_ms=TS,
)  # fmt: skip
CAND: dict[str, Any] = dict(
    ad_id="a1", advertiser_id="adv1", category="skincare", creative_id="cr1", title="Glow Serum 30ml", bid=0.8
)
AD: dict[str, Any] = dict(
    request_id="r1", user_id="u1", device="mobile", slot="top", site_or_app="app1", hour=3,
    user_segment="s1", candidates=[CAND], ts_ms=TS,
)  # fmt: skip
PRICE: dict[str, Any] = dict(
    sku="sku1", category="cereal", current_price=3.49, unit_cost=1.2, stock=40,
    competitor_prices=[3.29, 3.79], recent_units=120.0, week_of_year=12, day_of_week=2,
    floor=2.0, ceiling=5.0, ts_ms=TS,
)  # fmt: skip
CLICK: dict[str, Any] = dict(user_id="u1", session_id="s1", item_id=7, event_type="view", ts_ms=TS)


def _fails(model: type[BaseModel], record: dict[str, Any] | bytes) -> InvalidEvent:
    raw = record if isinstance(record, bytes) else json.dumps(record).encode()
    with pytest.raises(InvalidEvent) as info:
        decode(model, raw)
    return info.value


@pytest.mark.parametrize(
    ("model", "record"),
    [(Transaction, TXN), (AdRequest, AD), (PricingRequest, PRICE), (ClickEvent, CLICK)],
)
def test_valid_events_decode_and_default_schema_version(model: type[BaseModel], record: dict[str, Any]) -> None:
    event = decode(model, json.dumps(record))
    assert event.schema_version == "1.0"  # type: ignore[attr-defined]
    assert model.model_validate(record) == event  # dict and JSON paths agree


@pytest.mark.parametrize(
    ("model", "record", "reason", "message"),
    [
        (Transaction, {**TXN, "amount": -3.0}, "invalid_value", "amount: Input should be greater than 0"),
        (Transaction, {**TXN, "currency": "XYZ"}, "invalid_value", "unknown currency 'XYZ'"),
        (
            Transaction,
            {k: v for k, v in TXN.items() if k != "card_id"},
            "missing_field",
            "card_id: Field required",
        ),
        (Transaction, {**TXN, "card_bin": "41111"}, "invalid_value", "card_bin"),
        (Transaction, {**TXN, "ts_ms": 1_700_000_000}, "invalid_value", "ts_ms"),
        (Transaction, {**TXN, "amount": "12.5"}, "invalid_value", "amount: Input should be a valid number"),
        (Transaction, {**TXN, "amout": 1.0}, "unknown_field", "amout: Extra inputs are not permitted"),
        (
            AdRequest,
            {**AD, "candidates": []},
            "invalid_value",
            "candidates: Tuple should have at least 1 item",
        ),
        (AdRequest, {**AD, "candidates": [CAND] * 2}, "invalid_value", "duplicate ad_id 'a1'"),
        (AdRequest, {**AD, "candidates": [{**CAND, "bid": -1.0}]}, "invalid_value", "candidates.0.bid"),
        (
            AdRequest,
            {**AD, "candidates": [{**CAND, "title": "x" * 201}]},
            "invalid_value",
            "candidates.0.title",
        ),
        (AdRequest, {**AD, "candidates": [{**CAND, "bid": "0.8"}]}, "invalid_value", "candidates.0.bid"),
        (PricingRequest, {**PRICE, "competitor_prices": ["3.1"]}, "invalid_value", "competitor_prices.0"),
        (AdRequest, {**AD, "hour": 24}, "invalid_value", "hour: Input should be less than or equal to 23"),
        (PricingRequest, {**PRICE, "unit_cost": 6.0}, "invalid_value", "cost above ceiling"),
        (
            PricingRequest,
            {**PRICE, "stock": -1},
            "invalid_value",
            "stock: Input should be greater than or equal to 0",
        ),
        (PricingRequest, {**PRICE, "floor": 6.0}, "invalid_value", "floor 6.0 is above ceiling 5.0"),
        (
            PricingRequest,
            {k: v for k, v in PRICE.items() if k != "current_price"},
            "missing_field",
            "current_price",
        ),
        (
            ClickEvent,
            {**CLICK, "event_type": "search"},
            "invalid_value",
            "'search' event needs a non-empty query",
        ),
        (ClickEvent, {**CLICK, "item_id": -1}, "invalid_value", "item_id"),
        (ClickEvent, {**CLICK, "schema_version": "2.0"}, "invalid_value", "this consumer reads 1.x"),
    ],
)
def test_invalid_events_are_rejected_with_a_clear_message(
    model: type[BaseModel], record: dict[str, Any], reason: str, message: str
) -> None:
    err = _fails(model, record)
    assert err.reason == reason
    assert message in err.detail


def test_nan_and_infinity_are_rejected() -> None:
    raw = json.dumps({**AD, "candidates": [{**CAND, "bid": float("nan")}]}).encode()  # json emits NaN
    err = _fails(AdRequest, raw)
    assert err.reason == "non_finite_number"
    assert "candidates.0.bid: Input should be a finite number" in err.detail
    assert _fails(Transaction, {**TXN, "amount": float("inf")}).reason == "non_finite_number"


def test_malformed_json_and_non_object_are_rejected() -> None:
    assert _fails(ClickEvent, b"{not json").reason == "malformed_json"
    assert _fails(ClickEvent, b"[1, 2]").reason == "malformed_json"


def test_newer_minor_version_drops_unknown_fields_but_same_version_does_not() -> None:
    event = decode(Transaction, json.dumps({**TXN, "schema_version": "1.4", "risk_hint": 3}))
    assert event.schema_version == "1.4" and event.is_newer_minor()
    assert _fails(Transaction, {**TXN, "risk_hint": 3}).reason == "unknown_field"


def test_events_are_frozen() -> None:
    event = Transaction.model_validate(TXN)
    with pytest.raises(ValidationError):
        event.amount = 1.0  # type: ignore[misc]


def test_outputs_validate_their_invariants() -> None:
    src = {"ts_ms": TS, "item_id": 7, "event_type": "view", "session_id": "s1"}
    items = [{"item_id": i, "score": 1.0 - i / 10} for i in range(3)]
    assert RecoScores(user_id="u1", items=items, k=3, model_version="3", source=src).k == 3  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="3 items for k=2"):
        RecoScores(user_id="u1", items=items, k=2, model_version="3", source=src)  # type: ignore[arg-type]
    cands = [{"ad_id": "a", "pctr": 0.1, "bid": 1.0, "expected_value": 0.1, "rank": 2}]
    with pytest.raises(ValidationError, match="permutation"):
        CtrScores(request_id="r", candidates=cands, model_version="1", event_ts_ms=TS)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="decision"):
        FraudScore.model_validate(
            dict(txn_id="t", user_id="u", probability=0.5, decision="maybe", model_version="1", event_ts_ms=TS)
        )


def test_dead_letter_view_reads_runtime_headers() -> None:
    hdrs = [
        (headers.ERROR_CLASS, b"InvalidEvent"),
        (headers.ERROR_MESSAGE, b"amount: Input should be greater than 0"),
        (headers.SOURCE_TOPIC, b"payments.transactions"),
        (headers.SOURCE_PARTITION, b"3"),
        (headers.SOURCE_OFFSET, b"1042"),
        (headers.FAILED_AT, b"1700000000123"),
    ]
    dl = DeadLetter.from_record(hdrs, b"u1", b'{"amount": -1}')
    assert (dl.source_partition, dl.source_offset, dl.failed_at_ms) == (3, 1042, 1_700_000_000_123)
    assert dl.key == "u1" and dl.value == '{"amount": -1}' and dl.service is None


def test_registry_covers_every_topic() -> None:
    assert by_topic("payments.transactions").model is Transaction
    assert {s.direction for s in TOPICS.values()} == {"input", "output"}
    for spec in TOPICS.values():
        assert spec.key_field in spec.model.model_fields


def test_committed_json_schemas_match_the_models(tmp_path: Path) -> None:
    """Regenerate with ``python -m shared.schemas.registry`` when this fails."""
    written = {p.name for p in write_json_schemas(tmp_path)}
    committed = {p.name for p in JSON_SCHEMA_DIR.glob("*.json")}
    assert written == committed
    for model in all_models():
        path = JSON_SCHEMA_DIR / f"{model.__name__}.json"
        assert path.read_text(encoding="utf-8") == render(model), f"{path} is stale"
