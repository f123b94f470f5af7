"""Per-user velocity state: fixed-size numeric windows, stored as compact little-endian bytes.

The same code updates the state in training (replaying the simulator's logs in time order)
and in serving (the runtime's keyed state store, restored from the changelog after a
restart), so the features cannot drift between the two.

A batch's users are held as one :class:`VelocityTable`: a few ``[users, slots]`` arrays, each
row a user's window with its entry count (slots beyond the count are zero), so the windows are
read and updated with numpy for the whole batch (:mod:`services.fraud.windows`). Per user:

- ``recent``: payments of the last hour, oldest first (<= 64): time, EUR amount, txn id CRC;
- ``hours``: hourly buckets of the last 24 h (<= 25): hour, count, EUR amount;
- ``known``: the most recently seen devices and countries (<= 8 each), hashed, with last-seen times;
- the Welford stats of log1p(amount) over all history, and the first and last payment times.

Stored form (one ``bytes`` value per user in the state store and its changelog)::

    VERSION | header (44 B) | recent[nr] (20 B each) | hours[nh] (16 B each) | known[max(nd, nc)] (32 B each)

only the used entries are written (a one-payment user takes ~115 B, a saturated one ~2 kB).
The first byte cannot start JSON text, so the store tells these values from JSON ones; a user
whose state is still a JSON dict from an older changelog is read through :func:`from_legacy`.

Exact per-payment entries cover the 1 min and 1 h windows; the 24 h window sums hourly
buckets (so it spans 23-24 h). Updates are idempotent per transaction id while the id is in
``recent``: a payment replayed after a crash (at-least-once delivery) is not counted twice.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
MAX_RECENT = 64
"""Payments of the last hour kept per user; 1 min / 1 h counts saturate above it."""
MAX_HOURS = 25
MAX_KNOWN = 8
"""Devices / countries remembered per user."""
VERSION = b"\x01"
"""First byte of a stored state: the layout's version (a byte below 0x09, which no JSON starts with)."""

HEADER = np.dtype([("nr", "u1"), ("nh", "u1"), ("nd", "u1"), ("nc", "u1"), ("n", "<i8"), ("mu", "<f8"),
                   ("m2", "<f8"), ("first", "<i8"), ("last", "<i8")])  # fmt: skip
RECENT = np.dtype([("rts", "<i8"), ("ramt", "<f8"), ("rcrc", "<u4")])
HOURS = np.dtype([("hh", "<i4"), ("hcnt", "<i4"), ("hamt", "<f8")])
KNOWN = np.dtype([("dev", "<u8"), ("dts", "<i8"), ("cty", "<u8"), ("cts", "<i8")])
_START = len(VERSION) + HEADER.itemsize
_EMPTY = VERSION + bytes(HEADER.itemsize)

StoredVelocity = bytes | dict[str, Any]
"""What the state store holds for a user: this layout's bytes, or a legacy JSON dict."""


def txn_crc(txn_id: str) -> int:
    """A stable 32-bit fingerprint of a transaction id (never Python's salted ``hash()``)."""
    return zlib.crc32(txn_id.encode("utf-8"))


@functools.lru_cache(maxsize=1 << 16)
def value_id(value: str) -> int:
    """A stable 64-bit id of a device or country: the state keeps numbers, not strings (cached:
    countries and returning users' devices come back batch after batch)."""
    return int.from_bytes(hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass(slots=True)
class VelocityTable:
    """The velocity state of a batch's users, one row per user (see the module docstring).

    Devices and countries share their arrays: ``[users, 2, slots]``, devices first."""

    nr: np.ndarray
    nh: np.ndarray
    nk: np.ndarray
    n: np.ndarray
    mu: np.ndarray
    m2: np.ndarray
    first: np.ndarray
    last: np.ndarray
    rts: np.ndarray
    ramt: np.ndarray
    rcrc: np.ndarray
    hh: np.ndarray
    hcnt: np.ndarray
    hamt: np.ndarray
    kid: np.ndarray
    kts: np.ndarray

    @classmethod
    def load(cls, values: Sequence[StoredVelocity | None], growth: int = 0) -> VelocityTable:
        """The users' stored states (``None``: a new user), with room for ``growth`` more entries each."""
        blobs = [_EMPTY if v is None else v if isinstance(v, bytes) else from_legacy(v) for v in values]
        sizes = [(b[1], b[2], b[3] if b[3] > b[4] else b[4]) for b in blobs]
        most = [max(column, default=0) for column in zip(*sizes, strict=True)] or [0, 0, 0]
        cr, ch, ck = (max(1, min(cap, m + growth)) for cap, m in zip((MAX_RECENT, MAX_HOURS, MAX_KNOWN), most,
                                                                      strict=True))  # fmt: skip
        record = _record(cr, ch, ck)
        head_and_recent, hw, kw = _offset(record, "h"), ch * HOURS.itemsize, ck * KNOWN.itemsize
        chunks: list[bytes] = []
        for b, (nr, nh, nk) in zip(blobs, sizes, strict=True):  # each user padded to the record's size
            a = _START + nr * RECENT.itemsize
            h = a + nh * HOURS.itemsize
            chunks += (b[:a].ljust(head_and_recent, b"\0"), b[a:h].ljust(hw, b"\0"),
                       b[h : h + nk * KNOWN.itemsize].ljust(kw, b"\0"))  # fmt: skip
        rows = np.frombuffer(b"".join(chunks), dtype=record)
        head, r, hr, k = rows["head"], rows["r"], rows["h"], rows["k"]
        i64, f64 = np.int64, np.float64
        return cls(
            nr=head["nr"].astype(i64), nh=head["nh"].astype(i64), nk=np.stack([head["nd"], head["nc"]], 1).astype(i64),
            n=head["n"].astype(i64), mu=head["mu"].astype(f64), m2=head["m2"].astype(f64),
            first=head["first"].astype(i64), last=head["last"].astype(i64),
            rts=r["rts"].astype(i64), ramt=r["ramt"].astype(f64), rcrc=r["rcrc"].astype(np.uint32),
            hh=hr["hh"].astype(i64), hcnt=hr["hcnt"].astype(i64), hamt=hr["hamt"].astype(f64),
            kid=np.stack([k["dev"], k["cty"]], 1).astype(np.uint64), kts=np.stack([k["dts"], k["cts"]], 1).astype(i64),
        )  # fmt: skip

    def dump(self) -> list[bytes]:
        """Each user's stored form: only the used entries are written."""
        record = _record(self.rts.shape[1], self.hh.shape[1], self.kid.shape[2])
        rows = np.empty(len(self.n), dtype=record)
        rows["v"] = VERSION[0]
        head, recent, hours, known = rows["head"], rows["r"], rows["h"], rows["k"]
        for name in ("nr", "nh", "n", "mu", "m2", "first", "last"):
            head[name] = getattr(self, name)
        head["nd"], head["nc"] = self.nk[:, 0], self.nk[:, 1]
        recent["rts"], recent["ramt"], recent["rcrc"] = self.rts, self.ramt, self.rcrc
        hours["hh"], hours["hcnt"], hours["hamt"] = self.hh, self.hcnt, self.hamt
        known["dev"], known["cty"] = self.kid[:, 0], self.kid[:, 1]
        known["dts"], known["cts"] = self.kts[:, 0], self.kts[:, 1]
        buf = rows.tobytes()
        size, at_hours, at_known = record.itemsize, _offset(record, "h"), _offset(record, "k")
        base = np.arange(len(self.n)) * size
        ends = np.stack([base + _START + self.nr * RECENT.itemsize, base + at_hours,
                         base + at_hours + self.nh * HOURS.itemsize, base + at_known,
                         base + at_known + self.nk.max(1) * KNOWN.itemsize], 1).tolist()  # fmt: skip
        return [buf[b:r] + buf[h:he] + buf[k:ke] for b, (r, h, he, k, ke) in zip(base.tolist(), ends, strict=True)]

    def take(self, rows: np.ndarray) -> VelocityTable:
        """A copy of some users' rows."""
        return VelocityTable(*(getattr(self, name)[rows] for name in self.__slots__))

    def put(self, rows: np.ndarray, other: VelocityTable) -> None:
        """Write ``other``'s rows back as rows ``rows`` (the inverse of :meth:`take`)."""
        for name in self.__slots__:
            getattr(self, name)[rows] = getattr(other, name)


@functools.lru_cache(maxsize=256)
def _record(recent: int, hours: int, known: int) -> np.dtype[Any]:
    """One user's stored form with its windows padded to the batch's slots, as one fixed-size record."""
    return np.dtype([("v", "u1"), ("head", HEADER), ("r", RECENT, (recent,)), ("h", HOURS, (hours,)),
                     ("k", KNOWN, (known,))])  # fmt: skip


def _offset(record: np.dtype[Any], field: str) -> int:
    assert record.fields is not None
    return int(record.fields[field][1])


# -- legacy JSON states (changelogs written before the binary layout) ---------------------------


def from_legacy(d: dict[str, Any]) -> bytes:
    """The stored form of a legacy JSON state dict (``r``, ``h``, ``dev``, ``cty``, ``n``, ``mu``, ...)."""
    recent = [list(e) for e in d.get("r", [])][-MAX_RECENT:]
    hours = [list(e) for e in d.get("h", [])][-MAX_HOURS:]
    known = [[[value_id(v), t] for v, t in d.get(k, [])][:MAX_KNOWN] for k in ("dev", "cty")]
    one = VelocityTable(
        nr=np.array([len(recent)]), nh=np.array([len(hours)]), nk=np.array([[len(k) for k in known]]),
        n=np.array([int(d.get("n", 0))]), mu=np.array([float(d.get("mu", 0.0))]),
        m2=np.array([float(d.get("m2", 0.0))]),
        first=np.array([d.get("first") or 0]), last=np.array([d.get("last") or 0]),
        rts=_slots([recent], 0, MAX_RECENT, np.int64), ramt=_slots([recent], 1, MAX_RECENT, np.float64),
        rcrc=_slots([recent], 2, MAX_RECENT, np.uint32), hh=_slots([hours], 0, MAX_HOURS, np.int64),
        hcnt=_slots([hours], 1, MAX_HOURS, np.int64), hamt=_slots([hours], 2, MAX_HOURS, np.float64),
        kid=_slots(known, 0, MAX_KNOWN, np.uint64)[None], kts=_slots(known, 1, MAX_KNOWN, np.int64)[None],
    )  # fmt: skip
    return one.dump()[0]


def _slots(lists: list[list[list[Any]]], column: int, slots: int, dtype: type) -> np.ndarray:
    """``[len(lists), slots]``: one column of each list's entries, zero-padded."""
    out: np.ndarray = np.zeros((len(lists), slots), dtype=dtype)
    for i, entries in enumerate(lists):
        out[i, : len(entries)] = [e[column] for e in entries]
    return out


def legacy_view(value: StoredVelocity) -> dict[str, Any]:
    """A stored state in the legacy dict layout, devices and countries as their :func:`value_id`
    (tests and debugging: a binary state and the JSON state it replaced compare equal)."""
    if isinstance(value, dict):
        known = {k: [[value_id(v), t] for v, t in value.get(k, [])] for k in ("dev", "cty")}
        return {**value, **known}
    t = VelocityTable.load([value])
    nr, nh, (nd, nc) = int(t.nr[0]), int(t.nh[0]), t.nk[0].tolist()
    history = int(t.n[0]) > 0
    return {
        "r": _rows(t.rts[0, :nr], t.ramt[0, :nr], t.rcrc[0, :nr]),
        "h": _rows(t.hh[0, :nh], t.hcnt[0, :nh], t.hamt[0, :nh]),
        "dev": _rows(t.kid[0, 0, :nd], t.kts[0, 0, :nd]), "cty": _rows(t.kid[0, 1, :nc], t.kts[0, 1, :nc]),
        "n": int(t.n[0]), "mu": float(t.mu[0]), "m2": float(t.m2[0]),
        "first": int(t.first[0]) if history else None, "last": int(t.last[0]) if history else None,
    }  # fmt: skip


def _rows(*columns: np.ndarray) -> list[list[Any]]:
    return [list(row) for row in zip(*(c.tolist() for c in columns), strict=True)]
