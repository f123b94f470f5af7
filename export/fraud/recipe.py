"""``shopstream export fraud``: train the shop model on simulated payments and export it.

Options (``--set key=value``): ``hours`` of simulated payments (default 4; the first 60 %
train, the rest is the held-out test), ``seed`` and ``shop`` of the simulated world, and
``cache`` (a folder keeping the featurised set between runs).
``--from <version>`` fine-tunes that version on the new data instead of starting afresh.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.fraud.metrics import evaluate, threshold_at_fpr
from export.fraud.model import FraudNet, TrainConfig, make_mlp, predict, train
from export.fraud.sim_data import SimSet, build
from export.pipeline import TrainedModel
from export.quantize import RunFn
from export.registry import ModelRecipe, RecipeArgs
from export.spec import ExportSpec
from services.fraud.features import EUR_RATES, NUMERIC_FEATURES, REASON_GROUPS
from services.fraud.model import INPUTS, OUTPUTS, feature_spec
from services.fraud.rules import Rules
from shared.models.manifest import TrainingInfo

logger = logging.getLogger(__name__)

NAME = "fraud"
EVAL_ROWS = 50_000
"""Rows of the test slice the ONNX variants are scored on (keeps int8 evaluation quick)."""


def reason_baseline(data: SimSet) -> dict[str, list[float] | list[int]]:
    """Typical legitimate values: per-feature medians and the most common category buckets."""
    legit = data.label == 0
    cats = data.categorical[legit]
    modes = [int(np.bincount(cats[:, j]).argmax()) for j in range(cats.shape[1])]
    return {"numeric": np.median(data.numeric[legit], axis=0).round(5).tolist(), "categorical": modes}


def make_spec(test: SimSet, preprocessing: dict[str, Any]) -> ExportSpec:
    def samples(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        idx = rng.integers(0, len(test), batch)
        return {"numeric": test.numeric[idx], "categorical": test.categorical[idx]}

    return ExportSpec(
        name=NAME, inputs=tuple(INPUTS), outputs=tuple(OUTPUTS), sample_inputs=samples, atol=1e-5,
        preprocessing=preprocessing, feature_spec=feature_spec(),
    )  # fmt: skip


def _fit(args: RecipeArgs, train_set: SimSet) -> tuple[FraudNet, int, float]:
    model = make_mlp(len(NUMERIC_FEATURES))
    if args.from_version:
        from export.checkpoint import load_from_version

        load_from_version(model, args.repository, NAME, args.from_version)
    epochs = args.epochs or (1 if args.tiny else 8)
    lr = 1e-3 if args.from_version else 3e-3
    cfg = TrainConfig(epochs=epochs, batch_size=512, lr=lr, seed=args.seed, show_progress=args.progress)
    start = time.perf_counter()
    train(model, train_set.numeric, train_set.categorical, train_set.label.astype(np.float32), cfg,
          fit_scaler=not args.from_version)  # fmt: skip
    return model, epochs, time.perf_counter() - start


def train_fraud(args: RecipeArgs) -> TrainedModel:
    torch.set_num_threads(1)
    hours = 0.25 if args.tiny else float(args.options.get("hours", "4"))
    seed, shop = int(args.options.get("seed", "7")), args.options.get("shop", "A")
    cache = Path(args.options["cache"]) if "cache" in args.options else None
    data = build(hours, seed=seed, shop=shop, cache_dir=cache)
    train_set, test = data.time_split(0.6)
    model, epochs, seconds = _fit(args, train_set)
    prob = predict(model, test.numeric, test.categorical)
    metrics = evaluate(test.label, prob, test.attack)
    metrics |= {f"rules_{k}": v for k, v in evaluate(test.label, Rules().score(test.numeric), test.attack).items()}
    preprocessing = {
        "eur_rates": EUR_RATES,
        "reason_groups": {k: list(v) for k, v in REASON_GROUPS.items()},
        "reason_baseline": reason_baseline(train_set),
        "threshold_at_1pct_fpr": threshold_at_fpr(test.label, prob, 0.01),
        "threshold_at_0.1pct_fpr": threshold_at_fpr(test.label, prob, 0.001),
    }
    sub = test.take(np.arange(min(len(test), EVAL_ROWS)))

    def metric_fn(run: RunFn) -> dict[str, float]:
        out = run({"numeric": sub.numeric, "categorical": sub.categorical})["probability"]
        return {k: v for k, v in evaluate(sub.label, out, sub.attack).items() if k in ("pr_auc", "roc_auc")}

    return TrainedModel(
        module=model, spec=make_spec(test, preprocessing), metrics=metrics, metric_fn=metric_fn,
        training=TrainingInfo(data=data.description, rows=len(train_set), epochs=epochs, seconds=round(seconds, 2),
                              from_version=args.from_version,
                              extra={"test_rows": len(test), "test_fraud": int(test.label.sum())}),
        heldout=[{"numeric": test.numeric[:n], "categorical": test.categorical[:n]} for n in (1, 7, 256)],
        variants=args.variants, timings={"train": seconds},
    )  # fmt: skip


RECIPE = ModelRecipe(NAME, "fraud MLP (velocity features + category embeddings) on simulated payments", train_fraud)
