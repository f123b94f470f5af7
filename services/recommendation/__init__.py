"""Recommendation service: clickstream in, top-K next items per user out (SASRec-style model)."""

from __future__ import annotations

from services.recommendation.settings import RecommendationSettings
from shared.runtime.scorer import Scorer

SETTINGS_CLASS = RecommendationSettings


def create_scorer(settings: RecommendationSettings) -> Scorer:  # type: ignore[type-arg]
    """The CLI/runtime entry point: a scorer with no I/O until ``load()``."""
    from services.recommendation.scorer import RecommendationScorer

    return RecommendationScorer(settings)


__all__ = ["SETTINGS_CLASS", "create_scorer"]
