"""Property tests: every price the optimiser can choose respects every guardrail."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.pricing.features import DemandContext
from services.pricing.guardrails import (
    GuardrailConfig,
    Infeasible,
    PriceInputs,
    hard_bounds,
    is_low_stock,
    price_limits,
    snap_ending,
    violations,
)
from services.pricing.optimizer import PricingProblem, candidate_grid, optimise

prices = st.floats(min_value=0.2, max_value=500.0, allow_nan=False)


@st.composite
def inputs_and_config(draw: st.DrawFn) -> tuple[PriceInputs, GuardrailConfig]:
    current = draw(prices)
    cost = current * draw(st.floats(0.0, 1.5))
    floor = draw(st.one_of(st.none(), st.floats(0.1, 2.0).map(lambda r: current * r)))
    ceiling = draw(st.one_of(st.none(), st.floats(0.3, 3.0).map(lambda r: current * r)))
    anchor = current * draw(st.floats(0.6, 1.6))
    inp = PriceInputs(current, cost, draw(st.integers(0, 500)), draw(st.floats(0.0, 200.0)), floor, ceiling, anchor)
    cfg = GuardrailConfig(
        min_margin=draw(st.floats(0.0, 0.5)),
        max_change_per_decision=draw(st.floats(0.01, 0.5)),
        max_change_per_day=draw(st.floats(0.01, 0.8)),
        low_stock_units=draw(st.integers(0, 50)),
        low_stock_cover=draw(st.floats(0.0, 3.0)),
        price_ending=draw(st.sampled_from([None, 0.99, 0.95, 0.49])),
    )
    return inp, cfg


class RandomMonotoneDemand:
    """A demand model with random (but decreasing) curves, so the optimum lands anywhere."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def predict(self, context: np.ndarray, log_ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        elasticity = -self.rng.uniform(0.1, 6.0, size=(len(context), 1))
        units = np.exp(3.0 + elasticity * log_ratio)
        return units.astype(np.float32), np.broadcast_to(elasticity, log_ratio.shape).astype(np.float32)


@settings(max_examples=200, deadline=None)
@given(case=inputs_and_config(), seed=st.integers(0, 2**16), objective=st.sampled_from(["profit", "revenue"]))
def test_every_decision_respects_every_guardrail(case, seed, objective):
    inp, cfg = case
    try:
        limits = price_limits(inp, cfg)
    except Infeasible:
        lower, upper = hard_bounds(inp, cfg)
        assert max(lower.values()) > min(upper.values())  # infeasible only when the hard limits clash
        return
    ctx = DemandContext(ref_price=inp.current_price, recent_units=inp.recent_units, recent_price=inp.current_price)
    [choice] = optimise([PricingProblem(ctx, inp, limits, cfg.price_ending)], RandomMonotoneDemand(seed), 48, objective)
    assert violations(choice.price, inp, cfg, limits.relaxed) == []
    # Relaxing is a last resort: only when no price satisfies every guardrail at once.
    if limits.relaxed:
        assert limits.lo == limits.hi
    if is_low_stock(inp, cfg) and "low_stock" not in limits.relaxed:
        assert choice.price >= inp.current_price - 1e-9
    if choice.ending_applied:
        cents = (choice.price - cfg.price_ending) % 1.0
        assert min(cents, 1.0 - cents) < 1e-6


def test_hard_limits_win_over_rate_limits_and_the_relaxation_is_named():
    # Cost went up 50 %: margin needs 1.575 but the rate limit allows at most 1.10.
    inp = PriceInputs(1.0, 1.5, 100, 5.0, None, None, 1.0)
    limits = price_limits(inp, GuardrailConfig(price_ending=None))
    assert limits.lo == limits.hi == pytest.approx(1.575)
    assert set(limits.relaxed) == {"max_change_per_decision", "max_change_per_day"}


def test_cost_above_ceiling_is_infeasible():
    with pytest.raises(Infeasible, match="ceiling"):
        price_limits(PriceInputs(10.0, 12.0, 100, 5.0, None, 11.0, 10.0), GuardrailConfig())


def test_low_stock_forbids_discounts():
    inp = PriceInputs(10.0, 2.0, 3, 5.0, None, None, 10.0)
    limits = price_limits(inp, GuardrailConfig())
    assert limits.lo == 10.0 and "low_stock" in limits.lo_by


def test_price_endings_snap_inside_the_interval():
    limits = price_limits(PriceInputs(10.0, 1.0, 100, 5.0, None, None, 10.0), GuardrailConfig())
    grid, applied = candidate_grid(limits, 8, 0.99)
    assert applied and set(np.round(grid % 1.0, 2)) == {0.99} and grid.min() >= 9.0 and grid.max() <= 11.0
    assert snap_ending(10.2, 0.99) == pytest.approx(9.99)
