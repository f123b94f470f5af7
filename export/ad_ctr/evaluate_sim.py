"""Simulated-shop evaluation: AUC against the true-CTR ceiling, and what the text tower adds.

    python -m export.ad_ctr.evaluate_sim --out docs/ad_ctr

Slices of the ads stream (in requests): train, validation, "new day", test. Reports:
LR, DNN (no crosses), DCN-v2 without text, with a hashed-token text tower trained from
scratch, with frozen MiniLM (projection trained), with MiniLM's top layer fine-tuned, and
with the small student distilled from the fine-tuned MiniLM (what the service runs).
Then fine-tuning the whole model from an earlier version on the new day vs from scratch.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegression

from export.ad_ctr.fit import Fitted, calibrated, fit, new_model, scores
from export.ad_ctr.metrics import auc, bootstrap, reliability_plot
from export.ad_ctr.sim_data import sim_splits
from export.ad_ctr.text_tower import HashTower, MiniLmTower, distil, embed_all
from export.ad_ctr.train import CtrData, TrainConfig
from services.ad_ctr.features import REQUEST_SPEC, TextSpec

logger = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
TEXT_DIM = 16
BASE = TrainConfig(epochs=5, batch_size=1024, lr=1e-3, weight_decay=1e-4, patience=1)


def _lr(tr: CtrData, va: CtrData, te: CtrData) -> np.ndarray:
    def onehot(d: CtrData) -> sp.csr_matrix:
        n, f = d.sparse.shape
        return sp.csr_matrix((np.ones(n * f), (np.repeat(np.arange(n), f), d.sparse.ravel())),
                             shape=(n, REQUEST_SPEC.vocab_size))
    best = max((LogisticRegression(C=c, max_iter=1000).fit(onehot(tr), tr.label) for c in (0.1, 1.0)),
               key=lambda m: auc(va.label, m.predict_proba(onehot(va))[:, 1]))
    return np.asarray(best.predict_proba(onehot(te))[:, 1])


def _minilm(tr: CtrData, va: CtrData, titles: list[str], res: dict[str, object]) -> tuple[Fitted, Fitted]:
    """Stage A: frozen MiniLM + trained projection. Stage B: also fine-tune MiniLM's top layer."""
    t0 = time.perf_counter()
    frozen = MiniLmTower(titles, TEXT_DIM, train_layers=0)
    res["minilm_precompute_s"] = time.perf_counter() - t0
    stage_a = fit(new_model(REQUEST_SPEC, TEXT_DIM), frozen, tr, va, BASE, "dcn+minilm frozen")
    tuned = MiniLmTower(titles, TEXT_DIM, train_layers=1)
    tuned.proj.load_state_dict(frozen.proj.state_dict())
    cfg = TrainConfig(epochs=1, lr=5e-4, text_lr=1e-4, group_creatives=64, patience=1)
    stage_b = fit(copy.deepcopy(stage_a.model), tuned, tr, va, cfg, "dcn+minilm top layer tuned")
    return stage_a, stage_b


def _finetune_whole(tr: CtrData, va: CtrData, nd: CtrData, te: CtrData, titles: list[str]) -> dict[str, object]:
    """v1 trained on the first days; new day arrives: fine-tune v1 on it vs train from scratch."""
    spec = TextSpec()
    v1 = fit(new_model(REQUEST_SPEC, TEXT_DIM), HashTower(titles, spec, TEXT_DIM), tr, va, BASE, "v1")
    tuned = fit(copy.deepcopy(v1.model), copy.deepcopy(v1.tower), nd, va,
                TrainConfig(epochs=2, batch_size=1024, lr=5e-4, patience=1), "v1 fine-tuned on new day")
    scratch = fit(new_model(REQUEST_SPEC, TEXT_DIM), HashTower(titles, spec, TEXT_DIM), nd, va, BASE,
                  "scratch on new day")
    both = CtrData(np.concatenate([tr.sparse, nd.sparse]), np.concatenate([tr.label, nd.label]),
                   np.concatenate([tr.creative, nd.creative]))  # type: ignore[list-item]
    full = fit(new_model(REQUEST_SPEC, TEXT_DIM), HashTower(titles, spec, TEXT_DIM), both, va, BASE,
               "scratch on all days")
    return {name: scores(te.label, calibrated(f.model, te, f.tower)) | {
        "train_s": f.result.seconds, "epochs": f.result.best_epoch}
        for name, f in (("v1 (old days only)", v1), ("v1 fine-tuned on new day", tuned),
                        ("scratch on new day only", scratch), ("scratch on all days", full))}


def run(sizes: list[int], out: Path, minilm: bool) -> dict[str, object]:
    torch.set_num_threads(1)
    (tr_s, va_s, nd_s, te_s), catalogue = sim_splits(sizes)
    tr, va, nd, te = tr_s.data, va_s.data, nd_s.data, te_s.data
    titles, y = catalogue.titles, te.label
    res: dict[str, object] = {"sizes_requests": sizes, "rows": [len(s.data) for s in (tr_s, va_s, nd_s, te_s)],
                              "test_ctr": float(y.mean()), "creatives": len(titles)}
    preds: dict[str, np.ndarray] = {"truth (ceiling)": te_s.true_ctr, "LR": _lr(tr, va, te)}
    fits: dict[str, Fitted] = {
        "DNN (no crosses), no text": fit(new_model(REQUEST_SPEC, cross_layers=0), None, tr, va, BASE, "dnn"),
        "DCN-v2, no text": fit(new_model(REQUEST_SPEC), None, tr, va, BASE, "dcn"),
        "DCN-v2 + hashed-text tower (scratch)": fit(
            new_model(REQUEST_SPEC, TEXT_DIM), HashTower(titles, TextSpec(), TEXT_DIM), tr, va, BASE, "dcn+hash"),
    }
    if minilm:
        stage_a, stage_b = _minilm(tr, va, titles, res)
        fits["DCN-v2 + MiniLM frozen"] = stage_a
        fits["DCN-v2 + MiniLM top layer fine-tuned"] = stage_b
        student = HashTower(titles, TextSpec(), TEXT_DIM)
        res["distil_mse"] = distil(student, embed_all(stage_b.tower, len(titles)))  # type: ignore[arg-type]
        fits["DCN-v2 + student distilled from fine-tuned MiniLM"] = Fitted(stage_b.model, student, stage_b.result)
    preds |= {name: calibrated(f.model, te, f.tower) for name, f in fits.items()}
    intervals = bootstrap(auc, y, list(preds.values()), n=200)
    res["models"] = {name: scores(y, p) | {"auc_ci": [iv.low, iv.high]} | (
        {"train_s": fits[name].result.seconds, "best_epoch": fits[name].result.best_epoch} if name in fits else {})
        for (name, p), iv in zip(preds.items(), intervals, strict=True)}
    best_text = "DCN-v2 + MiniLM top layer fine-tuned" if minilm else "DCN-v2 + hashed-text tower (scratch)"
    reliability_plot(y, {"truth": te_s.true_ctr, "DCN-v2 + text, Platt": preds[best_text],
                         "DCN-v2 no text, Platt": preds["DCN-v2, no text"]},
                     out / "reliability_sim.png", "Simulated ads, test slice")
    res["whole_model_finetune"] = _finetune_whole(tr, va, nd, te, titles)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results_sim.json").write_text(json.dumps(res, indent=2))
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs=4, default=[20000, 3000, 5000, 4000],
                        help="requests in the train, validation, new-day and test slices")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "ad_ctr")
    parser.add_argument("--no-minilm", action="store_true", help="skip the MiniLM towers (fast)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(json.dumps(run(args.sizes, args.out, not args.no_minilm), indent=2))


if __name__ == "__main__":
    main()
