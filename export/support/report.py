"""``python -m export.support.report``: the support model's results table in docs/support.md.

Rows, all on BANKING77's official test split (3,080 messages), scored once at the end:

* the published version (``models/support/<version>``) as served: its ONNX graph and its
  fp16 and int8 variants (as the export measured them, from the manifest), with the
  escalation threshold's coverage and the accuracy-versus-coverage curve (the fp32 graph
  run again here);
* the same fine-tuning on 10 and 30 messages per intent (drawn with a fixed seed from the
  training part of the split; fixed epochs, no validation-based selection);
* baselines on the same data: TF-IDF + logistic regression, and the frozen MiniLM's
  mean-pooled embedding + logistic regression (``C`` chosen on the validation split).

Measured figures go to ``export/support/results.json``; ``--render`` rebuilds the doc's
table from that file without training anything.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from export.registry import DEFAULT_DATA_DIR, REPO_ROOT
from export.support import data as ds
from export.support import metrics as m
from export.support.model import bare_tokenizer, encode, minilm_path, pretrained
from export.support.render import render_into
from export.support.train import TrainConfig, train
from shared.models.repository import ModelRepository
from shared.models.session import OnnxModel

logger = logging.getLogger(__name__)
RESULTS = Path(__file__).with_name("results.json")
DOC = REPO_ROOT / "docs" / "support.md"
FEW_SHOT_EPOCHS = {10: 12, 30: 6}
C_GRID = (1.0, 10.0, 100.0)


def served(models_dir: Path, version: str, data_dir: Path) -> dict[str, Any]:
    """The published version's graphs on the test split, and its threshold's curve."""
    repo = ModelRepository(models_dir)
    manifest = repo.get("support", version)
    tok = Tokenizer.from_str(repo.read_asset(manifest, "tokenizer").decode("utf-8"))
    max_length, threshold = manifest.preprocessing["max_length"], manifest.preprocessing["escalation_threshold"]
    test = ds.banking77(data_dir, "test")
    out: dict[str, Any] = {"version": version, "threshold": threshold,
                           "target": manifest.preprocessing["threshold_target_accuracy"],
                           "coverage_valid": manifest.preprocessing.get("threshold_coverage_valid"),
                           "training": manifest.training.model_dump(exclude={"extra"}),
                           "best_epoch": manifest.training.extra.get("best_epoch"),
                           "history": manifest.training.extra.get("history"), "graphs": {}}
    # the export scored every graph on the test split already; only the curve needs the probabilities
    onnx = {k.removeprefix("onnx_"): v for k, v in manifest.metrics.items() if k.startswith("onnx_")}
    out["graphs"]["fp32"] = {**onnx, "size_bytes": manifest.size_bytes}
    for kind, variant in manifest.variants.items():
        out["graphs"][kind] = {**variant.metrics, "size_bytes": variant.size_bytes}
    _, data = repo.load_verified("support", version)
    graph = OnnxModel(data, name="support", version=version, providers=["cpu"])
    probs = m.predict_probs(graph.run, tok, test.texts, max_length)
    out["curve"] = m.coverage_curve(probs, test.labels)
    return out


def few_shot(data_dir: Path, shots: int, seed: int = 0) -> dict[str, Any]:
    """Fine-tune the packaged MiniLM on ``shots`` messages per intent; score on test."""
    labels = ds.banking77_labels(data_dir)
    train_split, _ = ds.stratified_split(ds.banking77(data_dir, "train"))
    subset = ds.few_shot(train_split, shots, seed=seed)
    tok = bare_tokenizer(Tokenizer.from_file(str(minilm_path() / "tokenizer.json")))
    cfg = TrainConfig(epochs=FEW_SHOT_EPOCHS[shots], seed=seed, progress=False)
    torch.manual_seed(seed)
    result = train(pretrained(len(labels)), tok, subset, cfg, None)
    test = ds.banking77(data_dir, "test")
    probs = m.predict_probs(result.model, tok, test.texts, cfg.max_length)
    return {**m.summary(probs, test.labels), "rows": len(subset), "epochs": cfg.epochs,
            "seconds": round(result.seconds, 1)}


def _fit_lr(x_train: Any, y_train: np.ndarray, x_valid: Any, y_valid: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegression

    best: tuple[float, Any] = (-1.0, None)
    for c in C_GRID:
        clf = LogisticRegression(C=c, max_iter=3000).fit(x_train, y_train)
        acc = float((clf.predict(x_valid) == y_valid).mean())
        if acc > best[0]:
            best = (acc, clf)
    return best[1]


def baselines(data_dir: Path, shots: tuple[int | None, ...] = (10, 30, None)) -> dict[str, dict[str, Any]]:
    """TF-IDF + LR and frozen-MiniLM embedding + LR, for each training-set size."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    train_split, valid = ds.stratified_split(ds.banking77(data_dir, "train"))
    test = ds.banking77(data_dir, "test")
    emb = _embedder()
    cache = {id(s): emb(s.texts) for s in (train_split, valid, test)}
    out: dict[str, dict[str, Any]] = {}
    for n in shots:
        part = train_split if n is None else ds.few_shot(train_split, n, seed=0)
        key = "full" if n is None else f"{n}-shot"
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1).fit(part.texts)
        clf = _fit_lr(vec.transform(part.texts), part.labels, vec.transform(valid.texts), valid.labels)
        out[f"tfidf/{key}"] = m.summary(clf.predict_proba(vec.transform(test.texts)), test.labels)
        x_part = emb(part.texts) if n is not None else cache[id(train_split)]
        clf = _fit_lr(x_part, part.labels, cache[id(valid)], valid.labels)
        out[f"minilm_lr/{key}"] = m.summary(clf.predict_proba(cache[id(test)]), test.labels)
        logger.info("baselines %s: tfidf %.4f, minilm+lr %.4f", key, out[f"tfidf/{key}"]["accuracy"],
                    out[f"minilm_lr/{key}"]["accuracy"])
    return out


def _embedder() -> Any:
    model = pretrained(1).eval()
    tok = bare_tokenizer(Tokenizer.from_file(str(minilm_path() / "tokenizer.json")))

    @torch.no_grad()
    def embed(texts: list[str]) -> np.ndarray:
        rows = []
        for start in range(0, len(texts), 128):
            ids, mask = encode(tok, texts[start : start + 128], 64)
            rows.append(torch.nn.functional.normalize(model.pool(torch.from_numpy(ids), torch.from_numpy(mask))))
        return torch.cat(rows).numpy()

    return embed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.support.report", description=__doc__.splitlines()[0])
    p.add_argument("--version", default="v0001")
    p.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--parts", default="served,baselines,fewshot",
                   help="which to (re)run: served, baselines, fewshot (or fewshot10, fewshot30)")
    p.add_argument("--render", action="store_true", help="only rebuild the doc's table from results.json")
    p.add_argument("--threads", type=int, default=2)
    ns = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(ns.threads)
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    parts = set() if ns.render else set(ns.parts.split(","))
    runs: list[tuple[str, str | None, Any]] = [
        ("served", None, lambda: served(ns.models_dir, ns.version, ns.data)),
        ("baselines", None, lambda: baselines(ns.data)),
        *((f"fewshot{k}", f"{k}-shot", lambda k=k: few_shot(ns.data, k)) for k in FEW_SHOT_EPOCHS)]
    for part, key, run in runs:
        if part in parts or (part.startswith("fewshot") and "fewshot" in parts):
            start = time.perf_counter()
            measured = run()
            # re-read: another report process may have written its part meanwhile
            results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
            if key is None:
                results[part] = measured
            else:
                results.setdefault("fewshot", {})[key] = measured
            results.setdefault("seconds", {})[part] = round(time.perf_counter() - start, 1)
            RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    render_into(DOC, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
