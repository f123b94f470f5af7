"""The fraud model's features: ONE implementation for training and serving.

Training replays the simulator's payment log in event-time order through
:func:`featurize_and_update`; the scorer calls the very same function on state read from
the runtime's keyed state store. Nothing else computes a feature.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.fraud.velocity import VelocityState, txn_crc
from shared.schemas.payments import Transaction

FEATURE_VERSION = 3
"""Bump on any change to what a feature means; models trained on another version are refused."""
BASE_FEATURES = ("log_amount",)
"""No time-of-day: the simulated training horizon is a few hours of one day, so an hour
feature would only tell the train slice from the test slice (it did: test PR-AUC fell)."""
VELOCITY_FEATURES = (
    "cnt_1m", "cnt_1h", "rate_24h",
    "amt_1m", "amt_1h", "amt_rate_24h",
    "devices_24h", "countries_24h",
    "log_secs_since_last", "first_seen", "log_hist_n", "amount_z",
    "new_device", "new_country", "log_hist_rate", "burst_ratio_1h",
)  # fmt: skip
"""Counts and amounts are log1p'd. The 24 h window and the history are turned into hourly
rates over the span actually observed, so they mean the same thing one hour or one week
after a service (or the simulator) starts: features that grow with uptime would drift."""
NUMERIC_FEATURES = BASE_FEATURES + VELOCITY_FEATURES
CATEGORICAL_FEATURES = ("merchant_category", "channel", "currency", "ip_country")
"""The card BIN is not one: a hashed BIN embedding memorised the victims' cards of the training
slice and lowered test PR-AUC (docs/fraud.md); its signal belongs to an issuer-risk table."""
CATEGORICAL_BUCKETS = {
    "merchant_category": 64, "channel": 8, "currency": 16, "ip_country": 64,
}  # fmt: skip
EUR_RATES: dict[str, float] = {
    "AUD": 1.63, "BRL": 5.43, "CAD": 1.47, "CHF": 0.95, "CNY": 7.8, "CZK": 25.0, "DKK": 7.46, "EUR": 1.0,
    "GBP": 0.87, "HKD": 8.5, "HUF": 390.0, "INR": 90.0, "JPY": 163.0, "KRW": 1450.0, "MXN": 18.5,
    "NOK": 11.5, "NZD": 1.78, "PLN": 4.35, "SEK": 11.4, "SGD": 1.46, "TRY": 35.0, "USD": 1.087, "ZAR": 20.4,
}  # fmt: skip
"""Units of each currency per EUR (fixed 2024 reference rates): amounts are compared in EUR."""
NO_HISTORY_SECS = 7 * 86_400.0
HISTORY_CAP = 20
"""``log_hist_n`` saturates here: it tells new users from known ones, not old from older."""
"""Stand-in gap for a user's first payment (a week), so the feature stays bounded."""

REASON_GROUPS: dict[str, tuple[str, ...]] = {
    "amount": ("log_amount",),  # high or, for card testing, tiny: whichever way it pushed
    "velocity_1m": ("cnt_1m", "amt_1m"),
    "velocity_1h": ("cnt_1h", "amt_1h"),
    "velocity_24h": ("rate_24h", "amt_rate_24h"),
    "velocity_unusual_for_user": ("log_hist_rate", "burst_ratio_1h"),
    "many_devices_24h": ("devices_24h",),
    "many_countries_24h": ("countries_24h",),
    "rapid_succession": ("log_secs_since_last",),
    "new_user": ("first_seen", "log_hist_n"),
    "amount_unusual_for_user": ("amount_z",),
    "new_device": ("new_device",),
    "new_country": ("new_country",),
    "merchant_category": ("merchant_category",),
    "channel": ("channel",),
    "currency": ("currency",),
    "ip_country": ("ip_country",),
}
"""Reason codes and the features each one stands for (occlusion groups)."""


@dataclass(frozen=True, slots=True)
class Txn:
    """The fields of a payment the features use, already converted to EUR."""

    txn_id: str
    user_id: str
    ts_ms: int
    amount_eur: float
    currency: str
    merchant_category: str
    channel: str
    device_id: str
    ip_country: str
    card_bin: str


def from_transaction(t: Transaction, rates: Mapping[str, float] = EUR_RATES) -> Txn:
    """The feature view of a validated payment; ``KeyError`` for a currency without a rate."""
    return Txn(
        txn_id=t.txn_id, user_id=t.user_id, ts_ms=t.ts_ms, amount_eur=t.amount / rates[t.currency],
        currency=t.currency, merchant_category=t.merchant_category, channel=t.channel,
        device_id=t.device_id, ip_country=t.ip_country, card_bin=t.card_bin,
    )  # fmt: skip


def bucket(column: str, value: str) -> int:
    """Stable hashed category id in ``[1, buckets)``; 0 is reserved for missing values."""
    if not value:
        return 0
    n = CATEGORICAL_BUCKETS[column]
    return 1 + zlib.crc32(f"{column}={value}".encode()) % (n - 1)


def _window_stats(state: VelocityState, prior: list[list[Any]], ts_ms: int) -> list[float]:
    one_min = [float(e[1]) for e in prior if ts_ms - int(e[0]) < 60_000]
    one_hour = [float(e[1]) for e in prior]
    day_count, day_amount = state.day_totals(ts_ms)
    span = min(24.0, state.age_hours(ts_ms))
    return [
        math.log1p(len(one_min)), math.log1p(len(one_hour)), math.log1p(max(day_count, len(one_hour)) / span),
        math.log1p(sum(one_min)), math.log1p(sum(one_hour)), math.log1p(max(day_amount, sum(one_hour)) / span),
    ]  # fmt: skip


def _gap_seconds(state: VelocityState, prior: list[list[Any]], ts_ms: int) -> float:
    if prior:
        return (ts_ms - int(prior[-1][0])) / 1000.0
    if state.last_ts is not None and state.last_ts < ts_ms:
        return (ts_ms - state.last_ts) / 1000.0
    return NO_HISTORY_SECS


def _velocity(state: VelocityState, txn: Txn, crc: int) -> list[float]:
    prior = state.prior_recent(txn.ts_ms, crc)
    devices = state.active(state.devices, txn.ts_ms) | {txn.device_id}
    countries = state.active(state.countries, txn.ts_ms) | {txn.ip_country}
    gap = _gap_seconds(state, prior, txn.ts_ms)
    x = math.log1p(txn.amount_eur)
    var = state.m2 / (state.n - 1) if state.n > 1 else 0.0
    z = (x - state.mu) / math.sqrt(var + 0.25) if state.n > 1 else 0.0
    known = state.n > 0
    hist_rate = math.log1p(state.n / state.age_hours(txn.ts_ms))
    return [
        *_window_stats(state, prior, txn.ts_ms),
        float(len(devices)),
        float(len(countries)),
        math.log1p(min(max(gap, 0.0), NO_HISTORY_SECS)),
        0.0 if known else 1.0,
        math.log1p(min(state.n, HISTORY_CAP)),
        max(-6.0, min(6.0, z)),
        1.0 if known and all(d != txn.device_id for d, _ in state.devices) else 0.0,
        1.0 if known and all(c != txn.ip_country for c, _ in state.countries) else 0.0,
        hist_rate,
        math.log1p(len(prior)) - hist_rate,
    ]


def featurize(state: VelocityState, txn: Txn) -> tuple[list[float], list[int]]:
    """Numeric and categorical features of ``txn`` given the user's state before it."""
    base = [math.log1p(max(txn.amount_eur, 0.0))]
    numeric = base + _velocity(state, txn, txn_crc(txn.txn_id))
    cats = [
        bucket("merchant_category", txn.merchant_category),
        bucket("channel", txn.channel),
        bucket("currency", txn.currency),
        bucket("ip_country", txn.ip_country),
    ]
    return numeric, cats


def featurize_and_update(state: VelocityState, txn: Txn) -> tuple[list[float], list[int]]:
    """Features from the state before ``txn``, then record ``txn`` in the state."""
    out = featurize(state, txn)
    state.add(txn.ts_ms, txn.amount_eur, txn.device_id, txn.ip_country, txn_crc(txn.txn_id))
    return out


def replay(txns: Sequence[Txn]) -> tuple[np.ndarray, np.ndarray]:
    """Training path: replay a payment log in event-time order with one state per user.

    Rows come back in the order of ``txns``. Each user's state goes through a dict round
    trip, exactly as the state store keeps it.
    """
    states: dict[str, dict[str, Any]] = {}
    numeric = np.zeros((len(txns), len(NUMERIC_FEATURES)), dtype=np.float32)
    cats = np.zeros((len(txns), len(CATEGORICAL_FEATURES)), dtype=np.int64)
    for i in sorted(range(len(txns)), key=lambda j: (txns[j].ts_ms, txns[j].txn_id)):
        txn = txns[i]
        state = VelocityState.from_dict(states.get(txn.user_id))
        numeric[i], cats[i] = featurize_and_update(state, txn)
        states[txn.user_id] = state.to_dict()
    return numeric, cats
