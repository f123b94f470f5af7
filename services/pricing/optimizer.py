"""Batched price optimisation: one demand-model call scores every candidate of a micro-batch.

Each request gets ``K`` candidate prices inside its guardrail interval (snapped to the price
ending when one fits) plus its current price as column ``K``. The whole ``[N, K + 1]`` grid
goes through the demand model in ONE call; the best candidate by expected profit (or
revenue) wins. Candidates never leave the interval, so the choice respects the guardrails
by construction; :func:`services.pricing.guardrails.violations` double-checks it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Literal, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from services.pricing.features import DemandContext, Float32Array, context_matrix, log_price_ratio
from services.pricing.guardrails import LimitColumns, MaskArray, PriceInputs, PriceLimits, names_of

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
    steps = _steps(k)
    grids = (hi - lo)[:, None] * steps
    grids += lo[:, None]
    has_ending = ~np.isnan(ending)
    end = np.where(has_ending, ending, 0.0)
    first = np.ceil(lo - end - 1e-9)
    last = np.floor(hi - end + 1e-9)
    snap = has_ending & (last >= first) & (first >= 0)
    if snap.any():
        whole = np.round(steps * np.maximum(last - first, 0.0)[:, None])
        whole += first[:, None]
        whole += end[:, None]
        np.minimum(np.maximum(whole, lo[:, None], out=whole), hi[:, None], out=whole)
        np.copyto(grids, whole, where=snap[:, None])
    return grids, snap


@functools.lru_cache(maxsize=8)
def _steps(k: int) -> FloatArray:
    steps = np.linspace(0.0, 1.0, k)[None, :]
    steps.flags.writeable = False
    return steps


class ProblemColumns(NamedTuple):
    """:class:`PricingProblem` of a batch, as columns (how the scorer holds a batch)."""

    context: Float32Array
    """The model's ``context`` input, ``[N, N_FEATURES]``."""
    ref_price: FloatArray
    current_price: FloatArray
    unit_cost: FloatArray
    limits: LimitColumns
    ending: FloatArray
    """NaN where there is no price ending."""


class ChoiceColumns(NamedTuple):
    """:class:`Choice` of a batch; ``bound_by`` as name masks (:data:`~services.pricing.guardrails.BIT`)."""

    price: FloatArray
    units: FloatArray
    elasticity: FloatArray
    current_units: FloatArray
    current_elasticity: FloatArray
    bound_by: MaskArray
    ending_applied: npt.NDArray[np.bool_]


def optimise(
    problems: Sequence[PricingProblem], model: DemandModel, k: int, objective: Objective
) -> list[Choice]:
    """Choose a price for every problem with a single ``model.predict`` call."""
    if not problems:
        return []
    columns = ProblemColumns(
        context=context_matrix([p.context for p in problems]),
        ref_price=np.array([p.context.ref_price for p in problems]),
        current_price=np.array([p.inputs.current_price for p in problems]),
        unit_cost=np.array([p.inputs.unit_cost for p in problems]),
        limits=LimitColumns.of([p.limits for p in problems]),
        ending=np.array([np.nan if p.ending is None else p.ending for p in problems]),
    )  # fmt: skip
    chosen = optimise_columns(columns, model, k, objective)
    return [
        Choice(price, u, e, u_now, e_now, names_of(mask), applied)
        for price, u, e, u_now, e_now, mask, applied in zip(*(c.tolist() for c in chosen), strict=True)
    ]


def optimise_columns(problems: ProblemColumns, model: DemandModel, k: int, objective: Objective) -> ChoiceColumns:
    """:func:`optimise` over columns: one ``model.predict`` call for the batch."""
    limits = problems.limits
    grids, endings = candidate_grids(limits.lo, limits.hi, k, problems.ending)
    current = problems.current_price
    prices = np.column_stack([grids, current])  # [N, K + 1]
    units32, elast32 = model.predict(problems.context, log_price_ratio(prices, problems.ref_price))
    units, elast = units32.astype(np.float64), elast32.astype(np.float64)
    cost = problems.unit_cost[:, None]
    value = units * (prices - cost) if objective == "profit" else units * prices
    # Holding the current price is always a candidate when it is inside the limits (even if it
    # does not end in .99), so a price ending never forces a move that earns less.
    holdable = (current >= limits.lo - 1e-9) & (current <= limits.hi + 1e-9)
    value[:, k] = np.where(holdable, value[:, k], -np.inf)
    best = np.argmax(value, axis=1)
    rows = np.arange(len(best))
    price = prices[rows, best]
    return ChoiceColumns(
        price=price, units=units[rows, best], elasticity=elast[rows, best], current_units=units[:, k],
        current_elasticity=elast[:, k], bound_by=_bound_by(limits, grids, price), ending_applied=endings & (best < k),
    )  # fmt: skip


def _bound_by(limits: LimitColumns, grids: FloatArray, price: FloatArray) -> MaskArray:
    """The limits that stopped the optimiser: it chose the lowest or highest candidate."""
    pinned = limits.hi - limits.lo <= 1e-9 * np.maximum(1.0, limits.hi)
    at_lo = pinned | (price <= grids[:, 0])  # grids ascend
    at_hi = pinned | (price >= grids[:, -1])
    return limits.relaxed | np.where(at_lo, limits.lo_by, 0) | np.where(at_hi, limits.hi_by, 0)
