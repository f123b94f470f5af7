"""Real-data evaluation on the iPinYou sample: DCN-v2 vs no-cross DNN vs logistic regression.

    python -m export.ad_ctr.evaluate_real --data-dir ../shared/data --out docs/ad_ctr

Validation is a stratified 20% of the train file (calibration and early stopping are
fitted there); the test file is scored once. Test has 50 clicks, so every AUC comes
with a 95% bootstrap interval, and model differences with a paired bootstrap.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegression

from export.ad_ctr import ipinyou
from export.ad_ctr.metrics import (
    auc,
    bootstrap,
    ece,
    fit_isotonic,
    fit_platt,
    logloss,
    paired_auc_diff,
    reliability_plot,
)
from export.ad_ctr.model import CtrConfig, DcnV2
from export.ad_ctr.train import CtrData, TrainConfig, predict_logit, train

logger = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]


def _onehot(data: CtrData, vocab: int) -> sp.csr_matrix:
    n, f = data.sparse.shape
    rows = np.repeat(np.arange(n), f)
    return sp.csr_matrix((np.ones(n * f), (rows, data.sparse.ravel())), shape=(n, vocab))


def logistic_regression(tr: CtrData, va: CtrData, te: CtrData) -> tuple[np.ndarray, np.ndarray, float]:
    """L2 LR on the same hashed one-hot features; C picked on validation AUC."""
    vocab = ipinyou.SPEC.vocab_size
    xtr, xva, xte = (_onehot(d, vocab) for d in (tr, va, te))
    best = max(
        (LogisticRegression(C=c, max_iter=2000).fit(xtr, tr.label) for c in (0.03, 0.1, 0.3, 1.0)),
        key=lambda m: auc(va.label, m.decision_function(xva)),
    )
    return best.decision_function(xva), best.decision_function(xte), float(best.C)


def deep(tr: CtrData, va: CtrData, te: CtrData, cross: int, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    torch.manual_seed(seed)
    cfg = CtrConfig(vocab_size=ipinyou.SPEC.vocab_size, n_fields=len(ipinyou.SPEC.fields), cross_layers=cross)
    model = DcnV2(cfg)
    model.init_bias(float(tr.label.mean()))
    res = train(model, tr, va, TrainConfig(epochs=8, patience=3, lr=1e-3, weight_decay=0.1, seed=seed),
                label=f"{'dcn' if cross else 'dnn'} seed {seed}")
    return predict_logit(model, va), predict_logit(model, te), res.best_epoch


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def run(data_dir: Path, out: Path, seeds: int) -> dict[str, object]:
    torch.set_num_threads(1)
    tr, va = ipinyou.stratified_split(ipinyou.load_split(data_dir, "train"), 0.2, seed=0)
    te = ipinyou.load_split(data_dir, "test")
    start = time.perf_counter()
    logits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    lr_va, lr_te, lr_c = logistic_regression(tr, va, te)
    logits["LR"] = (lr_va, lr_te)
    seed_auc: dict[str, list[float]] = {"DNN (no crosses)": [], "DCN-v2": []}
    for name, cross in (("DNN (no crosses)", 0), ("DCN-v2", 2)):
        for seed in range(seeds):
            v, t, _ = deep(tr, va, te, cross, seed)
            seed_auc[name].append(auc(te.label, t))
            if seed == 0:
                logits[name] = (v, t)
    y = te.label
    calibrated = {}
    for name, (v, t) in logits.items():
        a, b = fit_platt(v, va.label)
        calibrated[name] = _sigmoid(a * t + b)
    names = list(logits)
    aucs = bootstrap(auc, y, [calibrated[n] for n in names])
    rows = {
        n: {"auc": aucs[i].value, "auc_ci": [aucs[i].low, aucs[i].high], "logloss": logloss(y, calibrated[n]),
            "ece": ece(y, calibrated[n]), "val_auc": auc(va.label, logits[n][0]),
            "seed_aucs": seed_auc.get(n, [])}
        for i, n in enumerate(names)
    }
    dcn_va, dcn_te = logits["DCN-v2"]
    iso = fit_isotonic(_sigmoid(dcn_va), va.label)
    curves = {"DCN-v2 raw": _sigmoid(dcn_te), "DCN-v2 Platt": calibrated["DCN-v2"],
              "DCN-v2 isotonic": iso.predict(_sigmoid(dcn_te))}
    reliability_plot(y, curves, out / "reliability_ipinyou.png", "iPinYou test (50 clicks)")
    result = {
        "dataset": ipinyou.DATASET, "train_rows": len(tr), "val_rows": len(va), "test_rows": len(te),
        "test_clicks": int(y.sum()), "val_ctr": float(va.label.mean()), "test_ctr": float(y.mean()),
        "lr_C": lr_c, "models": rows,
        "dcn_minus_lr_auc": _interval(paired_auc_diff(y, dcn_te, lr_te)),
        "dcn_minus_dnn_auc": _interval(paired_auc_diff(y, dcn_te, logits["DNN (no crosses)"][1])),
        "calibration_ece": {k: ece(y, p) for k, p in curves.items()},
        "calibration_logloss": {k: logloss(y, p) for k, p in curves.items()},
        "seconds": time.perf_counter() - start,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results_ipinyou.json").write_text(json.dumps(result, indent=2))
    return result


def _interval(iv: object) -> dict[str, float]:
    return {"value": iv.value, "low": iv.low, "high": iv.high}  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "ad_ctr")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(json.dumps(run(args.data_dir, args.out, args.seeds), indent=2))


if __name__ == "__main__":
    main()
