"""Loaders for the real pricing data sets, read from the data directory at evaluation time.

The dunnhumby data's terms are unclear: it is read in place and never copied into the repo.
Each loader returns a :class:`Panel`: one row per (series, period) with the demand context
(built with the serving code's :func:`services.pricing.features.context_row`), the price and
the units sold. Context uses only *earlier* periods of the same series (no leakage).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from services.pricing.features import DemandContext, context_matrix

logger = logging.getLogger(__name__)

DUNNHUMBY = "pricing-dunnhumby-breakfast-at-the-frat"
OLIST = "pricing-olist-retail-price-kaggle"
LAG_WINDOW = 4
"""Recent demand = mean of the series' previous 4 observed periods."""


def default_data_dir() -> Path:
    """``<repo>/../shared/data`` (the repo root is two levels above this package)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclass(frozen=True)
class Panel:
    """Model-ready rows of a demand panel; all arrays have the same length."""

    context: npt.NDArray[np.float32]
    price: npt.NDArray[np.float64]
    ref_price: npt.NDArray[np.float64]
    units: npt.NDArray[np.float64]
    period: npt.NDArray[np.int64]
    product: npt.NDArray[np.int64]
    store: npt.NDArray[np.int64]
    category: npt.NDArray[np.str_]
    n_periods: int

    def split(self, holdout_periods: int) -> tuple[Panel, Panel]:
        """Train on everything before the last ``holdout_periods`` periods, test on those."""
        cut = self.n_periods - holdout_periods
        return self.take(self.period < cut), self.take(self.period >= cut)

    def take(self, mask: npt.NDArray[np.bool_]) -> Panel:
        return Panel(
            self.context[mask], self.price[mask], self.ref_price[mask], self.units[mask],
            self.period[mask], self.product[mask], self.store[mask], self.category[mask], self.n_periods,
        )

    def __len__(self) -> int:
        return len(self.units)


@dataclass(frozen=True)
class _Obs:
    period: int
    series: tuple[int, int]
    units: float
    price: float
    ref_price: float
    competitor: float | None
    flags: tuple[bool, bool, bool]
    week_of_year: int
    category: str


def _build(observations: Iterable[_Obs], n_periods: int) -> Panel:
    """Attach lagged context to each observation that has at least one earlier period."""
    by_series: dict[tuple[int, int], list[_Obs]] = defaultdict(list)
    for obs in observations:
        by_series[obs.series].append(obs)
    rows: list[_Obs] = []
    contexts: list[DemandContext] = []
    for series in by_series.values():
        series.sort(key=lambda o: o.period)
        for i in range(1, len(series)):
            window = series[max(0, i - LAG_WINDOW) : i]
            obs = series[i]
            contexts.append(
                DemandContext(
                    ref_price=obs.ref_price,
                    recent_units=float(np.mean([w.units for w in window])),
                    recent_price=float(np.mean([w.price for w in window])),
                    competitor_price=obs.competitor,
                    feature=obs.flags[0], display=obs.flags[1], tpr=obs.flags[2],
                    week_of_year=obs.week_of_year, category=obs.category,
                )
            )
            rows.append(obs)
    return Panel(
        context=context_matrix(contexts),
        price=np.array([r.price for r in rows]),
        ref_price=np.array([r.ref_price for r in rows]),
        units=np.array([r.units for r in rows]),
        period=np.array([r.period for r in rows], dtype=np.int64),
        product=np.array([r.series[1] for r in rows], dtype=np.int64),
        store=np.array([r.series[0] for r in rows], dtype=np.int64),
        category=np.array([r.category for r in rows]),
        n_periods=n_periods,
    )


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 else None


def load_dunnhumby(data_dir: Path) -> Panel:
    """Weekly store x UPC panel (156 weeks); rows without a price are dropped."""
    root = data_dir / DUNNHUMBY
    with (root / "products.csv").open(newline="") as f:
        categories = {int(r["upc_id"]): r["category"] for r in csv.DictReader(f)}
    # Small dense product ids (LightGBM categoricals and plots want them).
    upc_index = {upc: i for i, upc in enumerate(sorted(categories))}
    with gzip.open(root / "transactions.csv.gz", "rt", newline="") as f:
        raw = list(csv.DictReader(f))
    weeks = sorted({r["week_end_date"] for r in raw})
    week_index = {w: i for i, w in enumerate(weeks)}
    observations = []
    for r in raw:
        price = _float(r["price"])
        if price is None:
            continue
        week = dt.date.fromisoformat(r["week_end_date"])
        observations.append(_Obs(
            period=week_index[r["week_end_date"]],
            series=(int(r["store_id"]), upc_index[int(r["upc_id"])]),
            units=float(r["units"]), price=price, ref_price=_float(r["base_price"]) or price,
            competitor=None, flags=(r["feature"] == "1", r["display"] == "1", r["tpr_only"] == "1"),
            week_of_year=week.isocalendar()[1], category=categories.get(int(r["upc_id"]), ""),
        ))
    panel = _build(observations, len(weeks))
    logger.info("dunnhumby: %d rows, %d weeks, %d products", len(panel), len(weeks), len(set(panel.product)))
    return panel


def load_olist(data_dir: Path) -> Panel:
    """Monthly product panel (20 months) with the first competitor's price."""
    with (data_dir / OLIST / "retail_price.csv").open(newline="") as f:
        raw = list(csv.DictReader(f))
    months = sorted({(int(r["year"]), int(r["month"])) for r in raw})
    month_index = {m: i for i, m in enumerate(months)}
    products = {p: i for i, p in enumerate(sorted({r["product_id"] for r in raw}))}
    observations = [
        _Obs(
            period=month_index[(int(r["year"]), int(r["month"]))],
            series=(0, products[r["product_id"]]),
            units=float(r["qty"]), price=float(r["unit_price"]),
            ref_price=_float(r["lag_price"]) or float(r["unit_price"]),
            competitor=_float(r["comp_1"]), flags=(False, False, False),
            week_of_year=int(4.345 * (int(r["month"]) - 1)) + 1, category=r["product_category_name"],
        )
        for r in raw
    ]
    return _build(observations, len(months))
