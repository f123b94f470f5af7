"""Evaluation on the real data: forecast accuracy on a time holdout and elasticities per category.

dunnhumby: train on weeks 1-130, test on the last 26 weeks. The neural model and LightGBM see
the same lagged context; the log-log regression has store fixed effects instead. olist is a
small second check (last 4 of 20 months held out).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from export.pricing.baselines import LogLogModel, bias, fit_lightgbm, wape
from export.pricing.data import Panel, load_dunnhumby, load_olist
from export.pricing.model import DemandNet
from export.pricing.train import TrainConfig, TrainData, fit, predict

logger = logging.getLogger(__name__)

HOLDOUT_WEEKS = 26
OLIST_HOLDOUT_MONTHS = 4


def train_data(panel: Panel) -> TrainData:
    return TrainData(panel.context, panel.price, panel.ref_price, panel.units)


def _scores(test: Panel, forecasts: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    return {name: {"wape": wape(test.units, f), "bias": bias(test.units, f)} for name, f in forecasts.items()}


def _category_elasticities(
    test: Panel, net: DemandNet, loglog: LogLogModel
) -> dict[str, dict[str, float]]:
    """Unit-weighted mean elasticity per category, neural (at the observed price) vs log-log."""
    _, neural = predict(net, test.context, test.price, test.ref_price)
    out: dict[str, dict[str, float]] = {}
    for category in sorted(set(test.category.tolist())):
        mask = test.category == category
        weights = test.units[mask] + 1.0
        per_product: dict[int, float] = defaultdict(float)
        for p in np.unique(test.product[mask]):
            per_product[int(p)] = float(test.units[test.product == p].sum())
        loglog_e = sum(loglog.elasticity(p) * w for p, w in per_product.items()) / sum(per_product.values())
        out[category] = {"neural": float(np.average(neural[mask], weights=weights)), "loglog": loglog_e}
    return out


def plot_elasticities(elasticities: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(elasticities)
    pos = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh(pos - 0.2, [elasticities[n]["neural"] for n in names], height=0.4, label="neural demand model")
    ax.barh(pos + 0.2, [elasticities[n]["loglog"] for n in names], height=0.4, label="per-product log-log OLS")
    ax.set_yticks(pos, [n.title() for n in names])
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("own-price elasticity (unit-weighted mean, test weeks)")
    ax.set_title("dunnhumby Breakfast at the Frat: elasticity per category")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate_dunnhumby(data_dir: Path, config: TrainConfig, plot_path: Path | None) -> dict[str, Any]:
    train, test = load_dunnhumby(data_dir).split(HOLDOUT_WEEKS)
    net, seconds = fit(train_data(train), config)
    loglog = LogLogModel().fit(train)
    lgbm = fit_lightgbm(train, threads=config.threads)
    units, _ = predict(net, test.context, test.price, test.ref_price)
    naive = np.exp(test.context[:, 0].astype(np.float64)) - 1.0  # recent mean units
    forecasts = {
        "neural": units, "loglog_ols": loglog.predict(test), "lightgbm": lgbm.predict(test),
        "naive_recent_mean": naive,
    }
    elasticities = _category_elasticities(test, net, loglog)
    if plot_path is not None:
        plot_elasticities(elasticities, plot_path)
    return {
        "train_rows": len(train), "test_rows": len(test), "train_seconds": round(seconds, 1),
        "forecast": _scores(test, forecasts), "elasticity_by_category": elasticities,
    }


def evaluate_olist(data_dir: Path, config: TrainConfig) -> dict[str, Any]:
    train, test = load_olist(data_dir).split(OLIST_HOLDOUT_MONTHS)
    small = TrainConfig(epochs=60, batch_size=128, lr=3e-3, weight_decay=1e-3, hidden=16, seed=config.seed,
                        threads=config.threads)
    net, _ = fit(train_data(train), small)
    units, elast = predict(net, test.context, test.price, test.ref_price)
    loglog = LogLogModel().fit(train)
    naive = np.exp(test.context[:, 0].astype(np.float64)) - 1.0
    forecasts = {"neural": units, "loglog_ols": loglog.predict(test), "naive_recent_mean": naive}
    return {
        "train_rows": len(train), "test_rows": len(test), "forecast": _scores(test, forecasts),
        "neural_mean_elasticity": float(np.mean(elast)),
    }


def write_results(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
