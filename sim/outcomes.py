"""What the shop observed after each scored event: outcome records for the feedback topic.

Each function turns one ``(event, truth)`` row (and, for pricing, the service's decision) into a
:data:`Due` item: when the outcome is observed (wall-clock seconds), its Kafka key (the key of
the scored event) and the :class:`~shared.schemas.feedback.FeedbackRecord` as a dict. The
record's ``ts_ms`` is the observation time: the runtime stamps a prediction with its input
record's timestamp (the wall clock when the event was produced), so ``ts_ms`` minus the
prediction's is the delay the shop waited.

* **ads**: every candidate of a request counts as shown (a results page shows all sponsored
  candidates); ``clicked`` is the sim's sampled click. Clicks come within seconds.
* **payments**: a fraudulent payment ends in a chargeback, a legitimate one settles.
* **pricing**: units sold in the period at the price the service decided, sampled from the
  sim's demand curve, beside the oracle's profit and the profit of keeping the current price.
* **clickstream**: nothing; the user's next clicks are the outcome.

Real delays (chargebacks weeks, a pricing period a week) are compressed to seconds for the
demo; :class:`OutcomeDelays` holds the compressed values and :meth:`OutcomeDelays.scaled`
stretches or shrinks them all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.schemas.base import CURRENT_SCHEMA_VERSION
from sim.pricing import PricingSim

logger = logging.getLogger(__name__)

Due = tuple[float, str, dict[str, Any]]
"""``(due time in Unix seconds, key, FeedbackRecord dict)``."""
Row = dict[str, Any]
"""An event, its truth or a decision, as plain JSON-shaped dicts."""


@dataclass(frozen=True, slots=True)
class OutcomeDelays:
    """Seconds from an event (a decision, for pricing) to its outcome, compressed for the demo.

    In life a click comes within seconds, a card payment settles in a day or two and a
    chargeback comes weeks later; a pricing period of the sim is a week.
    """

    click_s: tuple[float, float] = (1.0, 5.0)
    """Uniform: the request's click window closes (its clicks, if any, are in)."""
    settle_s: float = 30.0
    """A legitimate payment settles with no chargeback."""
    chargeback_s: tuple[float, float] = (20.0, 60.0)
    """Uniform: a fraudulent payment is charged back."""
    sales_period_s: float = 10.0
    """The pricing period (one week in the sim) after the decided price is applied."""

    def scaled(self, factor: float) -> OutcomeDelays:
        """Every delay times ``factor`` (0: outcomes as soon as the event is sent)."""
        if factor < 0:
            raise ValueError(f"delay scale must be >= 0, not {factor}")
        return OutcomeDelays(
            click_s=(self.click_s[0] * factor, self.click_s[1] * factor), settle_s=self.settle_s * factor,
            chargeback_s=(self.chargeback_s[0] * factor, self.chargeback_s[1] * factor),
            sales_period_s=self.sales_period_s * factor,
        )  # fmt: skip

    @property
    def longest_s(self) -> float:
        return max(self.click_s[1], self.settle_s, self.chargeback_s[1], self.sales_period_s)


def outcome_record(service: str, ts_ms: int, record: dict[str, Any]) -> dict[str, Any]:
    """A ``FeedbackRecord`` of kind ``outcome`` as a dict, ready for JSON."""
    return {"schema_version": CURRENT_SCHEMA_VERSION, "kind": "outcome", "service": service, "ts_ms": ts_ms,
            "record": record}  # fmt: skip


def _due(service: str, key: str, at_s: float, record: dict[str, Any]) -> Due:
    return at_s, key, outcome_record(service, round(at_s * 1000), record)


def ad_outcome(event: Row, truth: Row, sent_s: float, delays: OutcomeDelays, rng: np.random.Generator) -> Due:
    """Every candidate shown, each with the sim's sampled click (``truth["click"]``), key ``request_id``."""
    shown = [{"ad_id": c["ad_id"], "clicked": bool(k)}
             for c, k in zip(event["candidates"], truth["click"], strict=True)]  # fmt: skip
    at = sent_s + float(rng.uniform(*delays.click_s))
    return _due("ad_ctr", event["request_id"], at, {"request_id": event["request_id"], "shown": shown})


def payment_outcome(event: Row, truth: Row, sent_s: float, delays: OutcomeDelays, rng: np.random.Generator) -> Due:
    """A chargeback (``fraud`` true) for fraud, else settlement, key ``user_id``."""
    fraud = bool(truth["is_fraud"])
    at = sent_s + (float(rng.uniform(*delays.chargeback_s)) if fraud else delays.settle_s)
    record = {"txn_id": event["txn_id"], "user_id": event["user_id"], "fraud": fraud}
    return _due("fraud", event["user_id"], at, record)


def row_outcomes(
    stream: str, event: Row, truth: Row, sent_s: float, delays: OutcomeDelays, rng: np.random.Generator
) -> list[Due]:
    """The outcomes known from the row alone: ads and payments (pricing waits for its decision)."""
    if stream == "ads":
        return [ad_outcome(event, truth, sent_s, delays, rng)]
    if stream == "payments":
        return [payment_outcome(event, truth, sent_s, delays, rng)]
    return []


def sales_outcome(
    sim: PricingSim, event: Row, truth: Row, decision: Row, decided_s: float, delays: OutcomeDelays,
    rng: np.random.Generator,
) -> Due:
    """Units sold in the period at the decided price: negative-binomial around the sim's demand.

    The noise is the sim's own (``PricingConfig.dispersion``), so the mean is the true demand at
    that price. ``oracle_profit`` is the truth's; ``profit_at_current`` is the expected profit
    had the request's current price been kept (the truth's ``true_units`` are at that price).
    """
    price, cost = float(decision["recommended_price"]), float(event["unit_cost"])
    mean = float(sim.units_for(event, price))
    shape = sim.config.dispersion
    units = float(rng.poisson(mean * rng.gamma(shape, 1.0 / shape)))
    record = {
        "sku": event["sku"], "event_ts_ms": event["ts_ms"], "price": price, "units": units, "unit_cost": cost,
        "oracle_profit": float(truth["oracle_profit"]),
        "profit_at_current": (float(event["current_price"]) - cost) * float(truth["true_units"]),
    }  # fmt: skip
    return _due("pricing", event["sku"], decided_s + delays.sales_period_s, record)


class PricingLedger:
    """The shop's open pricing requests, each waiting for its decision (bounded, oldest dropped).

    A request whose decision never comes (the service is down, or it fell out of the ledger)
    gets no outcome. A decision is used once: a redelivered copy finds nothing and is ignored.
    """

    def __init__(self, sim: PricingSim, delays: OutcomeDelays, rng: np.random.Generator,
                 capacity: int = 10_000) -> None:
        self.sim, self.delays, self.rng, self.capacity = sim, delays, rng, capacity
        self._open: dict[tuple[str, int], tuple[Row, Row]] = {}
        self.dropped = 0
        """Requests pushed out of the ledger before their decision came."""

    def __len__(self) -> int:
        return len(self._open)

    def requested(self, event: Row, truth: Row) -> None:
        """Called when a pricing request is produced."""
        if len(self._open) >= self.capacity:
            del self._open[next(iter(self._open))]  # dicts keep insertion order: the oldest
            self.dropped += 1
        self._open[event["sku"], event["ts_ms"]] = (event, truth)

    def decided(self, decision: Row, now_s: float) -> Due | None:
        """The outcome of the decision's request, or ``None`` when the request is not open."""
        row = self._open.pop((decision["sku"], decision["event_ts_ms"]), None)
        if row is None:
            return None
        return sales_outcome(self.sim, row[0], row[1], decision, now_s, self.delays, self.rng)
