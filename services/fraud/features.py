"""The fraud model's features: ONE implementation for training and serving.

Training replays the simulator's payment log in event-time order through :func:`replay`, which
feeds it, a chunk at a time, to :func:`observe_batch`; the scorer calls the very same function
on each batch, with the states read from the runtime's keyed state store. Nothing else
computes a feature.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from services.fraud.velocity import StoredVelocity, VelocityTable, txn_crc, value_id
from services.fraud.windows import NO_HISTORY_SECS, RAW_COLUMNS, Payments, observe_and_update, rounds_of
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
HISTORY_CAP = 20
"""``log_hist_n`` saturates here: it tells new users from known ones, not old from older."""

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


def numeric_matrix(raw: np.ndarray) -> np.ndarray:
    """The model's ``numeric`` input ``[rows, NUMERIC_FEATURES]`` from ``[rows, RAW_COLUMNS]``."""
    c = dict(zip(RAW_COLUMNS, np.asarray(raw, dtype=np.float64).reshape(-1, len(RAW_COLUMNS)).T, strict=True))
    span = np.minimum(24.0, c["age_hours"])
    n = c["hist_n"]
    hist_rate = np.log1p(n / c["age_hours"])
    features = {
        "log_amount": np.log1p(np.maximum(c["amount_eur"], 0.0)),
        "cnt_1m": np.log1p(c["n_1m"]),
        "cnt_1h": np.log1p(c["n_1h"]),
        "rate_24h": np.log1p(np.maximum(c["n_24h"], c["n_1h"]) / span),
        "amt_1m": np.log1p(c["sum_1m"]),
        "amt_1h": np.log1p(c["sum_1h"]),
        "amt_rate_24h": np.log1p(np.maximum(c["sum_24h"], c["sum_1h"]) / span),
        "devices_24h": c["devices"],
        "countries_24h": c["countries"],
        "log_secs_since_last": np.log1p(np.clip(c["gap_s"], 0.0, NO_HISTORY_SECS)),
        "first_seen": (n == 0).astype(np.float64),
        "log_hist_n": np.log1p(np.minimum(n, HISTORY_CAP)),
        "amount_z": _amount_z(c["amount_eur"], n, c["hist_mu"], c["hist_m2"]),
        "new_device": c["new_device"],
        "new_country": c["new_country"],
        "log_hist_rate": hist_rate,
        "burst_ratio_1h": np.log1p(c["n_1h"]) - hist_rate,
    }
    return np.stack([features[name] for name in NUMERIC_FEATURES], axis=1).astype(np.float32)


def _amount_z(amount_eur: np.ndarray, n: np.ndarray, mu: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """How unusual the amount is for the user (Welford variance, shrunk); 0 below two payments."""
    many = n > 1
    var = np.where(many, m2 / np.where(many, n - 1, 1.0), 0.0)
    z = np.where(many, (np.log1p(amount_eur) - mu) / np.sqrt(var + 0.25), 0.0)
    return np.clip(z, -6.0, 6.0)


def payments(txns: Sequence[Txn]) -> Payments:
    """The columns the velocity windows read, from feature-view payments."""
    return Payments(
        ts_ms=np.array([t.ts_ms for t in txns], dtype=np.int64),
        amount_eur=np.array([t.amount_eur for t in txns], dtype=np.float64),
        crc=np.array([txn_crc(t.txn_id) for t in txns], dtype=np.uint32),
        known=known_ids(txns),
    )


def known_ids(txns: Sequence[Txn] | Sequence[Transaction]) -> np.ndarray:
    """``[rows, 2]``: the :func:`value_id` of each payment's device and IP country, hashed once per distinct value."""
    devices, countries = [t.device_id for t in txns], [t.ip_country for t in txns]
    ids = {v: value_id(v) for v in {*devices, *countries}}
    out = np.empty((len(txns), 2), dtype=np.uint64)
    out[:, 0], out[:, 1] = [ids[v] for v in devices], [ids[v] for v in countries]
    return out


def observe_batch(
    states: Sequence[StoredVelocity | None], user: np.ndarray, round_: np.ndarray, pay: Payments
) -> tuple[np.ndarray, list[bytes]]:
    """Raw columns of a batch of payments (``user``: row in ``states``, ``round_``: see
    :func:`services.fraud.windows.rounds_of`), and each user's state with the payments recorded."""
    table = VelocityTable.load(states, growth=int(round_.max()) + 1 if len(round_) else 0)
    raw = observe_and_update(table, user, round_, pay)
    return raw, table.dump()


def featurize_and_update(state: StoredVelocity | None, txn: Txn) -> tuple[np.ndarray, np.ndarray, bytes]:
    """One payment's numeric and categorical features, and the user's state with ``txn`` recorded.

    The batch functions on a batch of one, for tests and notebooks.
    """
    zero = np.zeros(1, dtype=np.intp)
    raw, [after] = observe_batch([state], zero, zero, payments([txn]))
    return numeric_matrix(raw)[0], categorical_matrix([txn])[0], after


def categorical_matrix(txns: Sequence[Txn] | Sequence[Transaction]) -> np.ndarray:
    """The ``categorical`` input ``[rows, CATEGORICAL_FEATURES]``: each distinct value is hashed once.

    A batch holds few distinct merchant categories, channels, currencies and countries, so the
    column is dictionary-encoded first and :func:`bucket` runs per distinct value, not per row.
    """
    out = np.zeros((len(txns), len(CATEGORICAL_FEATURES)), dtype=np.int64)
    for j, column in enumerate(CATEGORICAL_FEATURES):
        values = [getattr(t, column) for t in txns]
        codes = {value: bucket(column, value) for value in set(values)}
        out[:, j] = [codes[v] for v in values]
    return out


def replay(txns: Sequence[Txn], chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Training path: replay a payment log in event-time order with one state per user.

    Rows come back in the order of ``txns``. The log goes through :func:`observe_batch` a chunk
    at a time, each user's state kept as the bytes the state store keeps, exactly as in serving.
    """
    states: dict[str, StoredVelocity] = {}
    raw = np.zeros((len(txns), len(RAW_COLUMNS)), dtype=np.float64)
    order = sorted(range(len(txns)), key=lambda j: (txns[j].ts_ms, txns[j].txn_id))
    for start in range(0, len(order), chunk):
        rows = order[start:start + chunk]
        part = [txns[i] for i in rows]
        user, round_, users = rounds_of([t.user_id for t in part])
        raw[rows], after = observe_batch([states.get(u) for u in users], user, round_, payments(part))
        states.update(zip(users, after, strict=True))
    return numeric_matrix(raw), categorical_matrix(txns)
