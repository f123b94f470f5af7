"""The rules baseline: amount and velocity thresholds over the shared feature vector.

It is the yardstick the model has to beat, and the scorer's fallback when the model fails
under the ``fail_open`` policy. It reads the same features as the model (one
implementation), so the thresholds below are on raw quantities, converted here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from services.fraud.features import NUMERIC_FEATURES

_COL = {name: i for i, name in enumerate(NUMERIC_FEATURES)}


@dataclass(frozen=True, slots=True)
class Rules:
    """A payment is suspicious for each threshold it reaches; the score counts them."""

    amount_eur: float = 500.0
    count_1m: int = 3
    """Earlier payments of the same user within the last minute."""
    count_1h: int = 10
    amount_1h_eur: float = 1500.0

    def fired(self, numeric: np.ndarray) -> np.ndarray:
        """Boolean ``[rows, 4]``: which of the four rules each payment trips."""
        checks = (
            ("log_amount", self.amount_eur),
            ("cnt_1m", self.count_1m),
            ("cnt_1h", self.count_1h),
            ("amt_1h", self.amount_1h_eur),
        )
        return np.stack([numeric[:, _COL[col]] >= math.log1p(limit) - 1e-6 for col, limit in checks], axis=1)

    def score(self, numeric: np.ndarray) -> np.ndarray:
        """Rules fired per payment, scaled to [0, 1] (a ranking score, not a probability)."""
        return np.asarray(self.fired(numeric).sum(axis=1) / 4.0, dtype=np.float32)


RULE_REASONS = ("high_amount", "velocity_1m", "velocity_1h", "velocity_1h")
"""Reason code of each rule, in :meth:`Rules.fired` column order."""
