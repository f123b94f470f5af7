"""How each monitored service's predictions meet their outcomes, in one key's state.

A key's state is a JSON dict: ``{"p": {id: prediction}, "o": {id: outcome}}`` holds the side that
arrived first, each entry stamped with its event time ``"t"``; recommendation keeps
``{"r": [pending lists]}`` instead. Whichever side comes second completes the pair, which
becomes one or more *samples*: plain tuples the service's window knows how to read
(:mod:`services.monitor.windows`). Entries older than the wait are dropped by the scorer's sweep.

The join id inside a key: the request (ads, key ``request_id``), the payment (fraud, key
``user_id``), the pricing request's event time (pricing, key ``sku``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from services.monitor.quality import rank_gain
from shared.schemas.ads import CtrScores
from shared.schemas.clickstream import RecoScores
from shared.schemas.feedback import AdOutcome, PaymentOutcome, SalesOutcome
from shared.schemas.payments import FraudScore
from shared.schemas.pricing import PricingDecision

KeyState = dict[str, Any]
Sample = tuple[float, ...]

PRICE_MATCH = 1e-6
"""Relative difference under which the charged price is the recommended (or current) one."""


@dataclass(frozen=True)
class Pair:
    """One completed join: who scored it, when each side happened, and its samples."""

    version: str
    join_id: str
    predicted_at_ms: int
    observed_at_ms: int
    samples: list[Sample]
    values: dict[str, float]
    """A summary for the joined record on the output topic."""


@dataclass(frozen=True)
class IdJoin:
    """A join on an id both sides carry; ``pair`` turns the two stored entries into samples."""

    service: str
    prediction_model: type[BaseModel]
    outcome_model: type[BaseModel]
    prediction_id: Callable[[Any], str]
    prediction_entry: Callable[[Any], dict[str, Any]]
    outcome_id: Callable[[Any], str]
    outcome_entry: Callable[[Any], dict[str, Any]]
    pair: Callable[[dict[str, Any], dict[str, Any], KeyState], tuple[list[Sample], dict[str, float]]]
    """(prediction entry, outcome entry, the key's state) → samples and a summary."""


def _ad_pair(pred: dict[str, Any], out: dict[str, Any], _: KeyState) -> tuple[list[Sample], dict[str, float]]:
    """One sample per shown ad the model scored: (pCTR, clicked)."""
    scores: dict[str, float] = pred["s"]
    samples: list[Sample] = [(scores[ad], float(clicked)) for ad, clicked in out["c"] if ad in scores]
    clicks = sum(c for _, c in samples)
    return samples, {"ads": float(len(samples)), "clicks": clicks,
                     "pctr_sum": sum(p for p, _ in samples)}


def _fraud_pair(pred: dict[str, Any], out: dict[str, Any], _: KeyState) -> tuple[list[Sample], dict[str, float]]:
    """(probability, review or decline, declined, fraud)."""
    decision = pred["d"]
    sample = (pred["p"], float(decision != "approve"), float(decision == "decline"), float(out["f"]))
    return [sample], {"probability": pred["p"], "fraud": float(out["f"])}


def _pricing_pair(pred: dict[str, Any], out: dict[str, Any], state: KeyState) -> tuple[list[Sample], dict[str, float]]:
    """(forecast units at the charged price, units sold, realised profit, oracle profit,
    profit at the current price, last period's units): nan where a value is unknown.

    The forecast is the decision's at the price the shop charged: the recommended one, or the
    current one when the shop kept it; at any other price the decision forecast nothing.
    """
    price, units = out["price"], out["units"]
    if abs(price - pred["rec"]) <= PRICE_MATCH * price:
        forecast = pred["ur"]
    elif abs(price - pred["cur"]) <= PRICE_MATCH * price:
        forecast = pred["uc"]
    else:
        forecast = float("nan")
    last = state.get("last", float("nan"))
    state["last"] = units
    profit = units * (price - out["cost"])
    sample = (forecast, units, profit, out["oracle"], out["at_current"], last)
    return [sample], {"forecast": forecast, "units": units, "profit": profit, "oracle_profit": out["oracle"]}


ID_JOINS: dict[str, IdJoin] = {
    "ad_ctr": IdJoin(
        "ad_ctr", CtrScores, AdOutcome,
        prediction_id=lambda p: p.request_id,
        prediction_entry=lambda p: {"s": {c.ad_id: c.pctr for c in p.candidates}},
        outcome_id=lambda o: o.request_id,
        outcome_entry=lambda o: {"c": [[s.ad_id, int(s.clicked)] for s in o.shown]},
        pair=_ad_pair,
    ),
    "fraud": IdJoin(
        "fraud", FraudScore, PaymentOutcome,
        prediction_id=lambda p: p.txn_id,
        prediction_entry=lambda p: {"p": p.probability, "d": p.decision},
        outcome_id=lambda o: o.txn_id,
        outcome_entry=lambda o: {"f": int(o.fraud)},
        pair=_fraud_pair,
    ),
    "pricing": IdJoin(
        "pricing", PricingDecision, SalesOutcome,
        prediction_id=lambda p: str(p.event_ts_ms),
        prediction_entry=lambda p: {"rec": p.recommended_price, "cur": p.current_price,
                                    "ur": p.at_recommended.units, "uc": p.at_current.units},
        outcome_id=lambda o: str(o.event_ts_ms),
        outcome_entry=lambda o: {"price": o.price, "units": o.units, "cost": o.unit_cost,
                                 "oracle": o.oracle_profit, "at_current": o.profit_at_current},
        pair=_pricing_pair,
    ),
}


def add_prediction(join: IdJoin, state: KeyState, record: BaseModel, version: str, ts_ms: int,
                   limit: int) -> Pair | None:
    """Store a prediction, or complete the pair with its outcome if that came first."""
    join_id = join.prediction_id(record)
    entry = {**join.prediction_entry(record), "t": ts_ms, "v": version}
    waiting = state.get("o", {}).pop(join_id, None)
    if waiting is None:
        _hold(state, "p", join_id, entry, limit)
        return None
    return _complete(join, state, join_id, entry, waiting)


def add_outcome(join: IdJoin, state: KeyState, record: BaseModel, ts_ms: int, limit: int) -> Pair | None:
    """Store an outcome, or complete the pair with its prediction if that came first."""
    join_id = join.outcome_id(record)
    entry = {**join.outcome_entry(record), "t": ts_ms}
    waiting = state.get("p", {}).pop(join_id, None)
    if waiting is None:
        _hold(state, "o", join_id, entry, limit)
        return None
    return _complete(join, state, join_id, waiting, entry)


def _complete(join: IdJoin, state: KeyState, join_id: str, pred: dict[str, Any], out: dict[str, Any]) -> Pair:
    samples, values = join.pair(pred, out, state)
    return Pair(pred["v"], join_id, int(pred["t"]), int(out["t"]), samples, values)


def _hold(state: KeyState, side: str, join_id: str, entry: dict[str, Any], limit: int) -> None:
    held: dict[str, Any] = state.setdefault(side, {})
    held[join_id] = entry
    while len(held) > limit:  # dicts keep insertion order: the first is the oldest
        del held[next(iter(held))]


def expire(state: KeyState, before_ms: int) -> tuple[int, int]:
    """Drop the entries stamped before ``before_ms``; returns (predictions, outcomes) dropped."""
    dropped = []
    for side in ("p", "o"):
        held = state.get(side, {})
        old = [k for k, e in held.items() if e["t"] < before_ms]
        for k in old:
            del held[k]
        dropped.append(len(old))
    lists = state.get("r")
    if lists:
        kept = [r for r in lists if r[3] >= before_ms]
        dropped[0] += len(lists) - len(kept)
        state["r"] = kept
    return dropped[0], dropped[1]


def is_empty(state: KeyState) -> bool:
    """Nothing pending and nothing remembered (pricing keeps each SKU's last units sold)."""
    return not (state.get("p") or state.get("o") or state.get("r") or "last" in state)


@dataclass(frozen=True)
class ListOutcome:
    """A recommendation list judged against the user's next click on another item."""

    version: str
    predicted_at_ms: int
    observed_at_ms: int
    hit: float
    ndcg: float
    popular_hit: float
    popular_ndcg: float


def add_recommendation(state: KeyState, record: RecoScores, version: str, ts_ms: int, limit: int, k: int,
                       popular: list[int]) -> list[ListOutcome]:
    """Judge the user's pending lists against this click, then hold this click's list.

    The outcome of a list is the user's next click on an item other than the one the list
    answered: a cart or purchase of the item just viewed is not a recommendation's success.
    Lists answering the same item wait together for the next different one. ``popular`` is the
    running top-K before this click, the baseline judged on the same clicks. Cold-start lists
    (popular in category, no model) are not held: the monitor judges the model.
    """
    clicked = record.source.item_id
    pending: list[list[Any]] = state.get("r", [])
    judged: list[ListOutcome] = []
    if pending and pending[0][1] != clicked:
        base_hit, base_ndcg = rank_gain(popular, clicked)
        for v, _, items, at in pending:
            hit, ndcg = rank_gain(items, clicked)
            judged.append(ListOutcome(v, int(at), ts_ms, hit, ndcg, base_hit, base_ndcg))
        pending = []
    if not record.cold_start:
        pending.append([version, clicked, [i.item_id for i in record.items[:k]], ts_ms])
    state["r"] = pending[-limit:]
    return judged
