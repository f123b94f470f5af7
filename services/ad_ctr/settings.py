"""Settings of the ad CTR service (env prefix ``SHOPSTREAM_AD_CTR_``)."""

from __future__ import annotations

import logging

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.schemas.ads import MAX_CANDIDATES
from shared.settings import ServiceSettings

logger = logging.getLogger(__name__)


class AdCtrSettings(ServiceSettings):
    """``SHOPSTREAM_AD_CTR_MAX_CANDIDATES=20`` lowers the per-request limit, for example."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_AD_CTR_", env_nested_delimiter="__", extra="ignore")

    service_name: str = "ad_ctr"
    config_topic: str | None = "ads.config"
    """Compacted topic of operator settings: the ``rollout`` key runs a candidate model (docs/live-quality.md)."""
    input_topic: str = "ads.impressions"
    output_topic: str = "ads.ctr_scores"
    model_name: str = "ad_ctr"
    """The CTR graph; its manifest names the text-encoder version it was trained with."""
    max_candidates: int = Field(MAX_CANDIDATES, ge=1, le=MAX_CANDIDATES)
    """Requests with more candidates are dead-lettered (``too_many_candidates``)."""
    embedding_cache_size: int = Field(50_000, ge=0)
    """Creative-text embeddings kept per creative id (LRU); 0 runs the text encoder every time."""
