"""Settings of the pricing service (env prefix ``SHOPSTREAM_PRICING_``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.pricing.guardrails import GuardrailConfig
from shared.settings import ServiceSettings

logger = logging.getLogger(__name__)


class PricingSettings(ServiceSettings):
    """``SHOPSTREAM_PRICING_GUARDRAILS__MIN_MARGIN=0.1`` sets a nested guardrail, for example."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_PRICING_", env_nested_delimiter="__", extra="ignore")

    service_name: str = "pricing"
    input_topic: str = "pricing.requests"
    output_topic: str = "pricing.decisions"
    forecast_topic: str = "pricing.forecasts"
    """Next-period unit forecasts at the recommended price (for inventory planning)."""
    config_topic: str | None = "pricing.config"
    """Compacted topic with the kill switch (key ``*``) and per-SKU overrides; ``None``: none."""
    config_wait_s: float = Field(10.0, ge=0.0)
    """At start, wait this long for the config topic to be read to its end before scoring."""
    model_name: str = "pricing"
    models_dir: Path = Path("models")
    objective: Literal["profit", "revenue"] = "profit"
    grid_points: int = Field(48, ge=2, le=256)
    """Candidate prices per request, all scored in one ONNX call per micro-batch."""
    guardrails: GuardrailConfig = Field(default_factory=GuardrailConfig)
