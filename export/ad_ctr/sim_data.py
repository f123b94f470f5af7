"""Training data from the simulated shop's ad requests, whose true CTRs are known.

Requests are taken in stream order and cut into consecutive slices ("days"): train,
validation, test, and further slices used as "new days" for fine-tuning from an earlier
version. Rows are built with :func:`services.ad_ctr.features.candidate_rows`, the same
function the scorer uses, from validated :class:`AdRequest` events.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from export.ad_ctr.train import CtrData
from services.ad_ctr.features import REQUEST_SPEC, FeatureSpec, candidate_rows, encode_rows
from shared.schemas.ads import AdRequest
from sim.registry import make_stream

logger = logging.getLogger(__name__)


@dataclass
class Catalogue:
    """Creative ids seen so far, each with an index and its title (the text tower's input)."""

    index: dict[str, int] = field(default_factory=dict)
    titles: list[str] = field(default_factory=list)

    def add(self, creative_id: str, title: str) -> int:
        if creative_id not in self.index:
            self.index[creative_id] = len(self.titles)
            self.titles.append(title)
        return self.index[creative_id]


@dataclass(frozen=True)
class SimSplit:
    data: CtrData
    true_ctr: np.ndarray
    requests: int


def _encode(events: Sequence[tuple[AdRequest, dict[str, Any]]], spec: FeatureSpec,
            catalogue: Catalogue) -> SimSplit:
    rows: list[dict[str, object]] = []
    creative: list[int] = []
    label: list[int] = []
    ctr: list[float] = []
    for request, truth in events:
        rows.extend(candidate_rows(request))
        creative.extend(catalogue.add(c["creative_id"], c["title"]) for c in request.candidates)
        label.extend(truth["click"])
        ctr.extend(truth["ctr"])
    data = CtrData(encode_rows(spec, rows), np.asarray(label, dtype=np.int64), np.asarray(creative, dtype=np.int64))
    return SimSplit(data, np.asarray(ctr), len(events))


def sim_splits(sizes: Sequence[int], seed: int = 7, spec: FeatureSpec = REQUEST_SPEC,
               catalogue: Catalogue | None = None) -> tuple[list[SimSplit], Catalogue]:
    """Consecutive slices of ``sizes[i]`` requests each from the ads stream of world ``seed``."""
    catalogue = catalogue or Catalogue()
    stream = make_stream("ads", seed=seed).iter_dicts(sum(sizes))
    splits = []
    for size in sizes:
        events = [(AdRequest.model_validate(e), t) for e, t in (next(stream) for _ in range(size))]
        splits.append(_encode(events, spec, catalogue))
    logger.info("sim splits: %s rows, %d creatives", [len(s.data) for s in splits], len(catalogue.titles))
    return splits, catalogue
