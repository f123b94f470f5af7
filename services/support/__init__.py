"""Support service: customer messages → intent, queue and escalation, by a fine-tuned text encoder."""

from __future__ import annotations

from services.support.settings import SupportSettings
from shared.runtime.scorer import Scorer

SETTINGS_CLASS = SupportSettings


def create_scorer(settings: SupportSettings) -> Scorer:  # type: ignore[type-arg]
    """The CLI/runtime entry point: a scorer with no I/O until ``load()``."""
    from services.support.scorer import SupportScorer

    return SupportScorer(settings)


__all__ = ["SETTINGS_CLASS", "create_scorer"]
