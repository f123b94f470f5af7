"""Price guardrails: the feasible price interval for one SKU and a checker for any decision.

Pure functions, no model and no Kafka, so a property test can hammer them. The order of
precedence when constraints conflict:

1. **hard**: floor, ceiling and minimum margin over cost. If these leave no price the request
   is unpriceable (the scorer dead-letters it).
2. **soft**: the rate limits (per decision, per day) and "no discount on low stock". If they
   leave no price inside the hard interval, the price moves as far as the soft limits allow
   *towards* the hard interval, i.e. the hard-feasible price closest to the soft interval,
   and the decision names the relaxed guardrails.
"""

from __future__ import annotations

import logging
import math
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

EPS = 1e-9


class GuardrailConfig(BaseModel):
    """Guardrail knobs (service defaults; per-SKU overrides replace single fields)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_margin: float = Field(0.05, ge=0.0, le=10.0)
    """Price must be at least ``unit_cost * (1 + min_margin)``."""
    max_change_per_decision: float = Field(0.10, gt=0.0, le=10.0)
    """At most ±10 % away from the current price per decision."""
    max_change_per_day: float = Field(0.20, gt=0.0, le=10.0)
    """At most ±20 % away from the first price seen that (UTC) day."""
    default_floor_ratio: float = Field(0.5, gt=0.0, le=1.0)
    """Floor when the request has none: this fraction of the current price."""
    default_ceiling_ratio: float = Field(2.0, ge=1.0, le=100.0)
    """Ceiling when the request has none: this multiple of the current price."""
    low_stock_units: int = Field(10, ge=0)
    """Stock below this (or below ``low_stock_cover`` periods of demand) means "no discount"."""
    low_stock_cover: float = Field(1.0, ge=0.0)
    price_ending: float | None = Field(0.99, ge=0.0, lt=1.0)
    """Snap candidate prices to ``n + price_ending`` (``None``: no snapping)."""


class Infeasible(ValueError):
    """Floor, ceiling and minimum margin leave no price: the request cannot be priced."""


class PriceInputs(NamedTuple):
    """What the guardrails need from a request and the SKU's state."""

    current_price: float
    unit_cost: float
    stock: int
    recent_units: float
    floor: float | None
    ceiling: float | None
    day_anchor: float
    """The first price of the current day (from the state store); the daily limit is around it."""


class PriceLimits(NamedTuple):
    lo: float
    hi: float
    lo_by: tuple[str, ...]
    """Guardrails whose lower bound equals ``lo``."""
    hi_by: tuple[str, ...]
    relaxed: tuple[str, ...] = ()
    """Soft guardrails that had to give way to the hard ones."""


def _tightest(bounds: dict[str, float], lower: bool) -> tuple[float, tuple[str, ...]]:
    value = max(bounds.values()) if lower else min(bounds.values())
    tolerance = 1e-9 * max(1.0, value)  # once per call: this runs four times per request
    return value, tuple(sorted(n for n, b in bounds.items() if abs(b - value) <= tolerance))


def hard_bounds(inp: PriceInputs, cfg: GuardrailConfig) -> tuple[dict[str, float], dict[str, float]]:
    floor = inp.floor if inp.floor is not None else inp.current_price * cfg.default_floor_ratio
    ceiling = inp.ceiling if inp.ceiling is not None else inp.current_price * cfg.default_ceiling_ratio
    return {"floor": floor, "min_margin": inp.unit_cost * (1.0 + cfg.min_margin)}, {"ceiling": ceiling}


def is_low_stock(inp: PriceInputs, cfg: GuardrailConfig) -> bool:
    return inp.stock < cfg.low_stock_units or inp.stock < cfg.low_stock_cover * inp.recent_units


def soft_bounds(inp: PriceInputs, cfg: GuardrailConfig) -> tuple[dict[str, float], dict[str, float]]:
    lower = {
        "max_change_per_decision": inp.current_price * (1.0 - cfg.max_change_per_decision),
        "max_change_per_day": inp.day_anchor * (1.0 - cfg.max_change_per_day),
    }
    if is_low_stock(inp, cfg):
        lower["low_stock"] = inp.current_price
    upper = {
        "max_change_per_decision": inp.current_price * (1.0 + cfg.max_change_per_decision),
        "max_change_per_day": inp.day_anchor * (1.0 + cfg.max_change_per_day),
    }
    return lower, upper


def price_limits(inp: PriceInputs, cfg: GuardrailConfig) -> PriceLimits:
    """The interval every candidate price must lie in. Raises :class:`Infeasible`."""
    hard_lo, hard_hi = hard_bounds(inp, cfg)
    soft_lo, soft_hi = soft_bounds(inp, cfg)
    h_lo, h_lo_by = _tightest(hard_lo, lower=True)
    h_hi, h_hi_by = _tightest(hard_hi, lower=False)
    if h_lo > h_hi + EPS:
        raise Infeasible(f"{'/'.join(h_lo_by)} {h_lo:.4g} is above {'/'.join(h_hi_by)} {h_hi:.4g}")
    lo, lo_by = _tightest({**hard_lo, **soft_lo}, lower=True)
    hi, hi_by = _tightest({**hard_hi, **soft_hi}, lower=False)
    if lo <= hi + EPS:
        return PriceLimits(lo, max(lo, hi), lo_by, hi_by)
    # Soft limits conflict with the hard interval or with each other: take the hard-feasible
    # price nearest to what the soft limits want, and name the soft limits it breaks.
    s_lo, _ = _tightest(soft_lo, lower=True)
    s_hi, _ = _tightest(soft_hi, lower=False)
    point = min(max(min(max(inp.current_price, s_lo), s_hi), h_lo), h_hi)
    by = h_lo_by if point <= h_lo + EPS else (h_hi_by if point >= h_hi - EPS else ())
    return PriceLimits(point, point, by, by, tuple(violations(point, inp, cfg)))


def snap_ending(price: float, ending: float) -> float:
    """The nearest ``n + ending`` price (``n >= 0``)."""
    return max(ending, math.floor(price - ending + 0.5) + ending)


def violations(price: float, inp: PriceInputs, cfg: GuardrailConfig, relaxed: tuple[str, ...] = ()) -> list[str]:
    """Every guardrail ``price`` breaks (empty when it respects them all). Relaxed ones excused."""
    tol = 1e-6 * max(1.0, price)
    hard_lo, hard_hi = hard_bounds(inp, cfg)
    soft_lo, soft_hi = soft_bounds(inp, cfg)
    broken = {n for n, b in {**hard_lo, **soft_lo}.items() if price < b - tol}
    broken |= {n for n, b in {**hard_hi, **soft_hi}.items() if price > b + tol}
    return sorted(broken - set(relaxed))
