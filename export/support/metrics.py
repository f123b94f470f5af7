"""Accuracy, macro-F1, calibration and the escalation threshold of an intent classifier.

Every function takes the class probabilities of a split (``probs``, rows sum to 1) and the
true label indices. :func:`predict_probs` gets those probabilities from a torch model or
from a graph's run function, over length-bucketed batches as the service builds them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from tokenizers import Tokenizer

from export.support.model import IntentClassifier, encode

RunFn = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
COVERAGE_POINTS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5)


def predict_probs(model: IntentClassifier | RunFn, tokenizer: Tokenizer, texts: Sequence[str], max_length: int,
                  batch: int = 64) -> np.ndarray:
    """Class probabilities, row ``i`` for ``texts[i]``; batches hold messages of similar length."""
    order = np.argsort([len(e.ids) for e in tokenizer.encode_batch(list(texts))], kind="stable")
    out = np.zeros((len(texts), 0), dtype=np.float32)
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        ids, mask = encode(tokenizer, [texts[i] for i in idx], max_length)
        probs = _run(model, ids, mask)
        if out.shape[1] == 0:
            out = np.zeros((len(texts), probs.shape[1]), dtype=np.float32)
        out[idx] = probs
    return out


def _run(model: IntentClassifier | RunFn, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if isinstance(model, torch.nn.Module):
        model.eval()
        with torch.no_grad():
            probs: np.ndarray = model(torch.from_numpy(ids), torch.from_numpy(mask))[1].numpy()
            return probs
    return model({"input_ids": ids, "attention_mask": mask})["probs"]


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(1) == labels).mean())


def macro_f1(probs: np.ndarray, labels: np.ndarray) -> float:
    """Unweighted mean over the labels present in ``labels`` or predicted."""
    pred = probs.argmax(1)
    scores = []
    for label in np.union1d(labels, pred):
        tp = np.sum((pred == label) & (labels == label))
        denom = np.sum(pred == label) + np.sum(labels == label)
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores))


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top probability (equal-width bins)."""
    conf, correct = probs.max(1), probs.argmax(1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(total)


def answered(probs: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """``(coverage, accuracy of the answered)``: messages with top probability >= ``threshold``."""
    conf, correct = probs.max(1), probs.argmax(1) == labels
    sel = conf >= threshold
    return float(sel.mean()), float(correct[sel].mean()) if sel.any() else 1.0


def choose_threshold(probs: np.ndarray, labels: np.ndarray, target: float) -> float:
    """The lowest threshold whose answered messages reach ``target`` accuracy (on validation)."""
    for t in np.unique(probs.max(1)):  # ascending: the first that reaches the target answers the most
        if answered(probs, labels, float(t))[1] >= target:
            return float(t)
    return 1.0


def coverage_curve(probs: np.ndarray, labels: np.ndarray,
                   points: Sequence[float] = COVERAGE_POINTS) -> list[dict[str, float]]:
    """Accuracy of the answered messages when the most confident ``coverage`` share is answered."""
    conf, correct = probs.max(1), probs.argmax(1) == labels
    order = np.argsort(-conf, kind="stable")
    rows = []
    for cov in points:
        n = max(1, round(cov * len(order)))
        rows.append({"coverage": cov, "accuracy": float(correct[order[:n]].mean()),
                     "threshold": float(conf[order[n - 1]])})
    return rows


def summary(probs: np.ndarray, labels: np.ndarray, threshold: float | None = None) -> dict[str, float]:
    out = {"accuracy": accuracy(probs, labels), "macro_f1": macro_f1(probs, labels), "ece": ece(probs, labels)}
    if threshold is not None:
        out["coverage"], out["answered_accuracy"] = answered(probs, labels, threshold)
    return out
