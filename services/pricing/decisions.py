"""From a request to the model's context, and from the chosen prices to the output records."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from statistics import fmean
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from services.pricing.features import DemandContext
from services.pricing.guardrails import FloatArray, MaskArray, names_of
from services.pricing.optimizer import ChoiceColumns
from services.pricing.overrides import ControlColumns, Controls
from services.pricing.settings import PricingSettings
from shared.errors import ScoringError
from shared.schemas.pricing import PriceForecast, PricingDecision, PricingRequest
from shared.schemas.rows import Constant, RowEncoder

logger = logging.getLogger(__name__)

DECISIONS = RowEncoder(PricingDecision)
FORECASTS = RowEncoder(PriceForecast)


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


class Outputs(NamedTuple):
    """A batch's records: the decisions (main topic), the forecasts, and the recommended prices."""

    decisions: list[bytes]
    forecasts: list[bytes]
    recommended: FloatArray


def reasons(controls: ControlColumns, bound_by: MaskArray, settings: PricingSettings) -> list[str]:
    """Why each row got its price: one text per distinct set of binding guardrails, unless an
    operator's kill switch or fixed price decided it."""
    plain = f"maximises expected {settings.objective} over {settings.grid_points} candidate prices"
    masks = bound_by.tolist()
    texts = {m: (plain + "; bound by " + ", ".join(names_of(m)) if m else plain)[:500] for m in set(masks)}
    out = [texts[m] for m in masks]
    for row in np.flatnonzero(controls.kill | ~np.isnan(controls.fixed_price)).tolist():
        out[row] = _operator_reason(controls.of_row(row))[:500]
    return out


def _operator_reason(controls: Controls) -> str:
    if controls.kill_switch is not None:
        return f"{controls.kill_switch}; holding the current price"
    return f"per-SKU override: fixed price {controls.fixed_price:g}"


def encode_outputs(
    sku: Sequence[str], current: FloatArray, cost: FloatArray, ts_ms: npt.NDArray[np.int64], choice: ChoiceColumns,
    reason: Sequence[str], version: str,
) -> Outputs:
    """The decision and the next-period forecast at the recommended price, per row, encoded in bulk."""
    price, recommended = choice.price, round4(choice.price)
    units = np.maximum(choice.units, 0.0)
    units_now = np.maximum(choice.current_units, 0.0)
    masks = choice.bound_by.tolist()
    names = {m: names_of(m) for m in set(masks)}
    decisions = DECISIONS.encode(len(masks), {
        "sku": sku,
        "recommended_price": recommended,
        "current_price": current,
        "at_recommended": _outcomes(recommended, units, units * price, units * (price - cost)),
        "at_current": _outcomes(round4(current), units_now, units_now * current, units_now * (current - cost)),
        "elasticity": choice.elasticity,
        "bound_by": [names[m] for m in masks],
        "reason": reason,
        "model_version": Constant(version),
        "event_ts_ms": ts_ms,
    })  # fmt: skip
    forecasts = FORECASTS.encode(len(masks), {
        "sku": sku, "units_next_period": units, "at_price": recommended, "model_version": Constant(version),
        "event_ts_ms": ts_ms,
    })  # fmt: skip
    return Outputs(decisions, forecasts, recommended)


def round4(x: FloatArray) -> FloatArray:
    """``round(v, 4)`` of every value, to the bit (Python's is correctly rounded, ``np.round`` is not).

    ``rint(x * 1e4)`` is the right integer unless ``x * 1e4`` lies within a few ulps of a half;
    those few values are rounded by Python. The division of that integer by 1e4 is correctly
    rounded, as is Python's result.
    """
    scaled = x * 1e4
    out = np.rint(scaled) / 1e4
    half = np.abs(scaled - np.floor(scaled) - 0.5) <= 1e-9 + 1e-15 * np.abs(scaled)
    for row in np.flatnonzero(half | ~(np.abs(scaled) < 2.0**52)).tolist():
        out[row] = round(float(x[row]), 4)
    return out


def _outcomes(price: FloatArray, units: FloatArray, revenue: FloatArray, profit: FloatArray) -> list[dict[str, float]]:
    """The nested :class:`~shared.schemas.pricing.Outcome` of each row (checked by the encoder's model)."""
    columns = np.stack([price, units, revenue, profit])
    if not np.isfinite(columns).all():
        raise ScoringError("an Outcome has non-finite values")
    return [{"price": p, "units": u, "revenue": r, "profit": q} for p, u, r, q in zip(*columns.tolist(), strict=True)]
