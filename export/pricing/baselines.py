"""Baselines the neural demand model is measured against.

* :class:`LogLogModel`: per product, OLS of ``log(units)`` on ``log(price)``, the promotion
  flags and store fixed effects; the ``log(price)`` coefficient is the product's elasticity.
  Predictions are bias-corrected with Duan's smearing factor.
* :func:`fit_lightgbm`: gradient-boosted trees (Poisson objective) on the same context
  features plus the price ratio and product/store ids. Not monotone, so it only forecasts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from export.pricing.data import Panel
from services.pricing.features import FEATURE_NAMES, log_price_ratio

logger = logging.getLogger(__name__)

_FLAGS = [FEATURE_NAMES.index(n) for n in ("feature", "display", "tpr")]


@dataclass
class _ProductFit:
    coef: npt.NDArray[np.float64]
    stores: dict[int, int]
    smear: float


@dataclass
class LogLogModel:
    """Per-product constant-elasticity regression with store fixed effects."""

    fits: dict[int, _ProductFit] = field(default_factory=dict)

    def _design(self, panel: Panel, mask: npt.NDArray[np.bool_], stores: dict[int, int]) -> npt.NDArray[np.float64]:
        n = int(mask.sum())
        fe = np.zeros((n, len(stores)))
        cols = np.array([stores.get(int(s), -1) for s in panel.store[mask]])
        known = cols >= 0
        fe[np.nonzero(known)[0], cols[known]] = 1.0
        # Unknown stores fall back to the mean store effect.
        fe[~known] = 1.0 / max(1, len(stores))
        own = np.column_stack([np.log(panel.price[mask]), panel.context[mask][:, _FLAGS]])
        return np.column_stack([own, fe])

    def fit(self, panel: Panel) -> LogLogModel:
        for product in np.unique(panel.product):
            mask = (panel.product == product) & (panel.units > 0)
            stores = {int(s): i for i, s in enumerate(np.unique(panel.store[mask]))}
            x = self._design(panel, mask, stores)
            y = np.log(panel.units[mask])
            coef, *_ = np.linalg.lstsq(x, y, rcond=None)
            smear = float(np.mean(np.exp(y - x @ coef)))
            self.fits[int(product)] = _ProductFit(coef, stores, smear)
        return self

    def predict(self, panel: Panel) -> npt.NDArray[np.float64]:
        out = np.zeros(len(panel))
        for product, fit in self.fits.items():
            mask = panel.product == product
            if mask.any():
                out[mask] = np.exp(self._design(panel, mask, fit.stores) @ fit.coef) * fit.smear
        return out

    def elasticity(self, product: int) -> float:
        return float(self.fits[product].coef[0])


def _lgb_features(panel: Panel) -> npt.NDArray[np.float64]:
    ratio = log_price_ratio(panel.price[:, None], panel.ref_price)[:, 0]
    return np.column_stack([panel.context, ratio, panel.product, panel.store]).astype(np.float64)


@dataclass
class LightGBMModel:
    booster: object

    def predict(self, panel: Panel) -> npt.NDArray[np.float64]:
        return np.asarray(self.booster.predict(_lgb_features(panel)), dtype=np.float64)  # type: ignore[attr-defined]


def fit_lightgbm(panel: Panel, rounds: int = 400, threads: int = 1) -> LightGBMModel:
    import lightgbm as lgb

    n = panel.context.shape[1]
    data = lgb.Dataset(_lgb_features(panel), label=panel.units, categorical_feature=[n + 1, n + 2])
    params = {
        "objective": "poisson", "learning_rate": 0.05, "num_leaves": 63, "min_data_in_leaf": 50,
        "feature_fraction": 0.9, "num_threads": threads, "verbose": -1, "seed": 0,
    }
    return LightGBMModel(lgb.train(params, data, num_boost_round=rounds))


def wape(actual: npt.NDArray[np.float64], forecast: npt.NDArray[np.float64]) -> float:
    """Weighted absolute percentage error: sum|y - yhat| / sum y."""
    return float(np.abs(actual - forecast).sum() / max(actual.sum(), 1e-9))


def bias(actual: npt.NDArray[np.float64], forecast: npt.NDArray[np.float64]) -> float:
    """Signed relative error: sum(yhat - y) / sum y (positive = over-forecast)."""
    return float((forecast - actual).sum() / max(actual.sum(), 1e-9))
