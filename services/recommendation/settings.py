"""Settings of the recommendation service: ``SHOPSTREAM_RECOMMENDATION_*``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.recommendation.features import EVENT_WEIGHTS
from shared.settings import ServiceSettings


class RecommendationSettings(ServiceSettings):
    """Clickstream in, top-K items per user out; per-user history in the state store."""

    model_config = SettingsConfigDict(
        env_prefix="SHOPSTREAM_RECOMMENDATION_", env_nested_delimiter="__", extra="ignore"
    )

    service_name: str = "recommendation"
    input_topic: str = "clickstream.events"
    output_topic: str = "reco.scores"
    model_name: str = "recommendation"
    """Model repository name under ``models_dir``."""
    top_k: int = Field(10, ge=1, le=1000)
    """Items per recommendation."""
    history_len: int = Field(50, ge=1, le=1000)
    """Interactions kept per user (the model reads at most its ``max_len`` newest)."""
    purchased_len: int = Field(200, ge=0, le=10_000)
    """Purchased item ids remembered per user for exclusion."""
    event_weights: dict[str, int] = Field(default_factory=lambda: dict(EVENT_WEIGHTS))
    """Weight per event type; lower-weight interactions are evicted first from a full history."""
    cold_start_min_history: int = Field(2, ge=1)
    """Users with fewer interactions get popular items of the session's category."""
    repeat_purchase_categories: list[str] = Field(default_factory=list)
    """Categories whose bought items may be recommended again, added to the model's own list."""
    out_of_stock: list[int] = Field(default_factory=list)
    """Item ids never recommended (the config topic's ``filters`` key overrides this)."""
    blocked_categories: list[str] = Field(default_factory=list)
    """Category names never recommended (the config topic's ``filters`` key overrides this)."""
    unknown_item: Literal["reject", "ignore"] = "reject"
    """An item id the model does not know: dead-letter the event (``reject``) or recommend
    from the known history without adding it (``ignore``)."""
    config_topic: str | None = "reco.config"
    """Compacted topic of operator settings: business filters (key ``filters``) and the rollout of a
    candidate model (key ``rollout``)."""
