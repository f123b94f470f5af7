"""Reproduce every pricing figure in docs/pricing.md.

    python -m export.pricing.evaluate --data-dir ../shared/data --out docs/pricing [--only real,sim,finetune]

Writes ``results.json`` and ``elasticity_by_category.png`` to ``--out``. The real data is read
from ``--data-dir`` in place and never copied.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.pricing import evaluate_real, finetune
from export.pricing.data import default_data_dir
from export.pricing.evaluate_sim import (
    forecast_scores,
    loglog_policy,
    markup_policy,
    model_policy,
    regret_table,
    train_sim,
)
from export.pricing.sim_data import simulate
from export.pricing.train import TrainConfig
from services.pricing.guardrails import GuardrailConfig

logger = logging.getLogger(__name__)

SIM_TRAIN_WEEKS = 40
SIM_TEST_WEEKS = 12


def evaluate_sim(seed: int) -> tuple[dict[str, Any], Any]:
    """Regret on market A's held-out weeks; returns the results and the trained model."""
    rows = simulate("A", SIM_TRAIN_WEEKS + SIM_TEST_WEEKS)
    train, test = rows.take(rows.week < SIM_TRAIN_WEEKS), rows.take(rows.week >= SIM_TRAIN_WEEKS)
    net, seconds = train_sim(train, TrainConfig(epochs=40, batch_size=512, seed=seed))
    markups = {m: regret_table(test, {"m": markup_policy(m)})[0].regret for m in np.arange(0.2, 2.05, 0.1)}
    best_markup = min(markups, key=lambda m: markups[m])
    policies = {
        "neural demand model + optimiser": model_policy(net),
        "neural, .99 endings": model_policy(net, GuardrailConfig(
            min_margin=0.0, max_change_per_decision=10.0, max_change_per_day=10.0, low_stock_units=0,
            low_stock_cover=0.0)),
        "neural, service guardrails (one step)": model_policy(net, GuardrailConfig()),
        "per-SKU log-log OLS": loglog_policy(train),
        "fixed markup 100%": markup_policy(1.0),
        f"fixed markup {best_markup:.0%} (best in hindsight)": markup_policy(best_markup),
        "status quo (current price)": lambda r: r.price,
    }
    table = {row.policy: {"regret": row.regret, "profit": row.profit} for row in regret_table(test, policies)}
    results = {
        "train_rows": len(train.requests), "test_rows": len(test.requests), "train_seconds": seconds,
        "forecast": forecast_scores(net, test), "regret": table,
    }
    return results, net


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    p.add_argument("--out", type=Path, default=Path("docs/pricing"))
    p.add_argument("--only", default="real,sim,finetune")
    p.add_argument("--epochs", type=int, default=20, help="dunnhumby training epochs")
    p.add_argument("--seed", type=int, default=0)
    ns = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)
    parts, results = set(ns.only.split(",")), dict[str, Any]()
    start = time.perf_counter()
    if "real" in parts:
        config = TrainConfig(epochs=ns.epochs, seed=ns.seed)
        plot = ns.out / "elasticity_by_category.png"
        results["dunnhumby"] = evaluate_real.evaluate_dunnhumby(ns.data_dir, config, plot)
        results["olist"] = evaluate_real.evaluate_olist(ns.data_dir, config)
    if parts & {"sim", "finetune"}:
        results["sim_market_a"], net = evaluate_sim(ns.seed)
        if "finetune" in parts:
            results["fine_tuning_a_to_b"] = finetune.run(net)
    results["seconds"] = round(time.perf_counter() - start, 1)
    evaluate_real.write_results(results, ns.out / f"results-{'-'.join(sorted(parts))}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
