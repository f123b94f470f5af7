"""How far a candidate's outputs agree with the live version's, on the same events.

A scorer describes its main output as an :class:`AgreementView` (``Scorer.agreement_view``):
its scores by id (one unnamed score, or one per ad or item), the decision the shop acts on, and
its ranking. :class:`AgreementWindow` keeps the last pairs of views and summarises them as the
three measures shown for a shadow and reported by ``shopstream replay --compare``:

* ``score_correlation``: Pearson's r between the two versions' scores, paired by id;
* ``decision_flip_rate``: the share of events whose decision differs;
* ``top_k_overlap``: the mean share of the live top K that the candidate's top K also holds.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

DEFAULT_TOP_K = 10
DEFAULT_WINDOW = 5000


@dataclass(frozen=True, slots=True)
class AgreementView:
    """The parts of one output two versions are compared on; any of them may be absent."""

    scores: Mapping[str, float] = field(default_factory=dict)
    decision: str | None = None
    ranking: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class PairAgreement:
    """One event's comparison."""

    score_pairs: tuple[tuple[float, float], ...]
    flipped: bool | None
    overlap: float | None


def compare(live: AgreementView, candidate: AgreementView, top_k: int = DEFAULT_TOP_K) -> PairAgreement:
    pairs = tuple((v, candidate.scores[k]) for k, v in live.scores.items() if k in candidate.scores)
    flipped = None if live.decision is None or candidate.decision is None else live.decision != candidate.decision
    overlap = None
    if live.ranking and candidate.ranking:
        top = list(live.ranking[:top_k])
        overlap = len(set(top) & set(candidate.ranking[:top_k])) / len(top)
    return PairAgreement(pairs, flipped, overlap)


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson's r; 1.0 when both sides are the same constant, nan when only one side is constant."""
    if len(xs) < 2:
        return math.nan
    x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    sx, sy = float(np.sqrt((dx * dx).sum())), float(np.sqrt((dy * dy).sum()))
    if sx == 0.0 or sy == 0.0:
        return 1.0 if sx == sy and np.allclose(x, y) else math.nan
    return float((dx * dy).sum() / (sx * sy))


class AgreementWindow:
    """The last ``size`` events' comparisons and their summary."""

    def __init__(self, size: int = DEFAULT_WINDOW, top_k: int = DEFAULT_TOP_K) -> None:
        self.top_k = top_k
        self._pairs: deque[PairAgreement] = deque(maxlen=size)
        self.events = 0
        """Events compared since the window was made (not bounded by ``size``)."""
        self.flips = 0
        """Decisions that differed since the window was made."""

    def add(self, live: AgreementView, candidate: AgreementView) -> PairAgreement:
        pair = compare(live, candidate, self.top_k)
        self._pairs.append(pair)
        self.events += 1
        self.flips += int(bool(pair.flipped))
        return pair

    def __len__(self) -> int:
        return len(self._pairs)

    def summary(self) -> dict[str, float]:
        """``score_correlation``, ``decision_flip_rate`` and ``top_k_overlap`` over the window, each
        left out when no event in it had that part."""
        scores = [s for p in self._pairs for s in p.score_pairs]
        flips = [p.flipped for p in self._pairs if p.flipped is not None]
        overlaps = [p.overlap for p in self._pairs if p.overlap is not None]
        out: dict[str, float] = {}
        if len(scores) >= 2:
            r = pearson([a for a, _ in scores], [b for _, b in scores])
            if not math.isnan(r):
                out["score_correlation"] = r
        if flips:
            out["decision_flip_rate"] = sum(flips) / len(flips)
        if overlaps:
            out["top_k_overlap"] = sum(overlaps) / len(overlaps)
        return out
