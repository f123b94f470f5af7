"""Payments: ``payments.transactions`` in (key ``user_id``); ``fraud.scores`` / ``fraud.alerts`` out."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from shared.schemas.base import Id, InputEvent, ModelVersion, Name, OutputRecord, Probability, TsMs

logger = logging.getLogger(__name__)

CURRENCIES = frozenset(
    {
        "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "INR", "JPY",
        "KRW", "MXN", "NOK", "NZD", "PLN", "SEK", "SGD", "TRY", "USD", "ZAR",
    }
)  # fmt: skip
"""ISO 4217 codes the shop accepts; anything else is an invalid event."""
MAX_AMOUNT = 100_000_000.0
"""Generous because amounts are in the currency's units (JPY, INR...)."""
MAX_REASONS = 10

Channel = Literal["web", "app", "pos"]
Decision = Literal["approve", "review", "decline"]


def _known_currency(code: str) -> str:
    if code not in CURRENCIES:
        raise ValueError(f"unknown currency {code!r}; accepted: {', '.join(sorted(CURRENCIES))}")
    return code


Currency = Annotated[
    str,
    StringConstraints(min_length=3, max_length=3),
    AfterValidator(_known_currency),
    Field(json_schema_extra={"enum": sorted(CURRENCIES)}),
]


class Transaction(InputEvent):
    """One card payment attempt."""

    txn_id: Id
    user_id: Id
    card_id: Id
    amount: float = Field(gt=0.0, le=MAX_AMOUNT, description="in `currency` units, finite and positive")
    currency: Currency
    merchant_id: Id
    merchant_category: Name
    device_id: Id
    ip_country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = Field(
        description="ISO 3166-1 alpha-2, upper case"
    )
    card_bin: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")] = Field(description="first 6 digits")
    channel: Channel
    ts_ms: TsMs


ReasonCode = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class FraudScore(OutputRecord):
    """The fraud probability, the decision from the service's thresholds, and why."""

    txn_id: str
    user_id: str
    probability: Probability
    decision: Decision
    reasons: tuple[ReasonCode, ...] = Field(default=(), max_length=MAX_REASONS)
    model_version: ModelVersion
    event_ts_ms: int
