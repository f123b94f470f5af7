"""Batched price optimisation: one demand-model call scores every candidate of a micro-batch.

Each request gets ``K`` candidate prices inside its guardrail interval (snapped to the price
ending when one fits) plus its current price as column ``K``. The whole ``[N, K + 1]`` grid
goes through the demand model in ONE call; the best candidate by expected profit (or
revenue) wins. Candidates never leave the interval, so the choice respects the guardrails
by construction; :func:`services.pricing.guardrails.violations` double-checks it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from services.pricing.features import DemandContext, context_matrix, log_price_ratio
from services.pricing.guardrails import PriceInputs, PriceLimits

logger = logging.getLogger(__name__)

Objective = Literal["profit", "revenue"]
FloatArray = npt.NDArray[np.float64]


class DemandModel(Protocol):
    """``(context [N, C], log_price_ratio [N, K]) -> (units [N, K], elasticity [N, K])``."""

    def predict(self, context: npt.NDArray[np.float32], log_ratio: npt.NDArray[np.float32]) -> tuple[
        npt.NDArray[np.float32], npt.NDArray[np.float32]
    ]: ...


class PricingProblem(NamedTuple):
    """One request, ready to optimise."""

    context: DemandContext
    inputs: PriceInputs
    limits: PriceLimits
    ending: float | None


class Choice(NamedTuple):
    price: float
    units: float
    elasticity: float
    current_units: float
    current_elasticity: float
    bound_by: tuple[str, ...]
    ending_applied: bool


def candidate_grid(limits: PriceLimits, k: int, ending: float | None) -> tuple[FloatArray, bool]:
    """``k`` prices in ``[lo, hi]``, ascending; snapped to ``n + ending`` when any fits."""
    grids, snapped = candidate_grids(np.array([limits.lo]), np.array([limits.hi]), k, np.array([ending or np.nan]))
    return grids[0], bool(snapped[0])


def candidate_grids(
    lo: FloatArray, hi: FloatArray, k: int, ending: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Vectorised :func:`candidate_grid` for a batch; ``ending`` is NaN where there is none."""
    steps = np.linspace(0.0, 1.0, k)[None, :]
    plain = lo[:, None] + (hi - lo)[:, None] * steps
    end = np.nan_to_num(ending, nan=0.0)
    first = np.ceil(lo - end - 1e-9)
    last = np.floor(hi - end + 1e-9)
    snap = ~np.isnan(ending) & (last >= first) & (first >= 0)
    whole = first[:, None] + np.round(steps * np.maximum(last - first, 0.0)[:, None])
    snapped = np.clip(whole + end[:, None], lo[:, None], hi[:, None])
    return np.where(snap[:, None], snapped, plain), snap


def _bound_by(p: PricingProblem, grid_min: float, grid_max: float, price: float) -> tuple[str, ...]:
    """The limits that stopped the optimiser: it chose the lowest or highest candidate."""
    names = set(p.limits.relaxed)
    pinned = p.limits.hi - p.limits.lo <= 1e-9 * max(1.0, p.limits.hi)
    if pinned or price <= grid_min:
        names.update(p.limits.lo_by)
    if pinned or price >= grid_max:
        names.update(p.limits.hi_by)
    return tuple(sorted(names))


def optimise(
    problems: Sequence[PricingProblem], model: DemandModel, k: int, objective: Objective
) -> list[Choice]:
    """Choose a price for every problem with a single ``model.predict`` call."""
    if not problems:
        return []
    lo = np.array([p.limits.lo for p in problems])
    hi = np.array([p.limits.hi for p in problems])
    ending = np.array([np.nan if p.ending is None else p.ending for p in problems])
    grids, endings = candidate_grids(lo, hi, k, ending)
    current = np.array([p.inputs.current_price for p in problems])
    prices = np.column_stack([grids, current])  # [N, K + 1]
    ref = np.array([p.context.ref_price for p in problems])
    units32, elast32 = model.predict(context_matrix([p.context for p in problems]), log_price_ratio(prices, ref))
    units, elast = units32.astype(np.float64), elast32.astype(np.float64)
    cost = np.array([p.inputs.unit_cost for p in problems])[:, None]
    value = units * (prices - cost) if objective == "profit" else units * prices
    # Holding the current price is always a candidate when it is inside the limits (even if it
    # does not end in .99), so a price ending never forces a move that earns less.
    holdable = (current >= lo - 1e-9) & (current <= hi + 1e-9)
    value[:, k] = np.where(holdable, value[:, k], -np.inf)
    best = np.argmax(value, axis=1)
    return _choices(problems, prices, units, elast, best, endings)


def _choices(
    problems: Sequence[PricingProblem], prices: FloatArray, units: FloatArray, elast: FloatArray,
    best: npt.NDArray[np.intp], endings: npt.NDArray[np.bool_],
) -> list[Choice]:
    """One :class:`Choice` per row; the columns are gathered for the whole batch first."""
    rows = np.arange(len(problems))
    k = prices.shape[1] - 1
    columns = zip(
        problems, best.tolist(), prices[rows, best].tolist(), units[rows, best].tolist(),
        elast[rows, best].tolist(), units[:, k].tolist(), elast[:, k].tolist(),
        prices[:, :k].min(axis=1).tolist(), prices[:, :k].max(axis=1).tolist(), endings.tolist(), strict=True,
    )  # fmt: skip
    return [
        Choice(
            price=price, units=u, elasticity=e, current_units=u_now, current_elasticity=e_now,
            bound_by=_bound_by(p, lo, hi, price), ending_applied=snapped and b < k,
        )
        for p, b, price, u, e, u_now, e_now, lo, hi, snapped in columns
    ]
