"""Ranking candidates by expected value (bid x pCTR)."""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)


def expected_value_ranks(bids: np.ndarray, pctr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(expected value, rank)`` per candidate; rank 1 is the highest bid x pCTR.

    Ties keep the request's candidate order (a stable sort), so equal bids never reorder
    at random between replicas.
    """
    ev = np.asarray(bids, dtype=np.float64) * np.asarray(pctr, dtype=np.float64)
    order = np.argsort(-ev, kind="stable")
    ranks = np.empty(len(ev), dtype=np.int64)
    ranks[order] = np.arange(1, len(ev) + 1)
    return ev, ranks
