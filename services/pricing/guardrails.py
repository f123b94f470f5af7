"""Price guardrails: the feasible price interval for each SKU and a checker for any decision.

Pure functions, no model and no Kafka, so a property test can hammer them. The order of
precedence when constraints conflict:

1. **hard**: floor, ceiling and minimum margin over cost. If these leave no price the request
   is unpriceable (the scorer dead-letters it).
2. **soft**: the rate limits (per decision, per day) and "no discount on low stock". If they
   leave no price inside the hard interval, the price moves as far as the soft limits allow
   *towards* the hard interval, i.e. the hard-feasible price closest to the soft interval,
   and the decision names the relaxed guardrails.

The rules run over a whole batch at once, one array per field (:func:`limit_columns`); the
functions of one request (:func:`price_limits`, :func:`violations`) call them with one row, so
there is one implementation. Sets of guardrail names travel as bit masks (:data:`BIT`).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

EPS = 1e-9
NAMES: tuple[str, ...] = (
    "ceiling", "floor", "kill_switch", "low_stock", "max_change_per_day", "max_change_per_decision", "min_margin",
    "override",
)  # fmt: skip
"""Every name that can bind a price, sorted: bit ``i`` of a name mask stands for ``NAMES[i]``."""
BIT = {name: 1 << i for i, name in enumerate(NAMES)}

FloatArray = npt.NDArray[np.float64]
MaskArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Number = FloatArray | float
"""A config column: one value per row, or one value for every row of the batch."""
Bounds = dict[str, FloatArray]


@functools.lru_cache(maxsize=512)
def names_of(mask: int) -> tuple[str, ...]:
    """The sorted guardrail names in a mask (a batch holds few distinct masks)."""
    return tuple(name for i, name in enumerate(NAMES) if mask >> i & 1)


def mask_of(names: Sequence[str]) -> int:
    return sum({BIT[name] for name in names})


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


class InputColumns(NamedTuple):
    """:class:`PriceInputs` of a batch, one array per field; NaN where a floor or ceiling is absent."""

    current_price: FloatArray
    unit_cost: FloatArray
    stock: FloatArray
    recent_units: FloatArray
    floor: FloatArray
    ceiling: FloatArray
    day_anchor: FloatArray

    @classmethod
    def of(cls, rows: Sequence[PriceInputs]) -> InputColumns:
        return cls(*(np.array(column, dtype=np.float64) for column in zip(*rows, strict=True)))


class ConfigColumns(NamedTuple):
    """The numeric :class:`GuardrailConfig` fields, per row where per-SKU overrides differ."""

    min_margin: Number
    max_change_per_decision: Number
    max_change_per_day: Number
    default_floor_ratio: Number
    default_ceiling_ratio: Number
    low_stock_units: Number
    low_stock_cover: Number

    @classmethod
    def of(cls, cfg: GuardrailConfig) -> ConfigColumns:
        """One config for every row (plain floats broadcast over the batch)."""
        return cls(*(float(getattr(cfg, name)) for name in cls._fields))

    @classmethod
    def per_row(cls, configs: Sequence[GuardrailConfig]) -> ConfigColumns:
        return cls(*(np.array([getattr(c, name) for c in configs], dtype=np.float64) for name in cls._fields))

    def take(self, rows: npt.NDArray[np.intp]) -> ConfigColumns:
        """These rows of per-row columns (:meth:`per_row`), e.g. each row's SKU's config."""
        return ConfigColumns(*(np.asarray(column)[rows] for column in self))


class LimitColumns(NamedTuple):
    """:class:`PriceLimits` of a batch; name sets are masks. Rows not ``feasible`` are unpriceable."""

    lo: FloatArray
    hi: FloatArray
    lo_by: MaskArray
    hi_by: MaskArray
    relaxed: MaskArray
    feasible: BoolArray
    hard_lo: FloatArray
    hard_hi: FloatArray
    hard_lo_by: MaskArray
    hard_hi_by: MaskArray

    @classmethod
    def of(cls, rows: Sequence[PriceLimits]) -> LimitColumns:
        """Feasible limits of single requests, stacked."""
        lo, hi = (np.array(column, dtype=np.float64) for column in list(zip(*rows, strict=True))[:2])
        lo_by, hi_by, relaxed = (np.array([mask_of(names) for names in column], dtype=np.int64)
                                 for column in list(zip(*rows, strict=True))[2:])  # fmt: skip
        return cls(lo, hi, lo_by, hi_by, relaxed, np.ones(len(rows), dtype=np.bool_), lo, hi, lo_by, hi_by)

    def infeasible_reason(self, row: int) -> str:
        lo, lo_by = float(self.hard_lo[row]), "/".join(names_of(int(self.hard_lo_by[row])))
        hi, hi_by = float(self.hard_hi[row]), "/".join(names_of(int(self.hard_hi_by[row])))
        return f"{lo_by} {lo:.4g} is above {hi_by} {hi:.4g}"

    def take(self, rows: npt.NDArray[np.intp]) -> LimitColumns:
        return LimitColumns(
            self.lo[rows], self.hi[rows], self.lo_by[rows], self.hi_by[rows], self.relaxed[rows], self.feasible[rows],
            self.hard_lo[rows], self.hard_hi[rows], self.hard_lo_by[rows], self.hard_hi_by[rows],
        )

    def limits(self, row: int) -> PriceLimits:
        masks = (int(self.lo_by[row]), int(self.hi_by[row]), int(self.relaxed[row]))
        return PriceLimits(float(self.lo[row]), float(self.hi[row]), *map(names_of, masks))


def _tightest(bounds: Mapping[str, FloatArray], lower: bool) -> tuple[FloatArray, MaskArray]:
    """The tightest bound per row, and the mask of every bound within a relative 1e-9 of it."""
    stacked = np.stack(list(bounds.values()))
    value = stacked.max(axis=0) if lower else stacked.min(axis=0)
    near = np.abs(stacked - value) <= 1e-9 * np.maximum(1.0, value)
    bits = np.array([BIT[name] for name in bounds], dtype=np.int64)
    return value, bits @ near


def _hard(inp: InputColumns, cfg: ConfigColumns) -> tuple[Bounds, Bounds]:
    floor = np.where(np.isnan(inp.floor), inp.current_price * cfg.default_floor_ratio, inp.floor)
    ceiling = np.where(np.isnan(inp.ceiling), inp.current_price * cfg.default_ceiling_ratio, inp.ceiling)
    return {"floor": floor, "min_margin": inp.unit_cost * (1.0 + cfg.min_margin)}, {"ceiling": ceiling}


def _low_stock(inp: InputColumns, cfg: ConfigColumns) -> BoolArray:
    return (inp.stock < cfg.low_stock_units) | (inp.stock < cfg.low_stock_cover * inp.recent_units)


def _soft(inp: InputColumns, cfg: ConfigColumns) -> tuple[Bounds, Bounds]:
    """Rate limits and "no discount on low stock" (``-inf``, i.e. no bound, where stock is fine)."""
    lower = {
        "max_change_per_decision": inp.current_price * (1.0 - cfg.max_change_per_decision),
        "max_change_per_day": inp.day_anchor * (1.0 - cfg.max_change_per_day),
        "low_stock": np.where(_low_stock(inp, cfg), inp.current_price, -np.inf),
    }
    upper = {
        "max_change_per_decision": inp.current_price * (1.0 + cfg.max_change_per_decision),
        "max_change_per_day": inp.day_anchor * (1.0 + cfg.max_change_per_day),
    }
    return lower, upper


def limit_columns(inp: InputColumns, cfg: ConfigColumns) -> LimitColumns:
    """The interval every candidate price must lie in, per row (see the module docstring)."""
    hard_lo, hard_hi = _hard(inp, cfg)
    soft_lo, soft_hi = _soft(inp, cfg)
    h_lo, h_lo_by = _tightest(hard_lo, lower=True)
    h_hi, h_hi_by = _tightest(hard_hi, lower=False)
    lo, lo_by = _tightest({**hard_lo, **soft_lo}, lower=True)
    hi, hi_by = _tightest({**hard_hi, **soft_hi}, lower=False)
    limits = LimitColumns(
        lo=lo, hi=np.maximum(lo, hi), lo_by=lo_by, hi_by=hi_by, relaxed=np.zeros(len(lo), dtype=np.int64),
        feasible=h_lo <= h_hi + EPS, hard_lo=h_lo, hard_hi=h_hi, hard_lo_by=h_lo_by, hard_hi_by=h_hi_by,
    )  # fmt: skip
    fits = lo <= hi + EPS
    if fits.all():
        return limits
    # Soft limits conflict with the hard interval or with each other: take the hard-feasible
    # price nearest to what the soft limits want, and name the soft limits it breaks.
    s_lo = np.stack(list(soft_lo.values())).max(axis=0)
    s_hi = np.stack(list(soft_hi.values())).min(axis=0)
    point = np.minimum(np.maximum(np.minimum(np.maximum(inp.current_price, s_lo), s_hi), h_lo), h_hi)
    by = np.where(point <= h_lo + EPS, h_lo_by, np.where(point >= h_hi - EPS, h_hi_by, 0))
    return limits._replace(
        lo=np.where(fits, lo, point), hi=np.where(fits, limits.hi, point), lo_by=np.where(fits, lo_by, by),
        hi_by=np.where(fits, hi_by, by), relaxed=np.where(fits, 0, violation_mask(point, inp, cfg)),
    )


def violation_mask(price: FloatArray, inp: InputColumns, cfg: ConfigColumns) -> MaskArray:
    """The mask of every guardrail ``price`` breaks, per row (0 where it respects them all)."""
    tol = 1e-6 * np.maximum(1.0, price)
    hard_lo, hard_hi = _hard(inp, cfg)
    soft_lo, soft_hi = _soft(inp, cfg)
    mask = np.zeros(len(price), dtype=np.int64)
    for name, bound in (*hard_lo.items(), *soft_lo.items()):
        mask |= np.where(price < bound - tol, BIT[name], 0)
    for name, bound in (*hard_hi.items(), *soft_hi.items()):
        mask |= np.where(price > bound + tol, BIT[name], 0)
    return mask


def hard_within(price: FloatArray, inp: InputColumns, cfg: ConfigColumns) -> FloatArray:
    """``price`` moved inside floor, ceiling and minimum margin (an operator's fixed price)."""
    (floor, margin), (ceiling,) = (b.values() for b in _hard(inp, cfg))
    return np.minimum(np.maximum(np.maximum(price, floor), margin), ceiling)


# -- one request ---------------------------------------------------------------------------------


def hard_bounds(inp: PriceInputs, cfg: GuardrailConfig) -> tuple[dict[str, float], dict[str, float]]:
    lower, upper = _hard(InputColumns.of([inp]), ConfigColumns.of(cfg))
    return {n: float(b[0]) for n, b in lower.items()}, {n: float(b[0]) for n, b in upper.items()}


def is_low_stock(inp: PriceInputs, cfg: GuardrailConfig) -> bool:
    return bool(_low_stock(InputColumns.of([inp]), ConfigColumns.of(cfg))[0])


def price_limits(inp: PriceInputs, cfg: GuardrailConfig) -> PriceLimits:
    """The interval every candidate price must lie in. Raises :class:`Infeasible`."""
    limits = limit_columns(InputColumns.of([inp]), ConfigColumns.of(cfg))
    if not limits.feasible[0]:
        raise Infeasible(limits.infeasible_reason(0))
    return limits.limits(0)


def snap_ending(price: float, ending: float) -> float:
    """The nearest ``n + ending`` price (``n >= 0``)."""
    return max(ending, math.floor(price - ending + 0.5) + ending)


def violations(price: float, inp: PriceInputs, cfg: GuardrailConfig, relaxed: tuple[str, ...] = ()) -> list[str]:
    """Every guardrail ``price`` breaks (empty when it respects them all). Relaxed ones excused."""
    mask = violation_mask(np.array([price]), InputColumns.of([inp]), ConfigColumns.of(cfg))
    return [name for name in names_of(int(mask[0])) if name not in relaxed]
