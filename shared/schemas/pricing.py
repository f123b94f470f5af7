"""Pricing: ``pricing.requests`` in (key ``sku``); ``pricing.decisions`` and ``pricing.forecasts`` out."""

from __future__ import annotations

import logging
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints, model_validator

from shared.schemas.base import Id, InputEvent, ModelVersion, Name, OutputRecord, TsMs

logger = logging.getLogger(__name__)

MAX_COMPETITORS = 20
Price = Annotated[float, Field(gt=0.0, le=1e7)]

GUARDRAIL_NAMES = (
    "floor",
    "ceiling",
    "min_margin",
    "max_change_per_decision",
    "max_change_per_day",
    "price_ending",
    "low_stock",
    "kill_switch",
    "override",
)
"""Guardrail names used in :attr:`PricingDecision.bound_by` (documented, not enforced)."""
GuardrailName = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")]


class PricingRequest(InputEvent):
    """A request to (re)price one SKU, with its cost, stock, market and calendar context."""

    sku: Id
    category: Name
    current_price: Price
    unit_cost: float = Field(ge=0.0, le=1e7)
    stock: int = Field(ge=0, le=10**9)
    competitor_prices: tuple[Annotated[Price, Strict()], ...] = Field(
        default=(), max_length=MAX_COMPETITORS, strict=False
    )
    """A JSON array; ``strict=False`` only lets Python callers pass a list (items stay strict)."""
    recent_units: float = Field(ge=0.0, le=1e9, description="units sold in the last period")
    feature: bool = Field(default=False, description="featured in the circular/ad")
    display: bool = Field(default=False, description="in-store/on-site display")
    tpr: bool = Field(default=False, description="temporary price reduction running")
    week_of_year: int = Field(ge=1, le=53)
    day_of_week: int = Field(ge=0, le=6, description="0 = Monday")
    floor: Price | None = None
    ceiling: Price | None = None
    ts_ms: TsMs

    @model_validator(mode="after")
    def _bounds_consistent(self) -> PricingRequest:
        if self.floor is not None and self.ceiling is not None and self.floor > self.ceiling:
            raise ValueError(f"floor {self.floor} is above ceiling {self.ceiling}")
        if self.ceiling is not None and self.unit_cost >= self.ceiling:
            raise ValueError(f"cost above ceiling: unit_cost {self.unit_cost} >= ceiling {self.ceiling}")
        return self


class Outcome(BaseModel):
    """Expected results of selling at one price for the next period."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    price: float = Field(gt=0.0)
    units: float = Field(ge=0.0)
    revenue: float = Field(ge=0.0)
    profit: float


class PricingDecision(OutputRecord):
    """The recommended price, what it is expected to earn, and what bound it."""

    sku: str
    recommended_price: float = Field(gt=0.0)
    current_price: float = Field(gt=0.0)
    at_recommended: Outcome
    at_current: Outcome
    elasticity: float = Field(description="d log(units) / d log(price) at the recommended price")
    bound_by: tuple[GuardrailName, ...] = Field(default=(), max_length=len(GUARDRAIL_NAMES) + 8)
    reason: str = Field(max_length=500)
    model_version: ModelVersion
    event_ts_ms: int


class PriceForecast(OutputRecord):
    """Demand forecast for the next period at a given price (for inventory planning)."""

    sku: str
    units_next_period: float = Field(ge=0.0)
    at_price: float = Field(gt=0.0)
    model_version: ModelVersion
    event_ts_ms: int
