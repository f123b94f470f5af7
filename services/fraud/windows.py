"""Velocity windows over a batch: what each payment sees of its user's past, then the update.

Payments are taken in rounds: round ``k`` holds the ``k``-th payment of every user of the batch,
so a round never holds two payments of one user and is computed with numpy for all its users at
once; a user's later payments see the earlier ones, in batch order, as one payment at a time would.

The arithmetic repeats the per-payment definitions operation for operation (sums left to right
with ``cumsum``, Python's ``round`` and ``math.log1p`` where they were used), so features and
states are the same numbers as before the windows became arrays.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from services.fraud.velocity import DAY_MS, HOUR_MS, MAX_HOURS, MAX_KNOWN, MAX_RECENT, VelocityTable

NO_HISTORY_SECS = 7 * 86_400.0
"""Stand-in gap for a user's first payment (a week), so the feature stays bounded."""
RAW_COLUMNS = (
    "amount_eur", "n_1m", "n_1h", "n_24h", "sum_1m", "sum_1h", "sum_24h", "age_hours",
    "devices", "countries", "gap_s", "hist_n", "hist_mu", "hist_m2", "new_device", "new_country",
)  # fmt: skip
"""What a payment reads from its user's state; ``features.numeric_matrix`` turns them into features."""
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Payments:
    """The fields of a batch of payments the windows read, one array each."""

    ts_ms: np.ndarray  # int64
    amount_eur: np.ndarray  # float64
    crc: np.ndarray  # uint32 fingerprints of the txn ids
    known: np.ndarray  # uint64 value ids [rows, 2]: device, IP country

    def rows(self, idx: np.ndarray) -> Payments:
        return Payments(self.ts_ms[idx], self.amount_eur[idx], self.crc[idx], self.known[idx])


def rounds_of(keys: Sequence[K]) -> tuple[np.ndarray, np.ndarray, list[K]]:
    """Per payment its user's row and its round; and the users, in the order of their first payments."""
    index: dict[K, int] = {}
    seen: list[int] = []
    user, round_ = [], []
    for key in keys:
        i = index.setdefault(key, len(index))
        if i == len(seen):
            seen.append(0)
        user.append(i)
        round_.append(seen[i])
        seen[i] += 1
    return np.asarray(user, dtype=np.intp), np.asarray(round_, dtype=np.intp), list(index)


def observe_and_update(table: VelocityTable, user: np.ndarray, round_: np.ndarray, pay: Payments) -> np.ndarray:
    """The :data:`RAW_COLUMNS` of each payment from its user's state before it; the payments are
    recorded in ``table`` (users by row ``user``, rounds by ``round_`` from :func:`rounds_of`)."""
    raw = np.zeros((len(user), len(RAW_COLUMNS)), dtype=np.float64)
    if not len(user):
        return raw
    for k in range(int(round_.max()) + 1):
        idx = np.flatnonzero(round_ == k)
        rows = user[idx]
        whole = k == 0 and len(idx) == len(table.n)  # the first round is every user, in row order
        before = table if whole else table.take(rows)
        p = pay.rows(idx)
        raw[idx] = observe(before, p)
        after, fresh = record(before, p)
        if whole and fresh.all():
            for name in VelocityTable.__slots__:
                setattr(table, name, getattr(after, name))
        else:
            table.put(rows[fresh], after.take(np.flatnonzero(fresh)))
    return raw


def observe(s: VelocityTable, p: Payments) -> np.ndarray:
    """:data:`RAW_COLUMNS` of one round's payments (one per user of ``s``)."""
    ts = p.ts_ms[:, None]
    valid = np.arange(s.rts.shape[1]) < s.nr[:, None]
    prior = valid & (s.rcrc != p.crc[:, None]) & (s.rts > ts - HOUR_MS) & (s.rts <= ts)
    minute = prior & (ts - s.rts < 60_000)
    n_1h = _count(prior)
    hour = p.ts_ms // HOUR_MS
    day = (np.arange(s.hh.shape[1]) < s.nh[:, None]) & (s.hh > (hour - 24)[:, None]) & (s.hh <= hour[:, None])
    known = s.n > 0
    first = np.where(known, s.first, p.ts_ms)
    last_prior = np.where(prior, s.rts, 0).max(1)
    gap = np.where(n_1h > 0, (p.ts_ms - last_prior) / 1000.0,
                   np.where(known & (s.last < p.ts_ms), (p.ts_ms - s.last) / 1000.0, NO_HISTORY_SECS))  # fmt: skip
    distinct, new = _distinct(s, p, known)
    return np.stack([
        p.amount_eur, _count(minute), n_1h, np.where(day, s.hcnt, 0).sum(1),
        _sum(np.where(minute, s.ramt, 0.0)), _sum(np.where(prior, s.ramt, 0.0)), _sum(np.where(day, s.hamt, 0.0)),
        np.maximum(1.0, (p.ts_ms - first) / HOUR_MS), distinct[:, 0], distinct[:, 1], gap, s.n, s.mu, s.m2,
        new[:, 0], new[:, 1],
    ], axis=1)  # fmt: skip


def _count(mask: np.ndarray) -> np.ndarray:
    return np.asarray(np.count_nonzero(mask, axis=1))


def _sum(x: np.ndarray) -> np.ndarray:
    """Row sums added left to right, as Python's ``sum`` adds (``np.sum`` adds pairwise)."""
    return np.cumsum(x, axis=1)[:, -1]


def _distinct(s: VelocityTable, p: Payments, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[rows, 2]``: distinct devices / countries of the last 24 h with this payment's, and whether the
    payment's is new to a known user."""
    ts = p.ts_ms[:, None, None]
    valid = np.arange(s.kid.shape[2]) < s.nk[:, :, None]
    same = valid & (s.kid == p.known[:, :, None])
    active = valid & (s.kts > ts - DAY_MS) & (s.kts <= ts)
    return np.count_nonzero(active, axis=2) + ~(active & same).any(2), known[:, None] & ~same.any(2)


def record(s: VelocityTable, p: Payments) -> tuple[VelocityTable, np.ndarray]:
    """The state after one round's payments, and which payments were new (a replayed txn id
    still in the last hour changes nothing)."""
    valid = np.arange(s.rts.shape[1]) < s.nr[:, None]
    fresh = ~(valid & (s.rcrc == p.crc[:, None])).any(1)
    known = s.n > 0
    newest = np.where(known, np.maximum(p.ts_ms, s.last), p.ts_ms)
    rounded = np.array([round(a, 2) for a in p.amount_eur.tolist()], dtype=np.float64)
    rts, ramt, rcrc, nr = _add_recent(s, p, valid, newest, rounded)
    hh, hcnt, hamt, nh = _add_hour(s, p, newest, rounded)
    kid, kts, nk = _remember(s, p)
    x = np.array([math.log1p(max(a, 0.0)) for a in p.amount_eur.tolist()], dtype=np.float64)
    n = s.n + 1
    delta = x - s.mu
    mu = s.mu + delta / n
    m2 = s.m2 + delta * (x - mu)
    first = np.where(known, np.minimum(p.ts_ms, s.first), p.ts_ms)
    after = VelocityTable(nr, nh, nk, n, mu, m2, first, newest, rts, ramt, rcrc, hh, hcnt, hamt, kid, kts)
    return after, fresh


def _shifted(slots: int, drop: np.ndarray, pos: np.ndarray, inserted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where slot ``j`` of a window comes from after inserting at ``pos`` (where ``inserted``) and
    dropping the ``drop`` oldest entries: the old slot to copy, and whether it is the inserted slot."""
    j = np.arange(slots) + drop[:, None]
    at = j == pos[:, None]
    return np.minimum(j - (inserted[:, None] & (j > pos[:, None])), slots - 1), at


def _add_recent(s: VelocityTable, p: Payments, valid: np.ndarray, newest: np.ndarray,
                rounded: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Insert after the payments of the same time or earlier; keep the last hour, at most 64."""
    ts = p.ts_ms[:, None]
    pos = _count(valid & (s.rts <= ts))
    expired = newest - HOUR_MS
    drop = _count(valid & (s.rts <= expired[:, None])) + (p.ts_ms <= expired)
    count = s.nr + 1
    drop = np.maximum(drop, count - MAX_RECENT)
    src, at = _shifted(s.rts.shape[1], drop, pos, np.ones(len(pos), dtype=bool))
    keep = np.arange(s.rts.shape[1]) < (count - drop)[:, None]
    rows = np.arange(len(pos))[:, None]
    return (_window(keep, at, p.ts_ms, s.rts[rows, src]), _window(keep, at, rounded, s.ramt[rows, src]),
            _window(keep, at, p.crc, s.rcrc[rows, src]), count - drop)  # fmt: skip


def _window(keep: np.ndarray, at: np.ndarray, new: np.ndarray, old: np.ndarray) -> np.ndarray:
    return np.where(keep, np.where(at, new[:, None], old), 0).astype(old.dtype)


def _add_hour(s: VelocityTable, p: Payments, newest: np.ndarray,
              rounded: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Count the payment in its hour's bucket (a new bucket in hour order); keep 25 hours."""
    hour = p.ts_ms // HOUR_MS
    valid = np.arange(s.hh.shape[1]) < s.nh[:, None]
    match = valid & (s.hh == hour[:, None])
    found = match.any(1)
    new = ~found
    pos = np.where(found, match.argmax(1), _count(valid & (s.hh < hour[:, None])))
    expired = newest // HOUR_MS - MAX_HOURS
    drop = _count(valid & (s.hh <= expired[:, None])) + (new & (hour <= expired))
    count = s.nh + new
    slots = s.hh.shape[1]
    src, at = _shifted(slots, drop, pos, new)
    keep = np.arange(slots) < (count - drop)[:, None]
    rows = np.arange(len(hour))[:, None]
    old_amount = s.hamt[rows[:, 0], np.minimum(pos, slots - 1)] + p.amount_eur
    amount = np.where(new, rounded, np.array([round(a, 2) for a in old_amount.tolist()], dtype=np.float64))
    counts = s.hcnt[rows, src]
    bumped = np.where(new[:, None], 1, counts + 1)
    return (_window(keep, at & new[:, None], hour, s.hh[rows, src]), np.where(keep, np.where(at, bumped, counts), 0),
            _window(keep, at, amount, s.hamt[rows, src]), count - drop)  # fmt: skip


def _remember(s: VelocityTable, p: Payments) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Put the payment's device (and country) first with its newest sighting in a most-recently-seen
    list capped at 8."""
    slots = s.kid.shape[2]
    valid = np.arange(slots) < s.nk[:, :, None]
    same = valid & (s.kid == p.known[:, :, None])
    has = same.any(2)
    pos = same.argmax(2)
    users, lists = np.arange(len(pos))[:, None], np.arange(2)[None, :]
    ts = p.ts_ms[:, None]
    newest = np.where(has, np.maximum(ts, s.kts[users, lists, pos]), ts)
    j = np.arange(slots) - 1
    src = j + (has[:, :, None] & (j >= pos[:, :, None]))  # -1 (the last slot) only where slot 0 takes the new value
    size = np.minimum(MAX_KNOWN, s.nk + ~has)
    keep = np.arange(slots) < size[:, :, None]
    first = np.arange(slots) == 0
    rows, pair = users[:, :, None], lists[:, :, None]
    return (np.where(keep, np.where(first, p.known[:, :, None], s.kid[rows, pair, src]), 0).astype(np.uint64),
            np.where(keep, np.where(first, newest[:, :, None], s.kts[rows, pair, src]), 0), size)  # fmt: skip
