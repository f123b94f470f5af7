"""The live-quality monitor: predictions joined with outcomes, quality per service and model version."""

from __future__ import annotations

from services.monitor.settings import MonitorSettings
from shared.runtime.scorer import Scorer

SETTINGS_CLASS = MonitorSettings


def create_scorer(settings: MonitorSettings) -> Scorer:  # type: ignore[type-arg]
    """The CLI/runtime entry point: a scorer with no I/O until ``load()``."""
    from services.monitor.scorer import MonitorScorer

    return MonitorScorer(settings)


__all__ = ["SETTINGS_CLASS", "create_scorer"]
