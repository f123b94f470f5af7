"""The pricing scorer with the committed default model, in-memory config and state (no broker)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from services.pricing import SETTINGS_CLASS, create_scorer
from services.pricing.guardrails import PriceInputs, violations
from services.pricing.scorer import PricingScorer
from services.pricing.settings import PricingSettings
from shared.runtime.config import StaticConfig
from shared.runtime.scorer import Event, LoadContext, Rejected, Scored
from shared.runtime.state import StateStore
from shared.schemas.pricing import PriceForecast, PricingDecision, PricingRequest
from sim.pricing import PricingSim
from sim.world import World

MODELS = Path(__file__).resolve().parents[2] / "models"


def _request(**overrides: object) -> PricingRequest:
    fields: dict[str, object] = {
        "sku": "sku-1", "category": "grocery", "current_price": 10.0, "unit_cost": 5.0, "stock": 500,
        "competitor_prices": [10.5, 9.8], "recent_units": 40.0, "week_of_year": 10, "day_of_week": 0,
        "floor": 6.0, "ceiling": 16.0, "ts_ms": 1_700_000_000_000,
    }
    return PricingRequest.model_validate({**fields, **overrides})


def _events(requests: list[PricingRequest]) -> list[Event[PricingRequest]]:
    return [Event(r, r.sku, "pricing.requests", 0, i, r.ts_ms) for i, r in enumerate(requests)]


def _scorer(config: StaticConfig | None = None, **settings: object) -> tuple[PricingScorer, StateStore]:
    s = PricingSettings(models_dir=MODELS, config_topic=None, **settings)  # type: ignore[arg-type]
    scorer = PricingScorer(s)
    state = StateStore()
    scorer.load(LoadContext(settings=s, state=state, config=config or StaticConfig()))
    return scorer, state


def _decision(result: object) -> PricingDecision:
    """The decision as a consumer reads it (the scorer hands over encoded JSON)."""
    assert isinstance(result, Scored)
    value = result.outputs[0].value
    assert isinstance(value, bytes)
    return PricingDecision.model_validate_json(value)


def test_entry_points_build_a_pricing_scorer():
    assert SETTINGS_CLASS is PricingSettings
    assert isinstance(create_scorer(PricingSettings(config_topic=None)), PricingScorer)


def test_sim_requests_get_guardrail_respecting_decisions_and_forecasts():
    scorer, _ = _scorer()
    sim = PricingSim(World.build())
    requests = [PricingRequest.model_validate(e) for e, _ in sim.iter_dicts(300)]
    results = scorer.score(_events(requests))
    assert len(results) == len(requests)
    cfg = scorer.settings.guardrails
    for req, result in zip(requests, results, strict=True):
        d = _decision(result)
        assert isinstance(result, Scored) and isinstance(result.outputs[1].value, bytes)
        forecast = PriceForecast.model_validate_json(result.outputs[1].value)
        assert result.outputs[1].topic == "pricing.forecasts" and result.outputs[1].key == req.sku
        assert forecast.at_price == d.recommended_price and forecast.event_ts_ms == req.ts_ms
        inp = PriceInputs(req.current_price, req.unit_cost, req.stock, req.recent_units, req.floor, req.ceiling,
                          req.current_price)
        assert violations(d.recommended_price, inp, cfg) == [], (req, d)
        assert d.elasticity < 0 and d.model_version == "v0001"
        assert d.at_recommended.profit >= d.at_current.profit - 1e-6 or "low_stock" in d.bound_by


def test_one_onnx_call_per_micro_batch(monkeypatch):
    scorer, _ = _scorer()
    model = scorer.slot.current.model
    calls: list[tuple[int, ...]] = []
    original = model.run

    def counting(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls.append(feeds["log_price_ratio"].shape)
        return original(feeds)

    monkeypatch.setattr(model, "run", counting)
    scorer.score(_events([_request(sku=f"s{i}") for i in range(64)]))
    assert calls == [(64, scorer.settings.grid_points + 1)]


def test_kill_switch_holds_the_current_price_and_says_why():
    scorer, _ = _scorer(StaticConfig({"*": {"kill_switch": True, "reason": "incident 42"}}))
    d = _decision(scorer.score(_events([_request()]))[0])
    assert d.recommended_price == d.current_price == 10.0
    assert d.bound_by == ("kill_switch",) and "incident 42" in d.reason


def test_per_sku_override_fixes_the_price_but_keeps_the_margin():
    scorer, _ = _scorer(StaticConfig({"sku-1": {"fixed_price": 4.0}, "sku-2": {"fixed_price": 9.49}}))
    one, two = (_decision(r) for r in scorer.score(_events([_request(), _request(sku="sku-2")])))
    assert one.recommended_price == pytest.approx(6.0)  # floor 6 beats the fixed 4 (cost 5 + 5 % margin = 5.25)
    assert two.recommended_price == pytest.approx(9.49) and two.bound_by == ("override",)


def test_daily_change_limit_uses_the_first_price_of_the_day_from_state():
    scorer, state = _scorer(guardrails={"max_change_per_decision": 0.5, "max_change_per_day": 0.1,
                                        "price_ending": None})
    scorer.score(_events([_request(current_price=10.0)]))
    later = _request(current_price=10.9, ts_ms=1_700_000_000_000 + 3_600_000)
    d = _decision(scorer.score(_events([later]))[0])
    assert 9.0 - 1e-9 <= d.recommended_price <= 11.0 + 1e-9
    assert (state.get(0, "sku-1") or {}).get("anchor") == 10.0


def test_unpriceable_request_is_rejected_with_reason():
    scorer, _ = _scorer()
    [result] = scorer.score(_events([_request(unit_cost=9.8, ceiling=10.0)]))
    assert isinstance(result, Rejected) and result.reason == "unpriceable" and "min_margin" in result.detail


def test_invalid_override_is_ignored_not_applied():
    scorer, _ = _scorer(StaticConfig({"*": {"kill_switch": "maybe"}}))
    d = _decision(scorer.score(_events([_request()]))[0])
    assert "kill_switch" not in d.bound_by


def test_kill_switch_in_an_otherwise_broken_record_still_stops_pricing():
    scorer, _ = _scorer(StaticConfig({"sku-1": {"kill_switch": True, "reason": "oops", "typo_field": 1}}))
    d = _decision(scorer.score(_events([_request()]))[0])
    assert d.bound_by == ("kill_switch",) and d.recommended_price == d.current_price
