"""Quality measures over a window of joined predictions and outcomes, in plain numpy.

Each function takes whole columns and returns one number; ``nan`` where the window cannot say
(one class only, nothing sold), so a gauge shows a gap rather than a made-up value.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

EPS = 1e-7
"""Probabilities are clipped to [EPS, 1 - EPS] for the log loss: a confident miss costs ~16, not inf."""


def auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve: the chance a random positive outranks a random negative.

    Mann-Whitney U with average ranks, so ties count one half, as in scikit-learn.
    """
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size)
    ranks[order] = np.arange(1, s.size + 1)
    sorted_scores = s[order]
    # average the ranks of tied scores
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], s.size]
    if starts.size != s.size:
        mean_rank = (starts + ends + 1) / 2.0
        ranks[order] = np.repeat(mean_rank, ends - starts)
    u = ranks[y].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def average_precision(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the precision-recall curve as scikit-learn's ``average_precision_score``:
    the mean of the precision at each positive's score threshold (ties share a threshold)."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    positives = int(y.sum())
    if positives == 0:
        return math.nan
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    true_pos = np.cumsum(y)[last_of_tie]
    predicted = (np.arange(1, s.size + 1))[last_of_tie]
    precision = true_pos / predicted
    recall_gain = np.diff(np.r_[0, true_pos]) / positives
    return float((precision * recall_gain).sum())


def log_loss(probabilities: ArrayLike, labels: ArrayLike) -> float:
    p = np.clip(np.asarray(probabilities, dtype=np.float64), EPS, 1.0 - EPS)
    y = np.asarray(labels, dtype=np.float64)
    if p.size == 0:
        return math.nan
    return float(-(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)).mean())


def expected_calibration_error(probabilities: ArrayLike, labels: ArrayLike, bins: int = 10) -> float:
    """Mean |predicted - observed| rate over equal-count bins of the predictions, weighted by size.

    Equal-count rather than equal-width bins: CTRs sit in a few percent, so equal-width bins
    would put nearly everything in the first one and call any model calibrated.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if p.size == 0:
        return math.nan
    order = np.argsort(p, kind="mergesort")
    total = 0.0
    for part in np.array_split(order, min(bins, p.size)):
        total += part.size * abs(p[part].mean() - y[part].mean())
    return total / p.size


def wape(forecast: ArrayLike, actual: ArrayLike) -> float:
    """Weighted absolute percentage error: sum |forecast - actual| / sum actual."""
    f, a = np.asarray(forecast, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    sold = a.sum()
    return float(np.abs(f - a).sum() / sold) if sold > 0 else math.nan


def ratio(numerator: ArrayLike, denominator: ArrayLike) -> float:
    """sum(numerator) / sum(denominator); ``nan`` when the denominator sums to zero or less."""
    den = float(np.asarray(denominator, dtype=np.float64).sum())
    return float(np.asarray(numerator, dtype=np.float64).sum()) / den if den > 0 else math.nan


def rank_gain(items: list[int], target: int) -> tuple[float, float]:
    """(hit, NDCG) of one list for one relevant item: NDCG is 1 / log2(rank + 1) at a 1-based rank."""
    try:
        rank = items.index(target) + 1
    except ValueError:
        return 0.0, 0.0
    return 1.0, 1.0 / math.log2(rank + 1)


def mean(values: ArrayLike) -> float:
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()) if v.size else math.nan
