"""Settings of the fraud service (env prefix ``SHOPSTREAM_FRAUD_``).

``SHOPSTREAM_FRAUD_DECLINE_THRESHOLD=0.8`` or ``SHOPSTREAM_FRAUD_FALLBACK_RULES__AMOUNT_EUR=800``,
for example. See docs/fraud.md for what the thresholds and error policies mean.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.fraud.features import EUR_RATES
from shared.settings import ServiceSettings

logger = logging.getLogger(__name__)

ErrorPolicy = Literal["retry", "fail_open", "fail_closed"]


class RuleSettings(BaseModel):
    """Thresholds of the rules the ``fail_open`` policy decides with while the model is down."""

    amount_eur: float = Field(500.0, gt=0)
    count_1m: int = Field(3, ge=1)
    """Earlier payments of the same user in the last minute."""
    count_1h: int = Field(10, ge=1)
    amount_1h_eur: float = Field(1500.0, gt=0)
    """Total spent by the user in the last hour."""


class FraudSettings(ServiceSettings):
    """Decision thresholds, the model-error policy and reason codes of the fraud scorer."""

    model_config = SettingsConfigDict(env_prefix="SHOPSTREAM_FRAUD_", env_nested_delimiter="__", extra="ignore")

    service_name: str = "fraud"
    config_topic: str | None = "fraud.config"
    """Compacted topic of operator settings: the ``rollout`` key runs a candidate model (docs/live-quality.md)."""
    input_topic: str = "payments.transactions"
    output_topic: str = "fraud.scores"
    alerts_topic: str = "fraud.alerts"
    """Every ``decline`` is also written here, for the team that acts on it."""
    model_name: str = "fraud"
    models_dir: Path = Path("models")
    review_threshold: float = Field(0.15, ge=0.0, le=1.0)
    """``probability >= review_threshold`` → ``review`` (a human looks before shipping). The
    default is about a 1 % false-positive rate of the default model on held-out simulated
    payments (``threshold_at_1pct_fpr`` in its manifest)."""
    decline_threshold: float = Field(0.5, ge=0.0, le=1.0)
    """``probability >= decline_threshold`` → ``decline`` (and an alert); default about 0.1 % FPR."""
    model_error_policy: ErrorPolicy = "retry"
    """What to do when the model fails on a batch:
    ``retry``: raise; the runtime pauses, backs off and retries, and reports not-ready (nothing
    is decided without the model; payments wait). ``fail_open``: decide with the rules below,
    so payments keep flowing and only rule hits are reviewed. ``fail_closed``: every payment
    gets ``fail_closed_decision`` until the model is back."""
    fail_closed_decision: Literal["review", "decline"] = "review"
    fallback_rules: RuleSettings = Field(default_factory=RuleSettings)
    max_reasons: int = Field(3, ge=0, le=10)
    reason_min_delta: float = Field(0.1, ge=0.0)
    """A feature group is a reason only if resetting it to a typical value lowers the
    log-odds of fraud by at least this much (0.1 ≈ a 10 % lower odds)."""
    reasons_for: Literal["all", "flagged"] = "flagged"
    """Compute reason codes for every payment, or only for ``review``/``decline`` (cheaper)."""
    currency_rates: dict[str, float] = Field(default_factory=lambda: dict(EUR_RATES))
    """Units per EUR; a payment in a currency missing here is dead-lettered (``unknown_currency``)."""

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> FraudSettings:
        if self.review_threshold > self.decline_threshold:
            raise ValueError("review_threshold must not exceed decline_threshold")
        return self
