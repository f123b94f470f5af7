"""Profit regret on the simulated shop, where the true demand curves (and the oracle) are known.

Policies are compared on held-out weeks: for each request, the true expected profit at the
chosen price versus at the oracle price (the true optimum within the request's floor and
ceiling). ``regret = 1 - sum(profit(policy)) / sum(profit(oracle))``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from export.pricing.baselines import bias, wape
from export.pricing.model import DemandNet
from export.pricing.sim_data import SimRows
from export.pricing.train import TrainConfig, TrainData, fit, predict
from services.pricing.guardrails import GuardrailConfig, PriceInputs, price_limits
from services.pricing.optimizer import PricingProblem, optimise

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Policy = Callable[[SimRows], FloatArray]

UNCONSTRAINED = GuardrailConfig(
    min_margin=0.0, max_change_per_decision=10.0, max_change_per_day=10.0, low_stock_units=0,
    low_stock_cover=0.0, price_ending=None,
)
"""Only floor, ceiling and cost: the same feasible set the oracle is computed in."""


class TorchDemand:
    """The optimiser's ``DemandModel`` protocol over a torch :class:`DemandNet`."""

    def __init__(self, net: DemandNet) -> None:
        self.net = net

    def predict(self, context: npt.NDArray[np.float32], log_ratio: npt.NDArray[np.float32]) -> tuple[
        npt.NDArray[np.float32], npt.NDArray[np.float32]
    ]:
        with torch.no_grad():
            units, elast = self.net(torch.from_numpy(context), torch.from_numpy(log_ratio))
        return units.numpy(), elast.numpy()


def sim_train_data(rows: SimRows) -> TrainData:
    return TrainData(rows.context, rows.price, rows.ref_price, rows.observed)


def true_profit(rows: SimRows, prices: FloatArray) -> FloatArray:
    units = np.array([float(rows.sim.units_for(r, p)) for r, p in zip(rows.requests, prices, strict=True)])
    costs = np.array([r.unit_cost for r in rows.requests])
    return np.asarray(units * (prices - costs), dtype=np.float64)


def oracle_prices(rows: SimRows) -> FloatArray:
    pairs = zip(rows.sku_index, rows.requests, strict=True)
    return np.array([rows.sim.oracle_price(int(s), r.floor, r.ceiling) for s, r in pairs])


def model_policy(net: DemandNet, guardrails: GuardrailConfig = UNCONSTRAINED, k: int = 48) -> Policy:
    def choose(rows: SimRows) -> FloatArray:
        problems = []
        for req, ctx in zip(rows.requests, rows.contexts, strict=True):
            inp = PriceInputs(req.current_price, req.unit_cost, req.stock, req.recent_units, req.floor, req.ceiling,
                              req.current_price)
            problems.append(PricingProblem(ctx, inp, price_limits(inp, guardrails), guardrails.price_ending))
        return np.array([c.price for c in optimise(problems, TorchDemand(net), k, "profit")])
    return choose


def markup_policy(markup: float) -> Policy:
    def choose(rows: SimRows) -> FloatArray:
        prices = [min(max(r.unit_cost * (1 + markup), r.floor or 0.0), r.ceiling or np.inf) for r in rows.requests]
        return np.array(prices)
    return choose


def loglog_policy(train: SimRows) -> Policy:
    """Per-SKU OLS of log units on log price, promotions, season and competitor price."""
    elasticity: dict[int, float] = {}
    for sku in np.unique(train.sku_index):
        idx = np.nonzero(train.sku_index == sku)[0]
        reqs = [train.requests[i] for i in idx]
        x = np.array([[1.0, np.log(r.current_price), r.tpr, r.feature, r.display,
                       np.log(np.mean(r.competitor_prices)), np.sin(2 * np.pi * r.week_of_year / 52),
                       np.cos(2 * np.pi * r.week_of_year / 52)] for r in reqs])
        coef, *_ = np.linalg.lstsq(x, np.log(train.observed[idx] + 0.5), rcond=None)
        elasticity[int(sku)] = float(coef[1])

    def choose(rows: SimRows) -> FloatArray:
        out = []
        for sku, r in zip(rows.sku_index, rows.requests, strict=True):
            e = elasticity.get(int(sku), -2.0)
            best = r.unit_cost * e / (1 + e) if e < -1 else (r.ceiling or r.current_price * 2)
            out.append(min(max(best, r.floor or 0.0), r.ceiling or np.inf))
        return np.array(out)
    return choose


@dataclass(frozen=True)
class RegretRow:
    policy: str
    regret: float
    profit: float


def regret_table(test: SimRows, policies: dict[str, Policy]) -> list[RegretRow]:
    oracle = true_profit(test, oracle_prices(test)).sum()
    rows = []
    for name, policy in policies.items():
        profit = float(true_profit(test, policy(test)).sum())
        rows.append(RegretRow(name, 1.0 - profit / oracle, profit))
        logger.info("%-28s regret %.4f", name, rows[-1].regret)
    return rows


def forecast_scores(net: DemandNet, test: SimRows) -> dict[str, float]:
    units, _ = predict(net, test.context, test.price, test.ref_price)
    truth = np.array([float(test.sim.units_for(r, r.current_price)) for r in test.requests])
    return {
        "wape": wape(test.observed, units), "bias": bias(test.observed, units),
        "wape_vs_true_mean": wape(truth, units),
    }


def train_sim(rows: SimRows, config: TrainConfig, model: DemandNet | None = None) -> tuple[DemandNet, float]:
    return fit(sim_train_data(rows), config, model)
