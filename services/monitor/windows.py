"""The last N joined samples per (service, model version), and the measures computed over them.

Each service's measures come with a baseline computed on the very same samples:

* ad_ctr: the running base rate (the click rate of every outcome seen *before* each one), so
  its log loss and calibration are what "predict the average" earns, without hindsight;
* fraud: the base rate, whose precision-recall area is the fraud rate itself;
* pricing: the request's current price kept (profit against the oracle), and last period's
  units sold as the forecast (WAPE);
* recommendation: the running top-K popular items (carried in the samples by the join).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from services.monitor import quality as q
from services.monitor.joins import Sample

Measures = dict[str, float]
PendingSamples = Mapping[tuple[str, str], list[Sample]]
"""Samples of a batch not yet in the windows, per (service, version)."""


def ad_measures(rows: np.ndarray) -> tuple[Measures, Measures]:
    """rows: (pCTR, clicked, base rate before it)."""
    p, y, base = rows[:, 0], rows[:, 1], rows[:, 2]
    model = {"auc": q.auc(p, y), "log_loss": q.log_loss(p, y), "ece": q.expected_calibration_error(p, y),
             "predicted_ctr": q.mean(p), "observed_ctr": q.mean(y)}
    baseline = {"auc": q.auc(base, y), "log_loss": q.log_loss(base, y),
                "ece": q.expected_calibration_error(base, y), "predicted_ctr": q.mean(base), "observed_ctr": q.mean(y)}
    return model, baseline


def fraud_measures(rows: np.ndarray) -> tuple[Measures, Measures]:
    """rows: (probability, reviewed or declined, declined, fraud)."""
    p, flagged, declined, y = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3].astype(bool)
    frauds = int(y.sum())
    rate = q.mean(y)
    model = {"pr_auc": q.average_precision(p, y), "fraud_rate": rate,
             "recall_review": float(flagged[y].mean()) if frauds else math.nan,
             "recall_decline": float(declined[y].mean()) if frauds else math.nan}
    # A constant score ranks nothing: its precision is the fraud rate at every recall.
    return model, {"pr_auc": rate if frauds else math.nan, "fraud_rate": rate}


def pricing_measures(rows: np.ndarray) -> tuple[Measures, Measures]:
    """rows: (forecast, units sold, realised profit, oracle profit, profit at current price, last units)."""
    forecast, units, profit, oracle, at_current, last = (rows[:, i] for i in range(6))
    both = ~np.isnan(forecast) & ~np.isnan(last)
    model = {"wape": q.wape(forecast[both], units[both]), "profit_vs_oracle": q.ratio(profit, oracle)}
    baseline = {"wape": q.wape(last[both], units[both]), "profit_vs_oracle": q.ratio(at_current, oracle)}
    return model, baseline


def recommendation_measures(rows: np.ndarray) -> tuple[Measures, Measures]:
    """rows: (hit, NDCG, popular's hit, popular's NDCG)."""
    return ({"hit_at_10": q.mean(rows[:, 0]), "ndcg_at_10": q.mean(rows[:, 1])},
            {"hit_at_10": q.mean(rows[:, 2]), "ndcg_at_10": q.mean(rows[:, 3])})


MEASURES: dict[str, Callable[[np.ndarray], tuple[Measures, Measures]]] = {
    "ad_ctr": ad_measures,
    "fraud": fraud_measures,
    "pricing": pricing_measures,
    "recommendation": recommendation_measures,
}


class QualityWindows:
    """Bounded sample windows per (service, version); measures computed on demand."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._samples: dict[tuple[str, str], deque[Sample]] = {}

    def add(self, service: str, version: str, samples: Iterable[Sample]) -> None:
        window = self._samples.get((service, version))
        if window is None:
            window = self._samples[(service, version)] = deque(maxlen=self._size)
        window.extend(samples)

    def sizes(self, pending: PendingSamples | None = None) -> dict[tuple[str, str], int]:
        return {k: len(w) for k, w in self._windows(pending).items()}

    def measures(self, pending: PendingSamples | None = None) -> dict[tuple[str, str], tuple[Measures, Measures]]:
        """(model, baseline) measures of every window that holds samples; with ``pending``, as the
        windows will be once those samples are added (nothing is added)."""
        return {(service, version): MEASURES[service](np.array(window, dtype=np.float64))
                for (service, version), window in self._windows(pending).items() if window}

    def _windows(self, pending: PendingSamples | None) -> dict[tuple[str, str], Sequence[Sample]]:
        windows: dict[tuple[str, str], Sequence[Sample]] = dict(self._samples)
        for key, samples in (pending or {}).items():
            windows[key] = [*windows.get(key, ()), *samples][-self._size:]
        return windows


class RunningRate:
    """The share of positives among everything seen so far (the prequential base rate)."""

    def __init__(self) -> None:
        self.positives = 0.0
        self.total = 0.0

    def rate(self, prior: float = 0.5) -> float:
        """The rate so far; ``prior`` before anything was seen."""
        return self.positives / self.total if self.total else prior

    def add(self, labels: Iterable[float]) -> None:
        for y in labels:
            self.positives += y
            self.total += 1


class Popularity:
    """Click counts per item and the top K as of the last :meth:`refresh` (once per batch: ranking
    the whole catalogue per click would cost more than the rest of the monitor)."""

    def __init__(self, k: int) -> None:
        self._k = k
        self._counts: Counter[int] = Counter()
        self._top: list[int] = []
        self._stale = False

    def refresh(self) -> None:
        if self._stale:
            self._top = [item for item, _ in self._counts.most_common(self._k)]
            self._stale = False

    def top(self) -> list[int]:
        return self._top

    def add(self, item: int) -> None:
        self._counts[item] += 1
        self._stale = True


class Coverage:
    """Distinct items among the last ``lists`` warm lists of each model version."""

    def __init__(self, lists: int) -> None:
        self._lists = lists
        self._windows: dict[str, deque[list[int]]] = {}

    def add(self, version: str, items: list[int]) -> None:
        window = self._windows.get(version)
        if window is None:
            window = self._windows[version] = deque(maxlen=self._lists)
        window.append(items)

    def distinct(self) -> dict[str, int]:
        return {v: len({i for items in w for i in items}) for v, w in self._windows.items()}
