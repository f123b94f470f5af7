"""The feedback topic: what a service predicted and what happened after, for the live-quality monitor.

One topic (default ``shop.feedback``) carries two kinds of record, both keyed like the scored
event, so a prediction and its outcome land on the same partition and the monitor joins them
in keyed state:

* ``prediction``: a copy of a service's published output, wrapped by the runtime when the
  service's ``feedback_topic`` is set. ``record`` is the output exactly as published on the
  service's own topic (``CtrScores``, ``FraudScore``, ``PricingDecision``, ``RecoScores``).
* ``outcome``: what the shop observed afterwards, published by the shop (the simulator, a
  replay of a labelled data set, or the user's own systems). ``record`` is one of the outcome
  models below, chosen by ``service``.

Recommendation has no outcome records: a user's following clicks are the outcome, and they
arrive as the ``source`` of the service's next predictions for that user.

Why one topic and not the service outputs plus outcome topics: the runtime consumes one input
topic per service, with its offsets, state and changelog per partition of that topic. Joining
on one co-partitioned topic keeps the monitor an ordinary keyed service, with the same
at-least-once and exactly-once guarantees and crash-safe join state as the others.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.base import Id, InputEvent, TsMs

FeedbackKind = Literal["prediction", "outcome"]
MonitoredService = Literal["ad_ctr", "fraud", "pricing", "recommendation"]

DEFAULT_FEEDBACK_TOPIC = "shop.feedback"


class FeedbackRecord(InputEvent):
    """One record of the feedback topic: a prediction or an outcome of one monitored service."""

    kind: FeedbackKind
    service: MonitoredService
    ts_ms: TsMs
    """Event time: of the scored event (prediction) or of the observation (outcome)."""
    record: dict[str, Any]
    """The service's output (prediction) or the outcome model of ``service`` (outcome), validated
    by the monitor per service, so one malformed record is dead-lettered with its own reason."""


class _Outcome(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class AdShown(_Outcome):
    ad_id: Id
    clicked: bool


class AdOutcome(_Outcome):
    """Clicks on the ads of one request (key ``request_id``): one entry per ad the shop showed."""

    request_id: Id
    shown: list[AdShown] = Field(min_length=1, max_length=50)
    """A list, not a tuple: strict models take JSON arrays as lists when validating parsed records."""


class PaymentOutcome(_Outcome):
    """How a payment ended (key ``user_id``): a chargeback (fraud) or settled without one."""

    txn_id: Id
    user_id: Id
    fraud: bool
    """True for a chargeback, False when the payment settled with none in the wait."""


class SalesOutcome(_Outcome):
    """What one pricing period sold (key ``sku``), at the price the shop charged."""

    sku: Id
    event_ts_ms: TsMs
    """The pricing request's event time: joins the outcome with the decision of that request."""
    price: float = Field(gt=0.0)
    """The price charged: the service's recommended price when the shop applied it."""
    units: float = Field(ge=0.0)
    """Units sold in the period at ``price``."""
    unit_cost: float = Field(ge=0.0)
    oracle_profit: float
    """Expected profit at the best price (the simulator knows it; a real shop may omit the outcome)."""
    profit_at_current: float
    """Expected profit had the request's current price been kept: the "last price" baseline."""


class JoinedOutcome(BaseModel):
    """A prediction joined with its outcome: the monitor's output (topic ``shop.quality``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    schema_version: str = Field(default="1.0", max_length=8)
    service: MonitoredService
    model_version: str
    join_id: str
    """The request, payment or pricing request (its event time) joined; for recommendations the
    event time of the list's click."""
    predicted_at_ms: int
    observed_at_ms: int
    values: dict[str, float | None]
    """What was predicted and observed (pCTR and clicks, probability and label, forecast and
    units sold, hit and NDCG); ``null`` where unknown (a forecast at a price never decided)."""


OUTCOME_MODELS: dict[str, type[_Outcome]] = {
    "ad_ctr": AdOutcome,
    "fraud": PaymentOutcome,
    "pricing": SalesOutcome,
}
"""The outcome model of each service that has outcome records."""
