"""From a request to the model's context, and from a chosen price to the output records."""

from __future__ import annotations

import logging
from statistics import fmean

from services.pricing.features import DemandContext
from services.pricing.optimizer import Choice, PricingProblem
from services.pricing.overrides import Controls
from services.pricing.settings import PricingSettings
from shared.runtime.scorer import Output, Scored
from shared.schemas.pricing import PriceForecast, PricingDecision, PricingRequest

logger = logging.getLogger(__name__)


def context_of(req: PricingRequest, previous_price: float | None) -> DemandContext:
    """The request as the demand model sees it.

    ``recent_units`` were sold at the SKU's previous price (the ``current_price`` of its last
    request, kept in the state store), so candidate prices are expressed relative to that
    price; without history the current price stands in.
    """
    ref = previous_price if previous_price is not None and previous_price > 0 else req.current_price
    return DemandContext(
        ref_price=ref,
        recent_units=req.recent_units,
        recent_price=ref,
        competitor_price=fmean(req.competitor_prices) if req.competitor_prices else None,
        feature=req.feature,
        display=req.display,
        tpr=req.tpr,
        week_of_year=req.week_of_year,
        category=req.category,
    )


def outcome(price: float, units: float, cost: float) -> dict[str, float]:
    """The fields of an :class:`Outcome`, validated with the decision that holds it.

    A nested dict validates in one pass inside pydantic-core, faster than building the
    ``Outcome`` first (and than skipping validation with ``model_construct``, in pydantic 2.14).
    """
    units = max(units, 0.0)
    return {"price": round(price, 4), "units": units, "revenue": units * price, "profit": units * (price - cost)}


def _reason(controls: Controls, choice: Choice, settings: PricingSettings) -> str:
    if controls.kill_switch is not None:
        return f"{controls.kill_switch}; holding the current price"
    if controls.fixed_price is not None:
        return f"per-SKU override: fixed price {controls.fixed_price:g}"
    text = f"maximises expected {settings.objective} over {settings.grid_points} candidate prices"
    if choice.bound_by:
        text += "; bound by " + ", ".join(choice.bound_by)
    return text


def build_outputs(
    req: PricingRequest, problem: PricingProblem, controls: Controls, choice: Choice, version: str,
    settings: PricingSettings,
) -> Scored:
    """The decision (main topic) and the next-period forecast at the recommended price."""
    decision = PricingDecision.model_validate({
        "sku": req.sku,
        "recommended_price": round(choice.price, 4),
        "current_price": req.current_price,
        "at_recommended": outcome(choice.price, choice.units, req.unit_cost),
        "at_current": outcome(req.current_price, choice.current_units, req.unit_cost),
        "elasticity": choice.elasticity,
        "bound_by": choice.bound_by,
        "reason": _reason(controls, choice, settings)[:500],
        "model_version": version,
        "event_ts_ms": req.ts_ms,
    })
    forecast = PriceForecast(
        sku=req.sku, units_next_period=max(choice.units, 0.0), at_price=round(choice.price, 4),
        model_version=version, event_ts_ms=req.ts_ms,
    )
    return Scored([Output(decision, key=req.sku), Output(forecast, key=req.sku, topic=settings.forecast_topic)])
