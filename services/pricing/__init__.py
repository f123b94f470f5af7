"""Pricing service: demand-model-driven price decisions under guardrails."""

from __future__ import annotations

from services.pricing.settings import PricingSettings
from shared.runtime.scorer import Scorer

SETTINGS_CLASS = PricingSettings


def create_scorer(settings: PricingSettings) -> Scorer:  # type: ignore[type-arg]
    """The CLI/runtime entry point: a scorer with no I/O until ``load()``."""
    from services.pricing.scorer import PricingScorer

    return PricingScorer(settings)


__all__ = ["SETTINGS_CLASS", "create_scorer"]
