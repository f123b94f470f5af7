"""Per-user velocity state: a compact, bounded, JSON-serialisable record of recent payments.

The same code updates the state in training (replaying the simulator's logs in time order)
and in serving (the runtime's keyed state store, restored from the changelog after a
restart), so the features cannot drift between the two.

State layout (one dict per user, stored as-is in the state store, ~1-3 KB)::

    {"r": [[ts_ms, amount_eur, txn_crc], ...],  # payments of the last hour, oldest first (<= 64)
     "h": [[hour, count, amount_eur], ...],     # hourly buckets of the last 24 h (<= 25)
     "dev": [[device, last_ts], ...],           # most recently seen devices (<= 8)
     "cty": [[country, last_ts], ...],          # most recently seen countries (<= 8)
     "n": 17, "mu": 3.1, "m2": 4.2,             # Welford stats of log1p(amount) over all history
     "first": ts_ms, "last": ts_ms}             # oldest and newest payment times seen

Exact per-payment entries cover the 1 min and 1 h windows; the 24 h window sums hourly
buckets (so it spans 23-24 h). Updates are idempotent per transaction id while the id is in
``r``: a payment replayed after a crash (at-least-once delivery) is not counted twice.
"""

from __future__ import annotations

import bisect
import math
import zlib
from dataclasses import dataclass, field
from typing import Any

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
MAX_RECENT = 64
"""Payments of the last hour kept per user; 1 min / 1 h counts saturate above it."""
MAX_KNOWN = 8
"""Devices / countries remembered per user."""


def txn_crc(txn_id: str) -> int:
    """A stable 32-bit fingerprint of a transaction id (never Python's salted ``hash()``)."""
    return zlib.crc32(txn_id.encode("utf-8"))


@dataclass(slots=True)
class VelocityState:
    """Mutable view over one user's state dict; ``to_dict()`` gives the stored form."""

    recent: list[list[Any]] = field(default_factory=list)
    hours: list[list[Any]] = field(default_factory=list)
    devices: list[list[Any]] = field(default_factory=list)
    countries: list[list[Any]] = field(default_factory=list)
    n: int = 0
    mu: float = 0.0
    m2: float = 0.0
    first_ts: int | None = None
    last_ts: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> VelocityState:
        if not d:
            return cls()
        return cls(
            recent=[list(e) for e in d.get("r", [])],
            hours=[list(e) for e in d.get("h", [])],
            devices=[list(e) for e in d.get("dev", [])],
            countries=[list(e) for e in d.get("cty", [])],
            n=int(d.get("n", 0)),
            mu=float(d.get("mu", 0.0)),
            m2=float(d.get("m2", 0.0)),
            first_ts=d.get("first"),
            last_ts=d.get("last"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "r": self.recent, "h": self.hours, "dev": self.devices, "cty": self.countries,
            "n": self.n, "mu": self.mu, "m2": self.m2,  # floats survive JSON exactly
            "first": self.first_ts, "last": self.last_ts,
        }  # fmt: skip

    def seen(self, crc: int) -> bool:
        return any(e[2] == crc for e in self.recent)

    def prior_recent(self, ts_ms: int, crc: int) -> list[list[Any]]:
        """Payments of the hour up to ``ts_ms`` (inclusive), excluding this transaction itself."""
        return [e for e in self.recent if ts_ms - HOUR_MS < e[0] <= ts_ms and e[2] != crc]

    def day_totals(self, ts_ms: int) -> tuple[int, float]:
        """Count and amount of the hourly buckets of the 24 h before ``ts_ms``."""
        hour = ts_ms // HOUR_MS
        inside = [b for b in self.hours if hour - 24 < b[0] <= hour]
        return sum(int(b[1]) for b in inside), sum(float(b[2]) for b in inside)

    def age_hours(self, ts_ms: int) -> float:
        """Hours since the user's first payment, at least 1 (young histories are not rates yet)."""
        first = self.first_ts if self.first_ts is not None else ts_ms
        return max(1.0, (ts_ms - first) / HOUR_MS)

    def active(self, known: list[list[Any]], ts_ms: int) -> set[str]:
        """Values of ``known`` seen in the 24 h before ``ts_ms``."""
        return {v for v, seen in known if ts_ms - DAY_MS < seen <= ts_ms}

    def add(self, ts_ms: int, amount: float, device: str, country: str, crc: int) -> None:
        """Record a payment (a no-op for a replayed one still in the last hour)."""
        if self.seen(crc):
            return
        newest = max(ts_ms, self.last_ts or ts_ms)
        keys = [e[0] for e in self.recent]
        self.recent.insert(bisect.bisect_right(keys, ts_ms), [ts_ms, round(amount, 2), crc])
        self.recent = [e for e in self.recent if e[0] > newest - HOUR_MS][-MAX_RECENT:]
        self._add_hour(ts_ms, amount, newest)
        self.devices = _remember(self.devices, device, ts_ms)
        self.countries = _remember(self.countries, country, ts_ms)
        self.last_ts = newest
        self.first_ts = min(ts_ms, self.first_ts if self.first_ts is not None else ts_ms)
        x = math.log1p(max(amount, 0.0))
        self.n += 1
        delta = x - self.mu
        self.mu += delta / self.n
        self.m2 += delta * (x - self.mu)

    def _add_hour(self, ts_ms: int, amount: float, newest: int) -> None:
        hour = ts_ms // HOUR_MS
        for b in self.hours:
            if b[0] == hour:
                b[1] += 1
                b[2] = round(b[2] + amount, 2)
                break
        else:
            self.hours.append([hour, 1, round(amount, 2)])
            self.hours.sort(key=lambda b: b[0])
        self.hours = [b for b in self.hours if b[0] > newest // HOUR_MS - 25]


def _remember(known: list[list[Any]], value: str, ts_ms: int) -> list[list[Any]]:
    """Put ``value`` first with its newest sighting in a capped most-recently-seen list."""
    seen = max([ts_ms] + [int(t) for v, t in known if v == value])
    return ([[value, seen]] + [[v, t] for v, t in known if v != value])[:MAX_KNOWN]
