"""The evaluation behind docs/fraud.md: ``python -m export.fraud.experiments {ulb,sim,finetune,all}``.

* ``ulb``: the real ULB sample, stratified 5-fold CV: MLP vs logistic regression vs LightGBM.
* ``sim``: simulated shop payments, time split (first 60 % train, last 40 % test): the MLP
  against the rules, logistic regression, LightGBM, and the same MLP without velocity features.
* ``finetune``: pretrain on shop A, fine-tune on a little of shop B (another fraud mix) vs
  training from scratch on that little, and vs shop A's model as is.
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
from pathlib import Path

import numpy as np
import torch
from lightgbm import LGBMClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from export.fraud.metrics import evaluate, format_rows
from export.fraud.model import TrainConfig, fit_mlp, predict, train
from export.fraud.sim_data import SimSet, build
from export.fraud.ulb import cross_validate, format_table, load_ulb
from export.registry import DEFAULT_DATA_DIR
from services.fraud.features import BASE_FEATURES
from services.fraud.rules import Rules
from sim.payments import FraudMix

logger = logging.getLogger(__name__)

COLUMNS = ("pr_auc", "roc_auc", "recall_at_1pct_fpr", "recall_card_testing", "recall_account_takeover",
           "recall_velocity")  # fmt: skip
SHOP_B_MIX = FraudMix(card_testing=2.0, account_takeover=16.0, velocity=10.0)


def _lgbm(train_set: SimSet, test: SimSet) -> np.ndarray:
    gbm = LGBMClassifier(n_estimators=300, learning_rate=0.05, num_leaves=31, n_jobs=1, verbose=-1)
    xtr = np.hstack([train_set.numeric, train_set.categorical])
    gbm.fit(xtr, train_set.label, categorical_feature=list(range(train_set.numeric.shape[1], xtr.shape[1])))
    return np.asarray(gbm.predict_proba(np.hstack([test.numeric, test.categorical])))[:, 1]


def sim_comparison(hours: float = 4.0, seed: int = 7, cache: Path | None = None) -> dict[str, dict[str, float]]:
    """All models on one shop, time split 60/40."""
    torch.set_num_threads(1)
    train_set, test = build(hours, seed=seed, cache_dir=cache).time_split(0.6)
    scores: dict[str, np.ndarray] = {"rules (amount + velocity thresholds)": Rules().score(test.numeric)}
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    lr.fit(train_set.numeric, train_set.label)
    scores["logistic_regression"] = np.asarray(lr.predict_proba(test.numeric))[:, 1]
    scores["lightgbm"] = _lgbm(train_set, test)
    start = time.perf_counter()
    scores["mlp (velocity + embeddings)"] = predict(fit_mlp(train_set), test.numeric, test.categorical)
    logger.info("MLP trained in %.1f s on %d rows", time.perf_counter() - start, len(train_set))
    no_vel = fit_mlp(train_set, velocity=False)
    scores["mlp without velocity features"] = predict(no_vel, test.numeric[:, : len(BASE_FEATURES)], test.categorical)
    return {name: evaluate(test.label, s, test.attack) for name, s in scores.items()}


def finetune_comparison(
    source_hours: float = 4.0, target_minutes: float = 15.0, cache: Path | None = None
) -> dict[str, dict[str, float]]:
    """Shop A → shop B (other users, merchants and fraud mix) with little target data."""
    torch.set_num_threads(1)
    source = build(source_hours, seed=7, shop="A", cache_dir=cache).time_split(0.6)[0]
    target = build(target_minutes / 60.0 + 2.0, seed=11, shop="B", mix=SHOP_B_MIX, cache_dir=cache)
    small, test = target.time_split(target_minutes / (target_minutes + 120.0))
    logger.info("target: %d rows (%d fraud) to adapt, %d to test", len(small), small.label.sum(), len(test))
    pretrained = fit_mlp(source)
    results = {"shop A model, no fine-tuning": predict(pretrained, test.numeric, test.categorical)}
    scratch = fit_mlp(small, epochs=30)
    results["from scratch on the small shop B set"] = predict(scratch, test.numeric, test.categorical)
    for label, epochs, lr in (("10 epochs, lr 1e-3", 10, 1e-3), ("3 epochs, lr 3e-4", 3, 3e-4)):
        model = copy.deepcopy(pretrained)
        cfg = TrainConfig(epochs=epochs, batch_size=256, lr=lr, weight_decay=1e-4, seed=1)
        train(model, small.numeric, small.categorical, small.label.astype(np.float32), cfg, fit_scaler=False)
        results[f"shop A pretrained → fine-tuned on shop B ({label})"] = predict(model, test.numeric, test.categorical)
    return {name: evaluate(test.label, s, test.attack) for name, s in results.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("ulb", "sim", "finetune", "all"))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--cache", type=Path, help="keep featurised simulated sets here (npz) for reruns")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.what in ("ulb", "all"):
        x, y = load_ulb(args.data_dir)
        results = cross_validate(x, y, ("logistic_regression", "lightgbm", "mlp"))
        print(format_table(results, len(y), int(y.sum())))
    if args.what in ("sim", "all"):
        print(format_rows(sim_comparison(args.hours, cache=args.cache), COLUMNS))
    if args.what in ("finetune", "all"):
        print(format_rows(finetune_comparison(cache=args.cache), COLUMNS))


if __name__ == "__main__":
    main()
