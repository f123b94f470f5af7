"""Ad CTR service: calibrated pCTR per candidate ad and the bid x pCTR ranking."""

from __future__ import annotations

from services.ad_ctr.scorer import AdCtrScorer
from services.ad_ctr.settings import AdCtrSettings
from shared.settings import ServiceSettings

SETTINGS_CLASS = AdCtrSettings


def create_scorer(settings: ServiceSettings) -> AdCtrScorer:
    if not isinstance(settings, AdCtrSettings):
        raise TypeError(f"ad_ctr needs AdCtrSettings, got {type(settings).__name__}")
    return AdCtrScorer(settings)


__all__ = ["SETTINGS_CLASS", "create_scorer"]
