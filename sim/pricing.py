"""SKUs with known demand curves, weekly pricing requests, and the oracle price for regret.

Ground truth (one period = one week)::

    units(p) = base * (p / ref) ** elasticity * season(week) * (competitor / ref) ** cross
               * lift(feature, display, tpr)

Observed units are negative-binomial around ``units(p)`` (mean exact, over-dispersed). For
``elasticity < -1`` profit ``(p - cost) * units(p)`` is unimodal with its maximum at
``cost * e / (1 + e)``, so :meth:`PricingSim.oracle_price` clips that to the floor and ceiling.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from shared.schemas.pricing import PricingRequest
from sim.catalogue import CATEGORIES, CATEGORY_NAMES
from sim.stream import Row, SimStream
from sim.world import EPOCH_MS, World

logger = logging.getLogger(__name__)

WEEK_MS = 7 * 86_400_000
LIFT = {"feature": 1.4, "display": 1.25, "tpr": 1.15}


@dataclass(frozen=True, slots=True)
class PricingConfig:
    n_skus: int = 400
    market: str = "A"
    """Markets differ in their SKUs' parameters (for fine-tuning on a second market)."""
    elasticity_shift: float = 0.0
    cross_elasticity: float = 0.8
    n_competitors: int = 3
    dispersion: float = 20.0
    """Negative-binomial shape: variance = mean + mean^2 / dispersion."""
    p_tpr: float = 0.1
    p_feature: float = 0.08
    p_display: float = 0.1


class PricingSim(SimStream):
    """One request per SKU per week, with the week's observed units as the label."""

    name = "pricing"
    model = PricingRequest
    key_field = "sku"

    def __init__(self, world: World, config: PricingConfig | None = None) -> None:
        super().__init__(world)
        self.config = config or PricingConfig()
        self._build(world.rng("pricing-world", self.config.market))

    def _build(self, rng: np.random.Generator) -> None:
        cfg, cat = self.config, self.world.catalogue
        n = cfg.n_skus
        self.item = rng.choice(cat.n_items, n, replace=False)
        self.category = cat.category[self.item]
        self.ref_price = cat.price[self.item]
        self.unit_cost = np.round(self.ref_price * rng.uniform(0.35, 0.65, n), 2)
        cat_e = np.array([CATEGORIES[c].elasticity for c in self.category])
        self.elasticity = np.minimum(cat_e + rng.normal(0.0, 0.3, n) + cfg.elasticity_shift, -1.1)
        self.base_demand = rng.lognormal(np.log(40.0), 0.8, n)
        self.season_amp = rng.uniform(0.0, 0.35, n)
        self.season_phase = rng.uniform(0.0, 52.0, n)
        self.skus = [f"sku{int(i):05d}" for i in self.item]

    def true_units(
        self,
        sku: ArrayLike,
        price: ArrayLike,
        week_of_year: ArrayLike,
        competitor_price: ArrayLike,
        feature: ArrayLike = False,
        display: ArrayLike = False,
        tpr: ArrayLike = False,
    ) -> NDArray[np.float64]:
        """Expected units next week; every argument broadcasts (``sku`` is the SKU index)."""
        s = np.asarray(sku)
        ref = self.ref_price[s]
        phase = 2 * np.pi * (np.asarray(week_of_year) - self.season_phase[s]) / 52
        season = 1.0 + self.season_amp[s] * np.sin(phase)
        lift = np.where(feature, LIFT["feature"], 1.0) * np.where(display, LIFT["display"], 1.0)
        lift = lift * np.where(tpr, LIFT["tpr"], 1.0)
        comp = (np.asarray(competitor_price) / ref) ** self.config.cross_elasticity
        return self.base_demand[s] * (np.asarray(price) / ref) ** self.elasticity[s] * season * comp * lift  # type: ignore[no-any-return]

    def units_for(self, event: PricingRequest | dict[str, Any], price: ArrayLike) -> NDArray[np.float64]:
        """:meth:`true_units` for the context of one request, at one or many prices."""
        e = event if isinstance(event, dict) else event.model_dump()
        comp = float(np.mean(e["competitor_prices"])) if e["competitor_prices"] else None
        s = self.sku_index(e["sku"])
        return self.true_units(
            s, price, e["week_of_year"], comp or self.ref_price[s], e["feature"], e["display"], e["tpr"]
        )

    def sku_index(self, sku: str) -> int:
        return self._index[sku]

    @cached_property
    def _index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.skus)}

    def profit_regret(self, event: PricingRequest | dict[str, Any], price: float) -> float:
        """``(oracle profit - profit at price) / oracle profit`` under the request's bounds (0 is perfect)."""
        e = event if isinstance(event, dict) else event.model_dump()
        s, cost = self.sku_index(e["sku"]), float(self.unit_cost[self.sku_index(e["sku"])])
        best = self.oracle_price(s, e.get("floor"), e.get("ceiling"))
        top = (best - cost) * float(self.units_for(e, best))
        return (top - (price - cost) * float(self.units_for(e, price))) / top

    def oracle_price(
        self,
        sku: int,
        floor: float | None = None,
        ceiling: float | None = None,
        objective: Literal["profit", "revenue"] = "profit",
    ) -> float:
        """The true optimal price within [floor, ceiling] (context scales demand, not the argmax)."""
        e, cost = float(self.elasticity[sku]), float(self.unit_cost[sku])
        lo = floor if floor is not None else cost
        hi = ceiling if ceiling is not None else float(self.ref_price[sku]) * 3.0
        best = cost * e / (1.0 + e) if objective == "profit" else lo  # revenue falls with price when e < -1
        return float(np.clip(best, lo, hi))

    def chunks(self) -> Iterator[list[Row]]:
        cfg, n, idx = self.config, self.config.n_skus, np.arange(self.config.n_skus)
        rng = self.world.rng(self.name, cfg.market)
        comp_level, recent, week = np.ones(n), np.round(self.base_demand), 0
        floor = np.round(np.maximum(self.unit_cost * 1.05, self.ref_price * 0.6), 2)
        ceiling = np.round(self.ref_price * 1.6, 2)
        best = np.clip(self.unit_cost * self.elasticity / (1.0 + self.elasticity), floor, ceiling)
        while True:
            comp_level = np.clip(comp_level * np.exp(rng.normal(0.0, 0.03, n)), 0.8, 1.25)
            noise = np.exp(rng.normal(0, 0.05, (n, cfg.n_competitors)))
            comp = np.round(self.ref_price[:, None] * comp_level[:, None] * noise, 2)
            tpr = rng.random(n) < cfg.p_tpr
            price = self.ref_price * np.exp(rng.normal(0.0, 0.08, n)) * np.where(tpr, 0.8, 1.0)
            ctx = {"tpr": tpr, "feature": rng.random(n) < cfg.p_feature, "display": rng.random(n) < cfg.p_display}
            col: dict[str, Any] = {
                "price": np.round(np.maximum(price, self.unit_cost * 1.02), 2), "comp": comp, "woy": week % 52 + 1,
                "floor": floor, "ceiling": ceiling, "best": best, "recent": recent, **ctx,
            }  # fmt: skip
            col["mu"] = self.true_units(idx, col["price"], col["woy"], comp.mean(axis=1), **ctx)
            col["best_profit"] = (best - self.unit_cost) * self.true_units(
                idx, best, col["woy"], comp.mean(axis=1), **ctx
            )
            col["observed"] = rng.poisson(col["mu"] * rng.gamma(cfg.dispersion, 1.0 / cfg.dispersion, n))
            col["stock"] = rng.poisson(np.maximum(col["mu"], 1.0) * rng.uniform(0.3, 4.0, n))
            col["ts"] = EPOCH_MS + week * WEEK_MS + np.sort(rng.integers(0, WEEK_MS // 7, n))  # requests on day one
            yield self._rows(col)
            recent, week = col["observed"].astype(float), week + 1

    def _rows(self, col: dict[str, Any]) -> list[Row]:
        lists = {k: v.tolist() for k, v in col.items() if isinstance(v, np.ndarray)}
        cats = [CATEGORY_NAMES[c] for c in self.category.tolist()]
        cost, elasticity = self.unit_cost.tolist(), self.elasticity.tolist()
        rows: list[Row] = []
        for i in range(self.config.n_skus):
            event = {
                "sku": self.skus[i], "category": cats[i], "current_price": lists["price"][i],
                "unit_cost": cost[i], "stock": lists["stock"][i], "competitor_prices": lists["comp"][i],
                "recent_units": lists["recent"][i], "feature": lists["feature"][i], "display": lists["display"][i],
                "tpr": lists["tpr"][i], "week_of_year": col["woy"], "day_of_week": 0, "floor": lists["floor"][i],
                "ceiling": lists["ceiling"][i], "ts_ms": lists["ts"][i],
            }  # fmt: skip
            truth = {
                "sku_index": i, "elasticity": elasticity[i], "true_units": lists["mu"][i],
                "observed_units": lists["observed"][i], "oracle_price": lists["best"][i],
                "oracle_profit": lists["best_profit"][i],
            }  # fmt: skip
            rows.append((event, truth))
        return rows
