"""CTR metrics with honest error bars: AUC, logloss, ECE, bootstrap CIs, calibration fits."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

logger = logging.getLogger(__name__)

Metric = Callable[[np.ndarray, np.ndarray], float]


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC (ties count one half), by sorting the negatives once: fast enough for bootstraps."""
    pos, neg = p[y == 1], np.sort(p[y == 0])
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("AUC needs both classes")
    below = np.searchsorted(neg, pos, side="left")
    tied = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * tied).sum() / (len(pos) * len(neg)))


def logloss(y: np.ndarray, p: np.ndarray) -> float:
    return float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]))


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal-mass bins (CTRs are tiny, so equal-width bins would put almost everything in one):
    returns ``(mean predicted, observed rate, count)`` per bin."""
    order = np.argsort(p, kind="stable")
    groups = np.array_split(order, bins)
    mean_p = np.array([p[g].mean() for g in groups])
    rate = np.array([y[g].mean() for g in groups])
    count = np.array([len(g) for g in groups])
    return mean_p, rate, count


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-mass bins: sum_k n_k/N |mean p_k - rate_k|."""
    mean_p, rate, count = reliability(y, p, bins)
    return float(np.sum(count / count.sum() * np.abs(mean_p - rate)))


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def fmt(self, digits: int = 3) -> str:
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def bootstrap(
    metric: Metric, y: np.ndarray, preds: list[np.ndarray], n: int = 1000, seed: int = 0
) -> list[Interval]:
    """95% percentile bootstrap CIs (rows resampled with replacement, same draws for every model)."""
    rng = np.random.default_rng(seed)
    draws: list[list[float]] = [[] for _ in preds]
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        for k, p in enumerate(preds):
            draws[k].append(metric(y[idx], p[idx]))
    return [
        Interval(metric(y, p), float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5)))
        for p, d in zip(preds, draws, strict=True)
    ]


def paired_auc_diff(y: np.ndarray, a: np.ndarray, b: np.ndarray, n: int = 1000, seed: int = 0) -> Interval:
    """AUC(a) - AUC(b) with a paired bootstrap CI; P(diff <= 0) is ``low < 0``."""
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() != y[idx].max():
            diffs.append(auc(y[idx], a[idx]) - auc(y[idx], b[idx]))
    return Interval(auc(y, a) - auc(y, b), float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5)))


def fit_platt(logit: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling ``sigmoid(a * logit + b)`` fitted on validation; ``a`` > 0 keeps the ranking."""
    lr = LogisticRegression(C=1e4, max_iter=1000).fit(logit.reshape(-1, 1), y)
    a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    if a <= 0:
        logger.warning("Platt slope %.3g <= 0 (validation logits carry no signal); using identity", a)
        return 1.0, 0.0
    return a, b


def fit_isotonic(p: np.ndarray, y: np.ndarray) -> IsotonicRegression:
    return IsotonicRegression(out_of_bounds="clip", y_min=1e-6, y_max=1 - 1e-6).fit(p, y)


def reliability_plot(y: np.ndarray, curves: dict[str, np.ndarray], path: Path, title: str) -> None:
    """Reliability diagram (log-log, equal-mass bins), one line per model/calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    lo = 1e-4
    for name, p in curves.items():
        mean_p, rate, _ = reliability(y, p)
        ax.plot(np.maximum(mean_p, lo), np.maximum(rate, lo), "o-", label=f"{name} (ECE {ece(y, p):.4f})")
    ax.plot([lo, 1], [lo, 1], "k--", lw=1, label="perfect")
    ax.set(xscale="log", yscale="log", xlabel="mean predicted pCTR", ylabel="observed CTR", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
