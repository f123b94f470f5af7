"""Fraud service: payments scored with velocity state, thresholds, reason codes and alerts."""

from __future__ import annotations

from services.fraud.settings import FraudSettings
from shared.runtime.scorer import Scorer

SETTINGS_CLASS = FraudSettings


def create_scorer(settings: FraudSettings) -> Scorer:  # type: ignore[type-arg]
    """The CLI/runtime entry point: a scorer with no I/O until ``load()``."""
    from services.fraud.scorer import FraudScorer

    return FraudScorer(settings)


__all__ = ["SETTINGS_CLASS", "create_scorer"]
