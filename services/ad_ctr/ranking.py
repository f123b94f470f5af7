"""Ranking candidates by expected value (bid x pCTR)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)


def expected_value_ranks(bids: np.ndarray, pctr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(expected value, rank)`` per candidate; rank 1 is the highest bid x pCTR.

    Ties keep the request's candidate order (a stable sort), so equal bids never reorder
    at random between replicas.
    """
    return batch_expected_value_ranks(bids, pctr, [len(bids)])


def batch_expected_value_ranks(
    bids: np.ndarray, pctr: np.ndarray, counts: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`expected_value_ranks` of each request in a batch, with one sort for the whole batch.

    ``counts`` are the requests' candidate counts: the first ``counts[0]`` entries are the first
    request's candidates, and so on. Ranks restart at 1 for each request.
    """
    ev = np.asarray(bids, dtype=np.float64) * np.asarray(pctr, dtype=np.float64)
    sizes = np.asarray(counts, dtype=np.int64)
    request = np.repeat(np.arange(len(sizes)), sizes)
    # By request, then highest EV first, then candidate order: a stable descending sort per request.
    order = np.lexsort((np.arange(len(ev)), -ev, request))
    ranks = np.empty(len(ev), dtype=np.int64)
    ranks[order] = np.arange(len(ev)) - np.repeat(np.cumsum(sizes) - sizes, sizes) + 1
    return ev, ranks
