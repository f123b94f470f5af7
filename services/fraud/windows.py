"""Velocity windows over a batch: what each payment sees of its user's past, then the update.

Payments are taken in rounds: round ``k`` holds the ``k``-th payment of every user of the batch,
so a round never holds two payments of one user and is computed with numpy for all its users at
once; a user's later payments see the earlier ones, in batch order, as one payment at a time would.
A round costs about 200 µs whatever its size, so a batch in which one user has many payments (a
flood, or a backlog of one heavy user) costs more per payment than the usual one or two rounds.

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
    user = np.fromiter((index.setdefault(k, len(index)) for k in keys), dtype=np.intp, count=len(keys))
    order = np.argsort(user, kind="stable")  # each user's payments together, in batch order
    grouped = user[order]
    starts = np.flatnonzero(np.diff(grouped, prepend=-1))
    round_ = np.empty(len(keys), dtype=np.intp)
    round_[order] = np.arange(len(keys)) - np.repeat(starts, np.diff(starts, append=len(keys)))
    return user, round_, list(index)


def observe_and_update(table: VelocityTable, user: np.ndarray, round_: np.ndarray, pay: Payments) -> np.ndarray:
    """The :data:`RAW_COLUMNS` of each payment from its user's state before it; the payments are
    recorded in ``table`` (users by row ``user``, rounds by ``round_`` from :func:`rounds_of`)."""
    raw = np.zeros((len(user), len(RAW_COLUMNS)), dtype=np.float64)
    if not len(user):
        return raw
    cents = round_cents(pay.amount_eur)
    log_amount = np.array([math.log1p(max(a, 0.0)) for a in pay.amount_eur.tolist()], dtype=np.float64)
    for k in range(int(round_.max()) + 1):
        idx = np.flatnonzero(round_ == k)
        rows = user[idx]
        whole = k == 0 and len(idx) == len(table.n)  # the first round is every user, in row order
        before = table if whole else table.take(rows)
        p = pay.rows(idx)
        m = Masks.of(before, p)
        raw[idx] = observe(before, p, m)
        after = record(before, p, m, cents[idx], log_amount[idx])
        fresh = m.fresh
        if whole and fresh.all():
            for name in VelocityTable.__slots__:
                setattr(table, name, getattr(after, name))
        else:
            table.put(rows[fresh], after.take(np.flatnonzero(fresh)))
    return raw


@dataclass(frozen=True, slots=True)
class Masks:
    """What both :func:`observe` and :func:`record` ask of a round's state, computed once."""

    recent: np.ndarray  # used slots of the recent payments
    same_txn: np.ndarray  # slots holding this payment's txn id (a redelivery)
    fresh: np.ndarray  # payments not seen before (per row)
    hours: np.ndarray  # used slots of the hourly buckets
    hour: np.ndarray  # the payment's hour
    known_slots: np.ndarray  # used slots of the devices / countries [rows, 2, slots]
    same_known: np.ndarray  # slots holding the payment's device / country
    known: np.ndarray  # users with history

    @classmethod
    def of(cls, s: VelocityTable, p: Payments) -> Masks:
        recent = np.arange(s.rts.shape[1]) < s.nr[:, None]
        same_txn = recent & (s.rcrc == p.crc[:, None])
        known_slots = np.arange(s.kid.shape[2]) < s.nk[:, :, None]
        return cls(recent, same_txn, ~np.logical_or.reduce(same_txn, axis=1), np.arange(s.hh.shape[1]) < s.nh[:, None],
                   p.ts_ms // HOUR_MS, known_slots, known_slots & (s.kid == p.known[:, :, None]), s.n > 0)


def observe(s: VelocityTable, p: Payments, m: Masks) -> np.ndarray:
    """:data:`RAW_COLUMNS` of one round's payments (one per user of ``s``)."""
    ts = p.ts_ms[:, None]
    prior = m.recent & ~m.same_txn & (s.rts > ts - HOUR_MS) & (s.rts <= ts)
    minute = prior & (ts - s.rts < 60_000)
    n_1h = _count(prior)
    day = m.hours & (s.hh > (m.hour - 24)[:, None]) & (s.hh <= m.hour[:, None])
    known = m.known
    first = np.where(known, s.first, p.ts_ms)
    last_prior = np.maximum.reduce(np.where(prior, s.rts, 0), axis=1)
    gap = np.where(n_1h > 0, (p.ts_ms - last_prior) / 1000.0,
                   np.where(known & (s.last < p.ts_ms), (p.ts_ms - s.last) / 1000.0, NO_HISTORY_SECS))  # fmt: skip
    distinct, new = _distinct(s, p, m)
    return np.stack([
        p.amount_eur, _count(minute), n_1h, np.add.reduce(np.where(day, s.hcnt, 0), axis=1),
        _sum(np.where(minute, s.ramt, 0.0)), _sum(np.where(prior, s.ramt, 0.0)), _sum(np.where(day, s.hamt, 0.0)),
        np.maximum(1.0, (p.ts_ms - first) / HOUR_MS), distinct[:, 0], distinct[:, 1], gap, s.n, s.mu, s.m2,
        new[:, 0], new[:, 1],
    ], axis=1)  # fmt: skip


def _count(mask: np.ndarray) -> np.ndarray:
    return np.asarray(np.add.reduce(mask, axis=1))  # the ufunc itself: np.count_nonzero(axis=) is Python


def _sum(x: np.ndarray) -> np.ndarray:
    """Row sums added left to right, as Python's ``sum`` adds (``np.sum`` adds pairwise)."""
    return x.cumsum(axis=1)[:, -1]


def _distinct(s: VelocityTable, p: Payments, m: Masks) -> tuple[np.ndarray, np.ndarray]:
    """``[rows, 2]``: distinct devices / countries of the last 24 h with this payment's, and whether the
    payment's is new to a known user."""
    ts = p.ts_ms[:, None, None]
    active = m.known_slots & (s.kts > ts - DAY_MS) & (s.kts <= ts)
    return (np.add.reduce(active, axis=2) + ~np.logical_or.reduce(active & m.same_known, axis=2),
            m.known[:, None] & ~np.logical_or.reduce(m.same_known, axis=2))  # fmt: skip


def round_cents(x: np.ndarray) -> np.ndarray:
    """Python's ``round(x, 2)`` of each value, bit for bit, mostly with numpy.

    ``np.round`` scales by 100 and rounds to an integer, and the scaling's own rounding can move a
    value that lies within an ulp of half a cent to the wrong side; those few are rounded by Python.
    Elsewhere both pick the same cent count ``k``, and both return the double nearest to ``k / 100``.
    """
    scaled = x * 100.0
    out = np.rint(scaled) / 100.0
    near_half = np.abs(scaled - np.floor(scaled) - 0.5) <= 1e-9 * np.maximum(1.0, np.abs(scaled))
    if near_half.any():
        out[near_half] = [round(a, 2) for a in x[near_half].tolist()]
    return out


def record(s: VelocityTable, p: Payments, m: Masks, rounded: np.ndarray, x: np.ndarray) -> VelocityTable:
    """The state after one round's payments (``rounded``: their :func:`round_cents` amounts, ``x``:
    their ``log1p`` amounts). Only rows of ``m.fresh`` are to be kept: a replayed txn id still in
    the last hour changes nothing."""
    known = m.known
    newest = np.where(known, np.maximum(p.ts_ms, s.last), p.ts_ms)
    rts, ramt, rcrc, nr = _add_recent(s, p, m.recent, newest, rounded)
    hh, hcnt, hamt, nh = _add_hour(s, p, m, newest, rounded)
    kid, kts, nk = _remember(s, p, m)
    n = s.n + 1
    delta = x - s.mu
    mu = s.mu + delta / n
    m2 = s.m2 + delta * (x - mu)
    first = np.where(known, np.minimum(p.ts_ms, s.first), p.ts_ms)
    return VelocityTable(nr, nh, nk, n, mu, m2, first, newest, rts, ramt, rcrc, hh, hcnt, hamt, kid, kts)


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
    return np.where(keep, np.where(at, new[:, None], old), 0).astype(old.dtype, copy=False)


def _add_hour(s: VelocityTable, p: Payments, m: Masks, newest: np.ndarray,
              rounded: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Count the payment in its hour's bucket (a new bucket in hour order); keep 25 hours."""
    hour, valid = m.hour, m.hours
    match = valid & (s.hh == hour[:, None])
    found = np.logical_or.reduce(match, axis=1)
    new = ~found
    pos = np.where(found, match.argmax(1), _count(valid & (s.hh < hour[:, None])))
    expired = newest // HOUR_MS - MAX_HOURS
    drop = _count(valid & (s.hh <= expired[:, None])) + (new & (hour <= expired))
    count = s.nh + new
    slots = s.hh.shape[1]
    src, at = _shifted(slots, drop, pos, new)
    keep = np.arange(slots) < (count - drop)[:, None]
    rows = np.arange(len(hour))[:, None]
    amount = rounded
    if found.any():
        amount = np.where(new, rounded, round_cents(s.hamt[rows[:, 0], np.minimum(pos, slots - 1)] + p.amount_eur))
    counts = s.hcnt[rows, src]
    bumped = np.where(new[:, None], 1, counts + 1)
    return (_window(keep, at & new[:, None], hour, s.hh[rows, src]), np.where(keep, np.where(at, bumped, counts), 0),
            _window(keep, at, amount, s.hamt[rows, src]), count - drop)  # fmt: skip


def _remember(s: VelocityTable, p: Payments, m: Masks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Put the payment's device (and country) first with its newest sighting in a most-recently-seen
    list capped at 8."""
    slots = s.kid.shape[2]
    same = m.same_known
    has = np.logical_or.reduce(same, axis=2)
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
    ids = np.where(keep, np.where(first, p.known[:, :, None], s.kid[rows, pair, src]), 0)
    seen = np.where(keep, np.where(first, newest[:, :, None], s.kts[rows, pair, src]), 0)
    return ids.astype(np.uint64, copy=False), seen, size
