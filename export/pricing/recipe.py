"""``shopstream export pricing``: the demand model trained on a simulated market.

Options (``--set key=value``): ``market`` (default ``A``), ``weeks`` of history (52), ``skus``
(400), ``elasticity_shift`` (0). ``--from vNNNN`` fine-tunes a published version instead of
training from scratch (e.g. market A's model on a few weeks of market B).
"""

from __future__ import annotations

import logging

import numpy as np

from export.pipeline import TrainedModel
from export.pricing.evaluate_sim import forecast_scores, model_policy, regret_table, train_sim
from export.pricing.model import DemandNet
from export.pricing.sim_data import SimRows, simulate
from export.pricing.train import TrainConfig
from export.quantize import RunFn
from export.registry import ModelRecipe, RecipeArgs
from export.spec import ExportSpec
from services.pricing.features import FEATURE_NAMES, MAX_LOG_RATIO, N_FEATURES, log_price_ratio
from services.pricing.model import INPUTS, OUTPUTS
from shared.models.manifest import TrainingInfo

logger = logging.getLogger(__name__)

TEST_WEEKS = 12
FINE_TUNE = TrainConfig(epochs=20, batch_size=256, lr=1e-3)


def _samples(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    context = rng.normal(0.0, 0.5, (batch, N_FEATURES)).astype(np.float32)
    context[:, 0] = rng.uniform(0.0, 6.0, batch)
    return {"context": context, "log_price_ratio": rng.uniform(-0.5, 0.5, (batch, 9)).astype(np.float32)}


SPEC = ExportSpec(
    name="pricing",
    inputs=tuple(INPUTS),
    outputs=tuple(OUTPUTS),
    sample_inputs=_samples,
    atol=1e-3,
    rtol=1e-4,
    feature_spec={
        "features": list(FEATURE_NAMES),
        "log_price_ratio": f"log(candidate price / previous price), clipped to +-{MAX_LOG_RATIO}",
        "builder": "services.pricing.decisions.context_of + services.pricing.features.context_matrix",
    },
    preprocessing={"max_log_ratio": MAX_LOG_RATIO},
)


def _feeds(rows: SimRows) -> dict[str, np.ndarray]:
    return {"context": rows.context, "log_price_ratio": log_price_ratio(rows.price[:, None], rows.ref_price)}


def train(args: RecipeArgs) -> TrainedModel:
    opts = args.options
    weeks, skus = (8, 30) if args.tiny else (int(opts.get("weeks", 52)), int(opts.get("skus", 400)))
    market = opts.get("market", "A")
    rows = simulate(market, weeks + TEST_WEEKS, skus, elasticity_shift=float(opts.get("elasticity_shift", 0.0)))
    train_rows, test = rows.take(rows.week < weeks), rows.take(rows.week >= weeks)
    base = FINE_TUNE if args.from_version else TrainConfig(epochs=40, batch_size=512)
    config = TrainConfig(**{**base.__dict__, "epochs": args.epochs or (2 if args.tiny else base.epochs),
                            "seed": args.seed})
    net = DemandNet(N_FEATURES, config.hidden)
    if args.from_version:
        from export.checkpoint import load_from_version

        load_from_version(net, args.repository, SPEC.name, args.from_version)
    net, seconds = train_sim(train_rows, config, net)
    metrics = {f"sim_{k}": v for k, v in forecast_scores(net, test).items()}
    metrics["sim_profit_regret"] = regret_table(test, {"neural": model_policy(net)})[0].regret
    feeds = _feeds(test)

    def metric_fn(run: RunFn) -> dict[str, float]:
        units = run(feeds)["units"][:, 0].astype(np.float64)
        return {"sim_wape": float(np.abs(units - test.observed).sum() / test.observed.sum())}

    return TrainedModel(
        module=net, spec=SPEC,
        training=TrainingInfo(
            data=f"sim:pricing:market={market}:weeks={weeks}:skus={skus}", rows=len(train_rows.requests),
            epochs=config.epochs, seconds=round(seconds, 2), from_version=args.from_version,
            extra={"test_weeks": TEST_WEEKS, "objective": "poisson"},
        ),
        metrics=metrics,
        heldout=[{k: v[:n] for k, v in feeds.items()} for n in (1, 7, 256)],
        metric_fn=metric_fn, variants=args.variants, timings={"train": seconds},
    )


RECIPE = ModelRecipe("pricing", "monotone neural demand model on the simulated shop (pricing service)", train)
