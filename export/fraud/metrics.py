"""Fraud metrics: PR-AUC, ROC-AUC, recall at a fixed false-positive rate, recall per attack."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

ATTACKS = ("card_testing", "account_takeover", "velocity")


def threshold_at_fpr(label: np.ndarray, score: np.ndarray, fpr: float) -> float:
    """The lowest score threshold whose false-positive rate (``score >= t``) stays <= ``fpr``.

    Works for discrete scores (the rules) too: ties are never split.
    """
    legit = np.sort(score[label == 0])[::-1]
    allowed = int(np.floor(fpr * len(legit)))
    if allowed >= len(legit):
        return float(legit[-1])
    cut = legit[allowed]  # scores >= a value strictly above this one keep the FPR within budget
    above = score[score > cut]
    return float(above.min()) if len(above) else float(np.inf)


def evaluate(label: np.ndarray, score: np.ndarray, attack: np.ndarray, fpr: float = 0.01) -> dict[str, float]:
    """Headline metrics of one model on one test slice."""
    t = threshold_at_fpr(label, score, fpr)
    flagged = score >= t
    out = {
        "pr_auc": float(average_precision_score(label, score)),
        "roc_auc": float(roc_auc_score(label, score)),
        "recall_at_1pct_fpr": float(flagged[label == 1].mean()),
        "fpr_at_threshold": float(flagged[label == 0].mean()),
    }
    for name in ATTACKS:
        rows = attack == name
        out[f"recall_{name}"] = float(flagged[rows].mean()) if rows.any() else float("nan")
    return out


def format_rows(results: dict[str, dict[str, float]], columns: tuple[str, ...]) -> str:
    """A markdown table: one row per model, one column per metric."""
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for model, metrics in results.items():
        lines.append(f"| {model} | " + " | ".join(f"{metrics.get(c, float('nan')):.4f}" for c in columns) + " |")
    return "\n".join(lines)
